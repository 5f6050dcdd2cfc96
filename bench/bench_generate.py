"""Generation throughput (images/s) from a run and from its SavedModel.

    python bench/bench_generate.py [--resolutions 64,128,256] [--batches 1,64] [--images 256]
                                   [--precisions float32,bfloat16] [--reps 1] [--compare] [--json out.json]

For each resolution a thesis-GAN run is trained for one step on MIAS (weights do not
matter for speed) and exported. Then, per batch size, after one warm-up call:

- ``run``: the run's model restored from its checkpoint (``load_run_model``), images from
  ``model.generate_traced`` as ``keras_mammo.generation.generate.generate_images`` calls it;
- ``savedmodel``: ``tf.saved_model.load`` of the export, its ``serving_default``
  signature (``latent`` → uint8 ``images``), as TF Serving runs it.

Both for each of ``--precisions``: ``float32`` (the default of ``generate`` and ``export``)
and ``bfloat16`` (``keras-mammo generate --run R --precision bfloat16``, ``keras-mammo export
--precision bfloat16``); each row gives the largest pixel difference from float32 (uint8
levels for the SavedModel, [0, 1] × 255 for the run).

``--compare`` adds, in the same process and interleaved with them (``--reps`` rounds):

- ``run_eager_layers``: the path before issue 10's generation work: ``model.generate``
  called eagerly, upsampling and 3×3 convolution layer by layer;
- ``run_traced_layers``: traced, but layer by layer (isolates the two changes);
- ``savedmodel_layers``: a second export traced layer by layer.

Each figure is given per wall-clock second and per CPU-second of the process (steadier on a
shared machine); the 1-minute load average is printed beside every figure.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def rate(fn, batch: int, images: int) -> tuple[float, float]:
    """``(images per wall-clock second, images per CPU-second of this process)``.

    On a shared machine the second is the steadier figure (it does not count time the
    process waited for a core); on an idle one, wall-clock ≈ CPU-seconds / cores used.
    """
    fn()  # warm-up (tracing)
    calls = max(2, -(-images // batch))
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    return calls * batch / (time.perf_counter() - t0), calls * batch / (time.process_time() - c0)


@contextlib.contextmanager
def layer_path():
    """Within the block, ``UpsampleConvBlock`` upsamples then convolves at inference (the old path)."""
    from keras_mammo.models import blocks

    orig = blocks.UpsampleConvBlock.call

    def call(self, x, training=False):
        x = self.conv(self.up(x))
        if self.bn is not None:
            x = self.bn(x, training=training)
        return self.act(x)

    blocks.UpsampleConvBlock.call = call
    try:
        yield
    finally:
        blocks.UpsampleConvBlock.call = orig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolutions", default="64,128,256")
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--images", type=int, default=256, help="images timed per figure (at least 2 calls)")
    ap.add_argument("--prepared", default=str(Path(tempfile.gettempdir()) / "keras-mammo-bench-mias" / "256"))
    ap.add_argument("--precisions", default="float32,bfloat16", help="compute dtypes of run and export")
    ap.add_argument("--reps", type=int, default=1, help="rounds over the sources (interleaved)")
    ap.add_argument("--compare", action="store_true", help="also time the layer-by-layer and eager paths")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import numpy as np
    import tensorflow as tf

    from keras_mammo.config import load_config
    from keras_mammo.generation.export import export_model
    from keras_mammo.training.run import load_run_model, train

    if not (Path(args.prepared) / "manifest.jsonl").is_file():
        raise SystemExit(f"{args.prepared}: run bench/bench_train.py once (it prepares MIAS there) or pass --prepared")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for res in [int(r) for r in args.resolutions.split(",")]:
            run = Path(tmp) / f"run{res}"
            cfg = load_config("thesis", {"data.prepared": args.prepared, "run_dir": str(run), "train.stages": [],
                                         "train.resolution": res, "train.epochs": 1, "train.steps_per_epoch": 1,
                                         "train.batch_size": 4, "train.tensorboard": False,
                                         "train.sample_count": 4})
            train(cfg, progress=False)
            precisions = args.precisions.split(",")
            runs, serves = {}, {}
            for p in precisions:
                version = export_model(run, Path(tmp) / "saved", f"bench{res}-{p}", 1, precision=p)
                runs[p], cfg, _ = load_run_model(run, precision=p)
                serves[p] = tf.saved_model.load(str(version)).signatures["serving_default"]
            if args.compare:
                with layer_path():
                    old = export_model(run, Path(tmp) / "saved", f"layers{res}", 1)
                    old_model, _, _ = load_run_model(run)
                    spec = tf.TensorSpec([None, cfg.model.latent_dim], tf.float32)
                    traced_old = tf.function(old_model.generate, input_signature=[spec]).get_concrete_function()
                serve_old = tf.saved_model.load(str(old)).signatures["serving_default"]

            def eager_layers(z):
                with layer_path():
                    return np.asarray(old_model.generate(z))

            for batch in [int(b) for b in args.batches.split(",")]:
                z = tf.constant(np.random.default_rng(0).standard_normal((batch, cfg.model.latent_dim), np.float32))
                sources, diffs = [], {}
                for p in precisions:
                    suffix = "" if p == "float32" else f"_{p}"
                    sources += [(f"run{suffix}", lambda z=z, m=runs[p]: np.asarray(m.generate_traced(z), np.float32)),
                                (f"savedmodel{suffix}", lambda z=z, f=serves[p]: f(latent=z)["images"].numpy())]
                if "float32" in precisions:
                    ref = {name: np.asarray(fn(), np.float32) for name, fn in sources[:2]}
                    for name, fn in sources:
                        base = "run" if name.startswith("run") else "savedmodel"
                        scale = 127.5 if base == "run" else 1.0   # run images are in [-1, 1]
                        diffs[name] = float(np.abs(np.asarray(fn(), np.float32) - ref[base]).max() * scale)
                if args.compare:
                    sources += [("run_eager_layers", lambda z=z: eager_layers(z)),
                                ("run_traced_layers", lambda z=z: np.asarray(traced_old(z))),
                                ("savedmodel_layers", lambda z=z: serve_old(latent=z)["images"].numpy())]
                for rep in range(args.reps):
                    for source, fn in sources:
                        before = loadavg()
                        ips, ipc = rate(fn, batch, args.images)
                        row = {"resolution": res, "batch": batch, "source": source, "rep": rep,
                               "images_per_second": round(ips, 1), "images_per_cpu_second": round(ipc, 1),
                               "max_diff_from_float32_levels": diffs.get(source),
                               "load_before": before, "load_after": loadavg()}
                        rows.append(row)
                        d = "" if diffs.get(source) is None else f"   max diff {diffs[source]:.2f} levels"
                        print(f"{res:>4} px  batch {batch:>3}  {source:<22} {ips:8.1f} images/s "
                              f"{ipc:8.1f} images/CPU-s   load {before}{d}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "command": " ".join(sys.argv)}, indent=1))


if __name__ == "__main__":
    main()
