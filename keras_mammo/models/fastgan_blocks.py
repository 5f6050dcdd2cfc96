"""FastGAN's building blocks (Liu et al. 2021, "Towards Faster and Stabilized GAN Training
for High-fidelity Few-shot Image Synthesis", ICLR; ``odegeasslbc/FastGAN-pytorch``, ``models.py``).

- :func:`glu`, :func:`area_resize`: gated linear unit over channels; area down-sampling;
- :class:`SNConv2D`: a convolution with optional spectral normalization (Miyato et al. 2018);
- :class:`SkipLayerExcitation`: the skip-layer excitation (SLE) of §3.1, a low-resolution
  feature map gating a high-resolution one channel-wise;
- :class:`UpBlock`: the generator's up-sampling block (nearest ×2, conv, noise, BN, GLU);
- :class:`DownBlockComp`: the discriminator's down-sampling block (§3.2).

Feature maps are ``(N, H, W, C)`` float32; the networks are in :mod:`keras_mammo.models.fastgan`.
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops

from keras_mammo.models.blocks import NoiseInjection, dcgan_initializer


def glu(x):
    """Gated linear unit over channels ``a · σ(b)`` (Dauphin et al. 2017): ``(…, 2C)`` → ``(…, C)``."""
    a, b = ops.split(x, 2, axis=-1)
    return a * ops.sigmoid(b)


def area_resize(x, size: int):
    """Area-downsample ``(N, R, R, C)`` to ``(N, size, size, C)`` (``R`` a multiple of ``size``)."""
    r = int(x.shape[1])
    return x if r == size else ops.average_pool(x, r // size, r // size, padding="valid")


@keras.saving.register_keras_serializable("keras_mammo")
class SNConv2D(layers.Layer):
    """``k×k`` convolution with optional spectral normalization (Miyato et al. 2018, Alg. 1).

    The kernel is divided by its largest singular value σ, estimated by one power
    iteration per training call on the ``(k·k·C_in, filters)`` matrix; the vector ``u``
    is a non-trainable weight (saved in checkpoints) updated only when ``training``;
    gradients flow through σ (u, v held constant), as in PyTorch's ``spectral_norm``.

    ``(N, H, W, C_in)`` → ``(N, H/s, W/s, filters)`` (``padding`` ``"same"`` or ``"valid"``).
    """

    def __init__(self, filters: int, kernel_size: int = 3, strides: int = 1, padding: str = "same",
                 use_bias: bool = True, spectral_norm: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides, self.padding = filters, kernel_size, strides, padding
        self.use_bias, self.spectral_norm = use_bias, spectral_norm

    def build(self, input_shape):
        k, cin = self.kernel_size, int(input_shape[-1])
        self.kernel = self.add_weight(shape=(k, k, cin, self.filters), name="kernel",
                                      initializer=dcgan_initializer())
        self.bias = self.add_weight(shape=(self.filters,), name="bias", initializer="zeros") if self.use_bias else None
        if self.spectral_norm:
            self.u = self.add_weight(shape=(1, self.filters), name="sn_u", trainable=False,
                                     initializer=keras.initializers.RandomNormal(0.0, 1.0, seed=7))

    def normalized_kernel(self, training=False):
        w = ops.cast(self.kernel, "float32")
        if not self.spectral_norm:
            return w
        mat = ops.reshape(w, (-1, self.filters))                       # (k·k·C_in, filters)
        u = ops.cast(self.u, "float32")
        v = ops.stop_gradient(_l2n(ops.matmul(u, ops.transpose(mat))))  # (1, k·k·C_in)
        u_new = ops.stop_gradient(_l2n(ops.matmul(v, mat)))             # (1, filters)
        if training:
            self.u.assign(u_new)
        sigma = ops.sum(ops.matmul(v, mat) * u_new)
        return w / sigma

    def call(self, x, training=False):
        kernel = ops.cast(self.normalized_kernel(training), x.dtype)
        y = ops.conv(x, kernel, strides=self.strides, padding=self.padding)
        return y + ops.cast(self.bias, x.dtype) if self.bias is not None else y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "use_bias": self.use_bias,
                "spectral_norm": self.spectral_norm}


def _l2n(x, eps: float = 1e-12):
    return x * ops.rsqrt(ops.sum(ops.square(x)) + eps)


def batch_norm(name=None):
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


@keras.saving.register_keras_serializable("keras_mammo")
class SkipLayerExcitation(layers.Layer):
    """SLE (Liu et al. 2021, §3.1, Eq. 1): gate the large map's channels by the small map.

    ``call(small, big)``: ``small (N, q, q, C_s)``, ``big (N, 16q, 16q, C_b)`` →
    ``big · σ(conv 1×1(Swish(conv 4×4 valid(avgpool→4×4(small)))))``, ``(N, 16q, 16q, C_b)``.
    """

    def __init__(self, channels: int, sn: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.conv4 = SNConv2D(channels, 4, padding="valid", use_bias=False, spectral_norm=sn, name="conv4")
        self.conv1 = SNConv2D(channels, 1, padding="valid", use_bias=False, spectral_norm=sn, name="conv1")

    def call(self, small, big, training=False):
        s = area_resize(small, 4)
        gate = self.conv4(s, training=training)
        gate = gate * ops.sigmoid(gate)                                 # Swish
        gate = ops.sigmoid(self.conv1(gate, training=training))         # (N, 1, 1, C_b)
        return big * ops.cast(gate, big.dtype)


@keras.saving.register_keras_serializable("keras_mammo")
class UpBlock(layers.Layer):
    """``up ×2 (nearest) → conv 3×3 → [noise] → BN → GLU`` (× 2 convolutions for ``comp``).

    ``call(x, noise_seed)``: ``(N, H, W, C_in)`` → ``(N, 2H, 2W, filters)``. ``noise_seed``
    ``(2,) int64`` draws per-image noise; None uses one fixed map per layer.
    """

    def __init__(self, filters: int, comp: bool = False, noise: bool = True, sn: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.comp = filters, comp
        n = 2 if comp else 1
        self.convs = [SNConv2D(2 * filters, 3, use_bias=False, spectral_norm=sn, name=f"conv{i}") for i in range(n)]
        self.noises = [NoiseInjection(2 * filters, name=f"noise{i}") for i in range(n)] if comp and noise else []
        self.bns = [batch_norm(f"bn{i}") for i in range(n)]

    def call(self, x, training=False, noise_seed=None):
        x = ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2)
        for i, conv in enumerate(self.convs):
            x = conv(x, training=training)
            if self.noises:
                h, w = x.shape[1], x.shape[2]
                if noise_seed is None:  # one fixed map per layer
                    seed = tf.constant([0x5EED, 16 * int(h) + i], tf.int64)
                    noise = tf.random.stateless_normal((1, h, w, 1), seed=seed)
                else:
                    seed = tf.random.experimental.stateless_fold_in(tf.cast(noise_seed, tf.int64), i)
                    noise = tf.random.stateless_normal(tf.stack([tf.shape(x)[0], h, w, 1]), seed=seed)
                x = self.noises[i](x, noise)
            x = glu(self.bns[i](x, training=training))
        return x


@keras.saving.register_keras_serializable("keras_mammo")
class DownBlockComp(layers.Layer):
    """``(conv 4×4 s2 → BN → LReLU → conv 3×3 → BN → LReLU + avgpool → conv 1×1 → BN → LReLU) / 2``.

    ``(N, H, W, C_in)`` → ``(N, H/2, W/2, filters)`` (Liu et al. 2021, Fig. 4).
    """

    def __init__(self, filters: int, sn: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.c1 = SNConv2D(filters, 4, 2, use_bias=False, spectral_norm=sn, name="conv1")
        self.c2 = SNConv2D(filters, 3, use_bias=False, spectral_norm=sn, name="conv2")
        self.c3 = SNConv2D(filters, 1, use_bias=False, spectral_norm=sn, name="direct")
        self.b1, self.b2, self.b3 = batch_norm("bn1"), batch_norm("bn2"), batch_norm("bn3")

    def call(self, x, training=False):
        lrelu = lambda t: ops.leaky_relu(t, negative_slope=0.2)  # noqa: E731
        main = lrelu(self.b1(self.c1(x, training=training), training=training))
        main = lrelu(self.b2(self.c2(main, training=training), training=training))
        direct = lrelu(self.b3(self.c3(ops.average_pool(x, 2, 2), training=training), training=training))
        return (main + direct) / 2.0
