"""The thesis GAN (Rahali 2025, §3.3; best configuration = Experiment 3 of §4.2.3).

Generator: ``Dense(z → 8×8×256)`` then blocks of ``UpSampling2D → Conv2D 3×3 →
BatchNormalization → ReLU`` with 128, 128, 128, 64 channels up to 128×128 (a fifth block
of 32 channels for 256×256), and a final 1-filter convolution with tanh:
``(N, 128) → (N, 128, 128, 1)`` in ``[-1, 1]``.

Discriminator: ``Conv2D`` with 32, 64, 128, 256 filters, stride 2, each followed by
``LeakyReLU(0.2)`` and ``Dropout(0.2)``; ``Flatten``; ``Dense(1)``. The thesis's sigmoid is
folded into the binary cross-entropy (``from_logits``) for numerical stability; the
probability is ``sigmoid(logit)``.

Training: binary cross-entropy, Adam with learning rate 1e-4 (G) and 1e-5 (D),
β1 = 0.5, batch 32. Progressive resolution 64 → 128 → 256 (thesis §3.5.1) follows
ProGAN (Karras et al. 2018): each stage adds one block to each network and fades it
in over a configurable number of images, with a to-/from-grayscale 1×1 convolution per
resolution. The thesis does not give the kernel of its final convolution; keras-mammo
uses ProGAN's 1×1 "toRGB" so that blending during fade-in is well defined.
"""
from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf
from keras import layers, ops

from keras_mammo.losses import discriminator_bce_loss, generator_bce_loss
from keras_mammo.models.blocks import (
    DownsampleConvBlock,
    UpsampleConvBlock,
    fade_in_lazy,
    from_grayscale,
    spectral,
    to_grayscale,
)
from keras_mammo.models.registry import register_model
from keras_mammo.models.gan import ProgressiveGAN


@dataclasses.dataclass
class ThesisParams:
    """``model.params`` of the thesis GAN.

    Attributes:
        base_resolution: side of the first feature map (8 in the thesis).
        base_channels: channels of the first feature map (256).
        g_channels: generator block channels at 16, 32, 64, 128, 256, 512 px
            (thesis: 128, 128, 128, 64; 32 for the 256 px block).
        d_channels: discriminator filters of the block that reads 16, 32, 64, 128, 256,
            512 px (thesis: 256, 128, 64, 32 for 16…128 px).
        dropout: discriminator dropout rate (0.2).
    """

    base_resolution: int = 8
    base_channels: int = 256
    g_channels: list[int] = dataclasses.field(default_factory=lambda: [128, 128, 128, 64, 32, 16])
    d_channels: list[int] = dataclasses.field(default_factory=lambda: [256, 128, 64, 32, 16, 8])
    dropout: float = 0.2


def _resolutions(base: int, max_resolution: int) -> list[int]:
    out, r = [], base * 2
    while r <= max_resolution:
        out.append(r)
        r *= 2
    return out


@keras.saving.register_keras_serializable("keras_mammo")
class ProgressiveGenerator(keras.Model):
    """Thesis generator with one block per resolution and ProGAN fade-in.

    ``call(z)``: ``(N, latent_dim) float32`` → ``(N, R, R, 1) float32`` in ``[-1, 1]`` where
    ``R`` is :attr:`resolution`. During a fade-in the output blends the upsampled
    grayscale image of the previous resolution with the new block's (weight ``alpha``).
    """

    def __init__(self, latent_dim: int, max_resolution: int, params: ThesisParams, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim, self.max_resolution, self.params = latent_dim, max_resolution, params
        b, c = params.base_resolution, params.base_channels
        self.res_list = _resolutions(b, max_resolution)
        if len(self.res_list) > len(params.g_channels):
            raise ValueError(f"model.params.g_channels: needs {len(self.res_list)} entries for {max_resolution} px")
        self.dense = layers.Dense(b * b * c, use_bias=False, name="project")
        self.reshape = layers.Reshape((b, b, c))
        self.base_bn = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="project_bn")
        self.blocks = [UpsampleConvBlock(ch, name=f"block_{r}") for r, ch in zip(self.res_list, params.g_channels)]
        self.to_gray = {str(r): to_grayscale(f"to_gray_{r}") for r in [b, *self.res_list]}
        self.resolution = max_resolution
        self.alpha = self.add_weight(shape=(), initializer="ones", trainable=False, name="alpha")

    def build(self, input_shape=None):
        """Create the variables of every resolution's path (so checkpoints never change shape)."""
        keep = self.resolution
        z = ops.zeros((1, self.latent_dim))
        for r in self.res_list:
            self.resolution = r
            self.call(z, alpha=0.5)
        self.resolution = keep
        self.built = True

    def call(self, z, training=False, alpha=None):
        b = self.params.base_resolution
        alpha = self.alpha if alpha is None else alpha
        x = ops.relu(self.base_bn(self.reshape(self.dense(z)), training=training))
        prev, r = None, b
        for res, block in zip(self.res_list, self.blocks):
            if res > self.resolution:
                break
            prev, x, r = x, block(x, training=training), res
        out = self.to_gray[str(r)](x)
        if prev is not None:  # the lower-resolution path is computed only while α < 1
            out = fade_in_lazy(alpha, lambda: ops.repeat(ops.repeat(self.to_gray[str(r // 2)](prev), 2, axis=1),
                                                          2, axis=2), out)
        return ops.tanh(ops.cast(out, "float32"))


@keras.saving.register_keras_serializable("keras_mammo")
class ProgressiveDiscriminator(keras.Model):
    """Thesis discriminator with one strided block per resolution and ProGAN fade-in.

    ``call(x)``: ``(N, R, R, 1)`` in ``[-1, 1]`` → ``(N, 1)`` float32 logits.
    """

    def __init__(self, max_resolution: int, params: ThesisParams, seed: int = 0, spectral_norm: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.max_resolution, self.params = max_resolution, params
        self.res_list = _resolutions(params.base_resolution, max_resolution)
        if len(self.res_list) > len(params.d_channels):
            raise ValueError(f"model.params.d_channels: needs {len(self.res_list)} entries for {max_resolution} px")
        ch = dict(zip(self.res_list, params.d_channels))
        # string keys: TensorFlow's checkpointing only tracks dicts keyed by str
        self.blocks = {str(r): DownsampleConvBlock(ch[r], dropout=params.dropout, seed=seed + i,
                                                   spectral_norm=spectral_norm, name=f"block_{r}")
                       for i, r in enumerate(self.res_list)}
        # fromGray at resolution r feeds block r, whose input matches block 2r's output: ch[r] / 2 filters
        self.from_gray = {str(r): from_grayscale(max(1, ch[r] // 2), f"from_gray_{r}", spectral_norm) for r in self.res_list}
        self.flatten = layers.Flatten()
        self.head = spectral(layers.Dense(1, name="logit"), spectral_norm)
        self.resolution = max_resolution
        self.alpha = self.add_weight(shape=(), initializer="ones", trainable=False, name="alpha")

    def build(self, input_shape=None):
        """Create the variables of every resolution's path (so checkpoints never change shape)."""
        keep = self.resolution
        for r in self.res_list:
            self.resolution = r
            self.call(ops.zeros((1, r, r, 1)), alpha=0.5)
        self.resolution = keep
        self.built = True

    def call(self, x, training=False, alpha=None):
        alpha = self.alpha if alpha is None else alpha
        r = self.resolution
        h = self.blocks[str(r)](self.from_gray[str(r)](x), training=training)
        if str(r // 2) in self.from_gray:  # computed only while α < 1
            h = fade_in_lazy(alpha, lambda: self.from_gray[str(r // 2)](ops.average_pool(x, 2, 2)), h)
        for res in sorted((q for q in self.res_list if q < r), reverse=True):
            h = self.blocks[str(res)](h, training=training)
        return ops.cast(self.head(self.flatten(h)), "float32")


class ThesisGAN(ProgressiveGAN):
    """Rahali 2025's GAN trained with BCE and progressive growing (see module docstring)."""

    d_options = frozenset({"loss", "r1_gamma", "spectral_norm"})
    default_optimizer = {"g_learning_rate": 1e-4, "d_learning_rate": 1e-5, "beta_1": 0.5, "beta_2": 0.999}

    def __init__(self, latent_dim: int, max_resolution: int, params: ThesisParams, seed: int = 0,
                 spectral_norm: bool = False, **kwargs):
        gen = ProgressiveGenerator(latent_dim, max_resolution, params, name="generator")
        disc = ProgressiveDiscriminator(max_resolution, params, seed=seed, spectral_norm=spectral_norm,
                                        name="discriminator")
        super().__init__(gen, disc, latent_dim, seed=seed, **kwargs)

    def train_step(self, data):
        real = data["image"]
        batch = ops.shape(real)[0]
        alpha = self.current_alpha()
        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables

        disc = lambda x: self.discriminator(x, training=True, alpha=alpha)  # noqa: E731
        z = self.latent_batch(batch, stream=0)
        with tf.GradientTape() as tape:
            fake = self.generator(z, training=True, alpha=alpha)
            real_logits = disc(self.augment_for_d(real))
            fake_logits = disc(self.augment_for_d(fake))
            self.observe_real_logits(real_logits)
            r1_term, r1 = self.r1_term(lambda x: disc(self.augment_for_d(x)), real)
            d_loss = self.d_loss(real_logits, fake_logits, discriminator_bce_loss)
            scaled = self.d_optimizer.scale_loss(self.scale_loss(d_loss + r1_term))
        grads = tape.gradient(scaled, d_vars)
        pairs = [(g, v) for g, v in zip(grads, d_vars) if g is not None]
        self.d_optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])

        z = self.latent_batch(batch, stream=1)
        with tf.GradientTape() as tape:
            fake = self.generator(z, training=True, alpha=alpha)
            g_loss = self.g_loss(disc(self.augment_for_d(fake)), generator_bce_loss)
            scaled = self.g_optimizer.scale_loss(self.scale_loss(g_loss))
        grads = tape.gradient(scaled, g_vars)
        pairs = [(g, v) for g, v in zip(grads, g_vars) if g is not None]
        self.g_optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
        extra = {"r1": r1} if self.r1_gamma > 0 else {}
        return {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_real": ops.mean(ops.sigmoid(real_logits)),
            "d_fake": ops.mean(ops.sigmoid(fake_logits)),
            "alpha": alpha,
            **extra,
        }


@register_model("thesis", ThesisParams, "Rahali 2025 custom GAN, BCE, progressive 64→128→256 (default)")
def build_thesis_gan(cfg, params: ThesisParams, data_info=None) -> ThesisGAN:
    max_res = max(s.resolution for s in cfg.train.schedule())
    return ThesisGAN(cfg.model.latent_dim, max_res, params, seed=cfg.seed, spectral_norm=cfg.train.spectral_norm,
                     name="thesis_gan")
