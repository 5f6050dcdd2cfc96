"""FID/KID after the same number of images in float32 and mixed_bfloat16 (a fixed short MIAS run).

    python bench/bench_precision_quality.py [--resolution 64] [--epochs 4] [--n 256] [--json out.json]

Trains the thesis GAN on MIAS (the same seed, data order and number of images) once per
precision, generates ``--n`` images from the final checkpoint (same latents), and
computes FID and KID (FID Inception pool_3 features) against the real films at the
same resolution. Prints images/s of each run (from ``losses_epochs.csv``) and the load.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--precisions", default="float32,mixed_bfloat16")
    ap.add_argument("--prepared", default=str(Path(tempfile.gettempdir()) / "keras-mammo-bench-mias" / "256"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from keras_mammo.config import load_config
    from keras_mammo.data.pipeline import load_stage_arrays
    from keras_mammo.generation.generate import generate_images
    from keras_mammo.metrics.fid import fid
    from keras_mammo.metrics.inception import inception_features
    from keras_mammo.metrics.kid import kid
    from keras_mammo.training.run import train

    real = load_stage_arrays(args.prepared, args.resolution).arrays["image"]
    real_feats = inception_features(real, progress=False)
    out = {"resolution": args.resolution, "epochs": args.epochs, "n": args.n, "real": len(real), "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for prec in args.precisions.split(","):
            run = Path(tmp) / prec
            cfg = load_config("thesis", {"data.prepared": args.prepared, "run_dir": str(run), "train.stages": [],
                                         "train.resolution": args.resolution, "train.epochs": args.epochs,
                                         "train.precision": prec, "train.tensorboard": False,
                                         "train.checkpoint_every": args.epochs, "train.sample_every": args.epochs})
            load0 = os.getloadavg()
            train(cfg, progress=False)
            ips = [float(r["images_per_second"]) for r in csv.DictReader(open(run / "losses_epochs.csv"))]
            fake = generate_images(run, args.n, seed=1)
            feats = inception_features(fake, progress=False)
            k_mean, k_std = kid(real_feats, feats, subsets=50, subset_size=min(100, len(real), args.n))
            out["runs"][prec] = {"fid": round(fid(real_feats, feats), 3), "kid": round(k_mean, 5),
                                 "kid_std": round(k_std, 5), "images_per_second_epochs": ips,
                                 "load": [list(load0), list(os.getloadavg())]}
            print(prec, out["runs"][prec], flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
