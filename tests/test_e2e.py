"""End to end through the CLI on real MIAS films: preprocess → train → kill → resume →
generate → export → reload and call both signatures.

Kept small (8 films, a 32-px model, 4 epochs of 2 steps): most of its time is the start-up
(TensorFlow import, tracing) of the six CLI processes, so each is there for a check."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.slow


def _cli(*args, cwd, check=True, timeout=600):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"keras-mammo {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def _weights(ckpt):
    with np.load(ckpt) as d:
        return [d[k] for k in sorted(k for k in d.files if k.startswith("v"))]


def test_end_to_end_with_kill_and_resume(mias_dir, tmp_path):
    import tensorflow as tf

    repo = Path(__file__).resolve().parent.parent
    cfg = {
        "seed": 3, "run_dir": str(tmp_path / "run"),
        "data": {"dataset": "mias", "path": str(mias_dir), "prepared": str(tmp_path / "prepared"), "size": 64},
        "model": {"name": "thesis", "params": {"g_channels": [32, 32, 16], "d_channels": [64, 32, 16],
                                               "base_channels": 64}},
        "train": {"stages": [{"resolution": 32, "epochs": 4}], "batch_size": 4, "steps_per_epoch": 2,
                  "sample_count": 4, "checkpoint_every": 1, "keep_checkpoints": 10},
        "export": {"dir": str(tmp_path / "saved_models"), "name": "e2e"},
    }
    config = tmp_path / "e2e.yaml"
    config.write_text(yaml.safe_dump(cfg))

    out = _cli("preprocess", "--config", str(config), "--limit", "8", cwd=repo)
    assert "of 8 films" in out.stdout
    rows = (tmp_path / "prepared" / "manifest.jsonl").read_text().splitlines()
    assert len(rows) == 8

    # an uninterrupted reference run
    ref_cfg = dict(cfg, run_dir=str(tmp_path / "ref"))
    (tmp_path / "ref.yaml").write_text(yaml.safe_dump(ref_cfg))
    _cli("train", "--config", str(tmp_path / "ref.yaml"), cwd=repo)

    # the same run killed with SIGKILL once it has written a checkpoint, then resumed
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "train", "--config", str(config)], cwd=repo, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckdir = tmp_path / "run" / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not list(ckdir.glob("ckpt-000002.npz")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in ckdir.glob("ckpt-*.npz"))
    assert done and "ckpt-000004.npz" not in done, f"not killed mid-run: {done}"
    resumed = _cli("train", "--config", str(config), cwd=repo)
    assert "resuming" in resumed.stdout + resumed.stderr
    a = _weights(tmp_path / "ref" / "checkpoints" / "ckpt-000004.npz")
    b = _weights(ckdir / "ckpt-000004.npz")
    assert max(float(np.max(np.abs(x.astype(np.float64) - y))) for x, y in zip(a, b) if x.size) <= 1e-6

    gen = _cli("generate", "--run", str(tmp_path / "run"), "-n", "5", "--seed", "11", "--bits", "16",
               "--out", str(tmp_path / "gen"), cwd=repo)
    assert "wrote 5 images" in gen.stdout
    from keras_mammo.data.io import read_mammogram

    img = read_mammogram(tmp_path / "gen" / "synthetic_00000.png")
    assert img.bits_stored == 16 and img.pixels.shape == (32, 32)
    again = _cli("generate", "--run", str(tmp_path / "run"), "-n", "5", "--out", str(tmp_path / "gen"),
                 cwd=repo, check=False)
    assert again.returncode != 0 and "exists already" in again.stderr  # nothing is overwritten

    exp = _cli("export", "--run", str(tmp_path / "run"), cwd=repo)
    path = tmp_path / "saved_models" / "e2e" / "1"
    assert str(path) in exp.stdout and (path / "saved_model.pb").is_file()
    loaded = tf.saved_model.load(str(path))
    assert set(loaded.signatures) == {"serving_default", "generate", "generate_png", "latent_png",
                                      "generate_png16", "latent_png16"}
    imgs = loaded.signatures["serving_default"](latent=tf.random.normal((3, 128)))["images"]
    assert imgs.dtype == tf.uint8 and tuple(imgs.shape) == (3, 32, 32, 1)
    g1 = loaded.signatures["generate"](count=tf.constant(4), seed=tf.constant(11, tf.int64))["images"].numpy()
    g2 = loaded.signatures["generate"](count=tf.constant(4), seed=tf.constant(11, tf.int64))["images"].numpy()
    np.testing.assert_array_equal(g1, g2)
    # the SavedModel and the run give the same images for the same seed (8-bit rounding apart)
    run_imgs = np.round(read_mammogram(tmp_path / "gen" / "synthetic_00000.png").pixels * 255)
    assert np.abs(run_imgs - g1[0, :, :, 0].astype(np.float64)).max() <= 1.0
    # an existing version is never overwritten, and is refused before the model is loaded
    before = (path / "saved_model.pb").stat().st_mtime_ns
    clash = _cli("export", "--run", str(tmp_path / "run"), "--version", "1", cwd=repo, check=False)
    assert clash.returncode != 0 and "exists already" in clash.stderr and "next free: 2" in clash.stderr
    assert (path / "saved_model.pb").stat().st_mtime_ns == before
    # exporting again makes version 2 (the library call behind the CLI; TensorFlow is loaded here already)
    from keras_mammo.generation.export import export_model

    assert export_model(tmp_path / "run") == tmp_path / "saved_models" / "e2e" / "2"
    assert (tmp_path / "saved_models" / "e2e" / "2" / "saved_model.pb").is_file()
