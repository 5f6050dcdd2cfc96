"""FastGAN (Liu, Zhu, Song & Elgammal, ICLR 2021, "Towards Faster and Stabilized GAN
Training for High-fidelity Few-shot Image Synthesis", §3), for one grey channel.

A generator and a discriminator light enough to train on a few hundred images:

**Generator** (§3.1, Fig. 3). ``z (N, latent_dim)`` → ``Dense`` (the paper's 4×4
transposed convolution of a 1×1 input) → BatchNorm → GLU → ``4×4×c(4)``, then one
upsampling block per resolution 8, 16, … R. Blocks alternate, as in the authors' code:
at 8, 32, 128, 512 px a "comp" block ``up ×2 (nearest) → conv 3×3 → noise → BN → GLU →
conv 3×3 → noise → BN → GLU``; at 16, 64, 256, 1024 px a plain block ``up ×2 → conv 3×3 →
BN → GLU``. GLU (gated linear unit, Dauphin et al. 2017) halves the channels:
``a · σ(b)``. **Skip-layer excitation** (SLE, §3.1, Eq. 1) multiplies the feature map at
``16·q`` px channel-wise by a gate computed from the one at ``q`` px:
``σ(conv 1×1(Swish(conv 4×4 valid(avgpool→4×4(f_q)))))``; the paper's pairs are
8²→128², 16²→256², 32²→512², and the authors' code adds 4²→64² — every pair that fits in
R is used (none at 32 px). Outputs: ``conv 3×3 → tanh`` at R px and, for the
discriminator's second input, ``conv 1×1 → tanh`` at ``S = min(R/2, 128)`` px::

    (N, latent_dim) → 4²×c4 → 8² → 16² → 32² → 64² [× SLE(4²)] → (N, 64, 64, 1)    (R = 64)

**Discriminator** (§3.2, Fig. 4). The R-px image goes through a stem (``conv 3×3`` for
R ≤ 256; stride-2 ``conv 4×4`` down to 256 px above) and residual down blocks
``(conv 4×4 s2 → BN → LReLU → conv 3×3 → BN → LReLU + avgpool → conv 1×1 → BN →
LReLU) / 2`` down to 8×8, with SLE from the map at ``8·q`` px to the one at ``q`` px
(q = 8, 16, 32); a ``conv 1×1 → BN → LReLU → conv 4×4 valid`` head gives 5×5 logits. The
S-px image goes through ``conv 4×4 s2 → LReLU`` and ``conv 4×4 s2 → BN → LReLU`` blocks
down to 8×8 and a ``conv 4×4 valid`` head (5×5 logits). Both sets of logits are scored.

**Self-supervised reconstruction** (§3.2, Eq. 3). On real images only, three small
decoders (``up ×2 → conv 3×3 → BN → GLU`` blocks, ``conv 3×3 → tanh``) reconstruct, at
``T = min(R/2, 128)`` px: the whole image from the 8² map, the S-px image from the small
path's 8² map, and one quadrant of the image from the matching quadrant (8×8) of the 16²
map (quadrant drawn per step). **Difference from the paper:** the paper scores the
reconstructions with LPIPS (a VGG-based perceptual distance, Zhang et al. 2018), whose
weights are not available offline; keras-mammo uses an L1 (default) or L2 pixel loss
against the real image area-downsampled to T px (``model.params.recon_loss``).

**Losses and augmentation** (§3.2, §4). Hinge loss: D minimizes
``E[relu(1 − D(x))] + E[relu(1 + D(G(z)))] + recon``; G minimizes ``−E[D(G(z))]``.
Every image the discriminator sees, real and generated, both sizes, is augmented with
DiffAugment (Zhao et al. 2020; :mod:`keras_mammo.augment.diffaugment`); the real S-px
image is the augmented R-px image area-downsampled, and a generated pair shares one seed
so that its two sizes get the same relative shift and cutout. Set
``model.params.policy: ""`` to switch it off. With ``train.augment: ada`` (or
``diffaugment``) the trainer's augmentation replaces the model's own policy.
Spectral normalization (Miyato et al. 2018) on every convolution and Dense layer of both
networks, as in the authors' code; weights ``N(0, 0.02)``; Adam 2e-4, β = (0.5, 0.999);
one generator forward pass per step serves the discriminator's update (detached) and the
generator's (with the just-updated discriminator), as in the authors' training loop.

Other differences from the authors' code: the noise-injection strength is learned per
channel (StyleGAN's "B", :class:`~keras_mammo.models.blocks.NoiseInjection`) instead of
one scalar; at inference the noise is one fixed map per layer (deterministic exports,
as keras-mammo's StyleGAN); the hinge loss has no random margin; the small path's
first convolution has no bias (see the comment there).

**Randomness.** Latents (stream 0), per-pixel noise (stream 600), DiffAugment of real /
generated images (601 / 602) and the reconstructed quadrant (603) are stateless draws
keyed by ``(seed, step)`` (:func:`~keras_mammo.models.gan_utils.step_seed`), so a resumed
run draws what an uninterrupted one draws.
"""
from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf
from keras import layers, ops

from keras_mammo.augment.diffaugment import diff_augment, parse_policy
from keras_mammo.errors import ConfigError
from keras_mammo.losses import hinge_discriminator_loss, hinge_generator_loss
from keras_mammo.models.blocks import dcgan_initializer
from keras_mammo.models.fastgan_blocks import (
    DownBlockComp,
    SkipLayerExcitation,
    SNConv2D,
    UpBlock,
    area_resize,
    batch_norm,
    glu,
)
from keras_mammo.models.gan_utils import apply_gradients, scaled_loss, single_resolution, step_seed
from keras_mammo.models.registry import register_model
from keras_mammo.models.gan import GAN

#: Channel multipliers per resolution of the authors' code (``nfc_multi``); width = multiplier × ngf/ndf.
CHANNEL_MULTIPLIERS = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}
#: Resolutions FastGAN trains at.
RESOLUTIONS = (32, 64, 128, 256, 512, 1024)
#: Generator SLE pairs (low → high resolution): paper §3.1 plus the authors' 4→64.
SLE_PAIRS = ((4, 64), (8, 128), (16, 256), (32, 512))

STREAM_NOISE, STREAM_AUG_REAL, STREAM_AUG_FAKE, STREAM_PART = 600, 601, 602, 603


@dataclasses.dataclass
class FastGANParams:
    """``model.params`` of ``fastgan``.

    Attributes:
        ngf: generator base width (paper: 64); the map at r px has
            ``max(min_channels, CHANNEL_MULTIPLIERS[r] · ngf)`` channels.
        ndf: discriminator base width (paper: 64); its map at r px has
            ``CHANNEL_MULTIPLIERS[2r] · ndf`` channels (the decoders ``· ndf / 2``).
        min_channels: smallest width of any layer.
        noise: noise injection in the generator's "comp" blocks.
        spectral_norm: spectral normalization of every convolution (authors' code: on).
        policy: DiffAugment transforms, comma-separated (``""`` = none).
        recon_loss: pixel distance of the reconstruction loss (the paper's LPIPS is not
            available offline): ``l1`` or ``l2``.
        recon_weight: weight of the reconstruction loss in the discriminator's loss (paper: 1).
    """

    ngf: int = 64
    ndf: int = 64
    min_channels: int = 4
    noise: bool = True
    spectral_norm: bool = True
    policy: str = "translation,cutout,brightness,contrast"
    recon_loss: str = dataclasses.field(default="l1", metadata={"choices": ("l1", "l2")})
    recon_weight: float = 1.0

    def validate(self) -> None:
        """Raises ConfigError naming ``model.params.<key>`` for a bad value."""
        for key in ("ngf", "ndf", "min_channels"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.params.{key}: must be ≥ 1, got {getattr(self, key)}")
        if self.recon_weight < 0:
            raise ConfigError(f"model.params.recon_weight: must be ≥ 0, got {self.recon_weight}")
        try:
            parse_policy(self.policy)
        except ValueError as e:
            raise ConfigError(f"model.params.policy: {e}") from None


def check_resolution(resolution: int) -> int:
    """Raises ConfigError unless ``resolution`` is one of :data:`RESOLUTIONS`."""
    if resolution not in RESOLUTIONS:
        raise ConfigError(f"train.resolution: fastgan trains at {', '.join(map(str, RESOLUTIONS))} px, "
                          f"got {resolution}")
    return resolution


def small_resolution(resolution: int) -> int:
    """Side S of the second (small) image the discriminator reads: ``min(R/2, 128)``."""
    return min(resolution // 2, 128)


def g_width(resolution: int, params: FastGANParams) -> int:
    return max(params.min_channels, int(CHANNEL_MULTIPLIERS[resolution] * params.ngf))


def d_width(resolution: int, params: FastGANParams, scale: float = 1.0) -> int:
    return max(params.min_channels, int(CHANNEL_MULTIPLIERS[min(resolution, 1024)] * params.ndf * scale))


@keras.saving.register_keras_serializable("keras_mammo")
class FastGANGenerator(keras.Model):
    """``call(z)``: ``(N, latent_dim) float32`` → ``(N, R, R, 1) float32`` in ``[-1, 1]``.

    :meth:`forward` also returns the ``(N, S, S, 1)`` image for the discriminator's
    second input (``S = min(R/2, 128)``).
    """

    def __init__(self, latent_dim: int, resolution: int, params: FastGANParams, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim, self.resolution, self.params = latent_dim, resolution, params
        self.small = small_resolution(resolution)
        sn = params.spectral_norm
        c4 = g_width(4, params)
        self.project = layers.Dense(4 * 4 * 2 * c4, use_bias=False, kernel_initializer=dcgan_initializer(),
                                    name="project")
        self.project_bn = batch_norm("project_bn")
        self.res_list = [r for r in (8, 16, 32, 64, 128, 256, 512, 1024) if r <= resolution]
        self.ups = {str(r): UpBlock(g_width(r, params), comp=r.bit_length() % 2 == 0, noise=params.noise, sn=sn,
                                    name=f"up_{r}") for r in self.res_list}
        self.sle = {str(hi): SkipLayerExcitation(g_width(hi, params), sn=sn, name=f"sle_{lo}_{hi}")
                    for lo, hi in SLE_PAIRS if hi <= resolution}
        self.sle_source = {hi: lo for lo, hi in SLE_PAIRS if hi <= resolution}
        self.to_big = SNConv2D(1, 3, spectral_norm=sn, name="to_big")
        self.to_small = SNConv2D(1, 1, spectral_norm=sn, name="to_small")

    def forward(self, z, training=False, noise_seed=None):
        """``(N, latent_dim)`` → ``(big (N, R, R, 1), small (N, S, S, 1))`` float32 in ``[-1, 1]``."""
        n = ops.shape(z)[0]
        x = self.project(z)
        x = glu(self.project_bn(ops.reshape(x, (n, 4, 4, -1)), training=training))
        feats = {4: x}
        for i, r in enumerate(self.res_list):
            seed = None if noise_seed is None else tf.random.experimental.stateless_fold_in(
                tf.cast(noise_seed, tf.int64), i)
            x = self.ups[str(r)](x, training=training, noise_seed=seed)
            if r in self.sle_source:
                x = self.sle[str(r)](feats[self.sle_source[r]], x, training=training)
            feats[r] = x
        big = ops.tanh(ops.cast(self.to_big(x, training=training), "float32"))
        small = ops.tanh(ops.cast(self.to_small(feats[self.small], training=training), "float32"))
        return big, small

    def call(self, z, training=False, noise_seed=None):
        return self.forward(z, training=training, noise_seed=noise_seed)[0]


@keras.saving.register_keras_serializable("keras_mammo")
class SimpleDecoder(layers.Layer):
    """Reconstruct an image from an 8×8 feature map: ``(N, 8, 8, C)`` → ``(N, T, T, 1)`` in ``[-1, 1]``.

    ``log2(T/8)`` plain up blocks (``up ×2 → conv 3×3 → BN → GLU``) then ``conv 3×3 → tanh``
    (Liu et al. 2021, §3.2, Fig. 4 "Decoder").
    """

    def __init__(self, out_resolution: int, params: FastGANParams, **kwargs):
        super().__init__(**kwargs)
        sn = params.spectral_norm
        res, r = [], 16
        while r <= out_resolution:
            res.append(r)
            r *= 2
        self.ups = [UpBlock(d_width(q, params, 0.5), noise=False, sn=sn, name=f"up_{q}") for q in res]
        self.out = SNConv2D(1, 3, spectral_norm=sn, name="to_image")

    def call(self, x, training=False):
        x = area_resize(x, 8)
        for up in self.ups:
            x = up(x, training=training)
        return ops.tanh(ops.cast(self.out(x, training=training), "float32"))


@keras.saving.register_keras_serializable("keras_mammo")
class FastGANDiscriminator(keras.Model):
    """``call(big, small=None)``: ``(N, R, R, 1)`` [+ ``(N, S, S, 1)``] → ``(N, 50) float32`` logits.

    ``small`` defaults to ``big`` area-downsampled to S px. With ``reconstruct=True``
    returns ``(logits, {"big", "small", "part"})``: the three decoders' ``(N, T, T, 1)``
    reconstructions, ``part`` from quadrant ``part`` (int32 scalar in ``[0, 4)``: top-left,
    top-right, bottom-left, bottom-right) of the 16×16 map.
    """

    def __init__(self, resolution: int, params: FastGANParams, **kwargs):
        super().__init__(**kwargs)
        self.resolution, self.params = resolution, params
        self.small = small_resolution(resolution)
        self.rec_resolution = min(resolution // 2, 128)
        sn = params.spectral_norm
        top = min(resolution, 256)
        self.stem = []
        if resolution <= 256:
            self.stem.append((SNConv2D(d_width(2 * top, params), 3, spectral_norm=sn, name="stem"), None))
        else:
            r = resolution
            while r > 256:
                bn = None if r == resolution else batch_norm(f"stem_bn_{r // 2}")
                self.stem.append((SNConv2D(d_width(r, params), 4, 2, use_bias=bn is None, spectral_norm=sn,
                                           name=f"stem_{r // 2}"), bn))
                r //= 2
        self.downs = {}
        r = top
        while r > 8:
            self.downs[str(r // 2)] = DownBlockComp(d_width(r, params), sn=sn, name=f"down_{r // 2}")
            r //= 2
        self.sle = {str(q): SkipLayerExcitation(d_width(2 * q, params), sn=sn, name=f"sle_{8 * q}_{q}")
                    for q in (32, 16, 8) if 8 * q <= top}
        self.head = [SNConv2D(d_width(8, params), 1, use_bias=False, spectral_norm=sn, name="head_conv1"),
                     batch_norm("head_bn"), SNConv2D(1, 4, padding="valid", spectral_norm=sn, name="head_logits")]
        s = self.small
        # no bias: with one, TensorFlow's Grappler remapper fails on the fused conv + bias +
        # LeakyReLU gradient and logs an error at every trace (TF 2.21)
        self.small_stem = SNConv2D(d_width(2 * s, params), 4, 2, use_bias=False, spectral_norm=sn,
                                   name="small_stem")
        self.small_downs = []
        r = s // 2
        while r > 8:
            self.small_downs.append((SNConv2D(d_width(2 * r, params), 4, 2, use_bias=False, spectral_norm=sn,
                                              name=f"small_down_{r // 2}"), batch_norm(f"small_bn_{r // 2}")))
            r //= 2
        self.small_head = SNConv2D(1, 4, padding="valid", spectral_norm=sn, name="small_logits")
        t = self.rec_resolution
        self.decoder_big = SimpleDecoder(t, params, name="decoder_big")
        self.decoder_small = SimpleDecoder(t, params, name="decoder_small")
        self.decoder_part = SimpleDecoder(t, params, name="decoder_part")

    def call(self, big, small=None, training=False, reconstruct=False, part=0):
        lrelu = lambda t: ops.leaky_relu(t, negative_slope=0.2)  # noqa: E731
        if small is None:
            small = area_resize(big, self.small)
        x = big
        for conv, bn in self.stem:
            x = conv(x, training=training)
            x = lrelu(bn(x, training=training) if bn is not None else x)
        feats = {int(x.shape[1]): x}
        for key, down in self.downs.items():
            q = int(key)
            x = down(x, training=training)
            if key in self.sle:
                x = self.sle[key](feats[8 * q], x, training=training)
            feats[q] = x
        h = self.head[0](x, training=training)
        h = lrelu(self.head[1](h, training=training))
        logits = self.head[2](h, training=training)                        # (N, 5, 5, 1)
        y = lrelu(self.small_stem(small, training=training))
        for conv, bn in self.small_downs:
            y = lrelu(bn(conv(y, training=training), training=training))
        small_logits = self.small_head(y, training=training)               # (N, 5, 5, 1)
        n = ops.shape(big)[0]
        out = ops.cast(ops.concatenate([ops.reshape(logits, (n, -1)), ops.reshape(small_logits, (n, -1))], axis=1),
                       "float32")
        if not reconstruct:
            return out
        f16 = feats[16]
        part = tf.cast(part, tf.int32)
        quadrant = tf.slice(f16, tf.stack([0, (part // 2) * 8, (part % 2) * 8, 0]), [-1, 8, 8, -1])
        recs = {"big": self.decoder_big(x, training=training), "small": self.decoder_small(y, training=training),
                "part": self.decoder_part(quadrant, training=training)}
        return out, recs


def crop_quadrant(images, part):
    """Quadrant ``part`` (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) of ``(N, R, R, C)``."""
    r = int(images.shape[1]) // 2
    part = tf.cast(part, tf.int32)
    return tf.slice(images, tf.stack([0, (part // 2) * r, (part % 2) * r, 0]), [-1, r, r, -1])


class FastGAN(GAN):
    """Liu et al. 2021's FastGAN (see the module docstring).

    ``train_step`` returns ``d_loss`` (hinge + weighted reconstruction), ``g_loss``,
    ``recon`` (the reconstruction loss: sum of the three decoders' mean pixel distances),
    ``d_real`` and ``d_fake`` (mean discriminator scores).
    """

    default_optimizer = {"g_learning_rate": 2e-4, "d_learning_rate": 2e-4, "beta_1": 0.5, "beta_2": 0.999}
    #: the hinge loss is FastGAN's own (``train.loss`` default and hinge are the same), and so is
    #: spectral normalization (``model.params.spectral_norm``, on; ``train.spectral_norm`` forces it)
    d_options = frozenset({"loss", "r1_gamma", "spectral_norm"})

    def __init__(self, latent_dim: int, resolution: int, params: FastGANParams, seed: int = 0, **kwargs):
        check_resolution(resolution)
        params.validate()
        gen = FastGANGenerator(latent_dim, resolution, params, name="generator")
        disc = FastGANDiscriminator(resolution, params, name="discriminator")
        super().__init__(gen, disc, latent_dim, seed=seed, **kwargs)
        self.resolution = resolution
        self.params = params
        self.policy = parse_policy(params.policy)

    def build_networks(self) -> None:
        z = ops.zeros((1, self.latent_dim))
        self.generator(z)  # through __call__, so that Keras marks the generator built
        big, small = self.generator.forward(z)
        self.discriminator(big, small, reconstruct=True)
        self.built = True

    def augment(self, images, stream: int):
        """Augment a batch the discriminator sees.

        With ``train.augment`` set (``ada`` or ``diffaugment``) the trainer's augmentation
        (:meth:`GAN.augment_for_d`, same transform for one ``stream`` in a step, so a
        generated pair's two sizes move together) replaces the model's own policy, so
        images are never augmented twice; otherwise DiffAugment with ``model.params.policy`` and the
        step's seed for ``stream`` (identity when the policy is empty).
        """
        if self.augment_kind != "none":
            return self.augment_for_d(images, stream=stream)
        if not self.policy:
            return images
        return diff_augment(images, step_seed(self, stream), self.policy)

    def reconstruction_loss(self, recs, real_big, real_small, part):
        """Sum over the three decoders of the mean L1 (or L2) distance to the real targets at T px.

        Targets: the (augmented) real image, its S-px version and quadrant ``part``,
        each area-downsampled to T px. Scalar float32.
        """
        t = self.discriminator.rec_resolution
        targets = {"big": area_resize(real_big, t), "small": area_resize(real_small, t),
                   "part": area_resize(crop_quadrant(real_big, part), t)}
        dist = ops.abs if self.params.recon_loss == "l1" else ops.square
        return sum(ops.mean(dist(recs[k] - ops.cast(targets[k], "float32"))) for k in ("big", "small", "part"))

    def train_step(self, data):
        real = data["image"]
        batch = ops.shape(real)[0]
        g, d = self.generator, self.discriminator
        z = self.latent_batch(batch, stream=0)
        part = tf.random.stateless_uniform([], seed=step_seed(self, STREAM_PART), minval=0, maxval=4,
                                           dtype=tf.int32)
        with tf.GradientTape() as g_tape:
            fake_big, fake_small = g.forward(z, training=True, noise_seed=step_seed(self, STREAM_NOISE))
            aug_big, aug_small = self.augment(fake_big, STREAM_AUG_FAKE), self.augment(fake_small, STREAM_AUG_FAKE)
            with g_tape.stop_recording():
                real_big = self.augment(real, STREAM_AUG_REAL)
                real_small = area_resize(real_big, g.small)
                with tf.GradientTape() as d_tape:
                    real_logits, recs = d(real_big, real_small, training=True, reconstruct=True, part=part)
                    self.observe_real_logits(real_logits)
                    fake_logits = d(ops.stop_gradient(aug_big), ops.stop_gradient(aug_small), training=True)
                    recon = self.reconstruction_loss(recs, real_big, real_small, part)
                    d_loss = hinge_discriminator_loss(real_logits, fake_logits) + self.params.recon_weight * recon
                    r1_term, r1 = self.r1_term(self._d_on_real, real)
                    scaled = scaled_loss(self, self.d_optimizer, d_loss + r1_term)
                apply_gradients(self.d_optimizer, d_tape, scaled, d.trainable_variables)
            g_loss = hinge_generator_loss(d(aug_big, aug_small, training=True))
            scaled = scaled_loss(self, self.g_optimizer, g_loss)
        apply_gradients(self.g_optimizer, g_tape, scaled, g.trainable_variables)
        extra = {"r1": r1} if self.r1_gamma > 0 else {}
        return {"d_loss": d_loss, "g_loss": g_loss, "recon": recon, "d_real": ops.mean(real_logits),
                "d_fake": ops.mean(fake_logits), **extra}

    def _d_on_real(self, x):
        """D's logits for real images ``x`` as the train step sees them (augmented, both sizes); for R1."""
        big = self.augment(x, STREAM_AUG_REAL)
        return self.discriminator(big, area_resize(big, self.generator.small), training=True)


@register_model("fastgan", FastGANParams,
                "Liu et al. 2021 FastGAN: SLE generator, self-supervised discriminator, hinge, DiffAugment")
def build_fastgan(cfg, params: FastGANParams, data_info=None) -> FastGAN:
    res = check_resolution(single_resolution(cfg, "fastgan"))
    if cfg.train.spectral_norm:
        params = dataclasses.replace(params, spectral_norm=True)
    return FastGAN(cfg.model.latent_dim, res, params, seed=cfg.seed, name="fastgan")
