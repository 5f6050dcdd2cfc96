"""Adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data", NeurIPS; StyleGAN2-ADA).

Two parts, as in the paper (§2.3, §3):

- :func:`ada_augment`: a differentiable, batched pipeline of TensorFlow ops. Every image
  gets each transform independently with probability ``p``:

  ========================  ====================================================  ==========
  transform                 parameters (per image)                                channels
  ========================  ====================================================  ==========
  integer translation       ``t ~ round(U(−0.125, 0.125) · side)`` pixels          all
  isotropic scaling         ``s = 2^N(0, 0.2)`` (paper's ``scale_std``)            all
  small rotation            ``θ ~ U(−10°, 10°)`` (the paper rotates freely; a      all
                            mammogram is always upright)
  brightness                ``x + N(0, 0.2)``                                      images
  contrast                  ``mean + (x − mean) · 2^N(0, 0.5)``                    images
  cutout                    a square of half the side at a uniform centre set to   images
                            0 (mid grey), Zhao et al. 2020
  ========================  ====================================================  ==========

  The three geometric transforms are composed as one 3×3 matrix per image and applied
  in a single bilinear resampling (``ImageProjectiveTransformV3``, edge pixels repeated
  outside the film); they move condition maps (channels after ``image_channels``)
  identically, colour transforms touch only the image channels. The result is clipped
  to ``[-1, 1]``. **Horizontal flip is off by default and leaks here**: preprocessing
  puts every chest wall on the left, so a flipped real film teaches the generator
  right-sided films (the paper's ``xflip`` is safe only for symmetric data).
- :class:`AdaptiveAugment`: the probability ``p`` and its controller. The discriminator's
  outputs on (augmented) real images are accumulated; every ``interval`` minibatches the
  overfitting heuristic ``r_t = E[sign(D(x_real))]`` is compared with the target (0.6)
  and ``p`` moves by ``sign(r_t − target) · images / (ada_kimg · 1000)``, so it can go
  from 0 to 1 in ``ada_kimg`` thousand images (paper: 500 k). ``p`` is a variable saved
  in every checkpoint, so a resumed run continues with the same ``p`` (StyleGAN2-ADA
  restarts from 0 when resuming, NVlabs/stylegan2-ada-pytorch issue 81).

All randomness is stateless: the same ``seed`` gives the same augmentation.
"""
from __future__ import annotations

import math

import tensorflow as tf

#: Largest integer translation as a fraction of the side (paper: 0.125).
TRANSLATE_MAX = 0.125
#: Standard deviation of log2 of the isotropic scale (paper: 0.2).
SCALE_STD = 0.2
#: Largest rotation in degrees (mammogram-safe; the paper rotates by any angle).
ROTATE_MAX_DEG = 10.0
#: Standard deviation of the additive brightness (paper: 0.2; images in [-1, 1]).
BRIGHTNESS_STD = 0.2
#: Standard deviation of log2 of the contrast factor (paper: 0.5).
CONTRAST_STD = 0.5
#: Side of the cutout square as a fraction of the image side (paper: 0.5).
CUTOUT_SIZE = 0.5


def _apply_with_p(values, identity, p, uniform):
    """``values`` where ``uniform < p`` else ``identity`` (per image)."""
    return tf.where(uniform < p, values, identity)


def _warp_bilinear(x, a00, a01, b0, a10, a11, b1):
    """Bilinear resampling of ``x`` ``(N, H, W, C)``: output pixel (row i, column j) reads the
    input at column ``a00·j + a01·i + b0``, row ``a10·j + a11·i + b1`` (each coefficient
    ``(N,)``), coordinates clamped to the image (edge pixels extend outwards).

    The same values as ``ImageProjectiveTransformV3`` (BILINEAR, fill NEAREST), but built
    from ``tf.gather``, whose gradient is the exact adjoint (a scatter-add): TensorFlow's
    registered gradient of that op warps the upstream gradient back with the inverse
    transform, which is not the derivative of bilinear resampling (off by 30–70 % on a
    scaled or rotated 16 px batch), and G is trained through this warp.
    """
    shape = tf.shape(x)
    n, h, w, c = shape[0], shape[1], shape[2], shape[3]
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    jj = tf.range(wf)[None, None, :]
    ii = tf.range(hf)[None, :, None]

    def coef(a):
        return a[:, None, None]

    xs = tf.clip_by_value(coef(a00) * jj + coef(a01) * ii + coef(b0), 0.0, wf - 1.0)   # (N, H, W)
    ys = tf.clip_by_value(coef(a10) * jj + coef(a11) * ii + coef(b1), 0.0, hf - 1.0)
    x0, y0 = tf.floor(xs), tf.floor(ys)
    fx, fy = (xs - x0)[..., None], (ys - y0)[..., None]
    x0i, y0i = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    x1i, y1i = tf.minimum(x0i + 1, w - 1), tf.minimum(y0i + 1, h - 1)
    flat = tf.reshape(x, tf.stack([-1, c]))
    base = tf.range(n)[:, None, None] * (h * w)

    def at(yi, xi):
        return tf.gather(flat, base + yi * w + xi)   # (N, H, W, C)

    return ((1.0 - fy) * ((1.0 - fx) * at(y0i, x0i) + fx * at(y0i, x1i))
            + fy * ((1.0 - fx) * at(y1i, x0i) + fx * at(y1i, x1i)))


def ada_augment(x, seed, p, image_channels: int = 1, flip: bool = False):
    """Augment a batch; each transform is applied to each image with probability ``p``.

    Args:
        x: ``(N, H, W, C) float32`` in ``[-1, 1]``; channels ``[:image_channels]`` are
            images (every transform), the rest condition maps (geometric transforms only).
        seed: ``(2,)`` int32/int64 tensor for ``tf.random.stateless_*`` (same seed → same output).
        p: scalar in ``[0, 1]`` (float or tensor). ``p = 0`` returns ``x`` unchanged.
        image_channels: number of leading image channels.
        flip: also flip horizontally with probability ``p`` (off: it leaks on
            mammograms, see the module docstring).

    Returns:
        ``(N, H, W, C)`` of ``x``'s dtype, clipped to ``[-1, 1]``.
    """
    x = tf.convert_to_tensor(x)
    dtype = x.dtype
    x = tf.cast(x, tf.float32)
    p = tf.cast(p, tf.float32)
    shape = tf.shape(x)
    n, h, w = shape[0], shape[1], shape[2]
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=16)
    gate = tf.random.stateless_uniform(tf.stack([8, n]), seed=seeds[0])   # one coin per transform and image
    ones, zeros = tf.ones([n]), tf.zeros([n])

    # --- geometric: output → input mapping, composed as 3×3 matrices about the centre
    txy = tf.round(tf.random.stateless_uniform(tf.stack([2, n]), seed=seeds[1], minval=-TRANSLATE_MAX,
                                               maxval=TRANSLATE_MAX) * tf.stack([wf, hf])[:, None])
    tx = _apply_with_p(txy[0], zeros, p, gate[0])
    ty = _apply_with_p(txy[1], zeros, p, gate[0])
    log_s = tf.random.stateless_normal([n], seed=seeds[2]) * SCALE_STD
    s = tf.pow(2.0, _apply_with_p(log_s, zeros, p, gate[1]))
    theta = tf.random.stateless_uniform([n], seed=seeds[3], minval=-1.0, maxval=1.0) * (ROTATE_MAX_DEG * math.pi / 180)
    theta = _apply_with_p(theta, zeros, p, gate[2])
    fx = ones
    if flip:
        fx = _apply_with_p(-ones, ones, p, gate[3])
    # forward map (input → output): q = c + t + R(θ)·S(s)·F·(r − c); we need its inverse
    cx, cy = (wf - 1.0) / 2.0, (hf - 1.0) / 2.0
    cos, sin = tf.cos(theta), tf.sin(theta)
    # inverse of A = R·S·F: F⁻¹·S⁻¹·R(−θ)
    a00, a01 = fx * cos / s, fx * sin / s
    a10, a11 = -sin / s, cos / s
    ox, oy = cx + tx, cy + ty      # output centre
    b0 = cx - (a00 * ox + a01 * oy)
    b1 = cy - (a10 * ox + a11 * oy)
    geometric = _warp_bilinear(x, a00, a01, b0, a10, a11, b1)
    any_geo = tf.reshape(tf.reduce_any(tf.stack([tx != 0, ty != 0, s != 1, theta != 0, fx != 1]), axis=0), [-1, 1, 1, 1])
    x = tf.where(any_geo, geometric, x)   # exactly x where no geometric transform was drawn

    # --- colour, on the image channels only
    img, cond = x[..., :image_channels], x[..., image_channels:]
    b = _apply_with_p(tf.random.stateless_normal([n], seed=seeds[4]) * BRIGHTNESS_STD, zeros, p, gate[4])
    img = img + b[:, None, None, None]
    c = tf.pow(2.0, _apply_with_p(tf.random.stateless_normal([n], seed=seeds[5]) * CONTRAST_STD, zeros, p, gate[5]))
    mean = tf.reduce_mean(img, axis=[1, 2, 3], keepdims=True)
    img = img + (c[:, None, None, None] - 1.0) * (img - mean)
    # cutout: a square of CUTOUT_SIZE · side, centre uniform over the image
    centre = tf.random.stateless_uniform(tf.stack([2, n]), seed=seeds[6])
    yy = (tf.range(hf)[None, :, None] + 0.5) / hf
    xx = (tf.range(wf)[None, None, :] + 0.5) / wf
    inside = (tf.abs(yy - centre[0][:, None, None]) < CUTOUT_SIZE / 2) & \
             (tf.abs(xx - centre[1][:, None, None]) < CUTOUT_SIZE / 2)
    cut = inside & (gate[6] < p)[:, None, None]
    img = tf.where(cut[..., None], tf.zeros_like(img), img)
    x = tf.concat([img, cond], axis=-1) if image_channels < x.shape[-1] else img
    return tf.cast(tf.clip_by_value(x, -1.0, 1.0), dtype)


class AdaptiveAugment:
    """ADA's probability ``p`` and its controller (Karras et al. 2020, §3).

    The variables (``p``, the running sum of ``sign(D(real))`` and its count) are created
    in the current ``tf.distribute`` scope and listed by :meth:`variables`, which the
    GAN appends to its checkpoint.

    Args:
        target: target of ``r_t = E[sign(D(real))]`` (paper: 0.6).
        ada_kimg: thousands of images for ``p`` to go from 0 to 1 (paper: 500).
        interval: minibatches between adjustments (paper: 4).
        flip: enable the leaking horizontal flip (see the module docstring).
    """

    def __init__(self, target: float = 0.6, ada_kimg: float = 500.0, interval: int = 4, flip: bool = False):
        self.target, self.ada_kimg, self.interval, self.flip = float(target), float(ada_kimg), int(interval), flip
        agg = tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.p = tf.Variable(0.0, trainable=False, name="ada_p", aggregation=agg)
        self.sign_sum = tf.Variable(0.0, trainable=False, name="ada_sign_sum", aggregation=agg)
        self.count = tf.Variable(0.0, trainable=False, name="ada_count", aggregation=agg)
        self.rt = tf.Variable(0.0, trainable=False, name="ada_rt", aggregation=agg)
        self.minibatches = tf.Variable(0, dtype=tf.int64, trainable=False, name="ada_minibatches", aggregation=agg)

    def variables(self) -> list:
        return [self.p, self.sign_sum, self.count, self.rt, self.minibatches]

    def augment(self, x, seed, image_channels: int = 1):
        """:func:`ada_augment` at the current ``p``."""
        return ada_augment(x, seed, self.p, image_channels, self.flip)

    def observe(self, real_logits) -> None:
        """Add ``sign(D(real))`` of one minibatch (summed over replicas) to the running statistic."""
        signs = tf.sign(tf.cast(tf.reshape(real_logits, [-1]), tf.float32))
        total = tf.stack([tf.reduce_sum(signs), tf.cast(tf.size(signs), tf.float32)])
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            total = ctx.all_reduce("sum", total)
        self.sign_sum.assign_add(total[0])
        self.count.assign_add(total[1])

    def end_minibatch(self, global_batch) -> None:
        """Count a minibatch; every ``interval`` of them, move ``p`` toward the target and reset."""
        self.minibatches.assign_add(1)
        due = tf.equal(self.minibatches % self.interval, 0) & (self.count > 0)
        rt = self.sign_sum / tf.maximum(self.count, 1.0)
        step = tf.sign(rt - self.target) * tf.cast(global_batch, tf.float32) * self.interval / (self.ada_kimg * 1000.0)
        self.p.assign(tf.where(due, tf.clip_by_value(self.p + step, 0.0, 1.0), self.p))
        self.rt.assign(tf.where(due, rt, self.rt))
        self.sign_sum.assign(tf.where(due, 0.0, self.sign_sum))
        self.count.assign(tf.where(due, 0.0, self.count))
