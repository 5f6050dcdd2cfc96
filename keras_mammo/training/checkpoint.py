"""Atomic, self-describing training checkpoints.

A checkpoint is one ``.npz`` file, ``<run>/checkpoints/ckpt-<epoch>.npz``, holding the
value of every variable in :meth:`GAN.checkpoint_variables` (both networks, both
optimizers' moments and step counters, dropout seed states, fade-in α) plus a JSON
``state`` (completed epochs, stage, fade-in progress, seed). It is written under a
temporary name and renamed, so a run killed while saving keeps its previous checkpoint.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from keras_mammo.errors import DataError
from keras_mammo.utils import atomic_path

_NAME = re.compile(r"ckpt-(\d+)\.npz$")


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Checkpoints of a run, oldest first."""
    d = checkpoint_dir(run_dir)
    found = [(int(m.group(1)), p) for p in d.glob("ckpt-*.npz") if (m := _NAME.search(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint of a run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def best_checkpoint(run_dir: str | Path) -> Path | None:
    """``checkpoints/best.npz`` (the best in-training FID so far, never rotated), or None."""
    path = checkpoint_dir(run_dir) / "best.npz"
    return path if path.is_file() else None


def save_checkpoint(run_dir: str | Path, epoch: int, variables: list, state: dict, keep: int = 3,
                    name: str | None = None) -> Path:
    """Save ``variables`` and ``state`` as ``ckpt-<epoch>.npz`` atomically; keep the newest ``keep``.

    Args:
        epoch: completed epochs (1-based).
        variables: Keras/TF variables, in a fixed order.
        state: JSON-serializable training state.
        name: save as ``<name>.npz`` instead (e.g. ``"best"``); such checkpoints are
            replaced by the next save of the same name and never rotated away.
    """
    path = checkpoint_dir(run_dir) / (f"{name}.npz" if name else f"ckpt-{epoch:06d}.npz")
    arrays = {f"v{i:05d}": np.asarray(v.numpy() if hasattr(v, "numpy") else v) for i, v in enumerate(variables)}
    arrays["__state__"] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
    arrays["__paths__"] = np.array([getattr(v, "path", str(i)) for i, v in enumerate(variables)])
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 and not name else []:
        old.unlink(missing_ok=True)
    return path


def read_state(path: str | Path) -> dict:
    """The JSON state stored in a checkpoint."""
    with np.load(path) as data:
        return json.loads(bytes(data["__state__"]).decode())


def restore_checkpoint(path: str | Path, variables: list) -> dict:
    """Assign a checkpoint's values to ``variables`` (same order) and return its state.

    Raises:
        DataError: unreadable file, or the variables do not match (count or shapes) —
            e.g. a checkpoint of another model or configuration.
    """
    path = Path(path)
    try:
        data = np.load(path)
    except Exception as exc:
        raise DataError(f"{path}: cannot read checkpoint ({exc})") from exc
    with data:
        n = sum(1 for k in data.files if k.startswith("v"))
        if n != len(variables):
            raise DataError(f"{path}: checkpoint holds {n} variables, the model has {len(variables)}; "
                            f"it was written by another model or configuration")
        values = [data[f"v{i:05d}"] for i in range(n)]
        paths = list(data["__paths__"])
        for i, (v, val) in enumerate(zip(variables, values)):
            if tuple(v.shape) != tuple(val.shape):
                raise DataError(f"{path}: variable {i} ({paths[i]}) has shape {val.shape} in the checkpoint, "
                                f"{tuple(v.shape)} in the model")
        for v, val in zip(variables, values):
            v.assign(val)
        return json.loads(bytes(data["__state__"]).decode())
