"""Timings of the downstream-utility pipeline: patch cutting, feature extraction, SVM fits.

Run:  python bench/bench_utility.py [--films 40] [--patches 64] [--backbones inception,resnet50]

Prints one JSON object per measurement (stage, N, seconds, items/s) and a summary line.
ResNet50 is timed with random weights (the ImageNet file cannot be downloaded offline;
the forward cost does not depend on the weights). Needs MIAS for patch cutting
($KERAS_MAMMO_MIAS or ../shared/data/mini-mias); feature and SVM timings use random
patches when it is absent.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from itertools import islice

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _emit(stage: str, n: int, seconds: float, unit: str, **extra) -> dict:
    row = {"stage": stage, "n": n, "seconds": round(seconds, 3), f"{unit}_per_s": round(n / seconds, 2), **extra}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--films", type=int, default=40, help="MIAS films to cut patches from")
    ap.add_argument("--patches", type=int, default=64, help="patches per feature-extraction timing")
    ap.add_argument("--backbones", default="inception,resnet50")
    ap.add_argument("--svm-sizes", default="100,200,400", help="training-set sizes for the SVM timing")
    args = ap.parse_args()

    from keras_mammo.data.datasets import MIASDataset, default_mias_path
    from keras_mammo.utility.patches import PatchOptions, extract_patches

    rows = []
    imgs = None
    mias = default_mias_path()
    if mias is not None:
        recs = list(islice(MIASDataset(mias).records(), args.films))
        t = time.perf_counter()
        patches, _ = extract_patches(recs, PatchOptions(size=128), progress=False)
        rows.append(_emit("cut patches (MIAS, 128 px)", len(recs), time.perf_counter() - t, "films",
                          patches=len(patches)))
        imgs = np.stack([p.image for p in patches])
    if imgs is None or len(imgs) < args.patches:
        imgs = np.random.default_rng(0).random((args.patches, 128, 128)).astype(np.float32)
    imgs = np.resize(imgs, (args.patches, *imgs.shape[1:]))

    from keras_mammo.utility.backbones import InceptionBackbone, ResNet50Backbone

    for name in [b for b in args.backbones.split(",") if b]:
        bb = InceptionBackbone() if name == "inception" else ResNet50Backbone(weights=None)
        bb.features(imgs[:2], progress=False)  # build / load / trace once
        t = time.perf_counter()
        feats = bb.features(imgs, batch_size=32, progress=False)
        rows.append(_emit(f"features {name}", len(imgs), time.perf_counter() - t, "images", dim=feats.shape[1]))

    from keras_mammo.utility.classifier import DEFAULT_C_GRID, fit_linear_svm

    rng = np.random.default_rng(0)
    for n in [int(x) for x in args.svm_sizes.split(",") if x]:
        y = np.repeat([0, 1], n // 2)
        X = rng.normal(0, 1, (len(y), 2048)) + 0.3 * y[:, None] * (np.arange(2048) < 50)
        groups = [f"p{i // 2}" for i in range(len(y))]
        t = time.perf_counter()
        svm = fit_linear_svm(X, y, groups, seed=0)
        rows.append(_emit("linear SVM + 5-fold inner CV", len(y), time.perf_counter() - t, "samples",
                          c_grid=len(DEFAULT_C_GRID), chosen_C=svm.C))
    print(json.dumps({"summary": {r["stage"]: r["seconds"] for r in rows}, "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
