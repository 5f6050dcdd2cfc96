"""Backbone features cached per image set.

Extracting 2048-d features is the slow step of the utility experiments (a few images
per second per CPU core); the SVMs that follow take milliseconds. Features are therefore
computed once per *image set* (all real patches; one set of generated patches) and
stored as ``<cache>/<set name>-<key>.npz``. The key is the sha256 of the backbone's
:meth:`~keras_mammo.utility.backbones.Backbone.identity` and of the pixels themselves
(quantized to 16 bits), so a changed patch, resize, backbone or weights file never
reuses stale features.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from keras_mammo.utility.backbones import Backbone
from keras_mammo.utils import atomic_path


def image_set_key(images: np.ndarray, backbone: Backbone) -> str:
    """Hex sha256 of the backbone identity and the images' 16-bit pixels and shape.

    Args:
        images: ``(N, H, W) float32`` in ``[0, 1]``.
    """
    arr = np.asarray(images, np.float32)
    h = hashlib.sha256()
    h.update(json.dumps(backbone.identity(), sort_keys=True).encode())
    h.update(repr(arr.shape).encode())
    h.update(np.rint(np.clip(arr, 0.0, 1.0) * 65535.0).astype("<u2").tobytes())
    return h.hexdigest()


def cached_features(images: np.ndarray, backbone: Backbone, cache_dir: str | Path | None, name: str,
                    batch_size: int = 32, progress: bool = True) -> tuple[np.ndarray, dict]:
    """Features of an image set, read from the cache when present, else computed and stored.

    Args:
        images: ``(N, H, W) float32`` in ``[0, 1]``.
        backbone: the feature extractor.
        cache_dir: folder of ``.npz`` caches; ``None`` disables caching.
        name: the image set's name (file-name prefix; letters, digits, ``-_.``).
        batch_size: images per forward pass.
        progress: tqdm bar during extraction.

    Returns:
        ``(features (N, D) float64, info)`` with ``info = {"key", "path", "cached": bool,
        "n": N}``.
    """
    key = image_set_key(images, backbone)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    path = None if cache_dir is None else Path(cache_dir) / f"{safe}-{key[:16]}.npz"
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["key"]) == key and z["features"].shape[0] == len(images):
                    return z["features"].astype(np.float64), {"key": key, "path": str(path), "cached": True,
                                                              "n": int(len(images))}
        except (OSError, KeyError, ValueError):
            pass  # unreadable cache: recompute and overwrite
    feats = np.asarray(backbone.features(images, batch_size=batch_size, progress=progress), np.float64)
    if path is not None:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, features=feats, key=np.array(key),
                     identity=np.array(json.dumps(backbone.identity(), sort_keys=True)))
    return feats, {"key": key, "path": None if path is None else str(path), "cached": False, "n": int(len(images))}
