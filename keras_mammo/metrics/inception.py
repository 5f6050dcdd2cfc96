"""The FID Inception network (TF "inception-2015-12-05", pool_3) ported to Keras; FID features.

Fréchet Inception Distance (Heusel et al. 2017, §3 and their reference code) and
Kernel Inception Distance (Bińkowski et al. 2018, §4) are defined on the 2048-d
``pool_3`` features of one particular network: the TensorFlow graph
``inception-2015-12-05`` released with the 2015 Inception-v3 paper (Szegedy et al.
2016). The original FID code, pytorch-fid, clean-fid and StyleGAN's metrics all use it.
Keras' ``InceptionV3(weights="imagenet")`` is a *different* network (retrained weights,
average pool in the last block) and gives different FIDs; it must not be used.

This module is the public entry point (:func:`inception_features`) and re-exports its
three parts:

- :mod:`keras_mammo.metrics.inception_net`: the network (:func:`build_fid_inception`)
  and its traced forward pass;
- :mod:`keras_mammo.metrics.inception_input`: images → network input, with clean-fid's
  resize filter (:func:`prepare_inception_input`, :func:`resize_299_batch`);
- :mod:`keras_mammo.metrics.inception_weights`: converting the TorchScript reference,
  verifying and caching the weights, loading them (:func:`load_fid_inception`,
  :func:`convert_fid_inception`, :class:`FIDWeightsError`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keras_mammo.metrics.inception_input import (  # noqa: F401
    RESIZE_FILTER,
    _as_float255,
    _batched_resize,
    prepare_inception_input,
    resize_299,
    resize_299_batch,
)
from keras_mammo.metrics.inception_net import (  # noqa: F401
    BN_EPSILON,
    FEATURE_DIM,
    INPUT_SIZE,
    _compiled_forward,
    _predict,
    build_fid_inception,
)
from keras_mammo.metrics.inception_weights import (  # noqa: F401
    INSTALL_HINT,
    PORT_TOLERANCE,
    PORT_VERSION,
    TORCHSCRIPT_BYTES,
    TORCHSCRIPT_SHA256,
    WEIGHTS_NAME,
    FIDWeightsError,
    cache_dir,
    convert_fid_inception,
    default_torchscript_path,
    fid_weights_status,
    load_fid_inception,
    sha256_file,
    torch_available,
    torchscript_features,
    verification_images,
    weights_info,
    weights_path,
)


# --------------------------------------------------------------------------- features


def inception_features(images, batch_size: int = 32, progress: bool = True, model=None,
                       precision: str = "float32") -> np.ndarray:
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
        precision: when ``model`` is None: ``"float32"`` (reference) or ``"bfloat16"``
            (about 3× faster on AMX CPUs; opt-in, see :func:`load_fid_inception`).

    Returns:
        ``(N, 2048) float64``, non-negative.

    Raises:
        ValueError: bad shape, dtype or value range.
        FIDWeightsError: see :func:`load_fid_inception`.
    """
    from tqdm.auto import tqdm

    model = model if model is not None else load_fid_inception(precision=precision)
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
