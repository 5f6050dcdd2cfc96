"""Images → the FID Inception network's input: range, channels, and the clean 299 px resize.

Resize filter: every image is resized to 299 × 299 with Pillow's bicubic filter
applied to float32 pixels (antialiased: the kernel widens with the shrink factor), and
not quantized afterwards, then clipped to [0, 255]. This is clean-fid's "clean" resize
(Parmar et al. 2022, "On Aliased Resizing and Surprising Subtleties in GAN
Evaluation"): they show that the resize filter alone moves FID by
several points and that the aliasing bilinear resizes of TF/PyTorch are the culprits.
Using the same filter as clean-fid makes keras-mammo's FIDs comparable with clean-fid's.
:func:`resize_299_batch` computes the same filter batched in TensorFlow.

Part of :mod:`keras_mammo.metrics.inception` (which re-exports everything here).
"""
from __future__ import annotations

import functools

import numpy as np

from keras_mammo.metrics.inception_net import INPUT_SIZE

#: Name of the resize filter, recorded in metrics.json and feature-cache keys.
RESIZE_FILTER = "pillow-bicubic-float32 (clean-fid 'clean' resize), clipped to [0, 255]"


def _as_float255(images) -> np.ndarray:
    """``(N, H, W[, C])`` uint8/uint16/float[0,1] → ``(N, H, W, C) float32`` in [0, 255]."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise ValueError(f"images must be (N, H, W), (N, H, W, 1) or (N, H, W, 3); got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) * np.float32(255.0 / 65535.0)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"images must be uint8, uint16 or float in [0, 1]; got dtype {arr.dtype}")
    if arr.size:
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        if not np.isfinite(arr).all():
            raise ValueError("images contain NaN or infinite values")
        if lo < -1e-3 or hi > 1.0 + 1e-3:
            raise ValueError(
                f"float images must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}] "
                "(generator output in [-1, 1] must be mapped with (x + 1) / 2 first)")
    return np.clip(arr.astype(np.float32), 0.0, 1.0) * np.float32(255.0)


def resize_299(channel: np.ndarray) -> np.ndarray:
    """Resize one ``(H, W) float32`` channel in [0, 255] to ``(299, 299) float32`` in [0, 255].

    Pillow bicubic on float32 (antialiased when shrinking), clipped to [0, 255]: the
    "clean" resize of clean-fid (Parmar et al. 2022). Not quantized afterwards.
    """
    from PIL import Image

    channel = np.ascontiguousarray(channel, dtype=np.float32)
    if channel.shape == (INPUT_SIZE, INPUT_SIZE):
        return channel.copy()
    out = Image.fromarray(channel).resize((INPUT_SIZE, INPUT_SIZE), resample=Image.Resampling.BICUBIC)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 255.0)


@functools.lru_cache(maxsize=1)
def _batched_resize():
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, None), tf.float32)], reduce_retracing=True)
    def resize(x):
        y = tf.image.resize(x, (INPUT_SIZE, INPUT_SIZE), method="bicubic", antialias=True)
        return tf.clip_by_value(y, 0.0, 255.0)

    return resize


def resize_299_batch(images: np.ndarray) -> np.ndarray:
    """Resize ``(N, H, W, C) float32`` in [0, 255] to ``(N, 299, 299, C) float32``, batched in TensorFlow.

    The same clean resize as :func:`resize_299`: TensorFlow's antialiased Keys cubic
    (a = −0.5; the kernel widens with the shrink factor, weights renormalized at the
    borders) is Pillow's float bicubic; the two agree to ≤ 0.01 grey levels on [0, 255]
    (``tests/test_speed.py``), far below one 8-bit level. Clipped to [0, 255].
    """
    images = np.asarray(images, np.float32)
    if images.shape[1:3] == (INPUT_SIZE, INPUT_SIZE):
        return images.copy()
    return _batched_resize()(images).numpy()


def prepare_inception_input(images) -> np.ndarray:
    """Images → the network's input.

    Args:
        images: ``(N, H, W)``, ``(N, H, W, 1)`` or ``(N, H, W, 3)``; uint8 in [0, 255],
            uint16 in [0, 65535] or float in [0, 1].

    Returns:
        ``(N, 299, 299, 3) float32`` in [-1, 1] (``value_255 / 128 − 1``); greyscale is
        resized once (:func:`resize_299_batch`, the whole batch at once) and replicated to
        3 channels.

    Raises:
        ValueError: bad shape, dtype, or float values outside [0, 1].
    """
    arr = _as_float255(images)
    out = resize_299_batch(arr)
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    out /= np.float32(128.0)
    out -= np.float32(1.0)
    return out
