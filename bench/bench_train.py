"""Training throughput of the thesis GAN (images/s) and input-pipeline throughput.

    python bench/bench_train.py [--resolutions 64 128] [--batch 32] [--steps 20]

Prepares MIAS at 128 px (cached in a temporary directory), then for each resolution:
(1) the tf.data pipeline alone (batches/s → images/s), (2) `fit` on the thesis GAN at
that resolution with the thesis settings (batch 32, float32, no XLA), timing steps after
a warm-up epoch. The pipeline must be much faster than the training step.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import keras

from keras_mammo.config import load_config
from keras_mammo.data.datasets import default_mias_path
from keras_mammo.data.pipeline import load_stage_arrays, make_train_dataset
from keras_mammo.data.prepare import prepare_dataset
from keras_mammo.training.run import build_run_model
from keras_mammo.models.registry import DataInfo


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--resolutions", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--jit", action="store_true", help="XLA-compile the train step")
    args = ap.parse_args()
    mias = default_mias_path()
    if mias is None:
        raise SystemExit("MIAS not found")
    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        data = load_config(None, {"data.dataset": "mias", "data.path": str(mias), "data.prepared": tmp,
                                  "data.size": max(args.resolutions)}).data
        prepare_dataset(data, progress=False)
        for res in args.resolutions:
            stage = load_stage_arrays(tmp, res)
            ds = make_train_dataset(stage, args.batch, 0, 0, 1000, args.steps)
            it = iter(ds)
            next(it)
            t0 = time.perf_counter()
            n = 0
            for _ in range(200):
                next(it)
                n += args.batch
            pipe = n / (time.perf_counter() - t0)
            cfg = load_config(None, {"data.prepared": tmp, "train.resolution": res, "train.batch_size": args.batch,
                                     "train.jit_compile": args.jit})
            model = build_run_model(cfg, DataInfo())
            model.set_stage(res)
            model.fit(make_train_dataset(stage, args.batch, 0, 0, 1, 3), epochs=1, steps_per_epoch=3, verbose=0)
            ds = make_train_dataset(stage, args.batch, 0, 0, 1, args.steps)
            t0 = time.perf_counter()
            model.fit(ds, epochs=1, steps_per_epoch=args.steps, verbose=0)
            dt = time.perf_counter() - t0
            print(f"{res:>4} px, batch {args.batch}: training {args.steps * args.batch / dt:7.1f} images/s "
                  f"({1000 * dt / args.steps:.0f} ms/step); input pipeline alone {pipe:9.0f} images/s")


if __name__ == "__main__":
    main()
