"""The SavedModel layout on disk, in one place: TensorFlow Serving's ``<base>/<name>/<version>/``.

A model base path holds positive integer version folders, each a SavedModel
(``saved_model.pb``, ``variables/``) and keras-mammo's metadata
``assets.extra/keras_mammo.json`` (model, resolution, latent size, seed, source run,
precision, signatures; written by :func:`keras_mammo.generation.export.export_model`).
Used by generation, export, DICOM writing, serving and the utility experiments.

Plain file-system functions: this module imports neither TensorFlow nor any other
keras-mammo layer besides :mod:`keras_mammo.errors`.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from keras_mammo.errors import DataError

#: keras-mammo's metadata inside a version folder.
METADATA = Path("assets.extra") / "keras_mammo.json"


def is_saved_model(path: str | Path) -> bool:
    """Whether ``path`` is a SavedModel folder (holds ``saved_model.pb``)."""
    return (Path(path) / "saved_model.pb").is_file()


def latest_version(path: str | Path) -> Path:
    """``saved_models/<name>`` → its highest numeric version folder; a version folder is returned as is.

    Raises:
        DataError: ``path`` is neither a SavedModel nor a folder whose highest numeric
            version is one.
    """
    path = Path(path)
    if is_saved_model(path):
        return path
    versions = sorted((int(p.name), p) for p in path.iterdir() if p.is_dir() and p.name.isdigit()) if path.is_dir() else []
    if versions and is_saved_model(versions[-1][1]):
        return versions[-1][1]
    raise DataError(f"{path}: neither a run directory (config.yaml) nor a SavedModel (saved_model.pb)")


def find_versions(base_path: str | Path) -> dict[int, Path]:
    """``{version: folder}`` of the positive integer folders holding a ``saved_model.pb``."""
    base_path = Path(base_path)
    if not base_path.is_dir():
        return {}
    out = {}
    for p in base_path.iterdir():
        if p.is_dir() and p.name.isdigit() and int(p.name) > 0 and (p / "saved_model.pb").is_file():
            out[int(p.name)] = p
    return out


def next_version(model_dir: str | Path) -> int:
    """1 + the highest numeric version under ``model_dir`` (1 when empty)."""
    model_dir = Path(model_dir)
    versions = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()] if model_dir.is_dir() else []
    return max(versions, default=0) + 1


def read_metadata(version_dir: str | Path) -> dict:
    """keras-mammo's metadata of a version folder (:data:`METADATA`); ``{}`` when it has none.

    Raises:
        ValueError: the file is not valid JSON.
    """
    f = Path(version_dir) / METADATA
    return json.loads(f.read_text()) if f.is_file() else {}


def png16_signature(loaded, path: str | Path):
    """A loaded SavedModel's ``latent_png16`` signature, or None (with a warning) for exports without it."""
    fn = loaded.signatures.get("latent_png16")
    if fn is None:
        warnings.warn(f"{path}: this export has no 16-bit signature (latent_png16); the images are 8-bit. "
                      f"Export the run again for 16-bit output", stacklevel=3)
    return fn


def run_fingerprint(run_dir: str | Path) -> str | None:
    """Identify a run without its path: 16 hex digits of SHA-256 of its ``dataset_manifest.jsonl``.

    Returns ``None`` when the run has no training-data manifest.
    """
    import hashlib

    manifest = Path(run_dir) / "dataset_manifest.jsonl"
    return hashlib.sha256(manifest.read_bytes()).hexdigest()[:16] if manifest.is_file() else None


def find_run(version_dir: str | Path, meta: dict, extra_roots: tuple[str | Path, ...] = ()) -> Path | None:
    """The run a SavedModel version was exported from, found by name and checked by fingerprint.

    Looked for as ``<root>/runs/<run>`` and ``<root>/<run>`` for each folder above the
    version folder (up to four levels), the current directory and ``extra_roots``; a
    candidate counts only if its :func:`run_fingerprint` equals the metadata's
    ``run_fingerprint``. Exports made before this scheme recorded ``run_dir`` relative to
    the version folder; that is still followed.

    Returns:
        the run directory, or ``None`` when no matching run is found.
    """
    version_dir = Path(version_dir).resolve()
    legacy = meta.get("run_dir")
    if legacy and not Path(legacy).is_absolute() and (version_dir / legacy / "dataset_manifest.jsonl").is_file():
        return (version_dir / legacy).resolve()
    name, fingerprint = meta.get("run"), meta.get("run_fingerprint")
    if not name or not fingerprint or "/" in name or name in (".", ".."):
        return None
    roots = [*list(version_dir.parents)[:4], Path.cwd(), *map(Path, extra_roots)]
    for root in roots:
        for cand in (root / "runs" / name, root / name):
            if cand.is_dir() and run_fingerprint(cand) == fingerprint:
                return cand.resolve()
    return None
