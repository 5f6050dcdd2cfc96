"""StyleGAN (Karras, Laine & Aila 2019, CVPR; Reyes-Hernández et al. 2025; Rahali 2025, Experiment 2).

Generator (§2, Fig. 1b):

- **mapping network** f: z → w, an MLP of ``mapping_layers`` equalized-learning-rate
  dense layers with LeakyReLU(0.2) after pixel-normalizing z; its learning rate is
  ``mapping_lr_mul`` × the generator's (App. C: 0.01).
- **synthesis network** g: starts from a learned constant ``4×4×nf(4)``; each
  resolution has two 3×3 convolutions (the first after ×2 nearest upsampling). After
  every convolution: per-pixel noise scaled by learned per-channel factors (§3.2),
  bias, LeakyReLU(0.2), and **AdaIN** driven by a style ``y = A(w)`` (a learned affine
  transform per layer, Eq. 1). A 1×1 "toGray" convolution per resolution.
- **progressive growth with fade-in** (§C, following ProGAN, Karras et al. 2018): each
  stage adds a resolution; the new block's output is blended with the upsampled
  lower-resolution image over ``fade_in_images`` images.
- **style-mixing regularization** (§3.1): with probability ``style_mixing_prob`` two
  latents drive the layers before and after a random crossover point.
- **truncation trick** (§3.1, Eq. 3) at generation only: ``w' = w̄ + ψ(w − w̄)`` on the
  first ``truncation_cutoff`` layers, ``w̄`` a running average of w during training.

Discriminator: ProGAN's (fromGray, two 3×3 convolutions + 2×2 average pooling per
resolution) with the **minibatch standard deviation** layer before the last block.
Loss (App. C): non-saturating logistic loss with **R1 regularization** (γ = 10).
**Equalized learning rate** (ProGAN §4.1) in every layer. Adam with learning rate
1e-3, β1 = 0, β2 = 0.99.

Channel widths: ``nf(R) = min(2·fmap_base / R, fmap_max)`` (the paper's formula).

Defaults versus the paper, and why:

============================  ===========  ================  ==================================
setting                       paper        keras-mammo       why
============================  ===========  ================  ==================================
z / w size                    512 / 512    128 / 256         ``model.latent_dim`` is 128 in every
                                                             keras-mammo model; a few hundred
                                                             one-channel films do not need 512
fmap_base / fmap_max          8192 / 512   4096 / 256        one grey channel, ≤ 256 px, and
                                                             hundreds (not 70 000) training
                                                             images: a quarter of the weights
                                                             overfits less and trains on a CPU
mapping layers                8            8                 same (cheap)
output                        linear       tanh              keras-mammo generators return
                                                             images in [-1, 1]
upsampling / downsampling     + blur 1-2-1 nearest / average blur omitted (Fig. 8's small FID
                                                             gain; keeps the layers simple)
noise at inference            random       fixed per layer   deterministic exports: one latent
                                                             always gives one image (StyleGAN2's
                                                             ``noise_mode="const"``)
============================  ===========  ================  ==================================

``configs/stylegan.yaml`` shrinks the widths and the mapping depth further so that a
short run fits this 2-core CPU.
"""
from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf
from keras import layers, ops

from keras_mammo.errors import ConfigError
from keras_mammo.losses import generator_bce_loss, logistic_discriminator_loss, r1_penalty
from keras_mammo.models.blocks import (
    AdaIN,
    EqualizedConv2D,
    EqualizedDense,
    MinibatchStdDev,
    NoiseInjection,
    downsample2x,
    fade_in_lazy,
    pixel_norm,
    upsample2x,
)
from keras_mammo.models.gan_utils import apply_gradients, scaled_loss, step_seed
from keras_mammo.models.registry import register_model
from keras_mammo.models.gan import ProgressiveGAN


@dataclasses.dataclass
class StyleGANParams:
    """``model.params`` of ``stylegan`` (see the module docstring for the paper's values).

    Attributes:
        w_dim: size of the intermediate latent w (paper 512).
        mapping_layers: depth of the mapping network (paper 8).
        mapping_lr_mul: learning-rate multiplier of the mapping network (paper 0.01).
        fmap_base, fmap_max: channel widths ``nf(R) = min(2·fmap_base / R, fmap_max)``
            (paper 8192, 512).
        style_mixing_prob: probability of mixing two latents in a minibatch (paper 0.9).
        truncation_psi: ψ applied by :meth:`StyleGAN.generate` (paper figures 0.7; 1 = off).
        truncation_cutoff: layers truncated (paper 8, i.e. 4×4 to 32×32).
        w_avg_beta: decay of the running average w̄ (paper 0.995).
        r1_gamma: R1 weight γ (paper 10).
        mbstd_group_size: minibatch-stddev group size (paper 4).
    """

    w_dim: int = 256
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    fmap_base: int = 4096
    fmap_max: int = 256
    style_mixing_prob: float = 0.9
    truncation_psi: float = 0.7
    truncation_cutoff: int = 8
    w_avg_beta: float = 0.995
    r1_gamma: float = 10.0
    mbstd_group_size: int = 4


def channels_at(resolution: int, params: StyleGANParams) -> int:
    """``nf(R) = min(2·fmap_base / R, fmap_max)``, at least 1."""
    return max(1, min(2 * params.fmap_base // resolution, params.fmap_max))


def resolutions(max_resolution: int) -> list[int]:
    """``[4, 8, …, max_resolution]``.

    Raises:
        ConfigError: ``max_resolution`` is not a power of two ≥ 4.
    """
    if max_resolution < 4 or max_resolution & (max_resolution - 1):
        raise ConfigError(f"train.resolution: StyleGAN needs a power of two ≥ 4, got {max_resolution}")
    out, r = [], 4
    while r <= max_resolution:
        out.append(r)
        r *= 2
    return out


def num_style_layers(resolution: int) -> int:
    """AdaIN layers up to ``resolution``: two per resolution from 4×4 (18 at 1024 px)."""
    return 2 * (resolution.bit_length() - 2)


@keras.saving.register_keras_serializable("keras_mammo")
class MappingNetwork(layers.Layer):
    """``f``: ``(N, latent_dim)`` z → ``(N, w_dim)`` w (Karras et al. 2019, §2)."""

    def __init__(self, w_dim: int, num_layers: int, lr_mul: float, **kwargs):
        super().__init__(**kwargs)
        self.w_dim, self.num_layers, self.lr_mul = w_dim, num_layers, lr_mul
        self.dense = [EqualizedDense(w_dim, lr_mul=lr_mul, name=f"fc{i}") for i in range(num_layers)]

    def call(self, z):
        x = pixel_norm(ops.cast(z, "float32"))
        for d in self.dense:
            x = ops.leaky_relu(d(x), negative_slope=0.2)
        return ops.cast(x, "float32")   # w in float32 under mixed precision too (w_avg, truncation)

    def get_config(self):
        return {**super().get_config(), "w_dim": self.w_dim, "num_layers": self.num_layers, "lr_mul": self.lr_mul}


@keras.saving.register_keras_serializable("keras_mammo")
class StyledConv(layers.Layer):
    """``[×2 upsample →] [3×3 conv →] noise → bias → LeakyReLU(0.2) → AdaIN(w)`` (Karras et al. 2019, Fig. 1b).

    ``call(x, w, noise)``: ``x (N, H, W, C_in)``, ``w (N, w_dim)``, ``noise (N or 1, H', W', 1)``
    → ``(N, H', W', filters)`` with ``H' = 2H`` when upsampling.
    """

    def __init__(self, filters: int, upsample: bool = False, use_conv: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.upsample, self.use_conv = filters, upsample, use_conv
        self.conv = EqualizedConv2D(filters, 3, use_bias=False, name="conv") if use_conv else None
        self.noise = NoiseInjection(filters, name="noise")
        self.bias = self.add_weight(shape=(filters,), initializer="zeros", name="bias")
        self.adain = AdaIN(filters, name="adain")

    def call(self, x, w, noise):
        if self.upsample:
            x = upsample2x(x)
        if self.conv is not None:
            x = self.conv(x)
        x = self.noise(x, noise) + self.bias
        return self.adain(ops.leaky_relu(x, negative_slope=0.2), w)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "upsample": self.upsample, "use_conv": self.use_conv}


@keras.saving.register_keras_serializable("keras_mammo")
class SynthesisNetwork(layers.Layer):
    """``g``: per-layer styles ``ws (N, L, w_dim)`` → ``(N, R, R, 1)`` in ``[-1, 1]`` (Karras et al. 2019, §2).

    ``R`` is :attr:`resolution`; layer ``2k`` and ``2k+1`` belong to resolution ``4·2^k``.
    ``noise_seed`` (a ``(2,) int64`` stateless seed) draws fresh per-pixel noise per
    image (training); ``None`` uses one fixed noise map per layer (inference).
    """

    def __init__(self, max_resolution: int, params: StyleGANParams, **kwargs):
        super().__init__(**kwargs)
        self.res_list = resolutions(max_resolution)
        self.resolution = max_resolution
        c4 = channels_at(4, params)
        self.const = self.add_weight(shape=(1, 4, 4, c4), initializer="ones", name="const")
        self.styled = []
        for r in self.res_list:
            c = channels_at(r, params)
            self.styled.append(StyledConv(c, upsample=r > 4, use_conv=r > 4, name=f"conv0_{r}"))
            self.styled.append(StyledConv(c, name=f"conv1_{r}"))
        self.to_gray = [EqualizedConv2D(1, 1, gain=1.0, name=f"to_gray_{r}") for r in self.res_list]

    def build(self, ws_shape=None):
        """Sub-layers are created on the first call (:meth:`StyleGenerator.build` walks every resolution)."""
        self.built = True

    @staticmethod
    def noise_map(layer: int, size: int, batch, noise_seed):
        """``(N, size, size, 1)`` fresh noise, or ``(1, size, size, 1)`` fixed noise when ``noise_seed`` is None."""
        if noise_seed is None:
            seed = tf.constant([layer, 0x5EED], tf.int64)
            return tf.random.stateless_normal((1, size, size, 1), seed=seed)
        seed = tf.stack([noise_seed[0] + 104_729 * (layer + 1), noise_seed[1]])
        return tf.random.stateless_normal(tf.stack([batch, size, size, 1]), seed=seed)

    def call(self, ws, alpha=1.0, noise_seed=None):
        batch = ops.shape(ws)[0]
        x = ops.tile(ops.cast(self.const, "float32"), (batch, 1, 1, 1))
        prev, out = None, None
        for k, r in enumerate(self.res_list):
            if r > self.resolution:
                break
            prev = x
            for j in (2 * k, 2 * k + 1):
                x = self.styled[j](x, ws[:, j], self.noise_map(j, r, batch, noise_seed))
            out = self.to_gray[k](x)
            if k > 0:  # the faded-out path is computed only while α < 1
                out = fade_in_lazy(alpha, lambda p=prev, k=k: upsample2x(self.to_gray[k - 1](p)), out)
        return ops.tanh(out)


@keras.saving.register_keras_serializable("keras_mammo")
class StyleGenerator(keras.Model):
    """Mapping + synthesis network, with the running average w̄ used by the truncation trick.

    ``call(z)``: ``(N, latent_dim) float32`` → ``(N, R, R, 1) float32`` in ``[-1, 1]``.

    Args of ``call``:
        truncation_psi: ψ (None or 1 = no truncation).
        noise_seed: ``(2,) int64`` seed of fresh per-pixel noise, or None for fixed noise.
        alpha: fade-in weight (default: the stored :attr:`alpha`).
    """

    def __init__(self, latent_dim: int, max_resolution: int, params: StyleGANParams, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim, self.params = latent_dim, params
        self.mapping = MappingNetwork(params.w_dim, params.mapping_layers, params.mapping_lr_mul, name="mapping")
        self.synthesis = SynthesisNetwork(max_resolution, params, name="synthesis")
        self.res_list = self.synthesis.res_list
        self.num_layers = num_style_layers(max_resolution)
        self.w_avg = self.add_weight(shape=(params.w_dim,), initializer="zeros", trainable=False, name="w_avg")
        self.alpha = self.add_weight(shape=(), initializer="ones", trainable=False, name="alpha")

    @property
    def resolution(self) -> int:
        return self.synthesis.resolution

    @resolution.setter
    def resolution(self, value: int) -> None:
        self.synthesis.resolution = value

    def build(self, input_shape=None):
        """Create the variables of every resolution's path (so checkpoints never change shape)."""
        keep = self.resolution
        for r in self.res_list:
            self.resolution = r
            self.call(ops.zeros((1, self.latent_dim)), alpha=0.5)
        self.resolution = keep
        self.built = True

    def broadcast(self, w):
        """``(N, w_dim)`` → ``(N, L, w_dim)``: the same w for every layer."""
        return ops.repeat(w[:, None, :], self.num_layers, axis=1)

    def truncate(self, ws, psi, cutoff: int):
        """Truncation trick ``w̄ + ψ(w − w̄)`` on layers ``< cutoff`` (Karras et al. 2019, Eq. 3)."""
        psi = ops.cast(psi, "float32")
        layer = ops.arange(self.num_layers)[None, :, None]
        coef = ops.where(layer < cutoff, psi, ops.ones_like(psi))
        w_avg = ops.cast(self.w_avg, "float32")[None, None, :]
        return w_avg + coef * (ws - w_avg)

    def call(self, z, training=False, truncation_psi=None, noise_seed=None, alpha=None):
        ws = self.broadcast(self.mapping(z))
        if truncation_psi is not None:
            ws = self.truncate(ws, truncation_psi, self.params.truncation_cutoff)
        alpha = self.alpha if alpha is None else alpha
        return ops.cast(self.synthesis(ws, alpha=alpha, noise_seed=noise_seed), "float32")


@keras.saving.register_keras_serializable("keras_mammo")
class StyleDiscriminator(keras.Model):
    """ProGAN/StyleGAN discriminator with fade-in and minibatch stddev.

    ``call(x)``: ``(N, R, R, 1)`` in ``[-1, 1]`` → ``(N, 1) float32`` logits.
    """

    def __init__(self, max_resolution: int, params: StyleGANParams, **kwargs):
        super().__init__(**kwargs)
        self.res_list = resolutions(max_resolution)
        self.resolution = max_resolution
        nf = lambda r: channels_at(r, params)  # noqa: E731
        self.from_gray = [EqualizedConv2D(nf(r), 1, name=f"from_gray_{r}") for r in self.res_list]
        # block_convs[2(k − 1)], block_convs[2(k − 1) + 1] read resolution res_list[k] (k ≥ 1)
        self.block_convs = []
        for r in self.res_list[1:]:
            self.block_convs += [EqualizedConv2D(nf(r), 3, name=f"conv0_{r}"),
                                 EqualizedConv2D(nf(r // 2), 3, name=f"conv1_{r}")]
        self.mbstd = MinibatchStdDev(params.mbstd_group_size)
        self.final_conv = EqualizedConv2D(nf(4), 3, name="conv_4")
        self.final_dense = EqualizedDense(nf(4), name="fc_4")
        self.head = EqualizedDense(1, gain=1.0, name="logit")
        self.alpha = self.add_weight(shape=(), initializer="ones", trainable=False, name="alpha")

    def build(self, input_shape=None):
        keep = self.resolution
        for r in self.res_list:
            self.resolution = r
            self.call(ops.zeros((1, r, r, 1)), alpha=0.5)
        self.resolution = keep
        self.built = True

    @staticmethod
    def _lrelu(x):
        return ops.leaky_relu(x, negative_slope=0.2)

    def _block(self, k, h):
        c0, c1 = self.block_convs[2 * (k - 1)], self.block_convs[2 * (k - 1) + 1]
        return downsample2x(self._lrelu(c1(self._lrelu(c0(h)))))

    def call(self, x, training=False, alpha=None):
        alpha = self.alpha if alpha is None else alpha
        x = ops.cast(x, "float32")
        k = self.res_list.index(self.resolution)
        h = self._lrelu(self.from_gray[k](x))
        if k > 0:
            h = self._block(k, h)
            h = fade_in_lazy(alpha, lambda: self._lrelu(self.from_gray[k - 1](downsample2x(x))), h)
            for j in range(k - 1, 0, -1):
                h = self._block(j, h)
        h = self._lrelu(self.final_conv(self.mbstd(h)))
        h = self._lrelu(self.final_dense(ops.reshape(h, (ops.shape(h)[0], -1))))
        return ops.cast(self.head(h), "float32")   # float32 logits under mixed precision too


class StyleGAN(ProgressiveGAN):
    """Karras et al. 2019's StyleGAN, progressive, non-saturating loss + R1 (see module docstring).

    ``train_step`` returns ``d_loss`` (including γ/2·R1), ``g_loss``, ``r1``,
    ``d_real``, ``d_fake`` and the fade-in weight ``alpha``.
    """

    default_optimizer = {"g_learning_rate": 1e-3, "d_learning_rate": 1e-3, "beta_1": 0.0, "beta_2": 0.99}
    d_options = frozenset({"loss"})
    d_options_refused = {
        "r1_gamma": "StyleGAN applies its R1 penalty at every step: set model.params.r1_gamma",
        "spectral_norm": "StyleGAN's discriminator uses the equalized learning rate (Karras et al. 2018, §4.1) "
                         "instead",
    }

    def __init__(self, latent_dim: int, max_resolution: int, params: StyleGANParams, seed: int = 0, **kwargs):
        gen = StyleGenerator(latent_dim, max_resolution, params, name="generator")
        disc = StyleDiscriminator(max_resolution, params, name="discriminator")
        super().__init__(gen, disc, latent_dim, seed=seed, **kwargs)
        self.params = params

    # --- training -------------------------------------------------------------------------
    def mixed_styles(self, batch, stream: int):
        """Per-layer styles with style-mixing regularization (Karras et al. 2019, §3.1).

        Returns:
            ``ws (N, L, w_dim)`` and the first latent's ``w (N, w_dim)``.
        """
        g = self.generator
        w1 = g.mapping(self.latent_batch(batch, stream=stream))
        w2 = g.mapping(self.latent_batch(batch, stream=stream + 1))
        active = num_style_layers(self.resolution)
        u = tf.random.stateless_uniform((2,), seed=step_seed(self, 200 + stream))
        crossover = 1.0 + tf.floor(u[1] * float(max(active - 1, 1)))
        cutoff = tf.where(u[0] < self.params.style_mixing_prob, crossover, float(g.num_layers))
        layer = tf.cast(tf.range(g.num_layers), tf.float32)[None, :, None]
        ws = tf.where(layer < cutoff, w1[:, None, :], w2[:, None, :])
        return ws, w1

    def train_step(self, data):
        real = data["image"]
        batch = ops.shape(real)[0]
        alpha = self.current_alpha()
        g, d = self.generator, self.discriminator
        disc = lambda x: d(self.augment_for_d(x), training=True, alpha=alpha)  # noqa: E731

        ws, _ = self.mixed_styles(batch, stream=0)
        with tf.GradientTape() as tape:
            fake = g.synthesis(ws, alpha=alpha, noise_seed=step_seed(self, 300))
            fake_logits = disc(fake)
            r1, real_logits = r1_penalty(disc, real, return_logits=True)
            self.observe_real_logits(real_logits)
            d_loss = (self.d_loss(real_logits, fake_logits, logistic_discriminator_loss)
                      + 0.5 * self.params.r1_gamma * r1)
            scaled = scaled_loss(self, self.d_optimizer, d_loss)
        apply_gradients(self.d_optimizer, tape, scaled, d.trainable_variables)

        with tf.GradientTape() as tape:
            ws, w = self.mixed_styles(batch, stream=2)
            fake = g.synthesis(ws, alpha=alpha, noise_seed=step_seed(self, 301))
            g_loss = self.g_loss(disc(fake), generator_bce_loss)
            scaled = scaled_loss(self, self.g_optimizer, g_loss)
        apply_gradients(self.g_optimizer, tape, scaled, g.trainable_variables)

        beta = self.params.w_avg_beta
        g.w_avg.assign(ops.mean(w, axis=0) * (1.0 - beta) + g.w_avg * beta)
        g.alpha.assign(alpha)
        d.alpha.assign(alpha)
        return {"d_loss": d_loss, "g_loss": g_loss, "r1": r1, "d_real": ops.mean(ops.sigmoid(real_logits)),
                "d_fake": ops.mean(ops.sigmoid(fake_logits)), "alpha": alpha}

    # --- inference ------------------------------------------------------------------------
    def generate(self, latents, conditions: dict | None = None):
        """Images with the truncation trick: ``(N, latent_dim)`` → ``(N, R, R, 1) float32`` in ``[-1, 1]``.

        Args:
            latents: ``(N, latent_dim) float32``.
            conditions: optional ``{"truncation_psi": ψ}`` overriding ``model.params.truncation_psi``.
        """
        psi = self.params.truncation_psi
        if conditions and conditions.get("truncation_psi") is not None:
            psi = conditions["truncation_psi"]
        if isinstance(psi, (int, float)) and psi == 1:
            psi = None
        return self.generator(latents, training=False, truncation_psi=psi)


@register_model("stylegan", StyleGANParams,
                "Karras et al. 2019 StyleGAN: mapping net, AdaIN, noise, progressive, R1, truncation")
def build_stylegan(cfg, params: StyleGANParams, data_info=None) -> StyleGAN:
    max_res = max(s.resolution for s in cfg.train.schedule())
    resolutions(max_res)
    return StyleGAN(cfg.model.latent_dim, max_res, params, seed=cfg.seed, name="stylegan")
