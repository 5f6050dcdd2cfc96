"""``train.strategy: multi_worker``: two worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy).

One worker with a global batch of :data:`BATCH` and two workers with half of it each (the
same global batch, ``TF_CONFIG`` naming both) train the same tiny thesis GAN from the same seed; their
per-step losses must match. They cannot match exactly: each replica draws its own latent
vectors (the seed includes the replica id) and normalizes its generator's batch over its own
half batch. The issue asks for 32 = 2 × 16; the shared test fixture has 15 prepared films,
so the test uses 12 = 2 × 6 (batch size does not change the code path).
:data:`TOLERANCE` is 1.5× the largest difference measured (0.034, g_loss; 2026-11-29).

Losses alone cannot tell synchronized from independent workers here (one worker alone at
batch 6 stays within 0.022 of the batch-12 losses over these 6 steps), so the test also
requires both workers to end with identical weights and optimizer states: their gradients
were all-reduced. Only batch-norm moving statistics differ (each worker's own batches).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

#: trains the same run with one and with two worker processes
pytestmark = pytest.mark.slow

#: Largest allowed |loss(1 worker × 32) − loss(2 workers × 16)| per step (d_loss and g_loss).
TOLERANCE = 0.05
#: Global batch (each of the two workers gets half).
BATCH = 12

WORKER = textwrap.dedent("""
    import csv, json, sys
    from keras_mammo.config import load_config
    from keras_mammo.training.run import train
    prepared, run_dir, strategy, batch = sys.argv[1:5]
    cfg = load_config(None, {"data.prepared": prepared, "run_dir": run_dir, "seed": 5,
        "train.resolution": 16, "train.epochs": 1, "train.batch_size": int(batch), "train.steps_per_epoch": 6,
        "train.g_learning_rate": 2e-3, "train.d_learning_rate": 2e-3,
        "train.strategy": strategy, "train.tensorboard": False, "train.sample_count": 4,
        "model.params": {"g_channels": [16, 8], "d_channels": [16, 8], "base_channels": 16, "dropout": 0.0}})
    run = train(cfg, progress=False)
    rows = list(csv.DictReader(open(run / "losses_steps.csv")))
    print("LOSSES", json.dumps([[float(r["d_loss"]), float(r["g_loss"])] for r in rows]), flush=True)
""")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _losses(out: str) -> np.ndarray:
    line = [ln for ln in out.splitlines() if ln.startswith("LOSSES ")]
    assert line, out
    return np.asarray(json.loads(line[-1][len("LOSSES "):]))


def _env(tf_config: dict | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def test_two_workers_match_one_worker(mias_prepared, tmp_path):
    repo = Path(__file__).resolve().parent.parent
    one = subprocess.run([sys.executable, "-c", WORKER, str(mias_prepared), str(tmp_path / "one"), "default", str(BATCH)],
                         cwd=repo, capture_output=True, text=True, timeout=300, env=_env(None))
    assert one.returncode == 0, one.stdout + one.stderr
    hosts = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(mias_prepared), str(tmp_path / f"worker{i}"),
                               "multi_worker", str(BATCH)], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=_env({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}}))
             for i in range(2)]
    try:
        outs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-4000:]
    ref, (w0, w1) = _losses(one.stdout), (_losses(o) for o in outs)
    assert ref.shape == (6, 2) and np.isfinite(ref).all()
    np.testing.assert_array_equal(w0, w1)       # both workers log the same (all-reduced) losses
    ckpts = [np.load(next((tmp_path / f"worker{i}" / "checkpoints").glob("ckpt-*.npz"))) for i in range(2)]
    names = list(ckpts[0]["__names__"])
    same = [n for i, n in enumerate(names) if "moving_" not in n]
    assert len(same) > 20
    for i, n in enumerate(names):
        if "moving_" not in n:
            np.testing.assert_array_equal(ckpts[0][f"v{i:05d}"], ckpts[1][f"v{i:05d}"], err_msg=n)
    diff = np.abs(w0 - ref).max()
    print(f"max |1×{BATCH} − 2×{BATCH // 2}| loss difference over 6 steps: {diff:.4f} (tolerance {TOLERANCE})")
    assert diff <= TOLERANCE, (ref, w0)
