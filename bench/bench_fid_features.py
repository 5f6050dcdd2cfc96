"""FID feature extraction: the batched TensorFlow resize against the per-image Pillow resize.

    python bench/bench_fid_features.py [--n 64] [--batch-size 32]

On ``--n`` MIAS films (1024 px, 8-bit): images/s of ``inception_features`` (resize to
299 px + network) with the batched TensorFlow resize (the library's path) and with the
per-image Pillow resize it replaced, alternately in one process, and the max abs
difference of the 2048-d features between the two. Needs the cached FID weights.
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import numpy as np
    from PIL import Image

    from keras_mammo.data.datasets import default_mias_path
    from keras_mammo.metrics import inception as inc

    mias = default_mias_path()
    films = np.stack([np.asarray(Image.open(p).convert("L")) for p in sorted(mias.glob("mdb*.png"))[:args.n]])
    model = inc.load_fid_inception()

    def pillow_input(images):  # the previous path: one Pillow resize per image
        arr = inc._as_float255(images)
        out = np.stack([inc.resize_299(a[..., 0]) for a in arr])[..., None].repeat(3, -1)
        return out / np.float32(128.0) - np.float32(1.0)

    def features(prepare):
        out = []
        for s in range(0, len(films), args.batch_size):
            out.append(inc._predict(model, prepare(films[s:s + args.batch_size]), args.batch_size))
        return np.concatenate(out)

    features(inc.prepare_inception_input)  # warm-up (tracing)
    rates, feats = {"tensorflow": [], "pillow": []}, {}
    for rep in range(2):
        for name, prep in (("tensorflow", inc.prepare_inception_input), ("pillow", pillow_input))[::1 - 2 * (rep % 2)]:
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            feats[name] = features(prep)
            rates[name].append(len(films) / (time.perf_counter() - t0))
            print(f"{name:<10} {rates[name][-1]:6.1f} images/s (resize + network), load {load:.2f}", flush=True)
    diff = float(np.abs(feats["tensorflow"] - feats["pillow"]).max())
    print(f"max abs feature difference: {diff:.2e} (features up to {feats['pillow'].max():.2f})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"images_per_second": rates, "max_abs_feature_difference": diff, "n": len(films),
                       "load": os.getloadavg()}, fh, indent=1)


if __name__ == "__main__":
    main()
