"""Generator arms of the cross-validated utility protocol (issue 22, deliverable 4).

A generator arm is trained once per fold on that fold's training patients only and returns
synthetic tumour patches (:class:`~keras_mammo.utility.crossval.arms.GeneratorArm`). Each
arm lives in its own module of this package and registers a factory under its name::

    from keras_mammo.utility.synth import register

    @register("lesion")
    def make_lesion_arm(**options) -> GeneratorArm: ...

Modules are discovered (``pkgutil``) and imported only when an arm is asked for, so
importing this package loads no TensorFlow.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from keras_mammo.errors import ConfigError

_FACTORIES: dict[str, Callable] = {}


def register(name: str) -> Callable[[Callable], Callable]:
    """Decorator: register ``factory(**options) → GeneratorArm`` under ``name``."""
    def deco(factory: Callable) -> Callable:
        if name in _FACTORIES and _FACTORIES[name] is not factory:
            raise ValueError(f"generator arm {name!r} is registered twice")
        _FACTORIES[name] = factory
        return factory
    return deco


def _discover() -> None:
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


def available() -> list[str]:
    """Names of the registered generator arms, sorted."""
    _discover()
    return sorted(_FACTORIES)


def get(name: str, **options):
    """The generator arm ``name`` built with ``options``.

    Raises:
        ConfigError: unknown name (the message lists the registered ones).
    """
    _discover()
    if name not in _FACTORIES:
        raise ConfigError(f"unknown generator arm {name!r}; expected one of: {', '.join(sorted(_FACTORIES)) or 'none'}")
    return _FACTORIES[name](**options)
