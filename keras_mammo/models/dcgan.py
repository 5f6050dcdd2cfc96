"""DCGAN (Radford, Metz & Chintala 2016, ICLR; used for mammograms by Reyes-Hernández et al. 2025).

Generator (Radford et al. §3 and Fig. 1): the latent vector z is projected by a
``Dense`` layer and reshaped to ``4×4×g_base_channels``; fractionally-strided
``Conv2DTranspose`` layers (5×5, stride 2) each double the side and halve the
channels, with BatchNormalization and ReLU; the last one has 1 filter and tanh::

    (N, latent_dim) → 4×4×1024 → 8×8×512 → 16×16×256 → 32×32×128 → 64×64×1   (64 px)

Discriminator: strided ``Conv2D`` (5×5, stride 2) with LeakyReLU(0.2), BatchNormalization
on every layer except the first, down to 4×4, then a linear unit::

    (N, 64, 64, 1) → 32×32×64 → 16×16×128 → 8×8×256 → 4×4×512 → (N, 1) logit

The paper's final sigmoid is folded into the binary cross-entropy (``from_logits``);
the probability is ``sigmoid(logit)``.

Training (§4): weights initialized ``N(0, 0.02)``; Adam with learning rate 2e-4 and
β1 = 0.5; the non-saturating GAN loss (Goodfellow et al. 2014, §3).

Depth follows the target resolution ``R``: ``log2(R / 4)`` layers in each network
(64 px → 4 as in the paper, 512 px → 7). Channels halve per generator layer from
``g_base_channels`` (floored at ``min_channels``) and double per discriminator layer from
``d_base_channels`` (capped at ``max_d_channels``).
"""
from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf
from keras import layers, ops

from keras_mammo.errors import ConfigError
from keras_mammo.losses import discriminator_bce_loss, generator_bce_loss
from keras_mammo.models.blocks import ConvNormAct, dcgan_initializer, spectral
from keras_mammo.models.gan_utils import apply_gradients, scaled_loss, single_resolution
from keras_mammo.models.registry import register_model
from keras_mammo.models.gan import GAN


@dataclasses.dataclass
class DCGANParams:
    """``model.params`` of ``dcgan``.

    Attributes:
        g_base_channels: generator channels at 4×4 (paper: 1024).
        min_channels: smallest generator width (deep 256–512 px generators stop halving here).
        d_base_channels: filters of the discriminator's first layer (paper: 64).
        max_d_channels: largest discriminator width (paper: 512 at 64 px).
    """

    g_base_channels: int = 1024
    min_channels: int = 16
    d_base_channels: int = 64
    max_d_channels: int = 512


def num_up_layers(resolution: int) -> int:
    """Stride-2 layers from 4×4 to ``resolution`` (``log2(resolution / 4)``).

    Raises:
        ConfigError: ``resolution`` is not a power of two ≥ 8.
    """
    if resolution < 8 or resolution & (resolution - 1):
        raise ConfigError(f"train.resolution: DCGAN-style models need a power of two ≥ 8, got {resolution}")
    return resolution.bit_length() - 3


def generator_widths(resolution: int, base: int, floor: int) -> list[int]:
    """Generator channels at 4×4, 8×8, … ``resolution / 2`` (halving, floored)."""
    return [max(floor, base >> i) for i in range(num_up_layers(resolution))]


def discriminator_widths(resolution: int, base: int, cap: int) -> list[int]:
    """Discriminator filters of the layers reading ``resolution``, ``resolution / 2``, … 8 px."""
    return [min(cap, base << i) for i in range(num_up_layers(resolution))]


@keras.saving.register_keras_serializable("keras_mammo")
class DCGANGenerator(keras.Model):
    """``call(z)``: ``(N, latent_dim) float32`` → ``(N, R, R, 1) float32`` in ``[-1, 1]``."""

    def __init__(self, latent_dim: int, resolution: int, params: DCGANParams, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim, self.resolution = latent_dim, resolution
        widths = generator_widths(resolution, params.g_base_channels, params.min_channels)
        self.project = layers.Dense(4 * 4 * widths[0], use_bias=False, kernel_initializer=dcgan_initializer(),
                                    name="project")
        self.reshape = layers.Reshape((4, 4, widths[0]))
        self.project_bn = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="project_bn")
        self.ups = [ConvNormAct(w, 5, 2, transpose=True, norm="batch", activation="relu", name=f"up_{4 << (i + 1)}")
                    for i, w in enumerate(widths[1:])]
        self.to_image = ConvNormAct(1, 5, 2, transpose=True, norm=None, activation="tanh", name=f"up_{resolution}")

    def call(self, z, training=False):
        x = ops.relu(self.project_bn(self.reshape(self.project(z)), training=training))
        for up in self.ups:
            x = up(x, training=training)
        return ops.cast(self.to_image(x), "float32")


@keras.saving.register_keras_serializable("keras_mammo")
class DCGANDiscriminator(keras.Model):
    """``call(x)``: ``(N, R, R, C)`` → ``(N, 1) float32`` logits.

    ``in_channels`` > 1 when a condition is concatenated to the image (seg-cdcgan's critic).

    Args:
        norm: normalization of every layer but the first: ``"batch"`` (DCGAN), ``None``
            or ``"layer"`` (WGAN-GP critics must not use batch normalization,
            Gulrajani et al. 2017, §4).
        spectral_norm: spectral normalization of every weight (Miyato et al. 2018).
    """

    def __init__(self, resolution: int, base_channels: int, max_channels: int, norm: str | None = "batch",
                 spectral_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.resolution = resolution
        widths = discriminator_widths(resolution, base_channels, max_channels)
        self.downs = [ConvNormAct(w, 5, 2, norm=None if i == 0 else norm, activation="lrelu",
                                  spectral_norm=spectral_norm, name=f"down_{resolution >> i}")
                      for i, w in enumerate(widths)]
        self.flatten = layers.Flatten()
        self.head = spectral(layers.Dense(1, kernel_initializer=dcgan_initializer(), name="logit"), spectral_norm)

    def call(self, x, training=False):
        for down in self.downs:
            x = down(x, training=training)
        return ops.cast(self.head(self.flatten(x)), "float32")


class DCGAN(GAN):
    """Radford et al. 2016's DCGAN with the non-saturating loss (see module docstring).

    ``train_step`` returns ``d_loss``, ``g_loss``, ``d_real`` and ``d_fake`` (mean
    discriminator probabilities).
    """

    d_options = frozenset({"loss", "r1_gamma", "spectral_norm"})
    default_optimizer = {"g_learning_rate": 2e-4, "d_learning_rate": 2e-4, "beta_1": 0.5, "beta_2": 0.999}

    def __init__(self, latent_dim: int, resolution: int, params: DCGANParams, seed: int = 0,
                 spectral_norm: bool = False, **kwargs):
        gen = DCGANGenerator(latent_dim, resolution, params, name="generator")
        disc = DCGANDiscriminator(resolution, params.d_base_channels, params.max_d_channels, norm="batch",
                                  spectral_norm=spectral_norm, name="discriminator")
        super().__init__(gen, disc, latent_dim, seed=seed, **kwargs)
        self.resolution = resolution
        self.params = params

    def train_step(self, data):
        real = data["image"]
        batch = ops.shape(real)[0]

        disc = lambda x: self.discriminator(x, training=True)  # noqa: E731
        z = self.latent_batch(batch, stream=0)
        with tf.GradientTape() as tape:
            fake = self.generator(z, training=True)
            real_logits = disc(self.augment_for_d(real))
            fake_logits = disc(self.augment_for_d(fake))
            self.observe_real_logits(real_logits)
            r1_term, r1 = self.r1_term(lambda x: disc(self.augment_for_d(x)), real)
            d_loss = self.d_loss(real_logits, fake_logits, discriminator_bce_loss)
            scaled = scaled_loss(self, self.d_optimizer, d_loss + r1_term)
        apply_gradients(self.d_optimizer, tape, scaled, self.discriminator.trainable_variables)

        z = self.latent_batch(batch, stream=1)
        with tf.GradientTape() as tape:
            g_loss = self.g_loss(disc(self.augment_for_d(self.generator(z, training=True))), generator_bce_loss)
            scaled = scaled_loss(self, self.g_optimizer, g_loss)
        apply_gradients(self.g_optimizer, tape, scaled, self.generator.trainable_variables)
        extra = {"r1": r1} if self.r1_gamma > 0 else {}
        return {"d_loss": d_loss, "g_loss": g_loss, "d_real": ops.mean(ops.sigmoid(real_logits)),
                "d_fake": ops.mean(ops.sigmoid(fake_logits)), **extra}


@register_model("dcgan", DCGANParams, "Radford et al. 2016 DCGAN (Reyes-Hernández et al. 2025), non-saturating BCE")
def build_dcgan(cfg, params: DCGANParams, data_info=None) -> DCGAN:
    res = single_resolution(cfg, "dcgan")
    num_up_layers(res)
    return DCGAN(cfg.model.latent_dim, res, params, seed=cfg.seed, spectral_norm=cfg.train.spectral_norm, name="dcgan")
