"""FastGAN (Liu et al. 2021): shapes at each resolution, skip-layer excitation, config
validation, the self-supervised reconstruction loss falling on real MIAS films, and a run
through the trainer, checkpoint, export and generation. (Checkpoint exactness and the
export signatures' agreement with ``generate`` are in the parameter table of
tests/test_models_zoo.py.)"""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_mammo.config import load_config
from keras_mammo.errors import ConfigError
from keras_mammo.models.fastgan import (
    FastGANDiscriminator,
    FastGANGenerator,
    FastGANParams,
    SkipLayerExcitation,
    crop_quadrant,
)
from keras_mammo.models.registry import DataInfo, build_model, model_params

TINY = {"ngf": 2, "ndf": 2, "min_channels": 2}


@pytest.mark.parametrize("res,sle", [(32, 0), (64, 1), (128, 2), (256, 3)])
def test_shapes_at_each_resolution(res, sle):
    """G: z → (R, R) and (S, S) images in [-1, 1]; D: 50 logits and three (T, T) reconstructions."""
    p = FastGANParams(**TINY)
    g, d = FastGANGenerator(8, res, p), FastGANDiscriminator(res, p)
    big, small = g.forward(tf.random.stateless_normal((2, 8), seed=(1, 2)))
    s = t = min(res // 2, 128)
    assert big.shape == (2, res, res, 1) and small.shape == (2, s, s, 1) and big.dtype == tf.float32
    assert float(tf.reduce_min(big)) >= -1.0 and float(tf.reduce_max(big)) <= 1.0
    logits, recs = d(big, small, reconstruct=True, part=tf.constant(2))
    assert logits.shape == (2, 50)  # 5×5 from the R-px path + 5×5 from the S-px path
    assert {k: tuple(v.shape) for k, v in recs.items()} == {k: (2, t, t, 1) for k in ("big", "small", "part")}
    assert d(big).shape == (2, 50)  # the small image defaults to the big one downsampled
    # SLE pairs (4→64, 8→128, 16→256 in G; 64→8, 128→16, 256→32 in D) that fit in R
    assert len(g.sle) == sle and len(d.sle) == sle


def test_skip_layer_excitation_gates_channels():
    """SLE (Eq. 1): the large map times one gate in (0, 1) per image and channel."""
    layer = SkipLayerExcitation(3)
    small = tf.random.stateless_normal((2, 8, 8, 5), seed=(3, 4))
    big = tf.random.stateless_uniform((2, 32, 32, 3), seed=(5, 6), minval=0.5, maxval=1.5)
    ratio = (layer(small, big) / big).numpy()
    np.testing.assert_allclose(ratio, ratio[:, :1, :1, :] * np.ones_like(ratio), rtol=1e-5)
    assert ratio.min() > 0 and ratio.max() < 1 and np.ptp(ratio[:, 0, 0, :]) > 0


def test_crop_quadrant():
    x = tf.reshape(tf.range(16, dtype=tf.float32), (1, 4, 4, 1))
    np.testing.assert_array_equal(crop_quadrant(x, 0)[0, ..., 0], [[0, 1], [4, 5]])
    np.testing.assert_array_equal(crop_quadrant(x, 3)[0, ..., 0], [[10, 11], [14, 15]])


def test_registry_and_config_validation():
    cfg = load_config("fastgan")
    params = model_params(cfg)
    assert cfg.model.name == "fastgan" and isinstance(params, FastGANParams) and cfg.train.resolution == 64
    bad = {
        "model.params.policy": {"policy": "color,translation"},
        "model.params.recon_loss": {"recon_loss": "lpips"},
        "model.params.ngf": {"ngf": 0},
        "model.params.unknown_key": {"unknown_key": 1},
    }
    for key, params in bad.items():
        with pytest.raises(ConfigError, match=key):
            build_model(load_config(None, {"model.name": "fastgan", "model.params": params,
                                           "train.resolution": 32}))
    with pytest.raises(ConfigError, match="train.resolution.*48"):
        build_model(load_config(None, {"model.name": "fastgan", "train.resolution": 48}))
    with pytest.raises(ConfigError, match="one resolution"):
        build_model(load_config(None, {"model.name": "fastgan", "train.stages": [
            {"resolution": 32, "epochs": 1}, {"resolution": 64, "epochs": 1}]}))


def _compiled(res, build=True, **params):
    cfg = load_config(None, {"model.name": "fastgan", "model.latent_dim": 16, "train.resolution": res, "seed": 11,
                             "model.params": {**TINY, **params}})
    model = build_model(cfg, DataInfo())
    model.compile(g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                  d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    if build:
        model.build_networks()
        model.build_optimizers()
        model.set_stage(res)
    return model


def test_augmentation_policy_reaches_the_discriminator_inputs():
    """``model.params.policy`` drives :meth:`FastGAN.augment`, keyed by the step; ``""`` is the identity."""
    x = tf.random.stateless_uniform((4, 32, 32, 1), seed=(8, 9), minval=-1, maxval=1)
    a, b = _compiled(32, build=False), _compiled(32, policy="", build=False)
    np.testing.assert_array_equal(b.augment(x, 601).numpy(), x.numpy())
    y = a.augment(x, 601).numpy()
    assert np.abs(y - x.numpy()).max() > 0.1
    np.testing.assert_array_equal(y, a.augment(x, 601).numpy())            # same step and stream: same draw
    assert np.abs(a.augment(x, 602).numpy() - y).max() > 0.1             # real vs generated streams differ
    a.g_optimizer.iterations.assign(1)
    assert np.abs(a.augment(x, 601).numpy() - y).max() > 0.1             # next step: new draw


def test_trainer_augmentation_replaces_the_policy_and_ada_sees_the_real_logits():
    """``train.augment: ada|diffaugment`` (issue 9): the trainer's augmentation replaces the
    model's own DiffAugment policy, one stream gives one transform in a step (a generated
    pair's two sizes move together), and a train step feeds ADA's ``r_t``."""
    from keras_mammo.config import TrainConfig

    x = tf.random.stateless_uniform((4, 32, 32, 1), seed=(8, 9), minval=-1, maxval=1)
    own = _compiled(32, build=False)
    model = _compiled(32)
    model.configure_training(TrainConfig(augment="diffaugment"))
    y = model.augment(x, 602).numpy()
    assert np.abs(y - x.numpy()).max() > 0.1
    assert np.abs(y - own.augment(x, 602).numpy()).max() > 0.1            # not the model's own draw
    np.testing.assert_array_equal(y, model.augment(x, 602).numpy())       # same stream: same transform
    assert np.abs(model.augment(x, 601).numpy() - y).max() > 0.1          # other stream: another draw

    ada = _compiled(32)
    ada.configure_training(TrainConfig(augment="ada", ada_interval=1, ada_kimg=0.001))
    batch = {"image": x}
    logs = ada.train_step(batch)  # raises ConfigError if the step never reports D(real)
    assert np.isfinite(float(logs["d_loss"]))
    assert int(ada.ada.minibatches.numpy()) == 1 and 0.0 < abs(float(ada.ada.rt.numpy())) <= 1.0


@pytest.mark.slow
def test_training_on_mias_lowers_reconstruction_then_checkpoint_export_generate(mias_dir, mias_prepared, tmp_path):
    """One epoch of 24 steps through the trainer on 16 real films at 32 px (one trace serves
    both checks): the decoders learn to reconstruct the films (mean reconstruction loss of
    the last 5 steps < 0.8 × the first 5), then the checkpoint exports and its signatures answer."""
    import csv

    from keras_mammo.generation.export import export_model
    from keras_mammo.generation.generate import generate_images
    from keras_mammo.training.run import train

    params = {"ngf": 4, "ndf": 8, "min_channels": 4}
    cfg = load_config(None, {"model.name": "fastgan", "model.latent_dim": 16, "model.params": params,
                             "data.dataset": "mias", "data.path": str(mias_dir), "data.prepared": str(mias_prepared),
                             "data.size": 64, "run_dir": str(tmp_path / "run"), "train.resolution": 32,
                             "train.epochs": 1, "train.batch_size": 8, "train.steps_per_epoch": 24,
                             "train.sample_count": 4, "train.tensorboard": False, "seed": 3})
    run = train(cfg, progress=False)
    assert [p.name for p in (run / "checkpoints").glob("ckpt-*.npz")] == ["ckpt-000001.npz"]
    rows = list(csv.DictReader(open(run / "losses_steps.csv")))
    recon = np.array([float(r["recon"]) for r in rows])
    assert len(recon) == 24 and np.isfinite(recon).all()
    first, last = recon[:5].mean(), recon[-5:].mean()
    assert last < 0.8 * first, f"reconstruction loss {first:.3f} → {last:.3f}"
    target = export_model(run, out_dir=tmp_path / "saved", name="fastgan")
    loaded = tf.saved_model.load(str(target))
    assert set(loaded.signatures) == {"serving_default", "generate", "generate_png", "latent_png",
                                      "generate_png16", "latent_png16"}
    a = loaded.signatures["generate"](count=tf.constant(3, tf.int32), seed=tf.constant(1, tf.int64))["images"]
    b = loaded.signatures["generate"](count=tf.constant(3, tf.int32), seed=tf.constant(1, tf.int64))["images"]
    assert a.dtype == tf.uint8 and a.shape == (3, 32, 32, 1)
    np.testing.assert_array_equal(a.numpy(), b.numpy())  # deterministic (fixed inference noise)
    z = loaded.signatures["serving_default"](latent=tf.zeros((2, 16)))["images"]
    assert z.shape == (2, 32, 32, 1)
    imgs = generate_images(run, 3, seed=2)
    assert imgs.shape == (3, 32, 32, 1) and 0.0 <= imgs.min() and imgs.max() <= 1.0
