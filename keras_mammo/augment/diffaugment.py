"""DiffAugment (Zhao, Liu, Lin, Zhu & Han 2020, "Differentiable Augmentation for
Data-Efficient GAN Training", NeurIPS, §3).

The same random, differentiable transforms are applied to every image the discriminator
sees, real and generated, in both the discriminator's and the generator's update; the
generator gets gradients through them. The policy is a sequence of named transforms:

- ``"translation"`` — shift each image by an integer number of pixels, independently in
  y and x, drawn uniformly from ``[-s, s]`` with ``s = round(ratio · side)``, ratio 1/8;
  the uncovered border is filled with 0 (the paper's zero padding; 0 is mid-grey for
  images in ``[-1, 1]`` and "outside" for ``{0, 1}`` masks).
- ``"cutout"`` — set one square of side ``round(side / 2)`` at a uniformly drawn centre
  (clipped at the border) to 0, as the paper's ``rand_cutout``.
- ``"brightness"`` — add ``b ~ U[-0.5, 0.5)`` per image.
- ``"contrast"`` — ``(x − μ) · c + μ`` with ``c ~ U[0.5, 1.5)`` per image, μ the image's
  mean over pixels and image channels.

The paper's ``"color"`` group also changes saturation; films are grey, so
:data:`DEFAULT_POLICY` keeps brightness and contrast only. Outputs are not clipped to
``[-1, 1]`` (the paper does not clip either: the discriminator sees the shifted values).

**Condition channels.** Channels ``[:image_channels]`` are images; the rest are condition
maps concatenated to them (breast/lesion masks of conditional models). Geometric
transforms (translation) move the condition maps with the image, identically. Pixel-value
transforms (brightness, contrast) and cutout leave condition maps untouched: zeroing a
square of a mask would change the condition itself (a lesion the generator was asked for
would disappear from the condition while its pixels stay in the film), so cutout hides
image content only.

**Randomness.** Every draw is ``tf.random.stateless_*`` keyed by ``seed`` (a ``(2,)``
int32 or int64 tensor) folded with the transform's position in the policy, so the same
seed gives the same output — inside ``tf.function``, under ``tf.distribute`` strategies
and after a checkpoint resume (callers derive the seed from the step, as
:func:`keras_mammo.models.gan_utils.step_seed` does). Two inputs of the same batch size
augmented with one seed get the same relative shifts and cutout positions, whatever their
side (FastGAN augments its full-size and half-size outputs together this way).
"""
from __future__ import annotations

import tensorflow as tf

#: Transforms applied by default, in order (no saturation/colour: grey films).
DEFAULT_POLICY = ("translation", "cutout", "brightness", "contrast")
#: Fraction of the side for the largest translation (paper: 1/8).
TRANSLATION_RATIO = 0.125
#: Fraction of the side covered by the cutout square (paper: 1/2).
CUTOUT_RATIO = 0.5


def parse_policy(policy) -> tuple[str, ...]:
    """``"translation,cutout"`` or a sequence of names → a tuple of transform names.

    Empty string, None or an empty sequence → ``()`` (identity).

    Raises:
        ValueError: an unknown transform name (the message lists the allowed ones).
    """
    if policy is None:
        return ()
    if isinstance(policy, str):
        names = [p.strip() for p in policy.split(",")]
    else:
        names = [str(p).strip() for p in policy]
    names = tuple(p for p in names if p)
    unknown = [p for p in names if p not in TRANSFORMS]
    if unknown:
        raise ValueError(f"DiffAugment policy: unknown transform {unknown[0]!r}; allowed: {', '.join(TRANSFORMS)}")
    return names


def _split(x, image_channels: int):
    return x[..., :image_channels], x[..., image_channels:]


def brightness(x, seed, image_channels: int = 1):
    """Add ``U[-0.5, 0.5)`` per image to the image channels. ``(N, H, W, C)`` → same."""
    img, cond = _split(x, image_channels)
    n = tf.shape(x)[0]
    b = tf.random.stateless_uniform(tf.stack([n, 1, 1, 1]), seed=seed, dtype=tf.float32) - 0.5
    return tf.concat([img + tf.cast(b, img.dtype), cond], axis=-1)


def contrast(x, seed, image_channels: int = 1):
    """Scale each image's deviation from its mean by ``U[0.5, 1.5)``. ``(N, H, W, C)`` → same."""
    img, cond = _split(x, image_channels)
    n = tf.shape(x)[0]
    c = tf.random.stateless_uniform(tf.stack([n, 1, 1, 1]), seed=seed, dtype=tf.float32) + 0.5
    mean = tf.reduce_mean(img, axis=[1, 2, 3], keepdims=True)
    return tf.concat([(img - mean) * tf.cast(c, img.dtype) + mean, cond], axis=-1)


def _shift_axis(x, shift, axis: int):
    """Shift ``x (N, H, W, C)`` by ``shift (N,)`` int32 pixels along ``axis`` (1 or 2), zero fill."""
    size = tf.shape(x)[axis]
    src = tf.range(size)[None, :] - shift[:, None]            # (N, size): output i reads input i − t
    valid = tf.cast((src >= 0) & (src < size), x.dtype)
    out = tf.gather(x, tf.clip_by_value(src, 0, size - 1), axis=axis, batch_dims=1)
    shape = [-1, 1, 1, 1]
    shape[axis] = size
    return out * tf.reshape(valid, tf.stack(shape))


def translation(x, seed, image_channels: int = 1, ratio: float = TRANSLATION_RATIO):
    """Integer shift in ``[-round(ratio·H), round(ratio·H)]`` (y) and likewise in x, per image.

    Image and condition channels move together; uncovered pixels become 0.
    ``(N, H, W, C)`` → same.
    """
    n, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    sy = tf.cast(tf.cast(h, tf.float32) * ratio + 0.5, tf.int32)
    sx = tf.cast(tf.cast(w, tf.float32) * ratio + 0.5, tf.int32)
    # draw in [0, 1) and scale, so that inputs of different sides get the same relative shift
    u = tf.random.stateless_uniform(tf.stack([2, n]), seed=seed, dtype=tf.float32)
    ty = tf.cast(tf.floor(u[0] * tf.cast(2 * sy + 1, tf.float32)), tf.int32) - sy
    tx = tf.cast(tf.floor(u[1] * tf.cast(2 * sx + 1, tf.float32)), tf.int32) - sx
    return _shift_axis(_shift_axis(x, ty, 1), tx, 2)


def cutout(x, seed, image_channels: int = 1, ratio: float = CUTOUT_RATIO):
    """Zero one ``round(ratio·H) × round(ratio·W)`` square per image, image channels only.

    The square's centre is uniform over ``[0, H + (1 − size mod 2))`` (paper's
    ``rand_cutout``); the part outside the image is clipped. ``(N, H, W, C)`` → same.
    """
    img, cond = _split(x, image_channels)
    n, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    ch = tf.cast(tf.cast(h, tf.float32) * ratio + 0.5, tf.int32)
    cw = tf.cast(tf.cast(w, tf.float32) * ratio + 0.5, tf.int32)
    u = tf.random.stateless_uniform(tf.stack([2, n]), seed=seed, dtype=tf.float32)
    oy = tf.cast(tf.floor(u[0] * tf.cast(h + 1 - ch % 2, tf.float32)), tf.int32) - ch // 2
    ox = tf.cast(tf.floor(u[1] * tf.cast(w + 1 - cw % 2, tf.float32)), tf.int32) - cw // 2
    ys, xs = tf.range(h)[None, :], tf.range(w)[None, :]
    in_y = (ys >= oy[:, None]) & (ys < (oy + ch)[:, None])     # (N, H)
    in_x = (xs >= ox[:, None]) & (xs < (ox + cw)[:, None])     # (N, W)
    keep = 1.0 - tf.cast(in_y[:, :, None] & in_x[:, None, :], img.dtype)
    return tf.concat([img * keep[..., None], cond], axis=-1)


#: name → ``fn(x, seed, image_channels)``
TRANSFORMS = {"translation": translation, "cutout": cutout, "brightness": brightness, "contrast": contrast}


def diff_augment(x, seed, policy=DEFAULT_POLICY, image_channels: int = 1):
    """Apply the DiffAugment ``policy`` to a batch (Zhao et al. 2020, §3).

    Args:
        x: ``(N, H, W, C)`` float (float32 or float16), images in ``[-1, 1]`` in the first
            ``image_channels`` channels, condition maps in the others.
        seed: ``(2,)`` int32/int64 tensor; the same seed gives the same output.
        policy: transform names (a sequence or a comma-separated string), applied in order;
            see :data:`TRANSFORMS`. Empty → ``x`` unchanged.
        image_channels: how many leading channels are images.

    Returns:
        ``(N, H, W, C)`` tensor of ``x``'s dtype, differentiable with respect to ``x``.

    Raises:
        ValueError: unknown transform name, or ``image_channels`` not in ``[1, C]``.
    """
    names = parse_policy(policy)
    x = tf.convert_to_tensor(x)
    channels = x.shape[-1]
    if channels is not None and not 1 <= image_channels <= channels:
        raise ValueError(f"DiffAugment: image_channels must be in [1, {channels}], got {image_channels}")
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    for i, name in enumerate(names):
        x = TRANSFORMS[name](x, tf.random.experimental.stateless_fold_in(seed, i), image_channels=image_channels)
    return x
