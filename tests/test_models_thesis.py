"""The thesis GAN's networks (Rahali 2025, §3.3) and ProGAN fade-in (Karras et al. 2018)."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from keras_mammo.config import load_config
from keras_mammo.models import build_model


def _model(stages):
    cfg = load_config(None, {"train.stages": [{"resolution": r, "epochs": 1} for r in stages]})
    m = build_model(cfg)
    m.compile(keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-5))
    m.build_networks()
    return m


def test_thesis_architecture_at_128():
    m = _model([64, 128])
    g, d = m.generator, m.discriminator
    assert g.dense.units == 8 * 8 * 256
    assert [b.filters for b in g.blocks] == [128, 128, 128, 64]
    assert [d.blocks[str(r)].filters for r in (128, 64, 32, 16)] == [32, 64, 128, 256]
    assert all(d.blocks[str(r)].dropout_rate == 0.2 for r in (128, 64, 32, 16))
    z = keras.random.normal((3, 128), seed=1)
    img = g(z)
    assert tuple(img.shape) == (3, 128, 128, 1)
    assert float(ops.std(img)) > 0
    # tanh bounds the output (§3.3): with every generator kernel ×30 the images saturate
    # at ±1 instead of leaving [-1, 1]
    for v in g.trainable_variables:
        if v.path.endswith("kernel"):
            v.assign(v * 30.0)
    loud = np.asarray(g(z))
    assert np.isfinite(loud).all() and loud.min() >= -1.0 and loud.max() <= 1.0
    assert np.mean(np.abs(loud) > 0.99) > 0.5
    assert tuple(d(img).shape) == (3, 1)
    assert m.default_optimizer["g_learning_rate"] == 1e-4 and m.default_optimizer["d_learning_rate"] == 1e-5


@pytest.mark.parametrize("stages, res", [([32], 32), ([32, 64], 32), ([32, 64], 64)])
def test_stage_shapes(stages, res):
    m = _model(stages)
    m.set_stage(res)
    z = keras.random.normal((2, 128), seed=0)
    assert tuple(m.generator(z).shape) == (2, res, res, 1)
    assert tuple(m.discriminator(np.zeros((2, res, res, 1), np.float32)).shape) == (2, 1)


def test_fade_in_blends_old_and_new_paths():
    m = _model([32, 64])
    m.set_stage(64, fade_in_images=100)
    g = m.generator
    z = keras.random.normal((2, 128), seed=3)
    new = np.asarray(g(z, alpha=1.0))
    old = np.asarray(g(z, alpha=0.0))
    half = np.asarray(g(z, alpha=0.5))
    # alpha=0: the 32 px image upsampled (each 2×2 block constant)
    np.testing.assert_allclose(old[:, ::2, ::2], old[:, 1::2, 1::2], atol=1e-6)
    m.set_stage(32)
    np.testing.assert_allclose(old[:, ::2, ::2], np.asarray(g(z)), atol=1e-5)
    # tanh is applied after the linear blend
    pre = 0.5 * np.arctanh(np.clip(old, -0.999999, 0.999999)) + 0.5 * np.arctanh(np.clip(new, -0.999999, 0.999999))
    np.testing.assert_allclose(half, np.tanh(pre), atol=1e-4)
    assert not np.allclose(new, old)


def test_alpha_schedule():
    m = _model([32, 64])
    m.set_stage(64, fade_in_images=64, stage_start_step=0, global_batch=16)
    assert float(m.current_alpha(step=0)) == 0.0
    assert float(m.current_alpha(step=2)) == 0.5
    assert float(m.current_alpha(step=10)) == 1.0
    m.set_stage(16, fade_in_images=64)  # the lowest resolution has nothing to fade from
    assert float(m.current_alpha(step=0)) == 1.0
