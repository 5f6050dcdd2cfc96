"""Preprocessing throughput on the 1024² MIAS films (images/s).

    python bench/bench_preprocess.py [--mias DIR] [--workers 2] [--size 256]

Runs `prepare_dataset` over all 322 films into a temporary directory and prints
films/s; also times the single-film steps (read, breast mask, full preprocess).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from keras_mammo.config import load_config
from keras_mammo.data.datasets import default_mias_path
from keras_mammo.data.io import read_mammogram
from keras_mammo.data.prepare import prepare_dataset
from keras_mammo.data.preprocess import breast_mask, preprocess_mammogram


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mias", default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    mias = Path(args.mias) if args.mias else default_mias_path()
    if mias is None:
        raise SystemExit("MIAS not found; pass --mias DIR")
    files = sorted(mias.glob("mdb*.png"))[:20]
    t = {"read": [], "mask": [], "preprocess": []}
    for f in files:
        t0 = time.perf_counter()
        m = read_mammogram(f)
        t1 = time.perf_counter()
        breast_mask(m.pixels)
        t2 = time.perf_counter()
        preprocess_mammogram(m, size=args.size)
        t3 = time.perf_counter()
        t["read"].append(t1 - t0)
        t["mask"].append(t2 - t1)
        t["preprocess"].append(t3 - t2)
    for k, v in t.items():
        print(f"{k:>10}: {1000 * np.median(v):.1f} ms/film (median of {len(v)})")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None, {"data.dataset": "mias", "data.path": str(mias), "data.prepared": tmp,
                                 "data.size": args.size, "data.workers": args.workers}).data
        t0 = time.perf_counter()
        s = prepare_dataset(cfg, progress=False)
        dt = time.perf_counter() - t0
    print(f"prepare_dataset: {s['files']} films ({s['kept']} kept) in {dt:.1f} s with {args.workers} workers "
          f"→ {s['files'] / dt:.1f} films/s at {args.size} px")


if __name__ == "__main__":
    main()
