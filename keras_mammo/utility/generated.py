"""Generated tumour patches for the utility experiments, and the guarantee that no test image made them.

Rahali 2025, §3.6 replaces real tumour images by images from the trained GAN. For the
comparison to mean anything, the generator must not have seen the classifier's test
images: a generator trained on test lesions can hand their appearance to the classifier.
keras-mammo therefore trains the patch generator on the patch set's ``generator_train/``
folder (the training split's tumour patches and nothing else, see
:func:`keras_mammo.utility.patchset.write_generator_training_set`) and checks, wherever
the information exists, that a generator's training data holds no test patient:

- a run directory lists the rows it trained on in ``dataset_manifest.jsonl``;
- a SavedModel names its run in ``assets.extra/keras_mammo.json`` (``run``, ``run_fingerprint``);
- a plain folder of images carries no provenance: it is used, and the report says that
  its provenance could not be verified.

Generated images are accepted as ``(N, H, W) float32`` in ``[0, 1]``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keras_mammo.data.io import IMAGE_SUFFIXES, read_mammogram
from keras_mammo.errors import DataError
from keras_mammo.savedmodel import find_run
from keras_mammo.utility.patchset import (
    GENERATOR_TRAIN_DIR,
    TRAIN,
    TUMOUR,
    DataLeakageError,
    PatchSet,
    check_no_test_leakage,
    write_generator_training_set,
)
from keras_mammo.config import load_config
from keras_mammo.data.prepare import read_manifest
from keras_mammo.generation.generate import generate_images


def load_generated_dir(path: str | Path, limit: int | None = None) -> tuple[np.ndarray, dict]:
    """Read a folder of generated patches (PNG/PGM/TIFF/..., 8- or 16-bit), sorted by name.

    Args:
        path: the folder (not searched recursively).
        limit: read at most this many (the first by name).

    Returns:
        ``(images (N, H, W) float32 in [0, 1], info)`` with ``info = {"source": "directory",
        "path", "n", "size"}``.

    Raises:
        DataError: missing folder, no image in it, or images of different or non-square
            sizes.
    """

    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: folder of generated patches not found")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if limit is not None:
        files = files[: int(limit)]
    if not files:
        raise DataError(f"{root}: no image files (PNG, PGM, TIFF, JPEG) in the folder of generated patches")
    imgs = [read_mammogram(p).pixels for p in files]
    shapes = {im.shape for im in imgs}
    if len(shapes) != 1:
        raise DataError(f"{root}: generated patches have different sizes {sorted(shapes)}")
    h, w = imgs[0].shape
    if h != w:
        raise DataError(f"{root}: generated patches must be square, got {h}×{w}")
    return np.stack(imgs).astype(np.float32), {"source": "directory", "path": str(root.resolve()),
                                               "n": len(imgs), "size": int(h)}


def generate_patches(source: str | Path, n: int, seed: int = 0, checkpoint=None, batch_size: int = 64
                     ) -> tuple[np.ndarray, dict]:
    """Generate ``n`` patches from a training run or a SavedModel.

    Uses :func:`keras_mammo.generation.generate.generate_images`.

    Returns:
        ``(images (n, H, W) float32 in [0, 1], info)`` with ``info = {"source": "run" |
        "savedmodel", "path", "n", "size", "seed", "checkpoint"}``.

    Raises:
        DataError: ``source`` is neither a run directory nor a SavedModel.
    """

    imgs = np.asarray(generate_images(source, int(n), seed=int(seed), checkpoint=checkpoint,
                                      batch_size=batch_size), np.float32)
    if imgs.ndim == 4:
        imgs = imgs[..., 0]
    kind = "run" if (Path(source) / "config.yaml").is_file() else "savedmodel"
    return imgs, {"source": kind, "path": str(Path(source).resolve()), "n": int(len(imgs)),
                  "size": int(imgs.shape[1]), "seed": int(seed),
                  "checkpoint": None if checkpoint is None else str(checkpoint)}


def _run_dir_of(source: Path) -> Path | None:
    if (source / "dataset_manifest.jsonl").is_file():
        return source
    candidates = [source] + ([p for p in source.iterdir() if p.is_dir() and p.name.isdigit()]
                             if source.is_dir() else [])
    for c in sorted(candidates, key=lambda p: p.name, reverse=True):
        meta = c / "assets.extra" / "keras_mammo.json"
        if meta.is_file():
            try:
                run = find_run(c, json.loads(meta.read_text()))
            except (json.JSONDecodeError, AttributeError):
                run = None
            if run is not None:
                return run
    return None


def generator_provenance(source: str | Path | None, patch_set: PatchSet) -> dict:
    """Check that the generator behind ``source`` was trained without any test-split patient.

    Args:
        source: a run directory, a SavedModel (its ``assets.extra/keras_mammo.json`` names
            the run), or None / a folder of images (unverifiable).
        patch_set: the patch set whose test split must stay unseen.

    Returns:
        ``{"verified": bool, "run_dir", "n_training_images", "training_classes",
        "training_splits", "note"}``.

    Raises:
        DataLeakageError: the run's training data holds a test-split patch or patient.
    """
    run = _run_dir_of(Path(source)) if source is not None and Path(source).is_dir() else None
    if run is None:
        return {"verified": False, "run_dir": None, "n_training_images": None,
                "note": "no training manifest reachable from the generated images' source; it cannot be checked "
                        "that the generator never saw a test-split patient"}
    rows = [json.loads(x) for x in (run / "dataset_manifest.jsonl").read_text().splitlines() if x.strip()]
    check_no_test_leakage(patch_set, rows, what=f"training data of generator run {run}")
    classes = sorted({str(r.get("class", r.get("label"))) for r in rows})
    splits = sorted({str(r.get("split")) for r in rows})
    note = (f"generator run {run} trained on {len(rows)} images, none from the {len(patch_set.test_patients())} "
            "test-split patients")
    if any(r.get("class") not in (None, TUMOUR) for r in rows):
        note += "; WARNING: its training data includes non-tumour images"
    return {"verified": True, "run_dir": str(run.resolve()), "n_training_images": len(rows),
            "training_classes": classes, "training_splits": splits, "note": note}


def train_patch_generator(patch_dir: str | Path, run_dir: str | Path, config: str | Path | None = None,
                          overrides: dict | None = None, progress: bool = True) -> Path:
    """Train (or resume) a GAN on the training split's tumour patches only.

    Uses the project trainer (:func:`keras_mammo.training.run.train`) with
    ``data.prepared = <patch_dir>/generator_train``. Before training, the folder's rows
    are checked against the patch set's test split; after training, the run's own
    ``dataset_manifest.jsonl`` is checked again.

    Args:
        patch_dir: a patch set from ``keras-mammo patches``.
        run_dir: the run directory (resumed if it exists).
        config: YAML config or bundled config name (e.g. ``quickstart``); None = defaults.
        overrides: dotted-key overrides (e.g. ``{"train.resolution": 64, "train.epochs": 20}``);
            ``data.prepared`` and ``run_dir`` are set here and may not be overridden.
        progress: progress output of the trainer.

    Returns:
        the run directory.

    Raises:
        DataLeakageError: a test-split patch or patient would reach the generator.
        ConfigError: bad config or overrides (see :func:`keras_mammo.config.load_config`).
    """
    from keras_mammo.training.run import train  # imports TensorFlow: on first use only

    ps = PatchSet(patch_dir)
    gdir = Path(patch_dir) / GENERATOR_TRAIN_DIR
    if not (gdir / "manifest.jsonl").is_file():
        write_generator_training_set(patch_dir, gdir)
    rows = read_manifest(gdir)
    check_no_test_leakage(ps, rows, what=str(gdir))
    bad = [r for r in rows if r.get("split") != TRAIN or r.get("class") != TUMOUR]
    if bad:
        raise DataLeakageError(f"{gdir}: holds {bad[0].get('image_id')!r} ({bad[0].get('split')}, "
                               f"{bad[0].get('class')}); only training-split tumour patches may train the generator")
    ov = dict(overrides or {})
    for k in ("data.prepared", "run_dir"):
        ov.pop(k, None)
    ov.update({"data.prepared": str(gdir), "run_dir": str(run_dir)})
    cfg = load_config(config, ov)
    if Path(cfg.data.prepared).resolve() != gdir.resolve():
        raise DataLeakageError(f"data.prepared resolved to {cfg.data.prepared}, not {gdir}")
    out = Path(train(cfg, progress=progress))
    generator_provenance(out, ps)  # raises if the run saw a test patient
    return out
