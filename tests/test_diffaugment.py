"""DiffAugment (Zhao et al. 2020, §3): determinism, shapes, gradients, condition channels,
and each transform checked numerically on a tiny tensor."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from keras_mammo.augment.diffaugment import (
    DEFAULT_POLICY,
    brightness,
    contrast,
    cutout,
    diff_augment,
    parse_policy,
    translation,
)

SEED = tf.constant([3, 4], tf.int32)


def ramp(n=4, h=8, w=8, c=2):
    """Distinct values per pixel (so a shift can be recognised), images in [-1, 1]."""
    x = np.linspace(-1.0, 1.0, n * h * w * c, dtype=np.float32).reshape(n, h, w, c)
    return tf.constant(x)


def shifted(a, ty, tx):
    """``a (H, W)`` moved by (ty, tx) pixels with zero fill."""
    h, w = a.shape
    out = np.zeros_like(a)
    ys, xs = slice(max(ty, 0), min(h + ty, h)), slice(max(tx, 0), min(w + tx, w))
    out[ys, xs] = a[max(-ty, 0):h - max(ty, 0), max(-tx, 0):w - max(tx, 0)]
    return out


def test_same_seed_same_output_and_different_seeds_differ():
    x = ramp()
    a = diff_augment(x, SEED).numpy()
    np.testing.assert_array_equal(a, diff_augment(x, tf.constant([3, 4], tf.int64)).numpy())
    np.testing.assert_array_equal(a, tf.function(diff_augment)(x, SEED).numpy())  # graph = eager
    b = diff_augment(x, tf.constant([3, 5], tf.int32)).numpy()
    assert np.abs(a - b).max() > 0.05


@pytest.mark.parametrize("dtype", [tf.float32, tf.float16])
def test_shape_and_dtype_kept(dtype):
    x = tf.cast(ramp(3, 16, 12, 3), dtype)
    y = diff_augment(x, SEED, image_channels=1)
    assert y.shape == x.shape and y.dtype == dtype
    assert np.isfinite(y.numpy()).all()


def test_policy_as_string_and_empty_policy_is_identity():
    x = ramp()
    np.testing.assert_array_equal(diff_augment(x, SEED, "translation, cutout,brightness,contrast").numpy(),
                                  diff_augment(x, SEED, DEFAULT_POLICY).numpy())
    np.testing.assert_array_equal(diff_augment(x, SEED, "").numpy(), x.numpy())
    assert parse_policy(None) == ()
    with pytest.raises(ValueError, match="unknown transform 'color'.*translation"):
        diff_augment(x, SEED, "color,translation")
    with pytest.raises(ValueError, match="image_channels"):
        diff_augment(x, SEED, image_channels=3)


def test_gradients_flow_to_the_input():
    x = tf.Variable(ramp())
    weights = tf.random.stateless_normal(x.shape, seed=(1, 1))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(diff_augment(x, SEED) * weights)
    g = tape.gradient(loss, x).numpy()
    assert np.isfinite(g).all() and np.abs(g).sum() > 0
    # the image channel's gradient is zero exactly where translation padding or cutout hid the pixel
    assert 0 < (g[..., 0] == 0).mean() < 1


def test_condition_channels_are_only_translated():
    x = ramp(4, 8, 8, 3)
    y = diff_augment(x, SEED, image_channels=1).numpy()
    t = translation(x, tf.random.experimental.stateless_fold_in(tf.cast(SEED, tf.int64), 0)).numpy()
    np.testing.assert_array_equal(y[..., 1:], t[..., 1:])          # masks: the same shift, nothing else
    assert np.abs(y[..., :1] - t[..., :1]).max() > 0.01            # the image got the rest of the policy


def test_translation_is_an_integer_shift_with_zero_fill():
    x = ramp(12, 8, 8, 2).numpy()
    y = translation(tf.constant(x), tf.constant([7, 1], tf.int64)).numpy()
    seen = set()
    for i in range(len(x)):
        matches = [(ty, tx) for ty in range(-1, 2) for tx in range(-1, 2)       # s = round(8 / 8) = 1
                   if np.array_equal(y[i, ..., 0], shifted(x[i, ..., 0], ty, tx))]
        assert len(matches) == 1, f"image {i}: not a shift within ±1 px"
        ty, tx = matches[0]
        np.testing.assert_array_equal(y[i, ..., 1], shifted(x[i, ..., 1], ty, tx))  # same shift per channel
        seen.add(matches[0])
    assert len(seen) > 1  # shifts are drawn per image
    assert any(ty for ty, _ in seen) and any(tx for _, tx in seen)  # in both directions


def test_cutout_zeroes_one_clipped_square_of_the_image_only():
    x = tf.ones((8, 8, 8, 2))
    y = cutout(x, tf.constant([5, 6], tf.int64)).numpy()
    np.testing.assert_array_equal(y[..., 1], 1.0)                  # condition channel untouched
    for img in y[..., 0]:
        rows, cols = np.nonzero(img == 0)
        assert set(np.unique(img)) <= {0.0, 1.0} and rows.size > 0
        # the zeros fill a rectangle of at most 4 × 4 (side 8 · 1/2), clipped at the border
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert rows.size == h * w and h <= 4 and w <= 4
        assert (h == 4 or rows.min() == 0 or rows.max() == 7) and (w == 4 or cols.min() == 0 or cols.max() == 7)


def test_brightness_adds_one_offset_per_image():
    x = ramp(16, 4, 4, 2).numpy()
    y = brightness(tf.constant(x), tf.constant([1, 9], tf.int64)).numpy()
    d = y[..., 0] - x[..., 0]
    offsets = d[:, 0, 0]
    np.testing.assert_allclose(d, offsets[:, None, None] * np.ones_like(d), atol=1e-6)
    assert offsets.min() >= -0.5 and offsets.max() < 0.5 and offsets.std() > 0.1
    np.testing.assert_array_equal(y[..., 1], x[..., 1])


def test_contrast_scales_around_the_image_mean():
    x = ramp(16, 4, 4, 2).numpy()
    y = contrast(tf.constant(x), tf.constant([2, 9], tf.int64)).numpy()
    img, out = x[..., 0], y[..., 0]
    mean = img.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(out.mean(axis=(1, 2)), mean[:, 0, 0], atol=1e-5)   # mean kept
    factor = (out - mean) / (img - mean)
    np.testing.assert_allclose(factor, factor[:, :1, :1] * np.ones_like(factor), rtol=1e-4)
    assert factor.min() >= 0.5 and factor.max() < 1.5 and factor.std() > 0.1
    np.testing.assert_array_equal(y[..., 1], x[..., 1])
