"""Segmentation-driven conditional DCGAN trained as WGAN-GP (Tripathi et al., MIAS 64×64).

The generator takes a latent vector and a lesion segmentation mask and draws a film
whose lesion lies where the mask says; the critic scores (image, mask) pairs.

Generator (DCGAN, Radford et al. 2016, §3, conditioned on the mask): ``z`` is projected
to ``4×4×g_base_channels`` (BatchNormalization, ReLU); every 5×5 stride-2 transposed
convolution reads the feature map concatenated with the mask area-downsampled to the
same size (so the mask steers every scale), halves the channels (BatchNormalization,
ReLU), and the last one outputs 1 channel with tanh::

    z (N, latent_dim), mask (N, R, R, 1) in {0, 1} → (N, R, R, 1) in [-1, 1]

Critic (WGAN-GP, Gulrajani et al. 2017): the DCGAN discriminator
(:class:`~keras_mammo.models.dcgan.DCGANDiscriminator`) on the 2-channel
``concat(image, mask)``, **without batch normalization** (§4: batch normalization
invalidates the per-sample gradient penalty; ``critic_norm: layer`` is the paper's
suggested drop-in), and a linear score.

Training (Gulrajani et al. 2017, Algorithm 1): critic loss ``E[C(x̃)] − E[C(x)] + λ·GP``
with λ = 10 and the penalty on random interpolates between real and generated images
(:func:`keras_mammo.losses.gradient_penalty`), ``n_critic = 5`` critic updates per
generator update, Adam with learning rate 1e-4, β1 = 0, β2 = 0.9. As in the keras-io
WGAN-GP example, the 5 critic updates of one ``train_step`` share its real batch (fresh
latents and ε each time), so one ``train_step`` is one generator update, as for every
keras-mammo model.

At generation time the masks come from the U-Net (``keras-mammo train --model unet``)
applied to real films (:func:`masks_from_segmenter`) or from mask files given by the
user (:func:`load_mask_files`).

Export signatures (:meth:`SegCDCGAN.export_signatures`):

- ``serving_default``: ``latent`` float32 ``[N, latent_dim]`` (128 by default), ``mask``
  uint8 ``[N, R, R, 1]`` (non-zero = lesion) → ``images`` uint8 ``[N, R, R, 1]``.
- ``generate``: ``seed`` int64 scalar, ``mask`` uint8 ``[N, R, R, 1]`` → ``images`` uint8
  ``[N, R, R, 1]``, the latents drawn statelessly from the seed (deterministic).

Tripathi et al. do not publish layer widths; keras-mammo uses DCGAN's (halving from 512
channels at 4×4 for 64 px).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from keras_mammo.errors import DataError
from keras_mammo.losses import gradient_penalty, wasserstein_critic_loss, wasserstein_generator_loss
from keras_mammo.models.blocks import ConvNormAct, dcgan_initializer, downsample_mask
from keras_mammo.models.dcgan import DCGANDiscriminator, generator_widths, num_up_layers
from keras_mammo.models.gan_utils import apply_gradients, scaled_loss, single_resolution, step_seed
from keras_mammo.models.registry import register_model
from keras_mammo.models.gan import GAN, images_to_uint8


@dataclasses.dataclass
class SegCDCGANParams:
    """``model.params`` of ``seg-cdcgan``.

    Attributes:
        g_base_channels: generator channels at 4×4 (512: DCGAN's widths for 64 px).
        min_channels: smallest generator width.
        d_base_channels: critic filters of the first layer (64).
        max_d_channels: largest critic width (512).
        critic_norm: ``none`` (default) or ``layer`` normalization in the critic
            (never batch normalization, Gulrajani et al. 2017, §4).
        gp_weight: gradient-penalty weight λ (paper: 10).
        n_critic: critic updates per generator update (paper: 5).
    """

    g_base_channels: int = 512
    min_channels: int = 16
    d_base_channels: int = 64
    max_d_channels: int = 512
    critic_norm: str = dataclasses.field(default="none", metadata={"choices": ("none", "layer")})
    gp_weight: float = 10.0
    n_critic: int = 5


@keras.saving.register_keras_serializable("keras_mammo")
class MaskConditionalGenerator(keras.Model):
    """``call((z, lesion_mask))``: ``(N, latent_dim)``, ``(N, R, R, 1)`` in ``{0, 1}``
    → ``(N, R, R, 1)`` in ``[-1, 1]``.

    The two inputs come as one tuple (the Keras convention for multi-input subclassed
    models, which SavedModel tracing relies on).
    """

    def __init__(self, latent_dim: int, resolution: int, params: SegCDCGANParams, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim, self.resolution = latent_dim, resolution
        widths = generator_widths(resolution, params.g_base_channels, params.min_channels)
        self.project = layers.Dense(4 * 4 * widths[0], use_bias=False, kernel_initializer=dcgan_initializer(),
                                    name="project")
        self.reshape = layers.Reshape((4, 4, widths[0]))
        self.project_bn = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="project_bn")
        self.ups = [ConvNormAct(w, 5, 2, transpose=True, norm="batch", activation="relu", name=f"up_{4 << (i + 1)}")
                    for i, w in enumerate(widths[1:])]
        self.ups.append(ConvNormAct(1, 5, 2, transpose=True, norm=None, activation="tanh", name=f"up_{resolution}"))

    def call(self, inputs, training=False):
        z, lesion_mask = inputs
        m = ops.cast(lesion_mask, "float32")
        x = ops.relu(self.project_bn(self.reshape(self.project(z)), training=training))
        size = 4
        for up in self.ups:
            x = up(ops.concatenate([x, ops.cast(downsample_mask(m, size), x.dtype)], axis=-1), training=training)
            size *= 2
        return ops.cast(x, "float32")


class SegCDCGAN(GAN):
    """Mask-conditioned DCGAN with a WGAN-GP critic (see the module docstring).

    Batches need ``"image"`` and ``"lesion_mask"`` ``(B, R, R, 1) float32`` in ``{0, 1}``.
    ``train_step`` returns ``d_loss`` (critic loss with penalty, last critic update),
    ``g_loss``, ``gp`` (the penalty before λ) and ``w_distance`` (``E[C(x)] − E[C(x̃)]``,
    the critic's estimate of the Wasserstein distance).
    """

    inputs_needed = ("lesion_mask",)
    default_optimizer = {"g_learning_rate": 1e-4, "d_learning_rate": 1e-4, "beta_1": 0.0, "beta_2": 0.9}
    _WGAN_GP = ("a WGAN-GP critic (Tripathi et al.; Gulrajani et al. 2017) has the Wasserstein loss and its "
                "gradient penalty, model.params.gp_weight")
    d_options_refused = {"loss": _WGAN_GP, "r1_gamma": _WGAN_GP, "spectral_norm": _WGAN_GP}

    def __init__(self, latent_dim: int, resolution: int, params: SegCDCGANParams, seed: int = 0, **kwargs):
        gen = MaskConditionalGenerator(latent_dim, resolution, params, name="generator")
        norm = None if params.critic_norm == "none" else params.critic_norm
        critic = DCGANDiscriminator(resolution, params.d_base_channels, params.max_d_channels, norm=norm,
                                    name="discriminator")
        super().__init__(gen, critic, latent_dim, seed=seed, **kwargs)
        self.resolution = resolution
        self.params = params

    def build_networks(self) -> None:
        r = self.resolution
        self.generator((ops.zeros((1, self.latent_dim)), ops.zeros((1, r, r, 1))), training=False)
        self.discriminator(ops.zeros((1, r, r, 2)), training=False)
        self.built = True

    def call(self, latents, training=False):
        raise TypeError("seg-cdcgan needs a mask: use generate(latents, {'lesion_mask': masks})")

    def critic(self, images, masks, training=True):
        """Critic scores of (image, mask) pairs: ``(N, 1)`` float32.

        In training the pair is augmented first (``train.augment``; the mask moves
        with the image).
        """
        if training:
            images, masks = self.augment_for_d(images, masks)
        return self.discriminator(ops.concatenate([images, masks], axis=-1), training=training)

    def train_step(self, data):
        real, masks = data["image"], ops.cast(data["lesion_mask"], "float32")
        batch = ops.shape(real)[0]
        g, d_vars = self.generator, self.discriminator.trainable_variables
        for i in range(self.params.n_critic):
            z = self.latent_batch(batch, stream=i)
            eps = tf.random.stateless_uniform(tf.stack([batch, 1, 1, 1]), seed=step_seed(self, 100 + i))
            with tf.GradientTape() as tape:
                fake = g((z, masks), training=True)
                real_scores = self.critic(real, masks)
                fake_scores = self.critic(fake, masks)
                self.observe_real_logits(real_scores)
                gp = gradient_penalty(lambda x: self.critic(x, masks), real, fake, eps)
                d_loss = wasserstein_critic_loss(real_scores, fake_scores) + self.params.gp_weight * gp
                scaled = scaled_loss(self, self.d_optimizer, d_loss)
            apply_gradients(self.d_optimizer, tape, scaled, d_vars)

        z = self.latent_batch(batch, stream=self.params.n_critic)
        with tf.GradientTape() as tape:
            g_loss = wasserstein_generator_loss(self.critic(g((z, masks), training=True), masks))
            scaled = scaled_loss(self, self.g_optimizer, g_loss)
        apply_gradients(self.g_optimizer, tape, scaled, g.trainable_variables)
        return {"d_loss": d_loss, "g_loss": g_loss, "gp": gp,
                "w_distance": ops.mean(real_scores) - ops.mean(fake_scores)}

    # --- inference ------------------------------------------------------------------------
    def generate(self, latents, conditions: dict | None = None):
        """Films for given lesion masks: ``(N, latent_dim)`` + mask → ``(N, R, R, 1) float32`` in ``[-1, 1]``.

        Args:
            latents: ``(N, latent_dim) float32``.
            conditions: ``{"lesion_mask": (N, R, R, 1)}`` with values in ``{0, 1}`` (``"mask"``
                is accepted too).

        Raises:
            ValueError: no mask given.
        """
        conditions = conditions or {}
        mask = conditions.get("lesion_mask", conditions.get("mask"))
        if mask is None:
            raise ValueError("seg-cdcgan: generate needs conditions={'lesion_mask': (N, R, R, 1) masks}; get them "
                             "from mask files (load_mask_files) or a U-Net run (masks_from_segmenter)")
        return self.generator((latents, ops.cast(mask, "float32")), training=False)

    def sample(self, latents, batch: dict | None = None):
        """Films for the fixed real batch's lesion masks (the first ``min(len(latents), B)``)."""
        masks = batch["lesion_mask"]
        n = ops.minimum(ops.shape(latents)[0], ops.shape(masks)[0])
        return self.generate(latents[:n], {"lesion_mask": masks[:n]})

    def export_signatures(self) -> dict:
        """``serving_default`` (latent float32 ``[N, latent_dim]``, mask uint8 ``[N, R, R, 1]``)
        and ``generate`` (seed int64, mask uint8 ``[N, R, R, 1]``) → ``images`` uint8 ``[N, R, R, 1]``.

        A mask pixel is lesion when non-zero (0/1 and 0/255 masks both work).
        """
        model, res, latent_dim = self, self.resolution, self.latent_dim
        mask_spec = tf.TensorSpec([None, res, res, 1], tf.uint8, name="mask")

        @tf.function(input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, name="latent"), mask_spec])
        def serving_default(latent, mask):
            m = tf.cast(mask > 0, tf.float32)
            return {"images": images_to_uint8(model.generate(latent, {"lesion_mask": m}))}

        @tf.function(input_signature=[tf.TensorSpec([], tf.int64, name="seed"), mask_spec])
        def generate(seed, mask):
            n = tf.shape(mask)[0]
            z = tf.random.stateless_normal(tf.stack([n, latent_dim]),
                                           seed=tf.stack([seed, tf.constant(0x5EED, tf.int64)]))
            m = tf.cast(mask > 0, tf.float32)
            return {"images": images_to_uint8(model.generate(z, {"lesion_mask": m}))}

        return {"serving_default": serving_default, "generate": generate}


# --- masks at generation time -------------------------------------------------------------

def load_mask_files(paths, resolution: int) -> np.ndarray:
    """Read binary mask images (PNG, PGM, TIFF, …) as ``(N, R, R, 1) float32`` in ``{0, 1}``.

    A pixel is lesion when non-zero in the file; masks are area-resized to ``resolution``
    and a resized pixel is lesion when at least half of it was. Masks must be in the
    geometry of the prepared films (chest wall on the prepared side, breast cropped).

    Raises:
        DataError: a file is missing or cannot be decoded (the message names it).
    """
    import cv2

    out = []
    for p in paths:
        p = Path(p)
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED) if p.is_file() else None
        if img is None:
            raise DataError(f"{p}: mask file missing or not a readable image")
        if img.ndim == 3:
            img = img.max(axis=2)
        binary = (img > 0).astype(np.float32)
        small = cv2.resize(binary, (resolution, resolution), interpolation=cv2.INTER_AREA)
        out.append((small >= 0.5).astype(np.float32)[..., None])
    return np.stack(out) if out else np.zeros((0, resolution, resolution, 1), np.float32)


def masks_from_segmenter(segmenter, images, threshold: float = 0.5, batch_size: int = 32) -> np.ndarray:
    """Lesion masks of real films predicted by a trained U-Net.

    Args:
        segmenter: a :class:`~keras_mammo.models.unet.UNetSegmenter` (its ``segment``), a
            callable ``images → probabilities``, or a loaded U-Net SavedModel (its
            ``serving_default`` signature, fed uint8 films).
        images: ``(N, R, R, 1)`` float32 films in ``[-1, 1]``.
        threshold: probability above which a pixel is lesion.

    Returns:
        ``(N, R, R, 1) float32`` in ``{0, 1}``.
    """
    images = np.asarray(images, np.float32)
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size]
        if hasattr(segmenter, "segment"):
            prob = segmenter.segment(x)
        elif hasattr(segmenter, "signatures"):
            u8 = np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)
            prob = segmenter.signatures["serving_default"](image=tf.constant(u8))["probability"]
        else:
            prob = segmenter(x)
        out.append((np.asarray(prob) > threshold).astype(np.float32))
    return np.concatenate(out) if out else np.zeros((0,) + images.shape[1:], np.float32)


@register_model("seg-cdcgan", SegCDCGANParams,
                "Tripathi et al. mask-conditioned DCGAN, WGAN-GP critic (masks from unet)")
def build_seg_cdcgan(cfg, params: SegCDCGANParams, data_info=None) -> SegCDCGAN:
    res = single_resolution(cfg, "seg-cdcgan")
    num_up_layers(res)
    return SegCDCGAN(cfg.model.latent_dim, res, params, seed=cfg.seed, name="seg_cdcgan")
