"""What the models declare — name, ``model.params`` dataclass, summary — known without TensorFlow.

A model module declares its settings with ``@register_model(name, ParamsDataclass, summary)``
(:mod:`keras_mammo.models.registry`). Importing a model module imports TensorFlow (about
10 s on a small CPU), so validating a config must not. This catalogue answers from two
sources:

* models already imported (their ``register_model`` calls :func:`declare`): the real
  dataclass;
* the model modules in :data:`MODEL_MODULES` not yet imported: their source is parsed
  (``ast``), the decorator's name, dataclass and summary are read, and the dataclass
  definition alone (fields, types, defaults, ``choices`` metadata; methods left out) is
  executed in a namespace holding only :mod:`dataclasses`. Should that fail (a default that
  needs a module constant, a dataclass imported from elsewhere), the module is imported
  after all — slower, never wrong.

The dataclass read this way checks keys, types and allowed values exactly like the real
one; checks that live in the dataclass's methods run when the model is built
(:func:`keras_mammo.models.registry.build_model`). This module imports only the standard
library and :mod:`keras_mammo.schema`; the config (:mod:`keras_mammo.config`) asks it, not
the registry.
"""
from __future__ import annotations

import ast
import copy
import dataclasses
import importlib
import importlib.util
import sys
import typing
from typing import NamedTuple

from keras_mammo.errors import ConfigError
from keras_mammo.schema import from_dict

#: Modules that register models when imported (imported lazily, on first build).
MODEL_MODULES = [
    "keras_mammo.models.thesis_gan",
    "keras_mammo.models.dcgan",
    "keras_mammo.models.stylegan",
    "keras_mammo.models.unet",
    "keras_mammo.models.seg_cdcgan",
    "keras_mammo.models.pix2pix",
    "keras_mammo.models.fastgan",
]


class Declaration(NamedTuple):
    """One model's declaration.

    Attributes:
        module: the module that registers it.
        params: the ``model.params`` dataclass (None: the model takes none), or None with
            ``params_name`` set when it could not be read from the source.
        params_name: the dataclass's name in ``module`` (None: no params).
        summary: one line for ``--help``.
    """

    module: str
    params: type | None
    params_name: str | None
    summary: str


_DECLARED: dict[str, Declaration] = {}  # from register_model (real classes)
_PARSED: dict[str, dict[str, Declaration]] = {}  # module → {name: declaration} read from source


def declare(name: str, params: type | None, summary: str, module: str) -> None:
    """Record a registered model (called by ``register_model``)."""
    _DECLARED[name] = Declaration(module, params, getattr(params, "__name__", None), summary)


def _params_class(tree: ast.Module, class_name: str, origin: str, module_name: str) -> type | None:
    """The dataclass ``class_name`` of a parsed module, built without the rest of the module."""
    node = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name), None)
    if node is None:
        return None
    node = copy.copy(node)  # the fields only: methods (validation, helpers) may need the module
    node.body = [n for n in node.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))] or [ast.Pass()]
    module = ast.Module(body=[ast.ImportFrom("__future__", [ast.alias("annotations")], 0),
                              ast.Import([ast.alias("dataclasses")]), node], type_ignores=[])
    namespace: dict = {}
    try:
        exec(compile(ast.fix_missing_locations(module), origin, "exec"), namespace)  # noqa: S102 - own source
        cls = namespace[class_name]
        cls.__module__ = module_name
        # from_dict resolves the annotations as this does (the module is not imported: builtins only)
        typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - anything unexpected: fall back to importing the module
        return None
    if not dataclasses.is_dataclass(cls):
        return None
    return cls


def _parse(module: str) -> dict[str, Declaration]:
    """``{name: Declaration}`` of the ``@register_model`` decorators in ``module``'s source."""
    if module in _PARSED:
        return _PARSED[module]
    out: dict[str, Declaration] = {}
    spec = importlib.util.find_spec(module)
    try:
        with open(spec.origin, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), spec.origin)
    except (AttributeError, TypeError, OSError, SyntaxError):
        tree = None
    for node in ast.walk(tree) if tree is not None else ():
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "register_model"):
            continue
        args = dict(zip(("name", "params", "summary"), node.args))
        args.update({k.arg: k.value for k in node.keywords})
        name = args.get("name")
        if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
            continue
        p = args.get("params")
        params_name = p.id if isinstance(p, ast.Name) else None
        if p is not None and params_name is None and not (isinstance(p, ast.Constant) and p.value is None):
            params_name = "?"  # an expression: only the module knows
        summary = args.get("summary")
        summary = summary.value if isinstance(summary, ast.Constant) and isinstance(summary.value, str) else ""
        params = _params_class(tree, params_name, spec.origin, module) if params_name else None
        out[name.value] = Declaration(module, params, params_name, summary)
    _PARSED[module] = out
    return out


def declarations() -> dict[str, Declaration]:
    """Every known model, by name: registered ones, then those declared in unimported :data:`MODEL_MODULES`."""
    out = dict(_DECLARED)
    for module in MODEL_MODULES:
        if module in sys.modules:
            continue  # imported: its register_model calls are in _DECLARED
        for name, decl in _parse(module).items():
            out.setdefault(name, decl)
    return dict(sorted(out.items()))


def validated_params(name: str, params: dict | None):
    """``model.params`` of model ``name`` as its dataclass, every key and value checked.

    Args:
        name: the model name (``model.name``).
        params: the ``model.params`` mapping.

    Returns:
        An instance of the model's params dataclass — the real one when the model
        module is imported, otherwise the one read from its source — or None when the
        model takes no params.

    Raises:
        ConfigError: unknown model name (lists the allowed names), or a bad
            ``model.params`` key or value (names ``model.params.<key>``).
    """
    known = declarations()
    if name not in known:
        raise ConfigError(f"model.name: {name!r} is not a registered model; allowed values: {', '.join(known)}")
    decl = known[name]
    if decl.params is None and decl.params_name is not None:  # not readable from the source
        importlib.import_module(decl.module)
        decl = _DECLARED[name]
    if decl.params is None:
        if params:
            raise ConfigError(f"model.params: model {name!r} takes no params")
        return None
    return from_dict(decl.params, params, "model.params")
