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


def fade_in_lazy(alpha, old_fn, new):
    """:func:`fade_in` that computes the old (faded-out) path only while it is visible.

    Once α = 1 (after a fade-in, and in stages without one) the blend equals ``new``, so
    the lower-resolution path is not computed: skipped while tracing when α is a known
    constant, else behind ``ops.cond(α < 1)`` (the result is identical either way; the
    skipped path's variables get zero gradients, as they do in the blend at α = 1).

    Args:
        alpha: scalar in ``[0, 1]`` (Python number, tensor or variable).
        old_fn: zero-argument callable returning the old path, same shape as ``new``.
        new: the new (higher-resolution) path.
    """
    import tensorflow as tf

    if isinstance(alpha, (int, float)):
        static = alpha
    elif isinstance(alpha, keras.Variable):  # a stored α: known only when running eagerly
        static = alpha.numpy() if tf.executing_eagerly() else None
    else:
        static = tf.get_static_value(alpha)
    if static is not None and float(static) >= 1.0:
        return new
    if static is not None:
        return fade_in(alpha, old_fn(), new)
    return ops.cond(ops.less(ops.cast(alpha, "float32"), 1.0), lambda: fade_in(alpha, old_fn(), new),
                    lambda: ops.cast(new, new.dtype))


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
        if training is False and self.kernel_size == 3 and self.conv.built:  # inference: at low resolution
            return self.act(upsample_conv3x3(x, self.conv, self.bn))
        x = self.conv(self.up(x))
        if self.bn is not None:
            x = self.bn(x, training=training)
        return self.act(x)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "batch_norm": self.batch_norm}


def upsample_conv3x3(x, conv, bn=None):
    """``bn(conv(UpSampling2D(2, "nearest")(x)))`` computed at the low resolution (inference).

    A nearest ×2 upsampling followed by a 3×3 ``"same"`` convolution gives each output
    pixel of phase ``(a, b)`` (row/column parity) a 2×2 combination of the *low-resolution*
    input, with the 3×3 taps summed pairwise: rows ``(w0, w1 + w2)`` at offsets
    ``(−1, 0)`` for even and ``(w0 + w1, w2)`` at ``(0, +1)`` for odd output rows, and
    likewise for columns (sub-pixel convolution, Shi et al. 2016, §2.2). So four 2×2
    convolutions of the zero-padded input, interleaved with ``depth_to_space``, replace
    the upsampling and the 3×3 convolution: 4 instead of 9 multiply-adds per output
    pixel and channel, and the 4× larger upsampled tensor is never built. Inference-mode
    batch normalization (moving statistics) is folded into the kernels and a bias. Each
    image's result does not depend on the batch it is in (forward convolutions only; a
    transposed convolution would be equivalent but is not batch-invariant on oneDNN), and
    equals the layer-by-layer path up to float rounding (about 1e-6 of the output's scale
    in float32; bfloat16 rounds the folded kernels once).

    Args:
        x: ``(N, H, W, C_in)`` in the conv's compute dtype.
        conv: a built ``Conv2D`` (3×3 kernel, stride 1, ``"same"`` padding, no dilation,
            no groups, channels last, linear activation; anything else takes the
            layer-by-layer path).
        bn: optional ``BatchNormalization`` applied after ``conv`` (inference statistics).

    Returns:
        ``(N, 2H, 2W, filters)`` in ``x``'s dtype.
    """
    import tensorflow as tf

    plain = (tuple(conv.kernel_size) == (3, 3) and tuple(conv.strides) == (1, 1) and conv.padding == "same"
             and tuple(conv.dilation_rate) == (1, 1) and getattr(conv, "groups", 1) == 1
             and conv.data_format == "channels_last" and conv.activation is keras.activations.linear
             and (bn is None or (bn.axis in (-1, 3) and bn.center and bn.scale)))
    if not plain:
        y = conv(ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2))
        return y if bn is None else bn(y, training=False)
    k = tf.cast(conv.kernel, tf.float32)                                       # (3, 3, C_in, C_out)
    bias = tf.cast(conv.bias, tf.float32) if conv.use_bias else tf.zeros([conv.filters], tf.float32)
    if bn is not None:
        inv = tf.cast(bn.gamma, tf.float32) * tf.math.rsqrt(tf.cast(bn.moving_variance, tf.float32) + bn.epsilon)
        k = k * inv
        bias = (bias - tf.cast(bn.moving_mean, tf.float32)) * inv + tf.cast(bn.beta, tf.float32)
    bias = tf.cast(bias, x.dtype)
    h, w = tf.shape(x)[1], tf.shape(x)[2]
    xp = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    phases = []
    for a, rows in enumerate((tf.stack([k[0], k[1] + k[2]]), tf.stack([k[0] + k[1], k[2]]))):   # (2, 3, C_in, C_out)
        for b, k2 in enumerate((tf.stack([rows[:, 0], rows[:, 1] + rows[:, 2]], axis=1),
                                tf.stack([rows[:, 0] + rows[:, 1], rows[:, 2]], axis=1))):   # (2, 2, C_in, C_out)
            y = tf.nn.conv2d(xp[:, a:a + h + 1, b:b + w + 1], tf.cast(k2, x.dtype), 1, "VALID")  # (N, H, W, C_out)
            phases.append(tf.nn.bias_add(y, bias))
    return tf.nn.depth_to_space(tf.concat(phases, axis=-1), 2)                # phase (a, b) → pixel (2i+a, 2j+b)


@keras.saving.register_keras_serializable("keras_mammo")
class DownsampleConvBlock(layers.Layer):
    """``Conv2D(k×k, stride 2) → LeakyReLU(0.2) → Dropout`` (Rahali 2025, §3.3).

    ``(N, H, W, C_in)`` → ``(N, H/2, W/2, filters)``.
    """

    def __init__(self, filters: int, kernel_size: int = 3, dropout: float = 0.2, seed: int | None = None,
                 spectral_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.dropout_rate = filters, kernel_size, dropout
        self.conv = spectral(layers.Conv2D(filters, kernel_size, strides=2, padding="same"), spectral_norm)
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


def from_grayscale(filters: int, name: str, spectral_norm: bool = False) -> keras.Sequential:
    """ProGAN "fromRGB" for one channel: ``Conv2D(filters, 1×1) → LeakyReLU(0.2)``."""
    return keras.Sequential([spectral(layers.Conv2D(filters, 1, padding="same"), spectral_norm),
                             layers.LeakyReLU(negative_slope=0.2)], name=name)


def spectral(layer: layers.Layer, enabled: bool = True) -> layers.Layer:
    """``layer`` wrapped in spectral normalization when ``enabled`` (Miyato et al. 2018, §2.1).

    Uses ``keras.layers.SpectralNormalization`` (one power iteration per training call):
    the kernel is divided by its largest singular value before each training forward pass.
    """
    return layers.SpectralNormalization(layer) if enabled else layer


# ---------------------------------------------------------------------------------------
# Blocks of the other published generators (DCGAN, StyleGAN, U-Net, seg-cdcgan, pix2pix).
# ---------------------------------------------------------------------------------------

def dcgan_initializer(seed: int | None = None) -> keras.initializers.Initializer:
    """Weights ``N(0, 0.02)`` (Radford et al. 2016, §4 "Details of adversarial training")."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02, seed=seed)


@keras.saving.register_keras_serializable("keras_mammo")
class ConvNormAct(layers.Layer):
    """``Conv2D`` or ``Conv2DTranspose`` → optional normalization → activation → optional dropout.

    The building brick of DCGAN (Radford et al. 2016, §3), the WGAN-GP critic
    (Gulrajani et al. 2017, §4: no batch normalization), and pix2pix's ``Ck`` / ``CDk``
    blocks (Isola et al. 2017, §6.1.1: Convolution-BatchNorm-ReLU, dropout 50 %).

    ``(N, H, W, C_in)`` → ``(N, H·s, W·s, filters)`` for ``transpose=True`` and stride
    ``s``, else ``(N, H/s, W/s, filters)`` (``"same"`` padding).

    Args:
        filters: output channels.
        kernel_size: square kernel side (5 in DCGAN, 4 in pix2pix).
        strides: stride (2 halves or, transposed, doubles the side).
        transpose: fractionally-strided (transposed) convolution.
        norm: ``"batch"``, ``"layer"`` (over H, W, C per image), ``"instance"`` or ``None``.
        activation: ``"relu"``, ``"lrelu"`` (slope 0.2), ``"tanh"`` or ``None`` (linear).
        dropout: dropout rate after the activation (0 = none).
        seed: dropout / initializer seed.
        dcgan_init: initialize the kernel with ``N(0, 0.02)`` (else Glorot uniform).
        spectral_norm: spectral normalization of the kernel (Miyato et al. 2018).

    Raises:
        ValueError: unknown ``norm`` or ``activation``.
    """

    NORMS = ("batch", "layer", "instance", None)
    ACTIVATIONS = ("relu", "lrelu", "tanh", None)

    def __init__(self, filters: int, kernel_size: int = 3, strides: int = 1, transpose: bool = False,
                 norm: str | None = None, activation: str | None = "lrelu", dropout: float = 0.0,
                 seed: int | None = None, dcgan_init: bool = True, spectral_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        if norm not in self.NORMS:
            raise ValueError(f"norm must be one of {self.NORMS}, got {norm!r}")
        if activation not in self.ACTIVATIONS:
            raise ValueError(f"activation must be one of {self.ACTIVATIONS}, got {activation!r}")
        self.filters, self.kernel_size, self.strides = filters, kernel_size, strides
        self.transpose, self.norm, self.activation = transpose, norm, activation
        self.dropout_rate, self.seed, self.dcgan_init = dropout, seed, dcgan_init
        conv = layers.Conv2DTranspose if transpose else layers.Conv2D
        init = dcgan_initializer(seed) if dcgan_init else "glorot_uniform"
        self.conv = spectral(conv(filters, kernel_size, strides=strides, padding="same", use_bias=norm != "batch",
                                  kernel_initializer=init), spectral_norm)
        if norm == "batch":
            self.norm_layer = layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
        elif norm == "layer":
            self.norm_layer = layers.LayerNormalization(axis=[-3, -2, -1], epsilon=1e-5)
        elif norm == "instance":
            self.norm_layer = layers.GroupNormalization(groups=-1, epsilon=1e-5)
        else:
            self.norm_layer = None
        self.drop = layers.Dropout(dropout, seed=seed) if dropout > 0 else None

    def call(self, x, training=False):
        x = self.conv(x)
        if self.norm_layer is not None:
            x = self.norm_layer(x, training=training) if self.norm == "batch" else self.norm_layer(x)
        if self.activation == "relu":
            x = ops.relu(x)
        elif self.activation == "lrelu":
            x = ops.leaky_relu(x, negative_slope=0.2)
        elif self.activation == "tanh":
            x = ops.tanh(x)
        if self.drop is not None:
            x = self.drop(x, training=training)
        return x

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "transpose": self.transpose, "norm": self.norm,
                "activation": self.activation, "dropout": self.dropout_rate, "seed": self.seed,
                "dcgan_init": self.dcgan_init}


@keras.saving.register_keras_serializable("keras_mammo")
class DoubleConv(layers.Layer):
    """Two ``Conv2D 3×3 → (BatchNormalization) → ReLU`` (Ronneberger et al. 2015, §2).

    ``(N, H, W, C_in)`` → ``(N, H, W, filters)``. Unlike the paper's unpadded
    convolutions, padding is ``"same"`` so the output mask has the input's size and
    no overlap-tile strategy is needed.
    """

    def __init__(self, filters: int, batch_norm: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.batch_norm = filters, batch_norm
        self.convs = [layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm,
                                    kernel_initializer="he_normal") for _ in range(2)]
        self.norms = [layers.BatchNormalization(momentum=0.9, epsilon=1e-5) for _ in range(2)] if batch_norm else []

    def call(self, x, training=False):
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if self.norms:
                x = self.norms[i](x, training=training)
            x = ops.relu(x)
        return x

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "batch_norm": self.batch_norm}


def downsample_mask(mask, size: int):
    """Area-downsample a ``(N, R, R, C)`` mask to ``(N, size, size, C)`` (``R`` a multiple of ``size``).

    Values stay in ``[0, 1]``: a pixel holds the lesion fraction of the area it covers.
    """
    r = int(mask.shape[1])
    if r == size:
        return mask
    k = r // size
    return ops.average_pool(mask, pool_size=k, strides=k, padding="valid")


# --- StyleGAN (Karras et al. 2019) and ProGAN (Karras et al. 2018) ----------------------

def pixel_norm(x, epsilon: float = 1e-8):
    """Pixelwise feature-vector normalization ``x / sqrt(mean(x², channels) + ε)`` (Karras et al. 2018, §4.2).

    StyleGAN normalizes the latent vector z with it before the mapping network.
    """
    return x * ops.rsqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + epsilon)


@keras.saving.register_keras_serializable("keras_mammo")
class EqualizedDense(layers.Layer):
    """Fully connected layer with equalized learning rate (Karras et al. 2018, §4.1).

    Weights are stored as ``N(0, 1 / lr_mul)`` and multiplied at run time by
    ``c = gain / sqrt(fan_in) · lr_mul`` (He's constant), so every weight learns at the
    same speed under Adam; the bias is stored ``/ lr_mul``. ``lr_mul = 0.01`` gives
    StyleGAN's mapping network its 100× lower learning rate (Karras et al. 2019, App. C).

    ``(N, fan_in)`` → ``(N, units)``.
    """

    def __init__(self, units: int, gain: float = 2.0 ** 0.5, lr_mul: float = 1.0, bias_init: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.units, self.gain, self.lr_mul, self.bias_init = units, gain, lr_mul, bias_init

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        self.scale = self.gain / fan_in ** 0.5 * self.lr_mul
        self.kernel = self.add_weight(shape=(fan_in, self.units), name="kernel",
                                      initializer=keras.initializers.RandomNormal(0.0, 1.0 / self.lr_mul))
        self.bias = self.add_weight(shape=(self.units,), name="bias",
                                    initializer=keras.initializers.Constant(self.bias_init / self.lr_mul))

    def call(self, x):
        return ops.matmul(x, self.kernel * self.scale) + self.bias * self.lr_mul

    def get_config(self):
        return {**super().get_config(), "units": self.units, "gain": self.gain, "lr_mul": self.lr_mul,
                "bias_init": self.bias_init}


@keras.saving.register_keras_serializable("keras_mammo")
class EqualizedConv2D(layers.Layer):
    """``k×k`` convolution, stride 1, ``"same"`` padding, with equalized learning rate (Karras et al. 2018, §4.1).

    Kernel stored ``N(0, 1)``, scaled at run time by ``gain / sqrt(k·k·C_in)``.
    ``(N, H, W, C_in)`` → ``(N, H, W, filters)``.
    """

    def __init__(self, filters: int, kernel_size: int = 3, gain: float = 2.0 ** 0.5, use_bias: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.gain, self.use_bias = filters, kernel_size, gain, use_bias

    def build(self, input_shape):
        cin = int(input_shape[-1])
        k = self.kernel_size
        self.scale = self.gain / (k * k * cin) ** 0.5
        self.kernel = self.add_weight(shape=(k, k, cin, self.filters), name="kernel",
                                      initializer=keras.initializers.RandomNormal(0.0, 1.0))
        self.bias = self.add_weight(shape=(self.filters,), name="bias", initializer="zeros") if self.use_bias else None

    def call(self, x):
        y = ops.conv(x, self.kernel * ops.cast(self.scale, self.kernel.dtype), strides=1, padding="same")
        return y + self.bias if self.bias is not None else y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "gain": self.gain, "use_bias": self.use_bias}


def instance_norm(x, epsilon: float = 1e-8):
    """Normalize each feature map of each image to zero mean and unit variance over ``(H, W)``."""
    mean = ops.mean(x, axis=(1, 2), keepdims=True)
    var = ops.mean(ops.square(x - mean), axis=(1, 2), keepdims=True)
    return (x - mean) * ops.rsqrt(var + epsilon)


@keras.saving.register_keras_serializable("keras_mammo")
class AdaIN(layers.Layer):
    """Adaptive instance normalization driven by a style (Karras et al. 2019, §2, Eq. 1).

    ``AdaIN(x_i, y) = y_s,i · (x_i − μ(x_i)) / σ(x_i) + y_b,i`` where the style
    ``y = (y_s, y_b)`` is a learned affine transform "A" of the intermediate latent
    ``w``: ``y_s = 1 + A_s(w)``, ``y_b = A_b(w)`` (the +1 centres the scale at identity,
    as in the official code). μ and σ are per image and per channel over ``(H, W)``.

    ``call(x, w)``: ``x (N, H, W, channels)``, ``w (N, w_dim)`` → ``(N, H, W, channels)``.
    """

    def __init__(self, channels: int, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.epsilon = channels, epsilon
        self.affine = EqualizedDense(2 * channels, gain=1.0, name="affine")

    def style(self, w):
        """``(y_s, y_b)``, each ``(N, channels)``, from ``w (N, w_dim)``."""
        y = self.affine(w)
        return 1.0 + y[:, : self.channels], y[:, self.channels:]

    def call(self, x, w):
        y_s, y_b = self.style(w)
        return instance_norm(x, self.epsilon) * y_s[:, None, None, :] + y_b[:, None, None, :]

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable("keras_mammo")
class NoiseInjection(layers.Layer):
    """Per-pixel noise scaled by learned per-channel factors "B" (Karras et al. 2019, §3.2).

    ``call(x, noise)``: ``x (N, H, W, channels)`` + ``noise (N or 1, H, W, 1) ~ N(0, 1)`` ×
    ``weight (channels,)`` (initialized to 0) → ``(N, H, W, channels)``.
    """

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.weight = self.add_weight(shape=(channels,), name="weight", initializer="zeros")

    def call(self, x, noise):
        return x + ops.cast(noise, x.dtype) * self.weight

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable("keras_mammo")
class MinibatchStdDev(layers.Layer):
    """Minibatch standard deviation feature map (Karras et al. 2018, §3; StyleGAN's group form).

    Images are split into groups of ``group_size`` (the whole batch when the batch is
    not a multiple of it); for each group the standard deviation of every feature over
    the group is averaged over ``(H, W, C)`` and appended as one constant channel.

    ``(N, H, W, C)`` → ``(N, H, W, C + 1)``.
    """

    def __init__(self, group_size: int = 4, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.group_size, self.epsilon = group_size, epsilon

    def call(self, x):
        shape = ops.shape(x)
        n, h, w, c = shape[0], shape[1], shape[2], shape[3]
        g = ops.minimum(self.group_size, n)
        g = ops.where(ops.equal(n % g, 0), g, n)
        y = ops.reshape(x, (g, -1, h, w, c))                      # (G, M, H, W, C), image = g·M + m
        y = y - ops.mean(y, axis=0, keepdims=True)
        y = ops.sqrt(ops.mean(ops.square(y), axis=0) + self.epsilon)  # (M, H, W, C)
        y = ops.mean(y, axis=(1, 2, 3))                               # (M,)
        y = ops.tile(ops.reshape(y, (-1, 1, 1, 1)), (g, h, w, 1))     # (N, H, W, 1)
        return ops.concatenate([x, ops.cast(y, x.dtype)], axis=-1)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size, "epsilon": self.epsilon}


def upsample2x(x):
    """Nearest-neighbour ×2 upsampling: ``(N, H, W, C)`` → ``(N, 2H, 2W, C)``."""
    return ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2)


def downsample2x(x):
    """2×2 average pooling: ``(N, H, W, C)`` → ``(N, H/2, W/2, C)``."""
    return ops.average_pool(x, 2, 2)
