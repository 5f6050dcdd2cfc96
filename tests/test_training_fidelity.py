"""Small-data machinery in training runs (issue 9): budget and resume with EMA + ADA + R1,
best checkpoint, in-training FID = ``keras-mammo evaluate``, ``--resolution`` on stages."""
from __future__ import annotations

import json

import numpy as np
import pytest

from keras_mammo.config import load_config
from keras_mammo.training.checkpoint import (
    best_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    read_state,
    save_checkpoint,
)
from keras_mammo.training.run import load_run_model, train


def _cfg(prepared, run_dir, epochs=3, **extra):
    overrides = {"data.prepared": str(prepared), "run_dir": str(run_dir), "seed": 11, "model.name": "thesis",
                 "train.stages": [{"resolution": 16, "epochs": epochs}],
                 "train.batch_size": 4, "train.steps_per_epoch": 2, "train.sample_count": 4,
                 "train.tensorboard": False, "model.params": {"g_channels": [16], "d_channels": [16],
                                                               "base_channels": 16}}
    overrides.update(extra)
    return load_config(None, overrides)


SMALL_DATA = {"train.ema": 0.02, "train.augment": "ada", "train.ada_kimg": 0.05, "train.ada_target": -0.9,
              "train.ada_interval": 1,
              "train.r1_gamma": 1.0, "train.r1_interval": 2, "train.loss": "hinge", "train.spectral_norm": True}


def _weights(ckpt):
    with np.load(ckpt) as d:
        return [d[k] for k in sorted(k for k in d.files if k.startswith("v"))]


@pytest.mark.slow
def test_budget_stops_and_resume_continues_to_the_same_weights(mias_prepared, tmp_path):
    """EMA, ADA (p saved), lazy R1, hinge, spectral norm: a budget-stopped, resumed run = an uninterrupted one."""
    full = train(_cfg(mias_prepared, tmp_path / "full", **SMALL_DATA), progress=False)
    part = tmp_path / "part"
    train(_cfg(mias_prepared, part, **SMALL_DATA, **{"train.max_seconds": 1}), progress=False)
    status = json.loads((part / "run.json").read_text())
    assert status["status"] == "stopped" and "max_seconds" in status["stop_reason"]
    assert latest_checkpoint(part).name == "ckpt-000001.npz"          # the epoch that crossed the budget
    spent = read_state(latest_checkpoint(part))["seconds"]
    assert spent >= 1
    # resumed with the same budget: the time already spent counts, nothing more is trained
    train(_cfg(mias_prepared, part, **SMALL_DATA, **{"train.max_seconds": 1}), progress=False)
    assert latest_checkpoint(part).name == "ckpt-000001.npz"
    train(_cfg(mias_prepared, part, **SMALL_DATA), progress=False)      # budget lifted: continues
    assert latest_checkpoint(part).name == "ckpt-000003.npz"
    assert read_state(latest_checkpoint(part))["seconds"] > spent
    a, b = _weights(latest_checkpoint(full)), _weights(latest_checkpoint(part))
    assert len(a) == len(b)
    assert max(float(np.max(np.abs(x.astype(np.float64) - y))) for x, y in zip(a, b) if x.size) <= 1e-6
    model, _, _ = load_run_model(full, "latest")
    resumed, _, _ = load_run_model(part, "latest")
    assert float(resumed.ada.p.numpy()) == float(model.ada.p.numpy())
    steps = (full / "losses_steps.csv").read_text().splitlines()
    header = steps[0].split(",")
    p_full = [float(r.split(",")[header.index("ada_p")]) for r in steps[1:]]
    p_part = [float(r.split(",")[header.index("ada_p")]) for r in (part / "losses_steps.csv").read_text().splitlines()[1:]]
    assert p_full == p_part and max(p_full) > 0    # p moved, and the resumed run continued from the saved p
    r1 = [float(r.split(",")[header.index("r1")]) for r in steps[1:]]
    steps_col = [int(r.split(",")[0]) for r in steps[1:]]
    # lazy R1: evaluated on the steps where step % 2 == 0 (the logged step is after the update)
    assert all((v > 0) == ((s - 1) % 2 == 0) for s, v in zip(steps_col, r1))
    epochs = (full / "losses_epochs.csv").read_text().splitlines()
    assert "ada_p" in epochs[0].split(",")
    # inference uses the EMA generator by default; ":raw" the raw one
    from keras_mammo.generation.generate import generate_images

    ema, raw = generate_images(full, 4, seed=1), generate_images(full, 4, seed=1, checkpoint="latest:raw")
    assert np.abs(ema - raw).max() > 1e-4
    with model.inference_weights(ema=False):
        pass


@pytest.mark.slow
def test_best_checkpoint_and_in_training_fid_equal_evaluate(mias_prepared, tmp_path):
    """eval.csv's FID at the best epoch = keras_mammo.metrics.evaluate on the images generate() makes from best."""
    pytest.importorskip("keras_mammo.metrics.inception")
    from keras_mammo.metrics.inception import fid_weights_status

    if not fid_weights_status()[0]:
        pytest.skip("FID Inception weights not available")
    from keras_mammo.generation.generate import generate_images
    from keras_mammo.metrics.evaluate import evaluate
    from keras_mammo.metrics.imagesets import image_set_from_array
    from keras_mammo.training.evaluation import read_eval_csv

    run = tmp_path / "ev"
    train(_cfg(mias_prepared, run, epochs=3, **{"train.ema": 0.02, "train.eval_every": 1, "train.eval_n": 6,
                                                "train.keep_checkpoints": 1}), progress=False)
    rows = read_eval_csv(run / "eval.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(r["floor_fid"] > 0 and r["n"] == 6 and 0 < r["eval_share"] < 1 for r in rows)
    best = min(rows, key=lambda r: r["fid"])
    assert best_checkpoint(run) is not None and read_state(best_checkpoint(run))["epoch"] == int(best["epoch"])
    assert [p.name for p in list_checkpoints(run)] == ["ckpt-000003.npz"]        # rotation kept best.npz
    _, _, state = load_run_model(run)
    assert state["checkpoint"] == "best.npz" and state["weights"] == "ema"        # what export/generate use
    images = generate_images(run, 6, seed=0)
    result = evaluate(mias_prepared, image_set_from_array(images, "synthetic", size=16), tmp_path / "report",
                      size=16, splits=1, progress=False)
    assert result["fid"]["full"]["value"] == pytest.approx(best["fid"], rel=1e-6, abs=1e-6)
    assert result["kid"]["full"]["mean"] == pytest.approx(best["kid"], rel=1e-6, abs=1e-9)


def test_best_checkpoint_survives_rotation(tmp_path):
    import tensorflow as tf

    v = [tf.Variable(np.zeros(3, np.float32))]
    save_checkpoint(tmp_path, 1, v, {"epoch": 1}, keep=1, name="best")
    for e in range(2, 6):
        save_checkpoint(tmp_path, e, v, {"epoch": e}, keep=1)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-000005.npz"]
    assert best_checkpoint(tmp_path).name == "best.npz" and read_state(best_checkpoint(tmp_path))["epoch"] == 1


def test_resolution_trains_stages_up_to_r(monkeypatch, tmp_path):
    """``train --resolution 32`` on a 16 → 32 → 64 config keeps the 16 and 32 px stages (and their fade-in)."""
    from click.testing import CliRunner

    import keras_mammo.training.run as run_mod
    from cli.main import main as cli
    from keras_mammo.errors import ConfigError

    cfg_file = tmp_path / "prog.yaml"
    cfg_file.write_text("train:\n  stages:\n    - {resolution: 16, epochs: 1}\n"
                        "    - {resolution: 32, epochs: 2, fade_in_images: 64}\n"
                        "    - {resolution: 64, epochs: 3, fade_in_images: 64}\n")
    seen = {}
    monkeypatch.setattr(run_mod, "train", lambda cfg, progress=True: seen.setdefault("cfg", cfg) and tmp_path)
    res = CliRunner().invoke(cli, ["train", "--config", str(cfg_file), "--resolution", "32", "--max-seconds", "60",
                                   "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    cfg = seen["cfg"]
    assert [(s.resolution, s.epochs, s.fade_in_images) for s in cfg.train.schedule()] == [(16, 1, 0), (32, 2, 64)]
    assert cfg.train.max_seconds == 60
    with pytest.raises(ConfigError, match="train.max_resolution"):
        load_config(str(cfg_file), {"train.max_resolution": 48})
