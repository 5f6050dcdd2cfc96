"""Timings of the evaluation metrics on this machine's CPU.

Run:  python bench/bench_metrics.py [--n 322] [--size 256] [--batch-size 32]

Measures
  1. FID Inception feature extraction throughput (images/s) on 299 × 299 inputs
     (network only), and including the resize of 1024 px MIAS films to 299 px;
  2. FID at 2048-d for N vs N features: the Gram form vs the reference D × D sqrtm;
  3. the wall time of a full ``evaluate`` of N real MIAS films against N "synthetic"
     images (blurred MIAS films) at ``--size`` px: cold (features computed) and warm
     (real and synthetic features read from the cache).

Prints one line per figure and a JSON summary. Needs MIAS ($KERAS_MAMMO_MIAS or
../shared/data/mini-mias) and the FID weights (cached, or torch to convert them).
The timings depend on how busy the CPU is; the machine is reported in the summary.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=322, help="images per side for the full evaluation")
    ap.add_argument("--size", type=int, default=256, help="evaluation side in pixels")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--throughput-images", type=int, default=96, help="images timed for throughput")
    args = ap.parse_args()

    import cv2

    from keras_mammo.data.datasets import default_mias_path
    from keras_mammo.metrics import inception as inc
    from keras_mammo.metrics.evaluate import evaluate
    from keras_mammo.metrics.fid import fid
    from keras_mammo.metrics.imagesets import image_set_from_array, load_image_set

    mias = default_mias_path()
    if mias is None:
        raise SystemExit("MIAS not found: set KERAS_MAMMO_MIAS or place mini-mias in ../shared/data/")
    summary: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "batch_size": args.batch_size}

    t = time.perf_counter()
    model = inc.load_fid_inception()
    summary["load_network_s"] = round(time.perf_counter() - t, 2)
    print(f"load FID network (from cache or converting): {summary['load_network_s']:.2f} s")

    # 1. throughput
    k = args.throughput_images
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (k, 299, 299, 3)).astype(np.float32)
    inc._predict(model, x[: args.batch_size], args.batch_size)          # trace + warm up
    t = time.perf_counter()
    inc._predict(model, x, args.batch_size)
    dt = time.perf_counter() - t
    summary["network_images_per_s_299px"] = round(k / dt, 2)
    print(f"feature extraction, network only, 299x299: {k / dt:.1f} images/s ({k} images, {dt:.1f} s)")

    films = load_image_set(mias, size=1024, limit=k)
    t = time.perf_counter()
    inc.inception_features(films.images, batch_size=args.batch_size, progress=False, model=model)
    dt = time.perf_counter() - t
    summary["end_to_end_images_per_s_from_1024px"] = round(k / dt, 2)
    print(f"feature extraction incl. resize 1024 -> 299: {k / dt:.1f} images/s")

    # 2. FID at 2048-d
    f = rng.random((2 * 161, 2048))
    t = time.perf_counter()
    fid(f[:161], f[161:], method="gram")
    tg = time.perf_counter() - t
    t = time.perf_counter()
    fid(f[:161], f[161:], method="sqrtm")
    ts = time.perf_counter() - t
    summary.update(fid_gram_s=round(tg, 3), fid_sqrtm_s=round(ts, 2))
    print(f"FID 161 vs 161 at 2048-d: Gram form {tg:.3f} s, D x D sqrtm {ts:.1f} s")

    # 3. full evaluation, N vs N
    real = load_image_set(mias, size=args.size, limit=args.n)
    n = len(real)
    blurred = np.stack([cv2.GaussianBlur(img, (0, 0), args.size / 128) for img in real.images])
    synthetic = image_set_from_array(blurred, "synthetic", size=args.size, source="blurred MIAS films")
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        t = time.perf_counter()
        evaluate(real, synthetic, os.path.join(tmp, "cold"), cache_dir=os.path.join(tmp, "cache"), progress=False)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        res = evaluate(real, synthetic, os.path.join(tmp, "warm"), cache_dir=os.path.join(tmp, "cache"),
                       progress=False)
        warm = time.perf_counter() - t
    summary.update(evaluation_n=n, evaluation_size_px=args.size, evaluation_cold_s=round(cold, 1),
                   evaluation_warm_s=round(warm, 1))
    print(f"full evaluation {n} vs {n} at {args.size} px: {cold:.1f} s cold, {warm:.1f} s with cached features")
    fm = res["fid"]["matched"]
    print(f"  (FID blurred vs real half {fm['synthetic_vs_real_half']['mean']:.1f}, real-vs-real floor "
          f"{fm['real_vs_real_floor']['mean']:.1f} at N={fm['n_per_side']}/side)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
