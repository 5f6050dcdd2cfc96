"""Share of wall time spent on in-training evaluation (issue 9, item 4), measured in one process.

Trains ``configs/mias-best.yaml`` at 64 px for a few short epochs with an evaluation after
every epoch, then computes from the run's own logs what share of wall time evaluation
takes at ``train.eval_every`` = E epochs of the full dataset::

    share(E) = eval_seconds / (eval_seconds + E · steps_per_full_epoch · seconds_per_step)

Both figures come from the same process under the same machine load (a ratio is more
trustworthy than absolute times on a shared machine). The first epoch (tracing) and the
first evaluation (which may embed the training films once) are excluded.

    python bench/bench_eval_share.py --prepared prepared/mias128 --work /tmp/evalshare
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", required=True, help="prepared MIAS dataset (size ≥ 64)")
    ap.add_argument("--work", default="/tmp/bench_eval_share")
    ap.add_argument("--steps", type=int, default=3, help="steps per short epoch")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--eval-n", type=int, default=200)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    from keras_mammo.config import load_config
    from keras_mammo.data.pipeline import kept_rows, steps_per_epoch
    from keras_mammo.training.run import train

    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    cfg = load_config("mias-best", {"data.prepared": a.prepared, "run_dir": str(work / "run"),
                                    "train.resolution": 64, "train.steps_per_epoch": a.steps,
                                    "train.epochs": a.epochs,
                                    "train.eval_every": 1, "train.eval_n": a.eval_n, "train.tensorboard": False})
    run = train(cfg, progress=False)
    with open(run / "losses_epochs.csv") as fh:
        epochs = list(csv.DictReader(fh))
    with open(run / "eval.csv") as fh:
        evals = list(csv.DictReader(fh))
    step_s = sum(float(e["seconds"]) for e in epochs[1:]) / sum(int(e["steps"]) for e in epochs[1:])
    eval_s = sum(float(e["eval_seconds"]) for e in evals[1:]) / len(evals[1:])
    full_steps = steps_per_epoch(len(kept_rows(a.prepared)), cfg.train.batch_size, None)
    out = {"seconds_per_step": step_s, "steps_per_full_epoch": full_steps, "eval_seconds": eval_s,
           "eval_n": a.eval_n, "first_eval_seconds": float(evals[0]["eval_seconds"]),
           "share": {str(e): eval_s / (eval_s + e * full_steps * step_s) for e in (1, 5, 10, 25, 50, 100)},
           "loadavg": open("/proc/loadavg").read().split()[:3], "cpus": os.cpu_count()}
    print(json.dumps(out, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
