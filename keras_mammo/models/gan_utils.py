"""Small helpers shared by the train steps of the DCGAN, StyleGAN, seg-cdcgan, pix2pix and U-Net models.

- :func:`step_seed`: a ``(2,) int64`` seed for ``tf.random.stateless_*`` that depends only
  on the run seed, the step counter, a stream number and the replica; the one owner of
  that rule (:meth:`keras_mammo.models.gan.GAN.latent_batch` and the small-data recipe's
  augmentation draws use it too). Every random draw of a train step
  (gradient-penalty ε, style-mixing cutoff, per-pixel noise) uses it, so a run resumed
  from a checkpoint draws exactly what an uninterrupted run draws.
- :func:`scaled_loss` (inside the tape) and :func:`apply_gradients`: loss scaling (mixed
  precision, replicas) → gradients → update.

Stream numbers used by the models (latent vectors use 0…9 through ``latent_batch``):
100–109 gradient-penalty ε (seg-cdcgan), 200 style-mixing draw, 300+ per-pixel noise
(StyleGAN), 600–603 noise, DiffAugment and reconstructed quadrant (FastGAN).
"""
from __future__ import annotations

import tensorflow as tf

from keras_mammo.errors import ConfigError


def step_seed(model, stream: int, step=None):
    """``(2,) int64`` stateless seed from ``(model.seed, step, stream, replica)``.

    Args:
        model: a :class:`~keras_mammo.models.gan.GAN` (needs ``seed`` and ``step``).
        stream: separates draws made in the same step.
        step: the step counter (default ``model.step``, the generator's update count).
    """
    replica = 0
    ctx = tf.distribute.get_replica_context()
    if ctx is not None:
        replica = ctx.replica_id_in_sync_group
    step = model.step if step is None else step
    return tf.stack([
        tf.cast(model.seed, tf.int64) * 1_000_003 + tf.cast(stream, tf.int64) * 7919 + tf.cast(replica, tf.int64),
        tf.cast(step, tf.int64),
    ])


def scaled_loss(model, optimizer, loss):
    """``loss`` divided by the replicas and multiplied by the optimizer's loss scale.

    Call it *inside* the ``tf.GradientTape`` that records the loss (mixed precision
    needs the scaled loss to be differentiated).
    """
    return optimizer.scale_loss(model.scale_loss(loss))


def apply_gradients(optimizer, tape, scaled, variables) -> None:
    """Take the gradients of ``scaled`` (from :func:`scaled_loss`) and update ``variables``.

    Variables without a gradient (e.g. an inactive progressive block) are skipped.

    Args:
        optimizer: a Keras optimizer (possibly a ``LossScaleOptimizer``, which unscales).
        tape: the ``tf.GradientTape`` that recorded ``scaled``.
        scaled: scalar float32 from :func:`scaled_loss`.
        variables: the trainable variables to update.
    """
    grads = tape.gradient(scaled, variables)
    pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
    optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])


def single_resolution(cfg, model_name: str) -> int:
    """The one training resolution of a non-progressive model.

    Raises:
        ConfigError: the config lists stages at several resolutions.
    """
    res = sorted({s.resolution for s in cfg.train.schedule()})
    if len(res) != 1:
        raise ConfigError(f"train.stages: model {model_name!r} trains at one resolution; got stages at {res} "
                          f"(use train.resolution, or one stage)")
    return res[0]
