"""GAN losses as plain functions of tensors (``keras.ops``).

Written here rather than taken from tensorflow-gan, which no longer imports on
TensorFlow ≥ 2.16 (``tf.estimator`` was removed; tensorflow/gan#55).
"""
from __future__ import annotations

from keras import ops


def _bce_with_logits(labels, logits):
    # numerically stable: max(x, 0) - x * z + log(1 + exp(-|x|))
    return ops.maximum(logits, 0.0) - logits * labels + ops.log1p(ops.exp(-ops.abs(logits)))


def discriminator_bce_loss(real_logits, fake_logits):
    """Binary cross-entropy of the discriminator (Goodfellow et al. 2014, Eq. 1).

    ``mean(BCE(1, D(x))) / 2 + mean(BCE(0, D(G(z)))) / 2`` on logits (the sigmoid of
    Rahali 2025 §3.3's ``Dense(1, sigmoid)`` is folded into the loss for stability).

    Args:
        real_logits, fake_logits: ``(N, 1)`` float32 logits.

    Returns:
        scalar float32.
    """
    real = ops.mean(_bce_with_logits(ops.ones_like(real_logits), real_logits))
    fake = ops.mean(_bce_with_logits(ops.zeros_like(fake_logits), fake_logits))
    return 0.5 * (real + fake)


def generator_bce_loss(fake_logits):
    """Non-saturating generator loss ``mean(BCE(1, D(G(z))))`` (Goodfellow et al. 2014, §3).

    Args:
        fake_logits: ``(N, 1)`` float32 logits.

    Returns:
        scalar float32.
    """
    return ops.mean(_bce_with_logits(ops.ones_like(fake_logits), fake_logits))


def wasserstein_critic_loss(real_scores, fake_scores):
    """WGAN critic loss ``mean(C(G(z))) − mean(C(x))`` (Arjovsky et al. 2017, Eq. 3)."""
    return ops.mean(fake_scores) - ops.mean(real_scores)


def wasserstein_generator_loss(fake_scores):
    """WGAN generator loss ``−mean(C(G(z)))`` (Arjovsky et al. 2017)."""
    return -ops.mean(fake_scores)
