"""Shared CLI plumbing: user errors become one clear message and a non-zero exit."""
from __future__ import annotations

import functools
import importlib.machinery
import os
import re
import sys
import tempfile

import click

from keras_mammo.errors import KerasMammoError

#: Start-up lines TensorFlow's native libraries print that say nothing is wrong. They are
#: written before absl logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` cannot hide them.
_NOISE = re.compile("|".join([
    r"All log messages before absl::InitializeLog\(\) is called",
    r"oneDNN custom operations are on",
    r"This TensorFlow binary is optimized to use available CPU instructions",
    r"To enable the following instructions: .* rebuild TensorFlow",
    r"Unable to register (cuDNN|cuFFT|cuBLAS) factory",
    r"computation_placer\.cc.*already registered",
    r"TF-TRT Warning: Could not find TensorRT",
]))
#: Printed on a machine without any CUDA driver; the cuInit failure that follows is then expected.
_NO_DRIVER = re.compile(r"Could not find cuda drivers on your machine|cuda_dso_loader.*libcuda\.so")
_CUINIT = re.compile(r"failed call to cuInit")


def filter_startup_lines(text: str) -> str:
    """The lines of TensorFlow's start-up output that are worth showing.

    Drops the known informational lines (:data:`_NOISE`), and the "no CUDA driver" line
    together with the ``failed call to cuInit`` error it causes — but keeps a cuInit failure
    on a machine that has a driver (a real GPU problem), and every other line.

    Args:
        text: what the native libraries wrote to stderr while TensorFlow was imported.

    Returns:
        The remaining lines, newline-terminated, or ``""``.
    """
    lines = text.splitlines()
    no_driver = any(_NO_DRIVER.search(x) for x in lines)
    kept = [x for x in lines if x.strip() and not _NOISE.search(x) and not _NO_DRIVER.search(x)
            and not (no_driver and _CUINIT.search(x))]
    return "".join(x + "\n" for x in kept)


class _QuietLoader:
    """Wraps TensorFlow's package loader: stderr (fd 2) goes to a file while it runs, and
    only the lines :func:`filter_startup_lines` keeps are written back afterwards."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        sys.stderr.flush()
        with tempfile.TemporaryFile() as tmp:
            saved = os.dup(2)
            os.dup2(tmp.fileno(), 2)
            ok = False
            try:
                self._loader.exec_module(module)
                # CUDA platform start-up (the cuInit call) happens on first device use; do it here.
                module.config.list_physical_devices()
                ok = True
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                text = tmp.read().decode("utf-8", errors="replace")
                sys.stderr.write(filter_startup_lines(text) if ok else text)
                sys.stderr.flush()

    def __getattr__(self, name):   # is_package, get_code, get_resource_reader, ...
        return getattr(self._loader, name)


class _QuietTensorFlowFinder:
    """A ``sys.meta_path`` finder that wraps the first import of ``tensorflow`` in :class:`_QuietLoader`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path[:] = [f for f in sys.meta_path if f is not self]
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow() -> None:
    """Silence TensorFlow's start-up chatter; call before TensorFlow is imported.

    Sets ``TF_CPP_MIN_LOG_LEVEL=2`` (C++ INFO and WARNING lines off, errors kept) unless the
    user set it, and filters the lines printed during the import itself, which no setting
    reaches (see :func:`filter_startup_lines`). GPUs are never hidden. Does nothing to the
    import if TensorFlow is already imported.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GLOG_minloglevel", "2")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())


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


def quiet_option(fn):
    """``--quiet/-q``: no progress bars or notes; results, warnings and errors only."""
    return click.option("--quiet", "-q", is_flag=True,
                        help="No progress bars or notes; only results, warnings and errors.")(fn)


def note(message: str, quiet: bool = False) -> None:
    """An informational line on stderr (kept off stdout, which carries results); none with --quiet."""
    if not quiet:
        click.echo(message, err=True)


def renamed_option(old: str, new: str, dest: str, **kwargs):
    """A hidden option spelled the old way: it still works and says which spelling to use.

    Args:
        old: the old spelling, e.g. ``"--model"``.
        new: the spelling to use instead, e.g. ``"--saved-model"``.
        dest: the parameter name the value is stored under (``<dest>_old``; merge it with
            :func:`merge_renamed`).
    """

    def callback(ctx, param, value):
        if value is not None:
            click.echo(f"note: {old} is now {new}; using {new} {value}", err=True)
        return value

    return click.option(old, f"{dest}_old", hidden=True, default=None, expose_value=True, callback=callback,
                        **kwargs)


def merge_renamed(new_value, old_value, new: str):
    """The value of an option given either way; both spellings at once is a usage error."""
    if new_value is not None and old_value is not None:
        raise click.UsageError(f"give {new} once (its old spelling was given too)")
    return new_value if new_value is not None else old_value
