"""Building blocks shared by several generators and discriminators.

Shapes are written as ``(N, H, W, C)`` (channels last, as Keras on TensorFlow).
"""
from __future__ import annotations

import keras
from keras import layers, ops


def fade_in(alpha, old, new):
    """Progressive-growing blend ``(1 − α)·old + α·new`` (Karras et al. 2018, §3, Fig. 2).

    Args:
        alpha: scalar in ``[0, 1]``; 0 = only the old (lower-resolution) path.
        old, new: tensors of the same shape.
    """
    alpha = ops.cast(alpha, new.dtype)
    return (1.0 - alpha) * ops.cast(old, new.dtype) + alpha * new


@keras.saving.register_keras_serializable("keras_mammo")
class UpsampleConvBlock(layers.Layer):
    """``UpSampling2D(2) → Conv2D(k×k) → BatchNormalization → ReLU`` (Rahali 2025, §3.3).

    ``(N, H, W, C_in)`` → ``(N, 2H, 2W, filters)``.
    """

    def __init__(self, filters: int, kernel_size: int = 3, batch_norm: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.batch_norm = filters, kernel_size, batch_norm
        self.up = layers.UpSampling2D(2, interpolation="nearest")
        self.conv = layers.Conv2D(filters, kernel_size, padding="same", use_bias=not batch_norm)
        self.bn = layers.BatchNormalization(momentum=0.9, epsilon=1e-5) if batch_norm else None
        self.act = layers.ReLU()

    def call(self, x, training=False):
        x = self.conv(self.up(x))
        if self.bn is not None:
            x = self.bn(x, training=training)
        return self.act(x)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "batch_norm": self.batch_norm}


@keras.saving.register_keras_serializable("keras_mammo")
class DownsampleConvBlock(layers.Layer):
    """``Conv2D(k×k, stride 2) → LeakyReLU(0.2) → Dropout`` (Rahali 2025, §3.3).

    ``(N, H, W, C_in)`` → ``(N, H/2, W/2, filters)``.
    """

    def __init__(self, filters: int, kernel_size: int = 3, dropout: float = 0.2, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.dropout_rate = filters, kernel_size, dropout
        self.conv = layers.Conv2D(filters, kernel_size, strides=2, padding="same")
        self.act = layers.LeakyReLU(negative_slope=0.2)
        self.drop = layers.Dropout(dropout, seed=seed) if dropout > 0 else None

    def call(self, x, training=False):
        x = self.act(self.conv(x))
        if self.drop is not None:
            x = self.drop(x, training=training)
        return x

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "dropout": self.dropout_rate}


def to_grayscale(name: str) -> layers.Layer:
    """ProGAN "toRGB" for one channel: ``Conv2D(1, 1×1)``, linear (tanh is applied after any blend)."""
    return layers.Conv2D(1, 1, padding="same", name=name)


def from_grayscale(filters: int, name: str) -> keras.Sequential:
    """ProGAN "fromRGB" for one channel: ``Conv2D(filters, 1×1) → LeakyReLU(0.2)``."""
    return keras.Sequential([layers.Conv2D(filters, 1, padding="same"), layers.LeakyReLU(negative_slope=0.2)], name=name)
