"""Training throughput of keras-mammo's thesis GAN beside a plain Keras 3 reference.

    python bench/bench_train.py --resolutions 64,128 [--precisions float32,mixed_bfloat16]
                                [--batch 32] [--epochs 4] [--steps 10] [--reps 1] [--json out.json]

In one process, for each resolution and repetition, alternately (the order flips every
repetition, so machine load affects both alike):

- **keras-mammo**: ``keras_mammo.training.run.train`` on MIAS (prepared once, cached in
  ``--prepared``) with the bundled thesis config at that resolution, for every requested
  ``train.precision``; everything a real run does per step and per epoch is included
  (callbacks, logs, tf.data pipeline, the config's defaults);
- **plain Keras**: ``bench/plain_keras_gan.py``, the same G/D as a keras-io style
  ``Model.train_step`` + ``fit``, float32, no XLA, fed by
  ``from_tensor_slices → shuffle → repeat → batch → prefetch``.

Throughput is images per second over epochs 2…E−1, timed from the start of epoch 2 to
the start of epoch E (epoch 1 traces and warms up; epoch E ends the stage with a final
checkpoint and sample grid). Everything in between counts, per-epoch work included. The 1-, 5- and 15-minute
load averages are read before and after every measurement. ``--json`` writes
``{"rows": [{"resolution", "precision", "keras_mammo", "plain_keras", "ratio", ...}],
"machine": ...}`` with one row per resolution and keras-mammo precision (medians over
repetitions; every measurement under ``"samples"``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_mammo.config import TrainConfig, load_config  # noqa: E402
from keras_mammo.data.datasets import default_mias_path  # noqa: E402
from keras_mammo.data.prepare import prepare_dataset  # noqa: E402
from keras_mammo.training.run import train  # noqa: E402
from plain_keras_gan import build_plain_gan  # noqa: E402

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def loadavg() -> list[float]:
    """``/proc/loadavg``'s 1-, 5- and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


class Timer(keras.callbacks.Callback):
    """Images/s over epochs 2 … E−1: from the start of epoch 2 to the start of epoch E.

    Epoch 1 traces and warms up; the last epoch is left out because it ends the stage
    (a final checkpoint and sample grid). Epoch-level hooks only, so Keras still
    dispatches the step callbacks asynchronously.
    """

    async_safe = True

    def __init__(self, images_per_epoch: int):
        super().__init__()
        self.images_per_epoch, self.epoch, self.t0, self.t1, self.n = images_per_epoch, 0, None, None, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch += 1
        now = time.perf_counter()
        if self.epoch == 2:
            self.t0 = now
        elif self.epoch > 2:
            self.t1, self.n = now, self.n + self.images_per_epoch

    def images_per_second(self) -> float:
        return self.n / (self.t1 - self.t0)


def run_keras_mammo(prepared: Path, res: int, precision: str, det, args, work: Path, n_images: int) -> float:
    overrides = {"data.prepared": str(prepared), "run_dir": str(work / f"km-{res}-{precision}-{time.time_ns()}"),
                 "train.stages": [], "train.resolution": res, "train.epochs": args.epochs,
                 "train.batch_size": args.batch, "train.steps_per_epoch": args.steps, "train.deterministic": det,
                 "train.jit_compile": args.jit}
    if "precision" in TrainConfig.__dataclass_fields__:
        overrides["train.precision"] = precision
    elif precision != "float32":
        overrides["train.mixed_precision"] = precision == "mixed_float16"
    cfg = load_config("thesis", overrides)
    timer = Timer(args.batch * (args.steps or n_images // args.batch))
    train(cfg, progress=False, callbacks=(timer,))
    return timer.images_per_second()


def run_plain(images: np.ndarray, res: int, args) -> float:
    keras.mixed_precision.set_global_policy("float32")
    gan = build_plain_gan(res)
    ds = (tf.data.Dataset.from_tensor_slices(images).shuffle(len(images), seed=0).repeat()
          .batch(args.batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
    steps = args.steps or len(images) // args.batch
    timer = Timer(args.batch * steps)
    gan.fit(ds, epochs=args.epochs, steps_per_epoch=steps, callbacks=[timer], verbose=0)
    return timer.images_per_second()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolutions", default="64,128", help="comma-separated sides in pixels")
    ap.add_argument("--precisions", default="float32,mixed_bfloat16",
                    help=f"comma-separated keras-mammo train.precision values ({', '.join(PRECISIONS)})")
    ap.add_argument("--deterministic", default="config",
                    help="keras-mammo train.deterministic: config (the default), or a list such as true,false")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--jit", action="store_true", help="keras-mammo with train.jit_compile (XLA)")
    ap.add_argument("--epochs", type=int, default=4, help="epochs per measurement; the first and last are not timed")
    ap.add_argument("--steps", type=int, default=None, help="steps per epoch (default: one pass over MIAS)")
    ap.add_argument("--reps", type=int, default=1, help="alternating repetitions (medians are reported)")
    ap.add_argument("--prepared", default=str(Path(tempfile.gettempdir()) / "keras-mammo-bench-mias"),
                    help="prepared MIAS directory (created on first use)")
    ap.add_argument("--json", default=None, help="write the rows to this JSON file")
    args = ap.parse_args()
    resolutions = [int(r) for r in args.resolutions.split(",")]
    precisions = [p.strip() for p in args.precisions.split(",")]
    dets = [None] if args.deterministic == "config" else [d.strip().lower() == "true"
                                                          for d in args.deterministic.split(",")]
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise SystemExit(f"--precisions: {bad} not in {PRECISIONS}")
    if args.epochs < 3:
        raise SystemExit("--epochs: needs ≥ 3 (the first epoch warms up, the last ends the stage)")

    prepared = Path(args.prepared) / str(max(256, max(resolutions)))
    if not (prepared / "manifest.jsonl").is_file():
        mias = default_mias_path()
        if mias is None:
            raise SystemExit("MIAS not found: set KERAS_MAMMO_MIAS")
        data = load_config(None, {"data.dataset": "mias", "data.path": str(mias), "data.prepared": str(prepared),
                                  "data.size": max(256, max(resolutions))}).data
        prepare_dataset(data, progress=False)

    from keras_mammo.data.pipeline import load_stage_arrays

    samples: dict = {}
    print(f"load before: {loadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as work:
        for res in resolutions:
            stage = load_stage_arrays(prepared, res)
            images = stage.arrays["image"].astype(np.float32) / 65535.0 * 2.0 - 1.0
            for rep in range(args.reps):
                jobs = [("plain", None, None)] + [("km", p, d) for p in precisions for d in dets]
                for kind, prec, det in (jobs if rep % 2 == 0 else jobs[::-1]):
                    before = loadavg()
                    ips = (run_plain(images, res, args) if kind == "plain"
                           else run_keras_mammo(prepared, res, prec, det, args, Path(work), len(images)))
                    after = loadavg()
                    samples.setdefault((res, kind, prec, det), []).append(
                        {"images_per_second": round(ips, 2), "load_before": before, "load_after": after})
                    print(f"{res:>4} px  {'plain Keras' if kind == 'plain' else 'keras-mammo'} "
                          f"{prec or 'float32':<15} {'' if det is None else 'det=' + str(det):<10} "
                          f"{ips:8.1f} images/s   load {before} → {after}", flush=True)

    rows = []
    for res in resolutions:
        plain = statistics.median(s["images_per_second"] for s in samples[(res, "plain", None, None)])
        for prec in precisions:
            for det in dets:
                km = statistics.median(s["images_per_second"] for s in samples[(res, "km", prec, det)])
                row = {"resolution": res, "precision": prec, "keras_mammo": round(km, 2),
                       "plain_keras": round(plain, 2), "ratio": round(km / plain, 3)}
                if det is not None:
                    row["deterministic"] = det
                row["samples"] = {"keras_mammo": samples[(res, "km", prec, det)],
                                  "plain_keras": samples[(res, "plain", None, None)]}
                rows.append(row)
    print(f"\n{'px':>4} {'precision':<15} {'det':<6} {'keras-mammo':>12} {'plain Keras':>12} {'ratio':>6}")
    for r in rows:
        print(f"{r['resolution']:>4} {r['precision']:<15} {str(r.get('deterministic', 'cfg')):<6} "
              f"{r['keras_mammo']:>12.1f} {r['plain_keras']:>12.1f} {r['ratio']:>6.2f}")
    print(f"load after: {loadavg()}")
    if args.json:
        out = {"rows": rows, "command": " ".join(sys.argv), "batch": args.batch, "epochs": args.epochs,
               "steps_per_epoch": args.steps, "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                                                          "tensorflow": tf.__version__, "keras": keras.__version__}}
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
