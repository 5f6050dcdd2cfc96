"""Pretrained generators shipped with keras-mammo, usable right after ``pip install``.

Each shipped generator is a folder of this package, in TensorFlow Serving's layout::

    keras_mammo/pretrained/<name>/      (named in setup.cfg's package_data, so it is in the wheel)
        1/                 the SavedModel (every signature of ``keras-mammo export``)
        MODEL_CARD.md      the model card (Mitchell et al. 2019): data, licence, command,
                           budget, FID/KID with N and floor, memorization, intended use, limits
        model_card.json    the same facts, machine-readable (the figures listed here)
        samples.png        a 4 × 4 grid of samples (seed 0)

In a clone, ``saved_models/<name>`` is a symlink to that folder, so
``tensorflow_model_server --model_base_path=$PWD/saved_models/<name>`` and
``keras-mammo serve --model_base_path saved_models/<name>`` serve it (the files beside
the numeric version folder are ignored by both).

Every figure in a record (FID, floor, KID, near-copies, budget) is read from
``model_card.json``, which ``bench/ship_pretrained.py`` writes from the metrics it computes
(:mod:`keras_mammo.pretrained.card`); none is typed in.

Like medigan's model listing (Osuala et al. 2023, "medigan: a Python library of pretrained
generative models for medical image synthesis", J. Med. Imaging 10(6)), :func:`available_pretrained`
lists each generator with what it makes and how good it measured.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from keras_mammo.errors import DataError
from keras_mammo.savedmodel import is_saved_model

#: The folder holding the shipped generators (this package's own folder).
PRETRAINED_DIR = Path(__file__).resolve().parent
CARD_JSON = "model_card.json"
CARD_MD = "MODEL_CARD.md"
VERSION = "1"


@dataclass(frozen=True)
class PretrainedGenerator:
    """One shipped generator, as listed by ``keras-mammo models``.

    Attributes:
        name: e.g. ``"mias-128"``.
        model: the registered architecture (``"fastgan"``).
        resolution: image side in pixels (square, 1 channel).
        fid: Fréchet Inception Distance of the SavedModel's images against a real half, at
            ``n_per_side`` images per side (mean over the real halves).
        fid_floor: the real-vs-real FID at the same N (two halves of the training films).
        fid_over_floor: ``fid / fid_floor`` (1.0 is the best reachable).
        kid: Kernel Inception Distance at the same N (its floor in ``kid_floor``).
        kid_floor: real-vs-real KID at the same N.
        n_per_side: images per side of the matched FID/KID.
        near_copies: generated images flagged as near-copies of a training film, of
            ``near_copy_n`` checked.
        near_copy_n: number of generated images checked for near-copies.
        images_seen: training images shown to the discriminator until the shipped checkpoint.
        train_seconds: wall-clock seconds of training (whole run, s).
        path: the model base path (the folder holding ``1/``).
        card: the ``MODEL_CARD.md`` path.
    """

    name: str
    model: str
    resolution: int
    fid: float
    fid_floor: float
    fid_over_floor: float
    kid: float
    kid_floor: float
    n_per_side: int
    near_copies: int
    near_copy_n: int
    images_seen: int
    train_seconds: float
    path: Path
    card: Path


def _names(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if (p / CARD_JSON).is_file()) if root.is_dir() else []


def read_card(model_dir: str | Path) -> dict:
    """The ``model_card.json`` of a generator folder.

    Raises:
        DataError: the file is missing or is not valid JSON (naming it).
    """
    path = Path(model_dir) / CARD_JSON
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: missing; a pretrained generator folder needs its model card") from None
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None


def _record(model_dir: Path) -> PretrainedGenerator:
    c = read_card(model_dir)
    try:
        ev, mem, bud = c["evaluation"], c["memorization"], c["training"]
        return PretrainedGenerator(
            name=c["name"], model=c["model"], resolution=int(c["resolution"]), fid=float(ev["fid"]),
            fid_floor=float(ev["fid_floor"]), fid_over_floor=float(ev["fid_over_floor"]), kid=float(ev["kid"]),
            kid_floor=float(ev["kid_floor"]), n_per_side=int(ev["n_per_side"]), near_copies=int(mem["near_copies"]),
            near_copy_n=int(mem["n_synthetic"]), images_seen=int(bud["images_seen"]),
            train_seconds=float(bud["seconds"]), path=model_dir, card=model_dir / CARD_MD)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{model_dir / CARD_JSON}: missing or invalid key {exc}") from None


def available_pretrained(root: str | Path | None = None) -> list[PretrainedGenerator]:
    """The shipped generators, sorted by name, with their measured figures.

    Args:
        root: folder to list (default: :data:`PRETRAINED_DIR`); each subfolder with a
            ``model_card.json`` is one generator.

    Raises:
        DataError: a ``model_card.json`` is unreadable or lacks a key.
    """
    root = Path(root) if root is not None else PRETRAINED_DIR
    return [_record(root / n) for n in _names(root)]


def pretrained_path(name: str, root: str | Path | None = None) -> Path:
    """The model base path of a shipped generator (the folder holding ``1/``), as
    ``keras-mammo serve --model_base_path`` and ``generate --saved-model`` take it.

    Raises:
        DataError: no generator of that name (one line listing the names there are), or
            its folder lacks the SavedModel.
    """
    root = Path(root) if root is not None else PRETRAINED_DIR
    names = _names(root)
    if name not in names:
        raise DataError(f"--pretrained {name}: no such pretrained generator; available: "
                        f"{', '.join(names) or 'none (this installation ships none)'}")
    path = root / name
    if not is_saved_model(path / VERSION):
        raise DataError(f"{path / VERSION}: the SavedModel of pretrained generator {name} is missing "
                        f"(saved_model.pb); reinstall keras-mammo")
    return path


def load_pretrained(name: str, root: str | Path | None = None):
    """Load a shipped generator as a TensorFlow SavedModel.

    Its signatures are those of :func:`keras_mammo.generation.export.export_model`; for example
    ``load_pretrained("mias-128").signatures["generate"](count=tf.constant(4),
    seed=tf.constant(0, tf.int64))["images"]`` is ``(4, 128, 128, 1) uint8`` in
    ``[0, 255]``. :func:`keras_mammo.generation.generate.generate_images` on :func:`pretrained_path`
    gives the same images as float32 in ``[0, 1]``.

    Raises:
        DataError: as :func:`pretrained_path`.
    """
    import tensorflow as tf

    return tf.saved_model.load(str(pretrained_path(name, root) / VERSION))
