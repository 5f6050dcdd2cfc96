"""The FID Inception network (TF "inception-2015-12-05", pool_3) as a Keras graph.

The port (:func:`build_fid_inception`) is the Inception-v3 graph of
``keras.applications.InceptionV3(include_top=False, pooling="avg")`` (Szegedy et al.
2016) with two details of the 2015 graph: the pooling branch of the last block
(``mixed_10``) is a 3×3 *max* pool (stride 1, same padding), and the 3×3 average pools
of the other blocks exclude the padding from the mean (``count_include_pad=False``,
which is what TensorFlow's ``AvgPool`` with ``SAME`` padding does). Each convolution's
batch normalization (no scale, ε = :data:`BN_EPSILON`) is folded into the convolution's
kernel and bias (:mod:`keras_mammo.metrics.inception_weights`).

Part of :mod:`keras_mammo.metrics.inception` (which re-exports everything here).
"""
from __future__ import annotations

import functools

import numpy as np

#: Input side in pixels.
INPUT_SIZE = 299
#: Feature dimension (pool_3).
FEATURE_DIM = 2048
#: Batch-norm ε of the 2015 graph (folded into the convolutions).
BN_EPSILON = 1e-3


def _conv(x, filters: int, kernel: tuple[int, int], name: str, strides: int = 1, padding: str = "same"):
    """Conv + folded batch norm + ReLU: the ``BasicConv2d`` unit of Inception-v3."""
    import keras

    return keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=True,
                               activation="relu", name=name)(x)


def _avg_pool_3x3(x, name: str):
    # TF's AvgPool with SAME padding divides by the number of *valid* inputs
    # (count_include_pad=False), as in the 2015 graph.
    import keras

    return keras.layers.AveragePooling2D(3, strides=1, padding="same", name=name)(x)


def _block_35(x, p: str, pool_filters: int):
    """mixed, mixed_1, mixed_2: 35 × 35 blocks (Szegedy et al. 2016, Fig. 5)."""
    import keras

    b1 = _conv(x, 64, (1, 1), f"{p}.conv")
    b2 = _conv(x, 48, (1, 1), f"{p}.tower.conv")
    b2 = _conv(b2, 64, (5, 5), f"{p}.tower.conv_1")
    b3 = _conv(x, 64, (1, 1), f"{p}.tower_1.conv")
    b3 = _conv(b3, 96, (3, 3), f"{p}.tower_1.conv_1")
    b3 = _conv(b3, 96, (3, 3), f"{p}.tower_1.conv_2")
    b4 = _avg_pool_3x3(x, f"{p}.tower_2.pool")
    b4 = _conv(b4, pool_filters, (1, 1), f"{p}.tower_2.conv")
    return keras.layers.Concatenate(name=p)([b1, b2, b3, b4])


def _reduce_35_to_17(x, p: str):
    """mixed_3: grid reduction 35 → 17."""
    import keras

    b1 = _conv(x, 384, (3, 3), f"{p}.conv", strides=2, padding="valid")
    b2 = _conv(x, 64, (1, 1), f"{p}.tower.conv")
    b2 = _conv(b2, 96, (3, 3), f"{p}.tower.conv_1")
    b2 = _conv(b2, 96, (3, 3), f"{p}.tower.conv_2", strides=2, padding="valid")
    b3 = keras.layers.MaxPooling2D(3, strides=2, name=f"{p}.pool")(x)
    return keras.layers.Concatenate(name=p)([b1, b2, b3])


def _block_17(x, p: str, c: int):
    """mixed_4 … mixed_7: 17 × 17 blocks with factorized 7 × 7 convolutions (Fig. 6)."""
    import keras

    b1 = _conv(x, 192, (1, 1), f"{p}.conv")
    b2 = _conv(x, c, (1, 1), f"{p}.tower.conv")
    b2 = _conv(b2, c, (1, 7), f"{p}.tower.conv_1")
    b2 = _conv(b2, 192, (7, 1), f"{p}.tower.conv_2")
    b3 = _conv(x, c, (1, 1), f"{p}.tower_1.conv")
    b3 = _conv(b3, c, (7, 1), f"{p}.tower_1.conv_1")
    b3 = _conv(b3, c, (1, 7), f"{p}.tower_1.conv_2")
    b3 = _conv(b3, c, (7, 1), f"{p}.tower_1.conv_3")
    b3 = _conv(b3, 192, (1, 7), f"{p}.tower_1.conv_4")
    b4 = _avg_pool_3x3(x, f"{p}.tower_2.pool")
    b4 = _conv(b4, 192, (1, 1), f"{p}.tower_2.conv")
    return keras.layers.Concatenate(name=p)([b1, b2, b3, b4])


def _reduce_17_to_8(x, p: str):
    """mixed_8: grid reduction 17 → 8."""
    import keras

    b1 = _conv(x, 192, (1, 1), f"{p}.tower.conv")
    b1 = _conv(b1, 320, (3, 3), f"{p}.tower.conv_1", strides=2, padding="valid")
    b2 = _conv(x, 192, (1, 1), f"{p}.tower_1.conv")
    b2 = _conv(b2, 192, (1, 7), f"{p}.tower_1.conv_1")
    b2 = _conv(b2, 192, (7, 1), f"{p}.tower_1.conv_2")
    b2 = _conv(b2, 192, (3, 3), f"{p}.tower_1.conv_3", strides=2, padding="valid")
    b3 = keras.layers.MaxPooling2D(3, strides=2, name=f"{p}.pool")(x)
    return keras.layers.Concatenate(name=p)([b1, b2, b3])


def _block_8(x, p: str, max_pool: bool):
    """mixed_9, mixed_10: 8 × 8 blocks with expanded filter banks (Fig. 7).

    The 2015 graph's ``mixed_10`` pools with a 3 × 3 max pool, the others with an
    average pool.
    """
    import keras

    b1 = _conv(x, 320, (1, 1), f"{p}.conv")
    a = _conv(x, 384, (1, 1), f"{p}.tower_conv")
    a1 = _conv(a, 384, (1, 3), f"{p}.tower_mixed_conv")
    a2 = _conv(a, 384, (3, 1), f"{p}.tower_mixed_conv_1")
    b = _conv(x, 448, (1, 1), f"{p}.tower_1_conv")
    b = _conv(b, 384, (3, 3), f"{p}.tower_1_conv_1")
    b1_ = _conv(b, 384, (1, 3), f"{p}.tower_1_mixed_conv")
    b2_ = _conv(b, 384, (3, 1), f"{p}.tower_1_mixed_conv_1")
    if max_pool:
        pool = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"{p}.tower_2_pool")(x)
    else:
        pool = _avg_pool_3x3(x, f"{p}.tower_2_pool")
    pool = _conv(pool, 192, (1, 1), f"{p}.tower_2_conv")
    return keras.layers.Concatenate(name=p)([b1, a1, a2, b1_, b2_, pool])


def build_fid_inception():
    """The FID Inception-v3 graph with uninitialized weights.

    Layer names are the TorchScript module paths (``mixed_4.tower_1.conv_2``), which
    is how :func:`convert_fid_inception` matches weights.

    Returns:
        ``keras.Model``: ``(N, 299, 299, 3) float32`` in ``[-1, 1]`` (``uint8 / 128 − 1``)
        → ``(N, 2048) float32`` pool_3 features (non-negative).
    """
    import keras

    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="images")
    x = _conv(inputs, 32, (3, 3), "conv", strides=2, padding="valid")     # 149 × 149 × 32
    x = _conv(x, 32, (3, 3), "conv_1", padding="valid")                    # 147 × 147 × 32
    x = _conv(x, 64, (3, 3), "conv_2")                                     # 147 × 147 × 64
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool0")(x)           # 73 × 73 × 64
    x = _conv(x, 80, (1, 1), "conv_3", padding="valid")                    # 73 × 73 × 80
    x = _conv(x, 192, (3, 3), "conv_4", padding="valid")                   # 71 × 71 × 192
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1")(x)           # 35 × 35 × 192
    x = _block_35(x, "mixed", 32)                                          # 35 × 35 × 256
    x = _block_35(x, "mixed_1", 64)                                        # 35 × 35 × 288
    x = _block_35(x, "mixed_2", 64)                                        # 35 × 35 × 288
    x = _reduce_35_to_17(x, "mixed_3")                                     # 17 × 17 × 768
    x = _block_17(x, "mixed_4", 128)
    x = _block_17(x, "mixed_5", 160)
    x = _block_17(x, "mixed_6", 160)
    x = _block_17(x, "mixed_7", 192)                                       # 17 × 17 × 768
    x = _reduce_17_to_8(x, "mixed_8")                                      # 8 × 8 × 1280
    x = _block_8(x, "mixed_9", max_pool=False)                             # 8 × 8 × 2048
    x = _block_8(x, "mixed_10", max_pool=True)                             # 8 × 8 × 2048
    x = keras.layers.GlobalAveragePooling2D(name="pool_3")(x)              # 2048
    return keras.Model(inputs, x, name="fid_inception_2015_12_05")


# --------------------------------------------------------------------------- forward pass


@functools.lru_cache(maxsize=8)
def _compiled_forward(model):
    import tensorflow as tf

    spec = tf.TensorSpec((None, INPUT_SIZE, INPUT_SIZE, 3), tf.float32)
    return tf.function(lambda x: tf.cast(model(x, training=False), tf.float32), input_signature=[spec])


def _predict(model, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    fwd = _compiled_forward(model)
    outs = [np.asarray(fwd(x[s:s + batch_size])) for s in range(0, len(x), batch_size)]
    return np.concatenate(outs).astype(np.float64) if outs else np.zeros((0, FEATURE_DIM))
