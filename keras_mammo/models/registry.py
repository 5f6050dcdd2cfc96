"""Model registry: ``keras-mammo train --model NAME`` looks models up here.

A model module registers a builder with :func:`register_model`; the builder takes the
run's :class:`~keras_mammo.config.Config` and returns a
:class:`keras_mammo.models.gan.GAN` (a ``keras.Model`` that owns its networks).
Model-specific settings (``model.params`` in the YAML) are validated against the
dataclass given at registration, so a bad key names ``model.params.<key>``. The
declarations (name, params dataclass, summary) are also readable without importing the
model modules (and TensorFlow): :mod:`keras_mammo.models.catalog`, which the config asks.
"""
from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable

from keras_mammo.models import catalog
from keras_mammo.models.catalog import MODEL_MODULES

_BUILDERS: dict[str, tuple[Callable, type | None, str]] = {}

__all__ = ["MODEL_MODULES", "DataInfo", "available_models", "build_model", "model_params", "model_summaries",
           "register_model"]


def register_model(name: str, params: type | None = None, summary: str = ""):
    """Decorator registering ``builder(cfg, params, data_info) -> GAN`` under ``name``.

    Args:
        name: the name used in ``--model`` and ``model.name``.
        params: a dataclass of the model's own settings (``model.params``), or None.
        summary: one line shown in ``--help``.
    """

    def deco(builder):
        _BUILDERS[name] = (builder, params, summary)
        catalog.declare(name, params, summary, builder.__module__)
        return builder

    return deco


def _load_all() -> None:
    for mod in MODEL_MODULES:
        importlib.import_module(mod)


def available_models() -> list[str]:
    """Registered model names, sorted."""
    _load_all()
    return sorted(_BUILDERS)


def model_summaries() -> dict[str, str]:
    """``{name: one-line summary}`` of the registered models."""
    _load_all()
    return {k: v[2] for k, v in sorted(_BUILDERS.items())}


def model_params(cfg):
    """The validated ``model.params`` dataclass for ``cfg.model.name`` (or None).

    Imports every model module, so the dataclass is the model's own (with its methods).

    Raises:
        ConfigError: unknown model name or bad ``model.params`` (naming the key).
    """
    _load_all()
    return catalog.validated_params(cfg.model.name, cfg.model.params)


@dataclasses.dataclass
class DataInfo:
    """What a builder may need to know about the prepared data.

    Attributes:
        classes: sorted class labels found in the prepared manifest (e.g.
            ``["benign", "malignant", "normal"]``); batch ``"label"`` values index it.
        num_images: images in the training set.
        resolution: side of the prepared PNGs in pixels.
    """

    classes: list = dataclasses.field(default_factory=list)
    num_images: int = 0
    resolution: int = 0


def build_model(cfg, data_info: DataInfo | None = None):
    """Build the GAN named by ``cfg.model.name`` (call inside a distribution scope).

    The builder is called as ``builder(cfg, params, data_info)``.

    Raises:
        ConfigError: unknown model name or bad ``model.params``.
    """
    params = model_params(cfg)
    builder = _BUILDERS[cfg.model.name][0]
    model = builder(cfg, params, data_info or DataInfo())
    model.registered_name = cfg.model.name    # as the user wrote it (``seg-cdcgan``; the Keras name is seg_cdcgan)
    return model
