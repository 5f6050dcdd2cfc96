"""Class-conditioned Pix2Pix (Isola et al. 2017, CVPR; used per disease stage by Calzada-Jasso et al. 2025).

Pix2Pix learns a mapping from a condition image x to a target image y with a U-Net
generator and a PatchGAN discriminator conditioned on x. Calzada-Jasso et al. trained it
to learn the features of each of four Alzheimer's stages; here the condition map holds
the breast mask, the lesion mask and one constant plane per class label (e.g.
``benign`` / ``malignant`` / ``normal`` from MIAS severity, or any folder-per-class
dataset, four disease stages included), and the target is the real film::

    condition (N, R, R, 2 + K): [breast_mask, lesion_mask, one-hot(class) planes] → film (N, R, R, 1)

At generation time the user picks a class and a condition map (a breast mask and a
lesion mask, e.g. of a real film or drawn by hand).

Generator (§3.2.1 and App. 6.1.1): U-Net encoder ``C64-C128-C256-C512-C512-…`` (4×4
convolutions, stride 2, BatchNormalization except on the first and innermost layers,
LeakyReLU 0.2) down to 1×1, decoder ``CD512-CD512-CD512-C512-…-C64`` (4×4 transposed
convolutions, BatchNormalization, ReLU, dropout 0.5 in the first three) with a skip
connection from each encoder layer to its mirror, and a final transposed convolution to
one channel with tanh. Depth follows the resolution (``log2 R`` levels: 8 at 256 px as
in the paper, 5 at 32 px).

Discriminator (§3.2.2, App. 6.1.2): the 70×70 PatchGAN ``C64-C128-C256-C512`` (4×4
convolutions; stride 2 except the last; no BatchNormalization on C64) followed by a
1-channel convolution, reading ``concat(condition, image)`` and giving one logit per
patch: ``(N, R/8, R/8, 1)``.

Loss (Eq. 4): ``L_cGAN + λ·L_L1`` with λ = 100; the discriminator's objective is halved
(§3.3); Adam with learning rate 2e-4, β1 = 0.5.

Difference from the paper: dropout is active only in training. Isola et al. keep it at
test time as the generator's only noise, but they note that it makes the output only
slightly stochastic (§3.1); keras-mammo's exports are deterministic (one condition map
and class always give one image), and diversity comes from the condition maps.

Export signatures (:meth:`Pix2Pix.export_signatures`):

- ``serving_default``: ``condition`` uint8 ``[N, R, R, 2]`` (channel 0 breast mask,
  channel 1 lesion mask; non-zero = inside), ``class_id`` int32 ``[N]`` (the class,
  an index into the class list; named ``class_id`` because ``class`` is a Python keyword
  and cannot name a signature input) → ``images`` uint8 ``[N, R, R, 1]``.
- ``classes``: no input → ``classes`` string ``[K]``, the class names in index order.
"""
from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf
from keras import ops

from keras_mammo.errors import ConfigError
from keras_mammo.losses import discriminator_bce_loss, generator_bce_loss, l1_loss
from keras_mammo.models.blocks import ConvNormAct
from keras_mammo.models.gan_utils import apply_gradients, scaled_loss, single_resolution
from keras_mammo.models.registry import register_model
from keras_mammo.models.gan import GAN, images_to_uint8

#: Mask channels of the condition map, before the class planes.
MASK_CHANNELS = ("breast_mask", "lesion_mask")


@dataclasses.dataclass
class Pix2PixParams:
    """``model.params`` of ``pix2pix``.

    Attributes:
        g_base_filters: filters of the generator's first encoder layer (paper: 64).
        g_max_filters: widest generator layer (paper: 512).
        d_base_filters: filters of the PatchGAN's first layer (paper: 64).
        d_layers: stride-2 layers of the PatchGAN (3 → 70×70 receptive field).
        l1_weight: λ of the L1 term (paper: 100).
        dropout: decoder dropout rate (paper: 0.5).
        dropout_layers: decoder layers with dropout (paper: 3).
        classes: class names (index order); empty takes them from the prepared dataset.
    """

    g_base_filters: int = 64
    g_max_filters: int = 512
    d_base_filters: int = 64
    d_layers: int = 3
    l1_weight: float = 100.0
    dropout: float = 0.5
    dropout_layers: int = 3
    classes: list[str] = dataclasses.field(default_factory=list)


def condition_map(breast_mask, lesion_mask, label, num_classes: int):
    """Build the generator's input: ``(N, R, R, 2 + num_classes)`` float32 in ``{0, 1}``.

    Args:
        breast_mask, lesion_mask: ``(N, R, R, 1)`` in ``{0, 1}``.
        label: ``(N,)`` int32 class indices in ``[0, num_classes)``.
    """
    b = ops.cast(breast_mask, "float32")
    planes = ops.one_hot(ops.cast(label, "int32"), num_classes)[:, None, None, :]
    planes = planes * ops.ones_like(b)
    return ops.concatenate([b, ops.cast(lesion_mask, "float32"), planes], axis=-1)


@keras.saving.register_keras_serializable("keras_mammo")
class Pix2PixUNet(keras.Model):
    """Isola et al. 2017's U-Net generator (App. 6.1.1), depth ``log2 R``.

    ``call(condition)``: ``(N, R, R, C)`` float32 → ``(N, R, R, 1)`` float32 in ``[-1, 1]``.
    """

    def __init__(self, resolution: int, params: Pix2PixParams, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        depth = resolution.bit_length() - 1
        f = [min(params.g_base_filters << i, params.g_max_filters) for i in range(depth)]
        self.encoder = [ConvNormAct(f[i], 4, 2, norm=None if i in (0, depth - 1) else "batch", activation="lrelu",
                                    name=f"enc_{resolution >> (i + 1)}") for i in range(depth)]
        self.decoder = []
        for j, i in enumerate(range(depth - 2, -1, -1)):
            drop = params.dropout if j < params.dropout_layers else 0.0
            self.decoder.append(ConvNormAct(f[i], 4, 2, transpose=True, norm="batch", activation="relu",
                                            dropout=drop, seed=seed + j, name=f"dec_{resolution >> (i + 1)}"))
        self.to_image = ConvNormAct(1, 4, 2, transpose=True, norm=None, activation="tanh", name="to_image")

    def call(self, condition, training=False):
        x, skips = ops.cast(condition, "float32"), []
        for enc in self.encoder:
            x = enc(x, training=training)
            skips.append(x)
        for dec, skip in zip(self.decoder, reversed(skips[:-1])):
            x = ops.concatenate([dec(x, training=training), skip], axis=-1)
        return ops.cast(self.to_image(x), "float32")


@keras.saving.register_keras_serializable("keras_mammo")
class PatchGAN(keras.Model):
    """Isola et al. 2017's PatchGAN discriminator (App. 6.1.2; 70×70 for ``num_layers=3``).

    ``call(x)``: ``(N, R, R, C)`` (condition and image concatenated) → ``(N, R/2^L, R/2^L, 1)``
    float32 logits, one per patch. ``spectral_norm`` wraps every convolution (Miyato et
    al. 2018; ``train.spectral_norm``).
    """

    def __init__(self, base_filters: int = 64, num_layers: int = 3, spectral_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        sn = spectral_norm
        self.convs = [ConvNormAct(min(base_filters << i, 8 * base_filters), 4, 2, norm=None if i == 0 else "batch",
                                  activation="lrelu", spectral_norm=sn, name=f"c{i}") for i in range(num_layers)]
        self.convs.append(ConvNormAct(min(base_filters << num_layers, 8 * base_filters), 4, 1, norm="batch",
                                      activation="lrelu", spectral_norm=sn, name=f"c{num_layers}"))
        self.head = ConvNormAct(1, 4, 1, norm=None, activation=None, spectral_norm=sn, name="logits")

    def call(self, x, training=False):
        for conv in self.convs:
            x = conv(x, training=training)
        return ops.cast(self.head(x), "float32")


class Pix2Pix(GAN):
    """Class-conditioned Pix2Pix (see the module docstring).

    Batches need ``"image"``, ``"breast_mask"``, ``"lesion_mask"`` and ``"label"``.
    ``train_step`` returns ``d_loss``, ``g_loss`` (adversarial + λ·L1), ``g_gan`` and ``l1``.
    The latent vectors of the GAN interface are ignored: the condition map drives the image.
    """

    inputs_needed = ("breast_mask", "lesion_mask", "label")
    d_options = frozenset({"loss", "r1_gamma", "spectral_norm"})
    default_optimizer = {"g_learning_rate": 2e-4, "d_learning_rate": 2e-4, "beta_1": 0.5, "beta_2": 0.999}

    def __init__(self, resolution: int, params: Pix2PixParams, classes: list[str], latent_dim: int = 128,
                 seed: int = 0, spectral_norm: bool = False, **kwargs):
        gen = Pix2PixUNet(resolution, params, seed=seed, name="generator")
        disc = PatchGAN(params.d_base_filters, params.d_layers, spectral_norm=spectral_norm, name="discriminator")
        super().__init__(gen, disc, latent_dim, seed=seed, **kwargs)
        self.resolution = resolution
        self.params = params
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.condition_channels = len(MASK_CHANNELS) + self.num_classes

    def build_networks(self) -> None:
        r = self.resolution
        self.generator(ops.zeros((1, r, r, self.condition_channels)), training=False)
        self.discriminator(ops.zeros((1, r, r, self.condition_channels + 1)), training=False)
        self.built = True

    def call(self, condition, training=False):
        return self.generator(condition, training=training)

    def condition_from(self, data: dict):
        """The condition map ``(N, R, R, 2 + K)`` of a batch dict (see :func:`condition_map`)."""
        return condition_map(data["breast_mask"], data["lesion_mask"], data["label"], self.num_classes)

    def train_step(self, data):
        real = data["image"]
        cond = self.condition_from(data)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = self.generator(cond, training=True)
            real_a, cond_r = self.augment_for_d(real, cond)   # geometric transforms move the condition too
            fake_a, cond_f = self.augment_for_d(fake, cond)
            real_logits = self.discriminator(ops.concatenate([cond_r, real_a], axis=-1), training=True)
            fake_logits = self.discriminator(ops.concatenate([cond_f, fake_a], axis=-1), training=True)
            self.observe_real_logits(real_logits)
            d_loss = self.d_loss(real_logits, fake_logits, discriminator_bce_loss)  # BCE = objective / 2 (§3.3)
            r1_term, r1 = self.r1_term(lambda x: self.discriminator(
                ops.concatenate(self.augment_for_d(x, cond)[::-1], axis=-1), training=True), real)
            g_gan = self.g_loss(fake_logits, generator_bce_loss)
            l1 = l1_loss(real, fake)
            g_loss = g_gan + self.params.l1_weight * l1
            d_scaled = scaled_loss(self, self.d_optimizer, d_loss + r1_term)
            g_scaled = scaled_loss(self, self.g_optimizer, g_loss)
        apply_gradients(self.d_optimizer, d_tape, d_scaled, self.discriminator.trainable_variables)
        apply_gradients(self.g_optimizer, g_tape, g_scaled, self.generator.trainable_variables)
        extra = {"r1": r1} if self.r1_gamma > 0 else {}
        return {"d_loss": d_loss, "g_loss": g_loss, "g_gan": g_gan, "l1": l1, **extra}

    # --- inference ------------------------------------------------------------------------
    def generate(self, latents=None, conditions: dict | None = None):
        """Films for condition maps and classes: ``(N, R, R, 1) float32`` in ``[-1, 1]``.

        Args:
            latents: ignored.
            conditions: ``{"breast_mask", "lesion_mask": (N, R, R, 1) in {0, 1},
                "label": (N,) int32}``, or ``{"condition": (N, R, R, 2), "label": ...}``.

        Raises:
            ValueError: missing keys.
        """
        c = conditions or {}
        if "label" not in c or not ("condition" in c or all(k in c for k in MASK_CHANNELS)):
            raise ValueError("pix2pix: generate needs conditions with 'label' (N,) and either 'condition' "
                             "(N, R, R, 2) or 'breast_mask' and 'lesion_mask' (N, R, R, 1)")
        if "condition" in c:
            masks = ops.cast(c["condition"], "float32")
            breast, lesion = masks[..., 0:1], masks[..., 1:2]
        else:
            breast, lesion = c["breast_mask"], c["lesion_mask"]
        return self.generator(condition_map(breast, lesion, c["label"], self.num_classes), training=False)

    def sample(self, latents, batch: dict | None = None):
        """Films for the fixed real batch's masks and labels (the first ``min(len(latents), B)``)."""
        n = ops.minimum(ops.shape(latents)[0], ops.shape(batch["image"])[0])
        return self.generate(None, {k: batch[k][:n] for k in self.inputs_needed})

    def export_signatures(self) -> dict:
        """``serving_default``: (``condition`` uint8 ``[N, R, R, 2]``, ``class_id`` int32 ``[N]``) →
        ``images`` uint8 ``[N, R, R, 1]``; ``classes`` → class names (string ``[K]``).

        A ``class_id`` outside ``[0, K)`` raises ``InvalidArgumentError``.
        """
        model, res, k = self, self.resolution, self.num_classes
        names = list(self.classes)

        @tf.function(input_signature=[tf.TensorSpec([None, res, res, len(MASK_CHANNELS)], tf.uint8, name="condition"),
                                      tf.TensorSpec([None], tf.int32, name="class_id")])
        def serving_default(condition, class_id):
            label = class_id
            checks = [tf.debugging.assert_non_negative(label, message="class must be ≥ 0"),
                      tf.debugging.assert_less(label, k, message=f"class must be < {k} ({', '.join(names)})")]
            with tf.control_dependencies(checks):
                m = tf.cast(condition > 0, tf.float32)
                out = model.generate(None, {"condition": m, "label": label})
            return {"images": images_to_uint8(out)}

        @tf.function(input_signature=[])
        def classes():
            return {"classes": tf.constant(names, tf.string)}

        return {"serving_default": serving_default, "classes": classes}


@register_model("pix2pix", Pix2PixParams,
                "Isola et al. 2017 Pix2Pix, class-conditioned (Calzada-Jasso et al. 2025): masks + class → film")
def build_pix2pix(cfg, params: Pix2PixParams, data_info=None) -> Pix2Pix:
    res = single_resolution(cfg, "pix2pix")
    if res < 8 or res & (res - 1):
        raise ConfigError(f"train.resolution: pix2pix needs a power of two ≥ 8, got {res}")
    classes = list(params.classes) or list(getattr(data_info, "classes", None) or [])
    if not classes:
        raise ConfigError("model.params.classes: pix2pix needs the class list; give it here or train on a "
                          "prepared dataset with labels")
    return Pix2Pix(res, params, classes, latent_dim=cfg.model.latent_dim, seed=cfg.seed,
                   spectral_norm=cfg.train.spectral_norm, name="pix2pix")
