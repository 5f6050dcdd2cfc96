"""Generation throughput (images/s) from a run and from its SavedModel.

    python bench/bench_generate.py [--resolutions 64,128,256] [--batches 1,64] [--images 256]
                                   [--json out.json]

For each resolution a thesis-GAN run is trained for one step on MIAS (weights do not
matter for speed) and exported. Then, per batch size, after one warm-up call:

- ``run``: the run's model restored from its checkpoint (``load_run_model``), images from
  ``model.generate`` as ``keras_mammo.generate.generate_images`` calls it;
- ``savedmodel``: ``tf.saved_model.load`` of the export, its ``serving_default``
  signature (``latent`` → uint8 ``images``), as TF Serving runs it.

The 1-minute load average is printed beside every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def rate(fn, batch: int, images: int) -> float:
    fn()  # warm-up (tracing)
    calls = max(2, -(-images // batch))
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return calls * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolutions", default="64,128,256")
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--images", type=int, default=256, help="images timed per figure (at least 2 calls)")
    ap.add_argument("--prepared", default=str(Path(tempfile.gettempdir()) / "keras-mammo-bench-mias" / "256"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import numpy as np
    import tensorflow as tf

    from keras_mammo.config import load_config
    from keras_mammo.export import export_model
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
            version = export_model(run, Path(tmp) / "saved", f"bench{res}", 1)
            model, cfg, _ = load_run_model(run)
            loaded = tf.saved_model.load(str(version))
            serve = loaded.signatures["serving_default"]
            for batch in [int(b) for b in args.batches.split(",")]:
                z = tf.constant(np.random.default_rng(0).standard_normal((batch, cfg.model.latent_dim), np.float32))
                for source, fn in (("run", lambda z=z: np.asarray(model.generate(z))),
                                   ("savedmodel", lambda z=z: serve(latent=z)["images"].numpy())):
                    before = loadavg()
                    ips = rate(fn, batch, args.images)
                    row = {"resolution": res, "batch": batch, "source": source, "images_per_second": round(ips, 1),
                           "load_before": before, "load_after": loadavg()}
                    rows.append(row)
                    print(f"{res:>4} px  batch {batch:>3}  {source:<10} {ips:8.1f} images/s   load {before}",
                          flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "command": " ".join(sys.argv)}, indent=1))


if __name__ == "__main__":
    main()
