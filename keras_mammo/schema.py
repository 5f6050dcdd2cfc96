"""Typed mappings → dataclasses: the validation behind every config section.

:func:`from_dict` turns a parsed YAML mapping into a dataclass, checking every key and
coercing every value to the field's annotated type; a field made with :func:`choice`
also checks the value against its allowed values. Errors are
:class:`~keras_mammo.errors.ConfigError` naming the dotted key. This module imports only
the standard library, so configs (and ``model.params``) validate without TensorFlow.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from keras_mammo.errors import ConfigError


def choice(*values, default=None):
    """A dataclass field whose value must be one of ``values`` (checked by :func:`from_dict`)."""
    return dataclasses.field(default=default, metadata={"choices": values})


def coerce(value: Any, tp, key: str):
    """``value`` converted to the type annotation ``tp`` (``int``, ``list[str]``, ``X | None``, a dataclass…).

    Raises:
        ConfigError: naming ``key`` when the value does not fit the type.
    """
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], key)
    if origin is list:
        if value is None:
            return []
        if not isinstance(value, (list, tuple)):
            value = [value]
        return [coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
        if f != int(f):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(f)
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls, data: dict | None, prefix: str = ""):
    """Build dataclass ``cls`` from a mapping, validating every key and value.

    Args:
        cls: a dataclass (fields annotated with built-in types, lists, unions with None,
            other dataclasses).
        data: the mapping (None = all defaults).
        prefix: dotted key of ``data`` in the whole config, used in messages.

    Raises:
        ConfigError: unknown key (the message lists the allowed keys), wrong type, or
            a value outside a field's allowed choices.
    """
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(f"{key}: unknown key; allowed keys{' in ' + prefix if prefix else ''}: {', '.join(fields)}")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        v = coerce(value, hints[name], key)
        choices = fields[name].metadata.get("choices")
        if choices and v not in choices:
            raise ConfigError(f"{key}: {v!r} is not allowed; allowed values: {', '.join(map(str, choices))}")
        kwargs[name] = v
    return cls(**kwargs)
