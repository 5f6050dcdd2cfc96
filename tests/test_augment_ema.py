"""EMA generator and ADA (keras_mammo.models.ema, keras_mammo.augment.ada): units, no training runs."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_mammo.augment.ada import AdaptiveAugment, ada_augment
from keras_mammo.models.ema import GeneratorEMA


def test_ema_weights_equal_the_analytic_average():
    """w_ema after a known sequence of weights = the StyleGAN2-ADA recursion computed by hand, ramp-up included."""
    gen = keras.Sequential([keras.layers.Dense(3), keras.layers.BatchNormalization()])
    gen.build((None, 2))
    ema = GeneratorEMA(gen, ema_kimg=0.01, ema_rampup=0.05)   # half-life 10 images, ramp-up 0.05 × images seen
    kernel = gen.layers[0].kernel
    moving_mean = gen.layers[1].moving_mean
    expected = kernel.numpy().astype(np.float64)
    rng = np.random.default_rng(0)
    batch = 4
    for step in range(1, 30):
        w = rng.normal(size=kernel.shape)
        kernel.assign(w)
        moving_mean.assign(rng.normal(size=moving_mean.shape))
        seen = step * batch
        half_life = min(10.0, seen * 0.05)
        beta = 0.5 ** (batch / half_life)
        expected = beta * expected + (1 - beta) * w
        ema.update(batch, seen)
    shadow = dict(zip([id(v) for v in ema.sources], ema.shadows))
    np.testing.assert_allclose(shadow[id(kernel)].numpy(), expected, rtol=1e-5, atol=1e-6)
    # buffers (BatchNorm statistics) are copied, not averaged
    np.testing.assert_array_equal(shadow[id(moving_mean)].numpy(), moving_mean.numpy())
    raw = kernel.numpy().copy()
    with ema.swapped():
        np.testing.assert_allclose(kernel.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(kernel.numpy(), raw)   # raw weights restored after the block


def _batch(n=6, size=32, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.uniform(-1, 1, (n, size, size, 1)).astype(np.float32)
    mask = (rng.uniform(size=(n, size, size, 1)) > 0.7).astype(np.float32)
    return img, mask


def test_ada_identity_at_p0_and_keeps_shape_dtype_range():
    img, mask = _batch()
    x = np.concatenate([img, mask], -1)
    seed = tf.constant([3, 4], tf.int32)
    np.testing.assert_array_equal(ada_augment(x, seed, 0.0, image_channels=1).numpy(), x)
    y = ada_augment(x, seed, 1.0, image_channels=1)
    assert y.shape == x.shape and y.dtype == tf.float32
    assert -1.0 <= float(tf.reduce_min(y)) and float(tf.reduce_max(y)) <= 1.0
    assert np.abs(y.numpy() - x).max() > 0.5                                  # p = 1 changes every image
    np.testing.assert_array_equal(ada_augment(x, seed, 1.0).numpy(), y.numpy())   # same seed → same output
    assert np.abs(ada_augment(x, tf.constant([3, 5]), 1.0).numpy() - y.numpy()).max() > 0.1
    y16 = ada_augment(tf.cast(x, tf.float16), seed, 0.5)
    assert y16.dtype == tf.float16


def test_ada_moves_condition_maps_geometrically_only():
    """The condition channel depends only on the seed's geometric draw, never on the image's colour."""
    img, mask = _batch()
    other = -img
    seed = tf.constant([9, 1], tf.int32)
    a = ada_augment(np.concatenate([img, mask], -1), seed, 1.0, image_channels=1).numpy()
    b = ada_augment(np.concatenate([other, mask], -1), seed, 1.0, image_channels=1).numpy()
    np.testing.assert_array_equal(a[..., 1], b[..., 1])
    assert np.abs(a[..., 1] - mask[..., 0]).max() > 0.5          # but it was moved
    # condition maps get no brightness/contrast/cutout: a constant map stays constant
    c = ada_augment(np.concatenate([img, np.full_like(mask, 0.25)], -1), seed, 1.0).numpy()
    np.testing.assert_allclose(c[..., 1], 0.25, atol=1e-6)


@pytest.mark.parametrize("direction", ["random", "constant"])
def test_ada_gradient_is_the_true_derivative(direction):
    """The discriminator's gradient flows through the whole pipeline (warp, brightness,
    contrast through the image mean, cutout) unchanged: the analytic directional derivative
    ⟨∇_x L, v⟩ equals the central finite difference (L(x + εv) − L(x − εv)) / 2ε for a fixed
    seed (ADA's augmentations are differentiable so G is trained through them; Karras et al.
    2020, §2.2). A constant direction v moves the image mean, which the contrast term uses."""
    img, _ = _batch(2, 16)
    x = tf.constant(img * 0.3)               # few pixels near the [-1, 1] clip
    seed = tf.constant([1, 2])
    w = tf.random.stateless_normal(x.shape, [0, 0])
    v = tf.random.stateless_normal(x.shape, [5, 7]) if direction == "random" else tf.ones_like(x)

    def loss(z):
        return tf.reduce_sum(ada_augment(z, seed, 0.8) * w)

    with tf.GradientTape() as tape:
        tape.watch(x)
        y = loss(x)
    g = tape.gradient(y, x)
    analytic = float(tf.reduce_sum(g * v))
    eps = 1e-3
    numeric = (float(loss(x + eps * v)) - float(loss(x - eps * v))) / (2 * eps)
    assert abs(analytic) > 1.0
    assert analytic == pytest.approx(numeric, rel=2e-2), (analytic, numeric)


def _toy_p(memorizable: bool, steps: int = 120) -> float:
    """Train a tiny D on 2-d points; reals are 8 fixed points (memorizable) or fresh draws (not)."""
    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    d = keras.Sequential([keras.layers.Dense(64, activation="relu"), keras.layers.Dense(64, activation="relu"),
                          keras.layers.Dense(1)])
    opt = keras.optimizers.Adam(1e-2)
    ada = AdaptiveAugment(target=0.6, ada_kimg=0.2, interval=4)   # p can cross [0, 1] in 200 images
    fixed = rng.normal(size=(8, 2)).astype(np.float32)
    d.build((None, 2))
    opt.build(d.trainable_variables)

    @tf.function
    def step(real, fake):
        with tf.GradientTape() as tape:
            lr, lf = d(real), d(fake)
            loss = tf.reduce_mean(tf.nn.softplus(-lr)) + tf.reduce_mean(tf.nn.softplus(lf))
        opt.apply(tape.gradient(loss, d.trainable_variables), d.trainable_variables)
        ada.observe(lr)
        ada.end_minibatch(8)

    for _ in range(steps):
        real = fixed if memorizable else rng.normal(size=(8, 2)).astype(np.float32)
        step(tf.constant(real), tf.constant(rng.normal(size=(8, 2)).astype(np.float32)))
    return float(ada.p.numpy())


def test_ada_p_rises_when_d_memorizes_and_stays_near_zero_when_it_cannot():
    assert _toy_p(memorizable=True) > 0.5
    assert _toy_p(memorizable=False) < 0.1


def test_ada_controller_step_size():
    """One adjustment moves p by batch · interval / (ada_kimg · 1000), toward the target."""
    ada = AdaptiveAugment(target=0.6, ada_kimg=1.0, interval=4)
    for _ in range(4):
        ada.observe(tf.ones([8, 1]))      # r_t = 1 > 0.6
        ada.end_minibatch(8)
    assert float(ada.p.numpy()) == pytest.approx(8 * 4 / 1000)
    for _ in range(4):
        ada.observe(-tf.ones([8, 1]))     # r_t = -1 < 0.6
        ada.end_minibatch(8)
    assert float(ada.p.numpy()) == pytest.approx(0.0)
    assert float(ada.rt.numpy()) == pytest.approx(-1.0)


def test_hinge_losses():
    from keras_mammo.losses import hinge_discriminator_loss, hinge_generator_loss

    real = tf.constant([[2.0], [0.5]])
    fake = tf.constant([[-2.0], [0.0]])
    assert float(hinge_discriminator_loss(real, fake)) == pytest.approx((0 + 0.5) / 2 + (0 + 1) / 2)
    assert float(hinge_generator_loss(fake)) == pytest.approx(1.0)


def test_spectral_norm_bounds_the_discriminator_kernels():
    from keras_mammo.config import load_config
    from keras_mammo.models.registry import build_model

    cfg = load_config(None, {"model.name": "dcgan", "train.resolution": 16, "train.spectral_norm": True,
                             "model.params": {"g_base_channels": 32, "d_base_channels": 8}})
    model = build_model(cfg, None)
    model.build_networks()
    d = model.discriminator
    x = tf.random.stateless_normal((4, 16, 16, 1), [1, 1])
    for _ in range(20):     # power iterations converge over training calls
        d(x, training=True)
    sn = [l for l in d._flatten_layers() if isinstance(l, keras.layers.SpectralNormalization)]
    assert len(sn) == 3     # two convolutions and the head
    for layer in sn:
        k = layer.kernel.numpy().reshape(-1, layer.kernel.shape[-1])
        assert np.linalg.svd(k, compute_uv=False)[0] == pytest.approx(1.0, abs=0.05)


def test_d_options_are_refused_by_models_that_ignore_them():
    from keras_mammo.config import load_config
    from keras_mammo.errors import ConfigError
    from keras_mammo.models.gan import GAN

    toy = GAN(keras.Sequential([keras.layers.Dense(4)]), keras.Sequential([keras.layers.Dense(1)]), 2, name="toy")
    with pytest.raises(ConfigError, match=r"train.loss: 'hinge' is not supported by model 'toy'"):
        toy.configure_training(load_config(None, {"train.loss": "hinge"}).train)
    with pytest.raises(ConfigError, match="train.r1_gamma"):
        toy.configure_training(load_config(None, {"train.r1_gamma": 1}).train)
