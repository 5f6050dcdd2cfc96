"""The patch-set directory on disk, and the guard that keeps its test split unseen (Rahali 2025, §3.6).

:func:`keras_mammo.utility.patches.write_patch_set` writes it; :class:`PatchSet` reads it;
:func:`write_generator_training_set` derives the one subset a generator may be trained on;
:func:`check_no_test_leakage` refuses any data that touches the held-out test split.

The output directory::

    <out>/images/<patch_id>.png      16-bit greyscale, size × size, 0..65535 ↔ [0, 1]
    <out>/manifest.jsonl             one JSON object per patch (see Patch.manifest_row)
    <out>/patches.json               options, counts per split and class, split patients
    <out>/generator_train/           the TRAINING split's tumour patches only, in the same
                                     format: the one set a generator may be trained on
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from keras_mammo.data.io import read_mammogram
from keras_mammo.errors import DataError
from keras_mammo.utils import write_json_atomic, write_text_atomic

TUMOUR = "tumour"
NON_TUMOUR = "non-tumour"
CLASSES = (NON_TUMOUR, TUMOUR)  # label 0, label 1 for the classifier
TRAIN, TEST = "train", "test"
GENERATOR_TRAIN_DIR = "generator_train"


class DataLeakageError(DataError):
    """A test-split image (or patient) would reach a generator's or classifier's training data."""

def write_manifest(path: Path, rows: Iterable[dict]) -> None:

    write_text_atomic(path, "".join(json.dumps(r, sort_keys=False) + "\n" for r in rows))


def counts(rows: Iterable[dict]) -> dict:
    """``{split: {class: n, "patients": n}}`` of manifest rows."""
    out: dict = {}
    rows = list(rows)
    for s in (TRAIN, TEST):
        sub = [r for r in rows if r["split"] == s]
        out[s] = {c: sum(r["class"] == c for r in sub) for c in CLASSES}
        out[s]["patients"] = len({r["patient_id"] for r in sub})
    return out


class PatchSet:
    """A patch-set directory written by :func:`write_patch_set`.

    Attributes:
        root: the directory.
        rows: manifest objects, in file order.
        info: the ``patches.json`` summary (empty dict if absent).

    Raises:
        DataError: no ``manifest.jsonl``, a malformed line, or a row without the keys
            ``image_id``, ``patient_id``, ``class``, ``split``, ``image``.
    """

    REQUIRED = ("image_id", "patient_id", "class", "split", "image")

    def __init__(self, root: str | Path):
        self.root = Path(root)
        man = self.root / "manifest.jsonl"
        if not man.is_file():
            raise DataError(f"{man}: patch-set manifest not found (write one with `keras-mammo patches`)")
        self.rows = []
        for i, line in enumerate(man.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{man}:{i}: not JSON ({exc})") from exc
            missing = [k for k in self.REQUIRED if k not in row]
            if missing:
                raise DataError(f"{man}:{i}: missing key(s) {missing}")
            if row["class"] not in CLASSES or row["split"] not in (TRAIN, TEST):
                raise DataError(f"{man}:{i}: class must be one of {CLASSES} and split train/test, "
                                f"got {row['class']!r}/{row['split']!r}")
            self.rows.append(row)
        info = self.root / "patches.json"
        self.info = json.loads(info.read_text()) if info.is_file() else {}
        self._by_id = {r["image_id"]: r for r in self.rows}

    def __len__(self) -> int:
        return len(self.rows)

    def select(self, split: str | None = None, cls: str | None = None) -> list[dict]:
        """Rows of one split and/or class, in manifest order."""
        return [r for r in self.rows if (split is None or r["split"] == split) and (cls is None or r["class"] == cls)]

    def test_patients(self) -> set[str]:
        return {r["patient_id"] for r in self.rows if r["split"] == TEST}

    def load_images(self, ids: Sequence[str] | None = None) -> np.ndarray:
        """Read patches as ``(N, S, S) float32`` in ``[0, 1]`` (all patches when ``ids`` is None).

        Raises:
            DataError: unknown id, unreadable PNG, or patches of different sizes.
        """

        ids = [r["image_id"] for r in self.rows] if ids is None else list(ids)
        imgs = []
        for i in ids:
            if i not in self._by_id:
                raise DataError(f"{self.root}: no patch {i!r} in the manifest")
            imgs.append(read_mammogram(self.root / self._by_id[i]["image"]).pixels)
        shapes = {im.shape for im in imgs}
        if len(shapes) > 1:
            raise DataError(f"{self.root}: patches have different sizes {sorted(shapes)}")
        return np.stack(imgs).astype(np.float32) if imgs else np.zeros((0, 0, 0), np.float32)


def write_generator_training_set(patch_dir: str | Path, out_dir: str | Path) -> Path:
    """Write the training split's tumour patches, and nothing else, as a prepared dataset.

    This is the only data a generator used by the utility experiments may be trained on
    (Rahali 2025, §3.6 trains the GAN on tumour images; here only the training split's,
    so that no test image reaches the generator). The images are copied so that the
    directory stands alone; its ``manifest.jsonl`` keeps the patch rows.

    Returns:
        ``out_dir``.

    Raises:
        DataLeakageError: a row of a test patient would be written (checked before writing).
    """
    ps = PatchSet(patch_dir)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = ps.select(TRAIN, TUMOUR)
    check_no_test_leakage(ps, rows, what=str(out))
    for r in rows:
        shutil.copyfile(ps.root / r["image"], out / r["image"])
    write_manifest(out / "manifest.jsonl", rows)
    size = (ps.info.get("options") or {}).get("size")
    if size is None and rows:
        size = read_mammogram(out / rows[0]["image"]).pixels.shape[0]

    write_json_atomic(out / "dataset.json", {
        "size": None if size is None else int(size),
        "source": f"keras-mammo patches: training-split tumour patches of {ps.root}",
        "counts": {"tumour": len(rows), "patients": len({r['patient_id'] for r in rows})}})
    return out


def check_no_test_leakage(patch_set: PatchSet, rows: Iterable[dict], what: str = "training data") -> None:
    """Raise if any row is a test-split patch or belongs to a test-split patient.

    Args:
        patch_set: the patch set whose test split must stay unseen.
        rows: manifest-like objects with ``image_id`` and/or ``patient_id``.
        what: names the data in the message.

    Raises:
        DataLeakageError: naming the offending image and patient.
    """
    test_ids = {r["image_id"] for r in patch_set.select(TEST)}
    test_patients = patch_set.test_patients()
    for r in rows:
        if r.get("image_id") in test_ids or r.get("patient_id") in test_patients:
            raise DataLeakageError(
                f"{what}: {r.get('image_id')!r} (patient {r.get('patient_id')!r}) belongs to the held-out test "
                f"split of {patch_set.root}; a generator or classifier must never see it")
