"""The tf.distribute code path (MirroredStrategy) on CPU with two logical devices."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

#: trains a run under MirroredStrategy
pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent("""
    import sys, numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from keras_mammo.config import load_config
    from keras_mammo.training.run import train, get_strategy
    assert get_strategy("mirrored").num_replicas_in_sync == 2
    cfg = load_config(None, {"data.prepared": sys.argv[1], "run_dir": sys.argv[2], "seed": 5,
        "train.resolution": 16, "train.epochs": 2, "train.batch_size": 8, "train.steps_per_epoch": 2,
        "train.strategy": "mirrored", "train.tensorboard": False, "train.sample_count": 4,
        "model.params": {"g_channels": [16, 8], "d_channels": [16, 8], "base_channels": 16}})
    run = train(cfg, progress=False)
    import csv
    rows = list(csv.DictReader(open(run / "losses_epochs.csv")))
    assert len(rows) == 2 and all(np.isfinite(float(r["d_loss"])) for r in rows)
    print("MIRRORED-OK", rows[-1]["d_loss"])
""")


def test_mirrored_strategy_on_two_logical_cpus(mias_prepared, tmp_path):
    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(mias_prepared), str(tmp_path / "run")], cwd=repo,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0 and "MIRRORED-OK" in proc.stdout, proc.stdout + proc.stderr
