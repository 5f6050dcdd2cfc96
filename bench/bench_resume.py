"""Kill-and-resume benchmark: does a SIGKILLed training run resume to bit-identical weights?

A small thesis-GAN run on MIAS (16 → 32 px, fade-in, a checkpoint every epoch) is trained
once without interruption (the reference). Then, K times, the same run is started in a
fresh run directory as a ``keras-mammo train`` subprocess, killed with SIGKILL at a
random moment between its first and (the reference run's timing of) its last checkpoint
(during a step, a checkpoint save, a sample grid, a CSV append — wherever it is), and resumed to the end by a second
``keras-mammo train``. The final checkpoint's arrays are compared bit for bit with the
reference's::

    python bench/bench_resume.py --kills 20 --json resume.json
    {"kills": 20, "identical": 20, "killed_mid_run": 20, ...}

``identical`` counts the trials whose final weights, optimizer state and training state
equal the reference's exactly; ``killed_mid_run`` those in which the kill landed before
the process ended (a kill after the end is drawn again, up to three times) and
``killed_before_last_checkpoint`` those in which it landed while training was still to do.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_config(prepared: Path, run_dir: Path, epochs: int, films: int) -> dict:
    return {
        "seed": 11, "run_dir": str(run_dir),
        "data": {"dataset": "mias", "prepared": str(prepared), "size": 32},
        "model": {"name": "thesis", "latent_dim": 32,
                  "params": {"g_channels": [16, 16, 8], "d_channels": [32, 16, 8], "base_channels": 32}},
        "train": {"stages": [{"resolution": 16, "epochs": 1},
                             {"resolution": 32, "epochs": epochs, "fade_in_images": 2 * films}],
                  "batch_size": 4, "steps_per_epoch": 2, "checkpoint_every": 1, "sample_every": 1,
                  "sample_count": 4, "keep_checkpoints": 2, "tensorboard": False},
    }


def final_arrays(run_dir: Path) -> dict:
    from keras_mammo.training.checkpoint import latest_checkpoint

    with np.load(latest_checkpoint(run_dir)) as d:
        arrays = {k: d[k] for k in d.files if k not in ("__paths__", "__state__")}
        state = json.loads(bytes(d["__state__"]).decode())
    # wall-clock seconds spent (train.max_seconds accounting) differ between any two runs;
    # everything else in the training state must be equal
    state.pop("seconds", None)
    arrays["__state__"] = np.frombuffer(json.dumps(state, sort_keys=True).encode(), dtype=np.uint8)
    return arrays


def identical(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


def _has_checkpoint(run_dir: Path) -> bool:
    ckpts = run_dir / "checkpoints"
    return ckpts.is_dir() and any(p.name.startswith("ckpt-") and p.name.endswith(".npz") for p in ckpts.iterdir())


def _train_cmd(cfg_path: Path) -> list[str]:
    return [sys.executable, "-m", "cli.main", "train", "--config", str(cfg_path)]


def _env() -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return env


def trial(work: Path, prepared: Path, i: int, epochs: int, films: int, window: float, rng: random.Random) -> dict:
    """Start, SIGKILL at a random moment after the first checkpoint, resume; returns the trial record."""
    run_dir = work / f"trial-{i:03d}"
    cfg_path = work / f"trial-{i:03d}.yaml"
    cfg_path.write_text(yaml.safe_dump(run_config(prepared, run_dir, epochs, films)))
    log = open(work / f"trial-{i:03d}.log", "w")
    killed = mid_training = False
    delay = None
    for _ in range(3):
        proc = subprocess.Popen(_train_cmd(cfg_path), cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None and not _has_checkpoint(run_dir):
            time.sleep(0.02)
        delay = rng.uniform(0.0, window)
        deadline = time.monotonic() + delay
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        if proc.poll() is None:
            total = run_config(prepared, run_dir, epochs, films)["train"]["stages"]
            last = run_dir / "checkpoints" / f"ckpt-{sum(st['epochs'] for st in total):06d}.npz"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed, mid_training = True, not last.is_file()
            break
        window *= 0.6  # finished before the kill: draw an earlier moment in a fresh directory
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
    resumed = subprocess.run(_train_cmd(cfg_path), cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return {"trial": i, "killed": killed, "before_last_checkpoint": mid_training,
            "kill_after_first_checkpoint_s": round(delay, 3),
            "window_s": round(window, 3),
            "resume_rc": resumed.returncode, "log": str(work / f"trial-{i:03d}.log")}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=20, help="number of kill-and-resume trials")
    ap.add_argument("--json", type=Path, default=None, help="write the result here")
    ap.add_argument("--mias", type=Path, default=None, help="MIAS folder (default: $KERAS_MAMMO_MIAS or shared data)")
    ap.add_argument("--films", type=int, default=8, help="MIAS films used")
    ap.add_argument("--epochs", type=int, default=3, help="epochs at 32 px (after 1 epoch at 16 px)")
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    args = ap.parse_args(argv)

    import tempfile

    from keras_mammo.config import load_config
    from keras_mammo.data.datasets import default_mias_path
    from keras_mammo.data.prepare import prepare_dataset

    mias = args.mias or default_mias_path()
    if mias is None:
        raise SystemExit("MIAS not found: pass --mias or set KERAS_MAMMO_MIAS")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_resume."))
    work.mkdir(parents=True, exist_ok=True)
    prepared = work / "prepared"
    data = load_config(None, {"data.dataset": "mias", "data.path": str(mias), "data.prepared": str(prepared),
                              "data.size": 32, "data.workers": 1}).data
    prepare_dataset(data, limit=args.films, progress=False)

    ref_dir = work / "reference"
    ref_cfg = work / "reference.yaml"
    ref_cfg.write_text(yaml.safe_dump(run_config(prepared, ref_dir, args.epochs, args.films)))
    with open(work / "reference.log", "w") as log:
        proc = subprocess.Popen(_train_cmd(ref_cfg), cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
        first = last = None
        final = ref_dir / "checkpoints" / f"ckpt-{1 + args.epochs:06d}.npz"
        while proc.poll() is None:
            if first is None and _has_checkpoint(ref_dir):
                first = time.monotonic()
            if last is None and final.is_file():
                last = time.monotonic()
            time.sleep(0.02)
        if proc.returncode != 0:
            raise SystemExit(f"the reference run failed (rc {proc.returncode}); see {work / 'reference.log'}")
    ref = final_arrays(ref_dir)
    # the kill window: from the first checkpoint to the last one of the reference run (kills
    # after it land in the process's shutdown, which tests nothing)
    window = max(0.2, (last or time.monotonic()) - (first or time.monotonic()))

    rng = random.Random(args.seed)
    trials = []
    for i in range(args.kills):
        t = trial(work, prepared, i, args.epochs, args.films, window, rng)
        t["identical"] = t["resume_rc"] == 0 and identical(ref, final_arrays(work / f"trial-{i:03d}"))
        trials.append(t)
        print(json.dumps(t), flush=True)
    result = {"kills": args.kills, "identical": sum(t["identical"] for t in trials),
              "killed_mid_run": sum(t["killed"] for t in trials),
              "killed_before_last_checkpoint": sum(t["before_last_checkpoint"] for t in trials), "films": args.films,
              "epochs": 1 + args.epochs, "resolution": 32, "load": Path("/proc/loadavg").read_text().split()[:3]
              if Path("/proc/loadavg").is_file() else None, "trials": trials}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "trials"}))
    return result


if __name__ == "__main__":
    main()
