"""Numerical checks of the blocks and losses behind DCGAN, StyleGAN, seg-cdcgan, pix2pix and U-Net.

Each test compares against a value computed by hand (NumPy) in the test.
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from keras_mammo.losses import (
    gradient_penalty,
    l1_loss,
    logistic_discriminator_loss,
    r1_penalty,
    soft_dice_loss,
)
from keras_mammo.models.blocks import (
    AdaIN,
    EqualizedConv2D,
    EqualizedDense,
    MinibatchStdDev,
    NoiseInjection,
    downsample_mask,
    fade_in,
    pixel_norm,
)


def test_gradient_penalty_linear_critic_matches_hand_value():
    """C(x) = Σ w·x + b has ∇C = w everywhere, so GP = (‖w‖₂ − 1)² whatever ε is."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 4, 1)).astype(np.float32)
    critic = lambda x: tf.reduce_sum(x * w, axis=(1, 2, 3))[:, None] + 0.3  # noqa: E731
    real = tf.constant(rng.uniform(-1, 1, (3, 4, 4, 1)), tf.float32)
    fake = tf.constant(rng.uniform(-1, 1, (3, 4, 4, 1)), tf.float32)
    eps = tf.constant(rng.uniform(size=(3, 1, 1, 1)), tf.float32)
    expected = (np.sqrt((w.astype(np.float64) ** 2).sum()) - 1.0) ** 2
    assert float(gradient_penalty(critic, real, fake, eps)) == pytest.approx(expected, rel=1e-5)


def test_gradient_penalty_quadratic_critic_depends_on_interpolate():
    """C(x) = ½‖x‖² has ∇C(x̂) = x̂: GP = mean_i (‖ε_i·r_i + (1 − ε_i)·f_i‖ − 1)²."""
    rng = np.random.default_rng(1)
    real = rng.uniform(-1, 1, (5, 2, 2, 1))
    fake = rng.uniform(-1, 1, (5, 2, 2, 1))
    eps = rng.uniform(size=(5, 1, 1, 1))
    critic = lambda x: 0.5 * tf.reduce_sum(tf.square(x), axis=(1, 2, 3))[:, None]  # noqa: E731
    x_hat = eps * real + (1 - eps) * fake
    expected = np.mean((np.sqrt((x_hat ** 2).sum(axis=(1, 2, 3))) - 1.0) ** 2)
    got = gradient_penalty(critic, *(tf.constant(a, tf.float32) for a in (real, fake, eps)))
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_gradient_penalty_is_differentiable_wrt_critic_weights():
    """The penalty must train the critic: d GP / d w = 2(‖w‖ − 1)·w/‖w‖ for a linear critic."""
    w = tf.Variable(np.full((2, 2, 1), 0.8, np.float32))
    x = tf.zeros((2, 2, 2, 1))
    with tf.GradientTape() as tape:
        gp = gradient_penalty(lambda v: tf.reduce_sum(v * w, axis=(1, 2, 3))[:, None], x, x, tf.ones((2, 1, 1, 1)))
    grad = tape.gradient(gp, w).numpy()
    norm = np.sqrt(4 * 0.8 ** 2)
    np.testing.assert_allclose(grad, 2 * (norm - 1) * 0.8 / norm, rtol=1e-5)


def test_r1_penalty_quadratic_discriminator():
    """D(x) = ½‖x‖²: ∇D = x, R1 = mean_i ‖x_i‖²."""
    x = np.random.default_rng(2).normal(size=(3, 4, 4, 1))
    d = lambda v: 0.5 * tf.reduce_sum(tf.square(v), axis=(1, 2, 3))[:, None]  # noqa: E731
    penalty, logits = r1_penalty(d, tf.constant(x, tf.float32), return_logits=True)
    assert float(penalty) == pytest.approx(np.mean((x ** 2).sum(axis=(1, 2, 3))), rel=1e-5)
    np.testing.assert_allclose(logits.numpy()[:, 0], 0.5 * (x ** 2).sum(axis=(1, 2, 3)), rtol=1e-5)


def test_logistic_and_l1_and_dice_losses():
    real, fake = np.array([[2.0], [-1.0]]), np.array([[0.5], [-3.0]])
    softplus = lambda v: np.log1p(np.exp(v))  # noqa: E731
    expected = softplus(fake).mean() + softplus(-real).mean()
    assert float(logistic_discriminator_loss(tf.constant(real), tf.constant(fake))) == pytest.approx(expected)
    assert float(l1_loss(tf.constant([[1.0, -1.0]]), tf.constant([[0.5, 0.0]]))) == pytest.approx(0.75)
    t = np.zeros((1, 2, 2, 1), np.float32)
    t[0, 0, 0, 0] = 1
    p = np.full((1, 2, 2, 1), 0.5, np.float32)
    # Dice = (2·0.5 + 1) / (2 + 1 + 1) = 0.5
    assert float(soft_dice_loss(t, p)) == pytest.approx(0.5)


def test_adain_normalizes_then_applies_style():
    """AdaIN(x, w) = (1 + A_s(w))·(x − μ)/σ + A_b(w), per image and channel (Karras et al. 2019, Eq. 1)."""
    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 3.0, (2, 5, 5, 3)).astype(np.float32)
    w = rng.normal(size=(2, 4)).astype(np.float32)
    layer = AdaIN(3, epsilon=1e-8)
    layer(tf.constant(x), tf.constant(w))
    kernel = rng.normal(size=(4, 6)).astype(np.float32)
    bias = rng.normal(size=(6,)).astype(np.float32)
    layer.affine.kernel.assign(kernel)
    layer.affine.bias.assign(bias)
    out = layer(tf.constant(x), tf.constant(w)).numpy()

    style = w @ (kernel / np.sqrt(4.0)) + bias      # equalized lr: gain 1 / sqrt(fan_in)
    ys, yb = 1.0 + style[:, :3], style[:, 3:]
    mu = x.mean(axis=(1, 2), keepdims=True)
    sigma = np.sqrt(x.var(axis=(1, 2), keepdims=True) + 1e-8)
    expected = (x - mu) / sigma * ys[:, None, None, :] + yb[:, None, None, :]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    # per-channel statistics of the output are the style itself
    np.testing.assert_allclose(out.mean(axis=(1, 2)), yb, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(1, 2)), np.abs(ys), rtol=1e-4)


def test_fade_in_blend():
    old, new = np.full((1, 2, 2, 1), 4.0), np.full((1, 2, 2, 1), 8.0)
    for a, expected in ((0.0, 4.0), (0.25, 5.0), (1.0, 8.0)):
        np.testing.assert_allclose(fade_in(a, tf.constant(old), tf.constant(new)).numpy(), expected)


def test_equalized_layers_scale_at_runtime():
    d = EqualizedDense(3, gain=2.0 ** 0.5, lr_mul=0.01)
    x = np.ones((1, 8), np.float32)
    y = d(x).numpy()
    k = d.kernel.numpy()
    # atol: an output near 0 is a float32 sum of terms of size ~1 (the kernel is stored as N(0, 1/lr_mul))
    np.testing.assert_allclose(y, x @ k * (2.0 ** 0.5 / np.sqrt(8) * 0.01), rtol=1e-5, atol=1e-6)
    assert np.std(k) == pytest.approx(100.0, rel=0.6)  # stored N(0, 1/lr_mul)
    c = EqualizedConv2D(2, 1, gain=1.0)
    x = np.random.default_rng(4).normal(size=(1, 3, 3, 4)).astype(np.float32)
    y = c(x).numpy()
    np.testing.assert_allclose(y, x @ c.kernel.numpy()[0, 0] / 2.0, rtol=1e-5, atol=1e-6)


def test_minibatch_stddev_matches_numpy():
    x = np.random.default_rng(5).normal(size=(8, 2, 2, 3)).astype(np.float32)
    out = MinibatchStdDev(group_size=4, epsilon=0.0)(tf.constant(x)).numpy()
    assert out.shape == (8, 2, 2, 4)
    g = x.reshape(4, 2, 2, 2, 3)                           # group member g, image m = index g·2 + m
    stat = np.sqrt(g.var(axis=0)).mean(axis=(1, 2, 3))     # (2,)
    for n in range(8):
        np.testing.assert_allclose(out[n, :, :, 3], stat[n % 2], rtol=1e-5)
    # a batch not divisible by the group size uses the whole batch
    out3 = MinibatchStdDev(4, epsilon=0.0)(tf.constant(x[:3])).numpy()
    np.testing.assert_allclose(out3[0, 0, 0, 3], np.sqrt(x[:3].var(axis=0)).mean(), rtol=1e-5)


def test_noise_injection_pixel_norm_and_mask_downsampling():
    layer = NoiseInjection(2)
    layer.weight.assign([0.5, -1.0])
    out = layer(tf.zeros((1, 2, 2, 2)), tf.ones((1, 2, 2, 1))).numpy()
    np.testing.assert_allclose(out[0, 0, 0], [0.5, -1.0])
    z = pixel_norm(tf.constant([[3.0, 4.0]])).numpy()
    np.testing.assert_allclose(z, [[3.0, 4.0]] / np.sqrt(12.5), rtol=1e-5)
    m = np.zeros((1, 4, 4, 1), np.float32)
    m[0, :2, :2] = 1
    m[0, 2, 2] = 1
    small = downsample_mask(tf.constant(m), 2).numpy()[0, :, :, 0]
    np.testing.assert_allclose(small, [[1.0, 0.0], [0.0, 0.25]])
