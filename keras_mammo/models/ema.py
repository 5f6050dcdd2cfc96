"""Exponential moving average of the generator's weights (an "EMA generator").

Karras et al. 2018 (ProGAN, App. A.1) and Yazıcı et al. 2019 ("The unusual effectiveness
of averaging in GAN training") show that a running average of the generator's weights
gives better images than the last iterate; StyleGAN2-ADA (Karras et al. 2020,
``training_loop.py``) defines it by a **half-life in images** with a ramp-up::

    ema_nimg = ema_kimg · 1000
    ema_nimg = min(ema_nimg, images_seen · ema_rampup)        (if ema_rampup is set)
    β = 0.5 ** (batch_size / max(ema_nimg, 1e-8))
    w_ema ← β · w_ema + (1 − β) · w                          (trainable weights)
    b_ema ← b                                                 (buffers: BatchNorm statistics,
                                                               running w̄, fade-in α, seeds)

after every generator update. :class:`GeneratorEMA` holds the shadow copies as variables
(saved in checkpoints after the model's own) and swaps them into the generator for
inference (:meth:`GeneratorEMA.swapped`).
"""
from __future__ import annotations

import contextlib

import numpy as np
import tensorflow as tf


def ema_beta(global_batch, images_seen, ema_kimg: float, ema_rampup: float | None):
    """The decay β of one update: ``0.5 ** (batch / half_life_images)`` (see module docstring).

    Args:
        global_batch: images in this update (all replicas).
        images_seen: images shown to the generator so far, this update included.
        ema_kimg: half-life in thousands of images.
        ema_rampup: ramp-up factor or None.

    Returns:
        float32 scalar tensor in ``[0, 1)``.
    """
    nimg = tf.constant(float(ema_kimg) * 1000.0)
    if ema_rampup is not None and ema_rampup > 0:
        nimg = tf.minimum(nimg, tf.cast(images_seen, tf.float32) * float(ema_rampup))
    return tf.pow(0.5, tf.cast(global_batch, tf.float32) / tf.maximum(nimg, 1e-8))


class GeneratorEMA:
    """Shadow copies of a generator's variables, updated after every step.

    Args:
        generator: a built Keras model.
        ema_kimg: half-life in thousands of images (> 0).
        ema_rampup: StyleGAN2-ADA's ramp-up (0.05) or None.
    """

    def __init__(self, generator, ema_kimg: float, ema_rampup: float | None = 0.05):
        self.generator = generator
        self.ema_kimg, self.ema_rampup = float(ema_kimg), ema_rampup
        self.sources = list(generator.variables)
        trainable = {id(v) for v in generator.trainable_variables}
        self.averaged = [id(v) in trainable for v in self.sources]
        agg = tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.shadows = [tf.Variable(tf.convert_to_tensor(v), trainable=False, aggregation=agg,
                                    name=f"ema/{getattr(v, 'path', v.name).replace(':', '_')}")
                        for v in self.sources]
        self.beta = tf.Variable(0.0, trainable=False, aggregation=agg, name="ema/beta")

    def variables(self) -> list:
        return list(self.shadows)

    def update(self, global_batch, images_seen) -> None:
        """One EMA update (call after the generator's optimizer step, inside the train step)."""
        beta = ema_beta(global_batch, images_seen, self.ema_kimg, self.ema_rampup)
        self.beta.assign(beta)
        for src, dst, avg in zip(self.sources, self.shadows, self.averaged):
            value = tf.convert_to_tensor(src)
            if avg:
                dst.assign(tf.cast(beta, dst.dtype) * dst + (1.0 - tf.cast(beta, dst.dtype)) * tf.cast(value, dst.dtype))
            else:
                dst.assign(tf.cast(value, dst.dtype))

    def copy_to_generator(self) -> None:
        """Overwrite the generator's variables with the EMA ones (inference-only models)."""
        for src, dst in zip(self.sources, self.shadows):
            src.assign(dst.numpy())

    @contextlib.contextmanager
    def swapped(self):
        """Within the block the generator holds the EMA weights; the raw ones come back after."""
        raw = [np.array(v.numpy()) for v in self.sources]
        try:
            self.copy_to_generator()
            yield self.generator
        finally:
            for v, val in zip(self.sources, raw):
                v.assign(val)
