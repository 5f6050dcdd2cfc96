"""Atomic, durable, self-describing training checkpoints.

A checkpoint is one ``.npz`` file, ``<run>/checkpoints/ckpt-<epoch>.npz``, holding the
value of every variable in :meth:`GAN.checkpoint_variables` (both networks, both
optimizers' moments and step counters, dropout seed states, fade-in α) under a stable
**name** (:func:`variable_names`), plus a JSON ``state`` (completed epochs, stage,
fade-in progress, seed). It is written under a temporary name, fsynced, renamed and the
folder fsynced, so a run killed (or a machine losing power) while saving keeps its
previous checkpoint.

Restoring matches variables by name, so a checkpoint of another model or configuration
fails with the names that are missing or unexpected instead of loading values into the
wrong variables. A checkpoint that cannot be read (truncated, bit-flipped: the zip
members carry CRC-32s) raises :class:`CorruptCheckpointError`;
:func:`restore_latest` then falls back to the newest intact checkpoint.

Only numbered files (``ckpt-<epoch>.npz``) are rotated; any other file in the folder
(e.g. a ``best.npz``) is never deleted.
"""
from __future__ import annotations

import json
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from keras_mammo.errors import DataError
from keras_mammo.utils import atomic_path

_NAME = re.compile(r"ckpt-(\d+)\.npz$")
_TMP = re.compile(r"^\.ckpt-\d+\.npz\..*\.tmp$")
# Keras' automatic name suffixes ("conv2d_9", "adam_1") depend on how many layers the
# process created before; they are dropped so the names are stable across processes.
_AUTO_SUFFIX = re.compile(r"_\d+(?=[/_]|$)")


class CorruptCheckpointError(DataError):
    """A checkpoint file exists but cannot be read (truncated, corrupted, not an npz)."""


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def checkpoint_epoch(path: str | Path) -> int | None:
    """The epoch number of ``ckpt-<epoch>.npz``, or None for other files."""
    m = _NAME.search(Path(path).name)
    return int(m.group(1)) if m else None


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Numbered checkpoints of a run, oldest first."""
    d = checkpoint_dir(run_dir)
    found = [(int(m.group(1)), p) for p in d.glob("ckpt-*.npz") if (m := _NAME.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest numbered checkpoint of a run (intact or not), or None."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def best_checkpoint(run_dir: str | Path) -> Path | None:
    """``checkpoints/best.npz`` (the best in-training FID so far, never rotated), or None."""
    path = checkpoint_dir(run_dir) / "best.npz"
    return path if path.is_file() else None


def variable_names(variables: list) -> list[str]:
    """Stable, unique names of ``variables``: their Keras paths without automatic suffixes.

    ``generator/conv2d_9/kernel`` → ``generator/conv2d/kernel``; ``adam_1/iteration`` →
    ``adam/iteration``. A name that occurs again gets ``#k`` (its k-th repeat, in list
    order), so the names are unique and equal in every process that builds the same model.
    """
    seen: Counter = Counter()
    names = []
    for i, v in enumerate(variables):
        raw = getattr(v, "path", None) or getattr(v, "name", None) or f"var{i}"
        base = _AUTO_SUFFIX.sub("", str(raw))
        k = seen[base]
        seen[base] += 1
        names.append(base if k == 0 else f"{base}#{k}")
    return names


def save_checkpoint(run_dir: str | Path, epoch: int, variables: list, state: dict, keep: int = 3,
                    name: str | None = None) -> Path:
    """Save ``variables`` and ``state`` atomically and durably; keep the newest ``keep`` numbered ones.

    Args:
        epoch: completed epochs (1-based).
        variables: Keras/TF variables, in a fixed order.
        state: JSON-serializable training state.
        keep: numbered checkpoints kept (≤ 0: all); other files are never deleted.
        name: write ``<name>.npz`` instead of ``ckpt-<epoch>.npz`` (never rotated).
    """
    folder = checkpoint_dir(run_dir)
    path = folder / (f"{name}.npz" if name else f"ckpt-{epoch:06d}.npz")
    arrays = {f"v{i:05d}": np.asarray(v.numpy() if hasattr(v, "numpy") else v) for i, v in enumerate(variables)}
    arrays["__state__"] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
    arrays["__names__"] = np.array(variable_names(variables))
    arrays["__paths__"] = np.array([str(getattr(v, "path", i)) for i, v in enumerate(variables)])
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    if name is None:
        for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
            old.unlink(missing_ok=True)
    # temporary files of saves killed half-way (the run directory is locked, so none is in flight)
    for stale in folder.iterdir():
        if _TMP.match(stale.name):
            stale.unlink(missing_ok=True)
    return path


def _read(path: Path) -> tuple[list[np.ndarray], list[str] | None, list[str], dict]:
    """All values, names (None in old position-only files), paths and state of a checkpoint.

    Raises:
        CorruptCheckpointError: the file cannot be read completely.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = sorted(k for k in data.files if re.fullmatch(r"v\d{5}", k))
            values = [data[k] for k in keys]
            names = [str(x) for x in data["__names__"]] if "__names__" in data.files else None
            paths = [str(x) for x in data["__paths__"]] if "__paths__" in data.files else [str(i) for i in
                                                                                             range(len(keys))]
            state = json.loads(bytes(data["__state__"]).decode())
    except FileNotFoundError as exc:
        raise DataError(f"{path}: checkpoint not found") from exc
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error, UnicodeDecodeError) as exc:
        raise CorruptCheckpointError(f"{type(exc).__name__}: {exc}") from exc
    if names is not None and len(names) != len(values):
        raise CorruptCheckpointError(f"{len(names)} names for {len(values)} arrays")
    return values, names, paths, state


def read_state(path: str | Path) -> dict:
    """The JSON training state stored in a checkpoint (epoch, stage, seconds spent, ADA p, …).

    Raises:
        DataError: no such file. CorruptCheckpointError: the file cannot be read completely.
    """
    return _read(Path(path))[3]


def _shown(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (f" … ({len(names)} in all)" if len(names) > n else "")


def restore_checkpoint(path: str | Path, variables: list) -> dict:
    """Assign a checkpoint's values to ``variables`` by name and return its state.

    The file is read completely before any variable is assigned, so a failed restore
    leaves the model untouched. Checkpoints written before names were stored are
    restored by position (count and shapes checked).

    Raises:
        CorruptCheckpointError: the file is truncated or corrupted (a :class:`DataError`).
        DataError: the variables do not match (names or shapes, named in the message)
            — e.g. a checkpoint of another model or configuration.
    """
    path = Path(path)
    try:
        values, names, paths, state = _read(path)
    except CorruptCheckpointError as exc:
        raise CorruptCheckpointError(f"{path}: checkpoint is corrupt ({exc})") from exc
    if names is None:  # old position-only checkpoint
        if len(values) != len(variables):
            raise DataError(f"{path}: checkpoint holds {len(values)} variables, the model has {len(variables)}; "
                            f"it was written by another model or configuration")
        ordered = list(zip(paths, values))
    else:
        wanted = variable_names(variables)
        stored = dict(zip(names, values))
        missing = [n for n in wanted if n not in stored]
        unexpected = [n for n in names if n not in set(wanted)]
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing from the checkpoint: {_shown(missing)}")
            if unexpected:
                parts.append(f"not in the model: {_shown(unexpected)}")
            raise DataError(f"{path}: the checkpoint does not fit the model ({'; '.join(parts)}); "
                            f"it was written by another model or configuration")
        ordered = [(n, stored[n]) for n in wanted]
    for v, (label, val) in zip(variables, ordered):
        if tuple(v.shape) != tuple(val.shape):
            raise DataError(f"{path}: variable {label} has shape {tuple(val.shape)} in the checkpoint, "
                            f"{tuple(v.shape)} in the model")
    for v, (_, val) in zip(variables, ordered):
        v.assign(val)
    return state


def restore_latest(run_dir: str | Path, variables: list,
                   warn: Callable[[str], None] = print) -> tuple[Path | None, dict | None]:
    """Restore the newest *intact* numbered checkpoint of a run.

    A corrupt newest checkpoint is reported through ``warn`` ("checkpoint ckpt-N is
    corrupt: ...; falling back to ckpt-M") and the previous one is tried, and so on.

    Returns:
        ``(path, state)``, or ``(None, None)`` when the run has no checkpoint.

    Raises:
        DataError: a checkpoint that does not fit the model (no fallback: every
            checkpoint of the run would fail the same way), or every checkpoint is corrupt.
    """
    found = list_checkpoints(run_dir)
    if not found:
        return None, None
    for i in range(len(found) - 1, -1, -1):
        path = found[i]
        try:
            return path, restore_checkpoint(path, variables)
        except CorruptCheckpointError as exc:
            reason = str(exc.__cause__ or exc)
            nxt = f"falling back to {found[i - 1].stem}" if i > 0 else "no older checkpoint is left"
            warn(f"checkpoint {path.stem} is corrupt: {reason}; {nxt}")
    raise DataError(f"{checkpoint_dir(run_dir)}: every checkpoint is corrupt ({len(found)} tried); "
                    f"delete the folder to start the run again")
