"""Inception features of an image set, cached on disk by content.

The cache key is the sha256 of the set's pixels at the evaluation resolution
(:meth:`ImageSet.content_key`), the network's weights hash and port version, the
resize filter and (when not float32) the network's compute precision, so a second
evaluation against the same real set reads its features instead of recomputing them,
and any change of pixels, size, network or precision misses the cache.
Files: ``<cache>/features/<key>.npz`` (``features (N, 2048) float64``, ``ids``).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from keras_mammo.metrics import inception
from keras_mammo.metrics.imagesets import ImageSet


def feature_cache_key(image_set: ImageSet, precision: str = "float32") -> str:
    """Key of ``image_set``'s features (see the module docstring). Loads the network's sidecar.

    float32 keys are those of earlier versions (the precision is not hashed), so existing
    caches stay valid; a bfloat16 network's features get keys of their own.
    """
    info = inception.weights_info() or {}
    h = hashlib.sha256()
    for part in (image_set.content_key(), str(info.get("sha256")), str(inception.PORT_VERSION),
                 inception.RESIZE_FILTER, *([] if precision == "float32" else [precision])):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def set_features(image_set: ImageSet, cache_dir: str | Path | None | bool = None, batch_size: int = 32,
                 progress: bool = True, precision: str = "float32") -> tuple[np.ndarray, bool]:
    """pool_3 features of every image of a set, from the cache when possible.

    Args:
        image_set: the images (``(N, S, S) float32`` in [0, 1]).
        cache_dir: cache root (default :func:`keras_mammo.metrics.inception.cache_dir`);
            ``False`` disables the cache.
        batch_size: images per forward pass.
        progress: progress bar while extracting.
        precision: the network's compute dtype, ``"float32"`` (the reference) or
            ``"bfloat16"`` (see :func:`keras_mammo.metrics.inception.load_fid_inception`).

    Returns:
        ``(features (N, 2048) float64, from_cache: bool)``.

    Raises:
        FIDWeightsError: the network is unavailable (see :func:`load_fid_inception`).
        ValueError: unknown ``precision``.
    """
    model = inception.load_fid_inception(precision=precision)   # converts on first use: the key names real weights
    if cache_dir is False:
        return inception.inception_features(image_set.images, batch_size, progress, model=model), False
    root = Path(cache_dir) if cache_dir not in (None, True) else inception.cache_dir()
    path = root / "features" / f"{feature_cache_key(image_set, precision)}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                feats = data["features"]
            if feats.shape == (len(image_set), inception.FEATURE_DIM):
                return feats.astype(np.float64), True
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache entry: recompute and overwrite
    feats = inception.inception_features(image_set.images, batch_size, progress, model=model)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".features-", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, features=feats, ids=np.array(image_set.ids, dtype=str))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return feats, False
