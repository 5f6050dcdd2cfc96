"""U-Net lesion segmenter (Ronneberger, Fischer & Brox 2015, MICCAI; as used by Tripathi et al. on MIAS).

Network (§2, Fig. 1): a contracting path of ``depth`` levels, each two 3×3 convolutions
with ReLU followed by 2×2 max pooling, the channels doubling per level from
``base_filters``; a bottleneck of two 3×3 convolutions with dropout (§3.1: "drop-out
layers at the end of the contracting path"); an expanding path of 2×2 up-convolutions
halving the channels, concatenation with the cropped feature map of the same level
(the skip connection) and two 3×3 convolutions; a final 1×1 convolution to one logit
per pixel::

    (N, R, R, 1) in [-1, 1] → (N, R, R, 1) float32 logits;  P(lesion) = sigmoid(logit)

Differences from the paper, and why:

- ``"same"`` padding instead of unpadded convolutions: the mask has the film's size,
  so no overlap-tile strategy or cropping is needed.
- BatchNormalization after each convolution (``batch_norm``): the paper predates it;
  it lets a small U-Net train in a few CPU epochs.
- Loss: pixel-wise binary cross-entropy plus soft Dice
  (:func:`keras_mammo.losses.segmentation_bce_dice_loss`) instead of the weighted
  softmax cross-entropy: a MIAS lesion covers about 1 % of the film, and Dice does not
  reward an all-background prediction. Adam 1e-4 instead of SGD with momentum 0.99.

Lesion masks come from the prepared dataset (``"lesion_mask"`` in each batch): MIAS
disks from each abnormality's centre and radius (y measured from the bottom-left
corner) or CBIS-DDSM ROI masks.

How the segmenter plugs into the GAN machinery
----------------------------------------------
:class:`UNetSegmenter` subclasses :class:`~keras_mammo.models.gan.GAN` with the U-Net
as its ``generator`` and **no discriminator** (``discriminator = None``), so the trainer
drives it unchanged: ``compile(g_optimizer, d_optimizer)`` (the U-Net trains with
``g_optimizer``; ``d_optimizer`` is built empty and never steps), ``build_networks``,
``build_optimizers``, ``checkpoint_variables``, ``set_stage`` (one resolution),
``fit``. ``train_step`` returns ``{"loss", "dice", "iou"}`` (batch Dice and IoU of the
thresholded prediction), ``test_step`` the same on held-out films. "Generating" means
segmenting: :meth:`UNetSegmenter.generate` takes ``conditions={"image": ...}`` and returns
the lesion probability mapped to ``[-1, 1]`` (so sample grids show the predicted
masks); :meth:`UNetSegmenter.segment` returns probabilities. The export signature is
``serving_default``: ``image`` uint8 ``[N, R, R, 1]`` → ``mask`` uint8 ``{0, 255}`` and
``probability`` float32 ``[0, 1]``, both ``[N, R, R, 1]``.
"""
from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf
from keras import layers, ops

from keras_mammo.errors import ConfigError
from keras_mammo.losses import segmentation_bce_dice_loss
from keras_mammo.models.blocks import DoubleConv
from keras_mammo.models.gan_utils import apply_gradients, scaled_loss, single_resolution
from keras_mammo.models.registry import register_model
from keras_mammo.models.gan import GAN


@dataclasses.dataclass
class UNetParams:
    """``model.params`` of ``unet``.

    Attributes:
        base_filters: channels of the first level (paper: 64).
        depth: max-pooling steps (paper: 4); the resolution must be divisible by ``2**depth``.
        batch_norm: BatchNormalization after each convolution (not in the paper).
        dropout: dropout rate at the end of the contracting path (paper: used, rate not given; 0.5).
        dice_weight: weight of the soft-Dice term added to the pixel-wise cross-entropy.
        threshold: probability above which a pixel is lesion (Dice, IoU, exported mask).
    """

    base_filters: int = 64
    depth: int = 4
    batch_norm: bool = True
    dropout: float = 0.5
    dice_weight: float = 1.0
    threshold: float = 0.5


@keras.saving.register_keras_serializable("keras_mammo")
class UNet(keras.Model):
    """Ronneberger et al. 2015's U-Net with ``"same"`` padding.

    ``call(x)``: ``(N, R, R, C_in) float32`` → ``(N, R, R, out_channels) float32`` logits.

    Raises:
        ConfigError: ``R`` is not divisible by ``2**depth`` (checked by :func:`build_unet`).
    """

    def __init__(self, base_filters: int = 64, depth: int = 4, batch_norm: bool = True, dropout: float = 0.5,
                 out_channels: int = 1, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.depth = depth
        f = [base_filters << i for i in range(depth + 1)]
        self.down = [DoubleConv(f[i], batch_norm, name=f"down_{i}") for i in range(depth)]
        self.bottleneck = DoubleConv(f[depth], batch_norm, name="bottleneck")
        self.drop = layers.Dropout(dropout, seed=seed) if dropout > 0 else None
        self.up_convs = [layers.Conv2DTranspose(f[i], 2, strides=2, padding="same", name=f"upconv_{i}")
                         for i in reversed(range(depth))]
        self.up = [DoubleConv(f[i], batch_norm, name=f"up_{i}") for i in reversed(range(depth))]
        self.head = layers.Conv2D(out_channels, 1, name="logits")

    def call(self, x, training=False):
        skips = []
        for block in self.down:
            x = block(x, training=training)
            skips.append(x)
            x = ops.max_pool(x, 2, 2)
        x = self.bottleneck(x, training=training)
        if self.drop is not None:
            x = self.drop(x, training=training)
        for upconv, block, skip in zip(self.up_convs, self.up, reversed(skips)):
            x = block(ops.concatenate([upconv(x), skip], axis=-1), training=training)
        return ops.cast(self.head(x), "float32")


def _hard_scores(target, probabilities, threshold: float):
    """Batch Dice and IoU of the thresholded prediction (an empty pair counts as perfect)."""
    p = ops.cast(probabilities > threshold, "float32")
    t = ops.cast(target > 0.5, "float32")
    inter = ops.sum(p * t)
    total = ops.sum(p) + ops.sum(t)
    union = total - inter
    dice = ops.where(total > 0, 2.0 * inter / ops.maximum(total, 1.0), 1.0)
    iou = ops.where(union > 0, inter / ops.maximum(union, 1.0), 1.0)
    return dice, iou


class UNetSegmenter(GAN):
    """A supervised U-Net driven by the GAN trainer (see the module docstring).

    Batches need ``"image"`` ``(B, R, R, 1) float32`` in ``[-1, 1]`` and ``"lesion_mask"``
    ``(B, R, R, 1) float32`` in ``{0, 1}``.
    """

    inputs_needed = ("lesion_mask",)
    default_optimizer = {"g_learning_rate": 1e-4, "d_learning_rate": 1e-4, "beta_1": 0.9, "beta_2": 0.999}

    def __init__(self, resolution: int, params: UNetParams, latent_dim: int = 128, seed: int = 0, **kwargs):
        net = UNet(params.base_filters, params.depth, params.batch_norm, params.dropout, seed=seed, name="generator")
        super().__init__(net, None, latent_dim, seed=seed, **kwargs)
        self.resolution = resolution
        self.params = params

    def build_networks(self) -> None:
        self.generator(ops.zeros((1, self.resolution, self.resolution, 1)), training=False)
        self.built = True

    def build_optimizers(self) -> None:
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build([])

    def call(self, images, training=False):
        return self.generator(images, training=training)

    def segment(self, images):
        """Lesion probabilities: ``(N, R, R, 1)`` float32 in ``[-1, 1]`` → ``(N, R, R, 1)`` float32 in ``[0, 1]``."""
        return ops.sigmoid(self.generator(images, training=False))

    def generate(self, latents=None, conditions: dict | None = None):
        """Predicted lesion masks as images: ``2·P(lesion) − 1``, ``(N, R, R, 1)`` float32 in ``[-1, 1]``.

        Args:
            latents: ignored (a segmenter draws no noise).
            conditions: ``{"image": (N, R, R, 1) float32 in [-1, 1]}``.

        Raises:
            ValueError: no ``"image"`` in ``conditions``.
        """
        if not conditions or conditions.get("image") is None:
            raise ValueError("unet: generate needs conditions={'image': films (N, R, R, 1) in [-1, 1]}")
        return self.segment(conditions["image"]) * 2.0 - 1.0

    def sample(self, latents, batch: dict | None = None):
        """Predicted masks of the first ``len(latents)`` films of the fixed real batch, in ``[-1, 1]``."""
        n = ops.shape(latents)[0]
        return self.generate(None, {"image": batch["image"][:n]})

    def _scores(self, data, training: bool):
        logits = self.generator(data["image"], training=training)
        loss = segmentation_bce_dice_loss(data["lesion_mask"], logits, self.params.dice_weight)
        dice, iou = _hard_scores(data["lesion_mask"], ops.sigmoid(logits), self.params.threshold)
        return loss, dice, iou

    def train_step(self, data):
        with tf.GradientTape() as tape:
            loss, dice, iou = self._scores(data, training=True)
            scaled = scaled_loss(self, self.g_optimizer, loss)
        apply_gradients(self.g_optimizer, tape, scaled, self.generator.trainable_variables)
        return {"loss": loss, "dice": dice, "iou": iou}

    def test_step(self, data):
        loss, dice, iou = self._scores(data, training=False)
        return {"loss": loss, "dice": dice, "iou": iou}

    def export_signatures(self) -> dict:
        """``serving_default``: ``image`` uint8 ``[N, R, R, 1]`` → ``mask`` uint8 ``{0, 255}``
        and ``probability`` float32 ``[0, 1]``, both ``[N, R, R, 1]``."""
        res, model, thr = self.resolution, self, self.params.threshold

        @tf.function(input_signature=[tf.TensorSpec([None, res, res, 1], tf.uint8, name="image")])
        def serving_default(image):
            x = tf.cast(image, tf.float32) / 127.5 - 1.0
            prob = model.segment(x)
            return {"mask": tf.cast(prob > thr, tf.uint8) * 255, "probability": prob}

        return {"serving_default": serving_default}


@register_model("unet", UNetParams, "Ronneberger et al. 2015 U-Net lesion segmenter (masks for seg-cdcgan)")
def build_unet(cfg, params: UNetParams, data_info=None) -> UNetSegmenter:
    res = single_resolution(cfg, "unet")
    if res % (1 << params.depth):
        raise ConfigError(f"model.params.depth: {params.depth} poolings need a resolution divisible by "
                          f"{1 << params.depth}; got {res}")
    return UNetSegmenter(res, params, latent_dim=cfg.model.latent_dim, seed=cfg.seed, name="unet")
