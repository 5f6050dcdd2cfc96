"""Each published generator trains through the same trainer as the thesis GAN on real MIAS
films, writes a checkpoint, resumes exactly, and exports a SavedModel whose signatures answer."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from keras_mammo.config import load_config

#: every test here trains a run through the trainer
pytestmark = pytest.mark.slow

SMALL = {
    "dcgan": {"g_base_channels": 32, "min_channels": 8, "d_base_channels": 8, "max_d_channels": 32},
    "stylegan": {"w_dim": 16, "mapping_layers": 2, "fmap_base": 64, "fmap_max": 16},
    "unet": {"base_filters": 4, "depth": 3},
    "seg-cdcgan": {"g_base_channels": 32, "min_channels": 8, "d_base_channels": 8, "max_d_channels": 32,
                   "n_critic": 2},
    "pix2pix": {"g_base_filters": 8, "g_max_filters": 32, "d_base_filters": 8},
}


def run_cfg(name, mias_dir, prepared, run_dir, **extra):
    overrides = {"model.name": name, "model.latent_dim": 16, "model.params": SMALL[name],
                 "data.dataset": "mias", "data.path": str(mias_dir), "data.prepared": str(prepared),
                 "data.size": 64, "run_dir": str(run_dir), "train.resolution": 32, "train.epochs": 1,
                 "train.batch_size": 4, "train.steps_per_epoch": 2, "train.sample_count": 4,
                 "train.tensorboard": False, "seed": 3}
    overrides.update(extra)
    return load_config(None, overrides)


def _call_signatures(name, loaded, res=32):
    """Call every signature with valid inputs; returns the uint8 images (or masks)."""
    mask = np.zeros((2, res, res, 1), np.uint8)
    mask[:, 10:16, 10:16] = 255
    if name in ("dcgan", "stylegan"):
        a = loaded.signatures["generate"](count=tf.constant(2, tf.int32), seed=tf.constant(1, tf.int64))["images"]
        b = loaded.signatures["serving_default"](latent=tf.zeros((2, 16)))["images"]
        assert a.shape == b.shape
        return a
    if name == "unet":
        out = loaded.signatures["serving_default"](image=tf.constant(mask))
        return out["mask"]
    if name == "seg-cdcgan":
        a = loaded.signatures["generate"](seed=tf.constant(1, tf.int64), mask=tf.constant(mask))["images"]
        b = loaded.signatures["serving_default"](latent=tf.zeros((2, 16)), mask=tf.constant(mask))["images"]
        assert a.shape == b.shape
        return a
    cond = np.concatenate([np.full_like(mask, 255), mask], axis=-1)
    return loaded.signatures["serving_default"](condition=tf.constant(cond), class_id=tf.constant([0, 1]))["images"]


@pytest.mark.parametrize("name", list(SMALL))
def test_one_epoch_on_mias_checkpoint_and_export(name, mias_dir, mias_prepared, tmp_path):
    from keras_mammo.generation.export import export_model
    from keras_mammo.training.run import train

    run = train(run_cfg(name, mias_dir, mias_prepared, tmp_path / "run"), progress=False)
    assert sorted(p.name for p in (run / "checkpoints").glob("ckpt-*.npz")) == ["ckpt-000001.npz"]
    assert (run / "samples" / "latest.png").is_file()
    rows = (run / "losses_steps.csv").read_text().splitlines()
    assert len(rows) == 3  # header + 2 steps
    assert json.loads((run / "run.json").read_text())["status"] == "finished"

    target = export_model(run, out_dir=tmp_path / "saved", name=name)
    loaded = tf.saved_model.load(str(target))
    out = _call_signatures(name, loaded)
    assert out.dtype == tf.uint8 and out.shape == (2, 32, 32, 1)

    # generation from the run: conditional models take their prepared films' conditions
    from keras_mammo.generation.generate import generate_images
    from keras_mammo.generation.run_metrics import evaluate_run_model_specific

    imgs = generate_images(run, 3, seed=2)
    assert imgs.shape == (3, 32, 32, 1) and 0.0 <= imgs.min() and imgs.max() <= 1.0
    specific = evaluate_run_model_specific(run, seed=0, classifier_epochs=1)
    expected = {"dcgan": None, "stylegan": None, "unet": "dice", "seg-cdcgan": "ssim_to_conditioning_image",
                "pix2pix": "real_heldout"}[name]
    if expected is None:
        assert specific is None
    else:
        assert specific["model"] == name and specific["n_films"] >= 12 and expected in specific
    if name == "unet":  # held-out patients scored apart (bench/compare_models.py)
        from keras_mammo.data.pipeline import kept_rows

        rows = kept_rows(mias_prepared)
        held = {rows[0]["patient_id"]}
        split = evaluate_run_model_specific(run, prepared=mias_prepared, heldout_patients=held)
        n_held = sum(r["patient_id"] in held for r in rows)
        assert 0 < n_held < len(rows) and split["heldout_patients"]["n"] == n_held
        assert split["training_patients"]["n"] == len(rows) - n_held


def _alpha(ckpt) -> float:
    with np.load(ckpt) as d:
        names = [str(x) for x in d["__names__"]]
        return float(d[f"v{names.index('generator/alpha'):05d}"])


def test_stylegan_resume_after_kill_matches_uninterrupted(mias_dir, mias_prepared, tmp_path):
    """An 8-px stage, then a 16-px stage whose fade-in (from the 8-px path, over 24 images)
    runs across the stop: 1 + 2 epochs in one go vs 1 + 1 epochs (stopped at α = 8/24), a
    restart (new model restored from the checkpoint), then 1 more (α = 16/24)."""
    from keras_mammo.training.checkpoint import latest_checkpoint
    from keras_mammo.training.run import train

    low, high = {"resolution": 8, "epochs": 1}, {"resolution": 16, "epochs": 2, "fade_in_images": 24}
    full = train(run_cfg("stylegan", mias_dir, mias_prepared, tmp_path / "full", **{"train.stages": [low, high]}),
                 progress=False)
    part = tmp_path / "part"
    train(run_cfg("stylegan", mias_dir, mias_prepared, part, **{"train.stages": [low, {**high, "epochs": 1}]}),
          progress=False)
    stopped = latest_checkpoint(part)
    assert stopped.name == "ckpt-000002.npz" and _alpha(stopped) == pytest.approx(8 / 24)  # mid fade-in
    train(run_cfg("stylegan", mias_dir, mias_prepared, part, **{"train.stages": [low, high]}), progress=False)
    a, b = np.load(latest_checkpoint(full)), np.load(latest_checkpoint(part))
    keys = [k for k in a.files if k.startswith("v")]
    assert keys == [k for k in b.files if k.startswith("v")]
    for k in keys:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=str(a["__paths__"][int(k[1:])]))
    state = json.loads(bytes(b["__state__"]).decode())
    assert state["stage"]["resolution"] == 16 and state["step"] == 6
    assert _alpha(latest_checkpoint(part)) == pytest.approx(16 / 24)  # 4 steps × 4 images of 24: still fading


@pytest.mark.parametrize("name", ["seg-cdcgan", "unet"])
def test_conditional_savedmodel_without_conditions_is_a_clear_error(name, mias_dir, mias_prepared, tmp_path):
    from keras_mammo.errors import DataError
    from keras_mammo.generation.export import export_model
    from keras_mammo.generation.generate import generate_images
    from keras_mammo.training.run import train

    run = train(run_cfg(name, mias_dir, mias_prepared, tmp_path / "run"), progress=False)
    target = export_model(run, out_dir=tmp_path / "saved", name=name)
    with pytest.raises(DataError, match="this SavedModel is conditional"):
        generate_images(target, 2)
    if name == "unet":  # the segmenter's loss curve has its `loss` line
        assert (run / "loss_curve.png").stat().st_size > 10_000
