"""Generators and discriminators, registered by name (see :mod:`keras_mammo.models.registry`)."""
from keras_mammo.models.registry import available_models, build_model, register_model

__all__ = ["available_models", "build_model", "register_model"]
