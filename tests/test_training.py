"""Training runs: resume equivalence, determinism, NaN guard, outputs (keras_mammo.training)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from keras_mammo.config import load_config
from keras_mammo.errors import ConfigError, TrainingDivergedError
from keras_mammo.training.checkpoint import latest_checkpoint
from keras_mammo.training.run import train

#: every test here trains runs (resume, determinism, NaN guard, precision)
pytestmark = pytest.mark.slow


def _cfg(prepared, run_dir, epochs_32=2, **extra):
    overrides = {"data.prepared": str(prepared), "run_dir": str(run_dir), "seed": 7,
                 "train.stages": [{"resolution": 16, "epochs": 1},
                                  {"resolution": 32, "epochs": epochs_32, "fade_in_images": 16}],
                 "train.batch_size": 4, "train.steps_per_epoch": 2, "train.sample_count": 4,
                 "train.tensorboard": False, "model.params": {"g_channels": [16, 16, 8], "d_channels": [32, 16, 8],
                                                               "base_channels": 32}}
    overrides.update(extra)
    return load_config(None, overrides)


def _weights(ckpt):
    with np.load(ckpt) as d:
        return [d[k] for k in sorted(k for k in d.files if k.startswith("v"))]


def test_resume_reaches_same_weights(mias_prepared, tmp_path):
    full = train(_cfg(mias_prepared, tmp_path / "full", epochs_32=3), progress=False)
    # an interrupted run: stopped after 2 of 4 epochs (mid fade-in), then resumed
    part = tmp_path / "part"
    train(_cfg(mias_prepared, part, epochs_32=1), progress=False)
    assert latest_checkpoint(part).name == "ckpt-000002.npz"
    train(_cfg(mias_prepared, part, epochs_32=3), progress=False)
    a, b = _weights(latest_checkpoint(full)), _weights(latest_checkpoint(part))
    assert latest_checkpoint(part).name == "ckpt-000004.npz" and len(a) == len(b) > 50
    assert max(float(np.max(np.abs(x.astype(np.float64) - y))) for x, y in zip(a, b) if x.size) <= 1e-6
    # the resumed run's loss log has no duplicated or missing epochs
    epochs = (part / "losses_epochs.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in epochs] == [1, 2, 3, 4]
    for name in ("loss_curve.png", "samples/latest.png", "config.yaml", "dataset_manifest.jsonl", "run.json"):
        assert (full / name).is_file(), name


def test_same_seed_same_images_other_seed_differs(mias_prepared, tmp_path):
    from keras_mammo.generation.generate import generate_images

    a = train(_cfg(mias_prepared, tmp_path / "a", epochs_32=1), progress=False)
    b = train(_cfg(mias_prepared, tmp_path / "b", epochs_32=1), progress=False)
    c = train(_cfg(mias_prepared, tmp_path / "c", epochs_32=1, seed=8), progress=False)
    ia, ib, ic = (generate_images(r, 4, seed=1) for r in (a, b, c))
    np.testing.assert_array_equal(ia, ib)
    assert ia.shape == (4, 32, 32, 1) and ia.dtype == np.float32
    # [-1, 1] generator output mapped to [0, 1]: recomputed from the checkpoint's generator
    from keras_mammo.models.gan import GAN
    from keras_mammo.training.run import load_run_model

    model, cfg, _ = load_run_model(a)
    z = GAN.fixed_latents(4, cfg.model.latent_dim, 1)
    # eager kernels round like the traced ones in float32, not in bfloat16 (train.precision: auto on AVX512_BF16)
    atol = 1e-6 if cfg.train.precision == "float32" else 4e-3
    np.testing.assert_allclose(ia, (np.asarray(model.generate(z)) + 1.0) / 2.0, atol=atol)
    assert np.abs(ia - ic).max() > 1e-3
    assert np.abs(generate_images(a, 4, seed=2) - ia).max() > 1e-3


def test_changed_config_does_not_silently_resume(mias_prepared, tmp_path):
    run = tmp_path / "r"
    train(_cfg(mias_prepared, run, epochs_32=1), progress=False)
    with pytest.raises(ConfigError, match="train.batch_size"):
        train(_cfg(mias_prepared, run, epochs_32=1, **{"train.batch_size": 2}), progress=False)


def test_nan_loss_stops_with_clear_message(mias_prepared, tmp_path):
    """A loss that becomes NaN stops training; the last good checkpoint is kept."""
    from keras_mammo.models.thesis_gan import ThesisGAN

    run = tmp_path / "nan"
    train(_cfg(mias_prepared, run, epochs_32=1), progress=False)
    good = latest_checkpoint(run)
    original = ThesisGAN.train_step

    def poisoned(self, data):
        logs = original(self, data)
        logs["d_loss"] = logs["d_loss"] * float("nan")
        return logs

    ThesisGAN.train_step = poisoned
    try:
        with pytest.raises(TrainingDivergedError, match=r"d_loss became nan at epoch 3.*Last good checkpoint: .*ckpt-000002"):
            train(_cfg(mias_prepared, run, epochs_32=2), progress=False)
    finally:
        ThesisGAN.train_step = original
    assert latest_checkpoint(run) == good
    rows = (run / "losses_steps.csv").read_text().splitlines()[1:]
    assert all(math.isfinite(float(r.split(",")[4])) for r in rows)


def test_mixed_precision_path_trains_and_resumes(mias_prepared, tmp_path):
    """mixed_float16 with loss scaling (meant for GPUs) runs, checkpoints and resumes on CPU."""
    import keras

    cfg = _cfg(mias_prepared, tmp_path / "mp", epochs_32=1, **{"train.precision": "mixed_float16"})
    run = train(cfg, progress=False)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored afterwards
    rows = (run / "losses_epochs.csv").read_text().splitlines()[1:]
    assert len(rows) == 2
    train(_cfg(mias_prepared, tmp_path / "mp", epochs_32=2, **{"train.precision": "mixed_float16"}), progress=False)
    assert latest_checkpoint(run).name == "ckpt-000003.npz"
