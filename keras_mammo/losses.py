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


def hinge_discriminator_loss(real_logits, fake_logits):
    """Hinge loss of the discriminator ``E[relu(1 − D(x))] + E[relu(1 + D(G(z)))]``.

    Lim & Ye 2017 ("Geometric GAN"); Miyato et al. 2018 (SN-GAN, Eq. 17); used by
    FastGAN (Liu et al. 2021).

    Args:
        real_logits, fake_logits: ``(N, 1)`` float32 scores.

    Returns:
        scalar float32.
    """
    return ops.mean(ops.relu(1.0 - real_logits)) + ops.mean(ops.relu(1.0 + fake_logits))


def hinge_generator_loss(fake_logits):
    """Generator loss paired with the hinge discriminator loss: ``−E[D(G(z))]`` (Miyato et al. 2018, Eq. 17)."""
    return -ops.mean(fake_logits)


def wasserstein_critic_loss(real_scores, fake_scores):
    """WGAN critic loss ``mean(C(G(z))) − mean(C(x))`` (Arjovsky et al. 2017, Eq. 3)."""
    return ops.mean(fake_scores) - ops.mean(real_scores)


def wasserstein_generator_loss(fake_scores):
    """WGAN generator loss ``−mean(C(G(z)))`` (Arjovsky et al. 2017)."""
    return -ops.mean(fake_scores)


# ---------------------------------------------------------------------------------------
# Losses of the other published generators (DCGAN, StyleGAN, WGAN-GP, pix2pix, U-Net).
# ---------------------------------------------------------------------------------------

def gradient_penalty(critic, real, fake, epsilon):
    """WGAN-GP gradient penalty ``E[(‖∇_x̂ C(x̂)‖₂ − 1)²]`` (Gulrajani et al. 2017, Algorithm 1, Eq. 3).

    ``x̂ = ε·real + (1 − ε)·fake`` with ``ε ~ U[0, 1]`` per image; the norm is taken
    over all pixels and channels of each image. Multiply by λ = 10 (the paper's
    weight) before adding it to the critic loss. Uses a ``tf.GradientTape``, so it is
    differentiable with respect to the critic's weights when called inside another tape.

    Args:
        critic: callable ``(N, H, W, C) → (N, 1)`` scores (close over any condition).
        real, fake: ``(N, H, W, C)`` float32.
        epsilon: ``(N, 1, 1, 1)`` float32 in ``[0, 1]`` (draw it statelessly for resumable runs).

    Returns:
        scalar float32.
    """
    import tensorflow as tf

    x_hat = epsilon * real + (1.0 - epsilon) * fake
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = critic(x_hat)
    grads = tape.gradient(scores, x_hat)
    norm = ops.sqrt(ops.sum(ops.square(grads), axis=(1, 2, 3)) + 1e-12)
    return ops.mean(ops.square(norm - 1.0))


def r1_penalty(discriminator, real, return_logits: bool = False):
    """R1 regularizer ``E[‖∇_x D(x)‖²]`` on real images (Mescheder et al. 2018, Eq. 9).

    StyleGAN (Karras et al. 2019, App. C) adds ``γ/2 · r1_penalty`` with γ = 10 to the
    discriminator loss. Differentiable with respect to the discriminator's weights.

    Args:
        discriminator: callable ``(N, H, W, C) → (N, 1)`` logits.
        real: ``(N, H, W, C)`` float32.
        return_logits: also return ``D(real)`` (saves a second forward pass).

    Returns:
        scalar float32, or ``(penalty, logits)`` with ``return_logits``.
    """
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(real)
        logits = discriminator(real)
    grads = tape.gradient(logits, real)  # gradient of the sum over the batch
    penalty = ops.mean(ops.sum(ops.square(grads), axis=(1, 2, 3)))
    return (penalty, logits) if return_logits else penalty


def logistic_discriminator_loss(real_logits, fake_logits):
    """Non-saturating logistic loss of the discriminator ``E[softplus(D(G(z)))] + E[softplus(−D(x))]``.

    Goodfellow et al. 2014's loss as written by StyleGAN (Karras et al. 2019, App. C);
    twice :func:`discriminator_bce_loss`.

    Args:
        real_logits, fake_logits: ``(N, 1)`` float32 logits.

    Returns:
        scalar float32.
    """
    return ops.mean(ops.softplus(fake_logits)) + ops.mean(ops.softplus(-real_logits))


def l1_loss(target, prediction):
    """Mean absolute error ``E[‖y − G(x)‖₁]`` (pix2pix's reconstruction term, Isola et al. 2017, Eq. 3).

    Args:
        target, prediction: tensors of one shape.

    Returns:
        scalar float32.
    """
    return ops.mean(ops.abs(ops.cast(target, "float32") - ops.cast(prediction, "float32")))


def soft_dice_loss(target, probabilities, smooth: float = 1.0):
    """``1 − soft Dice`` per image, averaged (Milletari et al. 2016, Eq. 1, squared-free form).

    ``Dice = (2·Σ p·t + s) / (Σ p + Σ t + s)`` over each image's pixels; the smoothing
    ``s`` makes an empty mask predicted empty score 1.

    Args:
        target: ``(N, H, W, 1)`` float32 in ``{0, 1}``.
        probabilities: ``(N, H, W, 1)`` float32 in ``[0, 1]``.
        smooth: additive smoothing (pixels).

    Returns:
        scalar float32 in ``[0, 1]``.
    """
    t = ops.cast(target, "float32")
    p = ops.cast(probabilities, "float32")
    inter = ops.sum(p * t, axis=(1, 2, 3))
    total = ops.sum(p, axis=(1, 2, 3)) + ops.sum(t, axis=(1, 2, 3))
    return ops.mean(1.0 - (2.0 * inter + smooth) / (total + smooth))


def segmentation_bce_dice_loss(target, logits, dice_weight: float = 1.0):
    """Pixel-wise binary cross-entropy plus ``dice_weight`` × :func:`soft_dice_loss`.

    Ronneberger et al. 2015 (§3) train with a weighted pixel-wise cross-entropy; a lesion
    covers about 1 % of a MIAS film, so keras-mammo adds the soft Dice term, which does
    not reward predicting all background.

    Args:
        target: ``(N, H, W, 1)`` float32 in ``{0, 1}``.
        logits: ``(N, H, W, 1)`` float32.

    Returns:
        scalar float32.
    """
    t = ops.cast(target, "float32")
    logits = ops.cast(logits, "float32")
    bce = ops.mean(_bce_with_logits(t, logits))
    return bce + dice_weight * soft_dice_loss(t, ops.sigmoid(logits))
