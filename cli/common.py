"""Shared CLI plumbing: user errors become one clear message and a non-zero exit."""
from __future__ import annotations

import functools
import os

import click

from keras_mammo.errors import KerasMammoError


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ start-up chatter (must run before TF is imported)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GLOG_minloglevel", "2")


def user_errors(fn):
    """Turn :class:`KerasMammoError` (and missing files) into ``click.ClickException``."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KerasMammoError as exc:
            raise click.ClickException(str(exc)) from None
        except FileNotFoundError as exc:
            raise click.ClickException(f"{exc.filename}: file not found") from None

    return wrapper


def parse_sets(values: tuple[str, ...]) -> dict:
    """Parse repeated ``--set key=value`` options into ``{dotted_key: yaml_value}``."""
    import yaml

    out = {}
    for item in values:
        if "=" not in item:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE, e.g. train.batch_size=16", param_hint="--set")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out
