"""Tumour / non-tumour patch sets for the downstream-utility experiments (Rahali 2025, §3.6).

The thesis classifies *patches*: a tumour patch is a square crop centred on an annotated
lesion, a non-tumour patch is a crop of breast tissue without a lesion. This module cuts
both kinds from one labelled dataset, splits them **by patient** into a training and a
held-out test split, and writes them as a directory that the GAN trainer can read
directly (the prepared-dataset format: ``images/<id>.png`` 16-bit + ``manifest.jsonl``).

Where the patches come from:

- **Tumour patch**: centred on a listed abnormality. MIAS gives the centre and the
  radius of an enclosing circle in ``Info.txt`` (y from the bottom-left corner, already
  converted to a row by :class:`~keras_mammo.data.datasets.MIASDataset`); CBIS-DDSM
  gives an ROI mask whose bounding box defines centre and radius. Abnormalities without
  coordinates (MIAS: some CALC rows and mdb059) are skipped and counted.
- **Non-tumour patch**: by default a crop of breast tissue (at least ``min_tissue`` of
  its pixels inside :func:`keras_mammo.data.preprocess.breast_mask`) from a film labelled
  normal. ``normal_source="lesion-free"`` instead samples tissue away from every located
  lesion of any film with only located lesions (for datasets without normal films, such
  as CBIS-DDSM).

Why both classes come from the same dataset: the thesis drew tumours from CBIS-DDSM and
normal tissue from RSNA, which lets a classifier separate scanners and digitizers
instead of tumour and tissue. Here both classes share one source.

Why the split is by patient: MIAS films come in left/right pairs of one patient
(mdb001/mdb002, ...); a CBIS-DDSM patient has CC and MLO views of the same lesion. A
split by patch would put the same lesion or breast in both splits.

The directory it writes is described in :mod:`keras_mammo.utility.patchset`; the
crop geometry lives in :mod:`keras_mammo.utility.patch_geometry`.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from keras_mammo.data.io import read_mammogram, write_png
from keras_mammo.data.preprocess import breast_mask
from keras_mammo.data.records import SourceRecord
from keras_mammo.errors import ConfigError, DataError
from keras_mammo.utility.patch_geometry import (
    crop_square,
    film_rng,
    roi_center_radius,
    sample_tissue_centres,
)
from keras_mammo.utility.patchset import (
    CLASSES,
    GENERATOR_TRAIN_DIR,
    NON_TUMOUR,
    TEST,
    TRAIN,
    TUMOUR,
    DataLeakageError,
    PatchSet,
    check_no_test_leakage,
    counts,
    write_generator_training_set,
    write_manifest,
)
from keras_mammo.utils import write_json_atomic

__all__ = [  # the cutting and splitting here, and the patch-set names from patch_geometry / patchset
    "CLASSES", "GENERATOR_TRAIN_DIR", "NON_TUMOUR", "TEST", "TRAIN", "TUMOUR", "DataLeakageError", "Patch",
    "PatchOptions", "PatchSet", "check_no_test_leakage", "counts", "crop_square", "extract_patches",
    "film_patches", "roi_center_radius", "sample_tissue_centres", "split_by_patient",
    "write_generator_training_set", "write_patch_set",
]

@dataclasses.dataclass
class PatchOptions:
    """How patches are cut and split.

    Attributes:
        size: side of the written patch in pixels (default 128).
        crop_size: side of the crop in film pixels (after ``source_scale``) before it is
            resized to ``size``; None = ``size`` (no resize).
        crop: ``"fixed"``: the crop is ``crop_size`` film pixels square (after
            ``source_scale``), so tumour and non-tumour patches have the same physical
            scale (MIAS: 128 px × 200 µm = 25.6 mm) and scale is no cue; ``"lesion"``:
            a tumour crop grows to ``2 × radius × lesion_margin`` when the lesion is
            larger than ``crop_size`` and is resized down to ``size``.
        lesion_margin: context around the enclosing circle for ``crop="lesion"``.
        source_scale: films are resized by this factor before cropping (CBIS-DDSM at
            50 µm: 0.25 gives MIAS's 200 µm).
        normals_per_film: non-tumour patches sampled per eligible film.
        normal_source: ``"normal-films"`` (films labelled normal) or ``"lesion-free"``
            (tissue at least one patch side away from every located lesion).
        min_tissue: minimum fraction of a non-tumour patch inside the breast mask.
        test_fraction: share of the tumour patches (and of the patients without one)
            held out, by patient (thesis: 100 of 500 = 0.2).
        seed: seeds the non-tumour positions and the patient split.
    """

    size: int = 128
    crop_size: int | None = None
    crop: str = "fixed"
    lesion_margin: float = 1.2
    source_scale: float = 1.0
    normals_per_film: int = 2
    normal_source: str = "normal-films"
    min_tissue: float = 0.95
    test_fraction: float = 0.2
    seed: int = 0

    def validate(self) -> None:
        """Raises ConfigError naming the bad option."""
        if self.size < 8:
            raise ConfigError(f"patches.size: must be ≥ 8 pixels, got {self.size}")
        if self.crop_size is not None and self.crop_size < 8:
            raise ConfigError(f"patches.crop_size: must be ≥ 8 pixels, got {self.crop_size}")
        if self.crop not in ("fixed", "lesion"):
            raise ConfigError(f"patches.crop: {self.crop!r} is not allowed; allowed values: fixed, lesion")
        if self.normal_source not in ("normal-films", "lesion-free"):
            raise ConfigError(f"patches.normal_source: {self.normal_source!r} is not allowed; "
                              "allowed values: normal-films, lesion-free")
        if not 0.0 < self.source_scale <= 1.0:
            raise ConfigError(f"patches.source_scale: must be in (0, 1], got {self.source_scale}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"patches.test_fraction: must be in (0, 1), got {self.test_fraction}")
        if not 0.0 <= self.min_tissue <= 1.0:
            raise ConfigError(f"patches.min_tissue: must be in [0, 1], got {self.min_tissue}")
        if self.normals_per_film < 0:
            raise ConfigError(f"patches.normals_per_film: must be ≥ 0, got {self.normals_per_film}")
        if self.lesion_margin <= 0:
            raise ConfigError(f"patches.lesion_margin: must be > 0, got {self.lesion_margin}")


@dataclasses.dataclass
class Patch:
    """One tumour or non-tumour patch and where it was cut from.

    Attributes:
        patch_id: unique id, ``<film>-t<k>`` (k-th abnormality) or ``<film>-n<k>``.
        patient_id, dataset, laterality, view: copied from the film's record.
        source_image: the film's image id; ``source_path`` its file.
        cls: ``"tumour"`` or ``"non-tumour"``.
        label: ``"benign"``/``"malignant"`` for tumours, ``"normal"`` otherwise.
        abnormality: lesion class (MIAS CALC, CIRC, ...; CBIS-DDSM mass/calcification).
        box: crop box ``(row0, col0, row1, col1)`` in pixels of the original film,
            end-exclusive (may extend past the film for lesions at its edge: the outside
            is zero-padded).
        center: lesion centre ``(row, col)`` in film pixels (tumours), else the crop centre.
        radius: lesion radius in film pixels (tumours) or ``None``.
        tissue_fraction: share of the crop inside the breast mask (non-tumours), else ``None``.
        split: ``"train"`` or ``"test"`` (set by :func:`split_by_patient`).
        image: ``(size, size) float32`` in ``[0, 1]``, or ``None`` once written.
    """

    patch_id: str
    patient_id: str
    dataset: str
    source_image: str
    source_path: str
    cls: str
    label: str
    abnormality: str | None
    box: tuple[int, int, int, int]
    center: tuple[float, float]
    radius: float | None = None
    tissue_fraction: float | None = None
    laterality: str | None = None
    view: str | None = None
    split: str | None = None
    image: np.ndarray | None = None

    def manifest_row(self) -> dict:
        """The ``manifest.jsonl`` object: the prepared-dataset keys plus the patch's provenance."""
        return {
            "image_id": self.patch_id, "patient_id": self.patient_id, "dataset": self.dataset,
            "label": self.label, "kept": True, "image": f"images/{self.patch_id}.png",
            "laterality": self.laterality, "view": self.view,
            "class": self.cls, "severity": self.label if self.cls == TUMOUR else None,
            "abnormality": self.abnormality, "source_image": self.source_image,
            "source_path": self.source_path, "box": list(self.box),
            "center": [round(float(c), 2) for c in self.center],
            "radius": None if self.radius is None else float(self.radius),
            "tissue_fraction": None if self.tissue_fraction is None else round(float(self.tissue_fraction), 4),
            "split": self.split,
        }


def _lesion_geometry(record: SourceRecord, film_shape: tuple[int, int], scale: float
                     ) -> list[tuple[int, object, tuple[float, float] | None, float | None]]:
    """``[(k, abnormality, centre, radius)]`` in scaled film pixels; centre None when unknown."""
    out = []
    for k, abn in enumerate(record.abnormalities):
        center, radius = abn.center, abn.radius
        if center is None and abn.roi_mask_path is not None:
            roi = read_mammogram(abn.roi_mask_path).pixels
            got = roi_center_radius(roi, (round(film_shape[0] / scale), round(film_shape[1] / scale)))
            if got is not None:
                center, radius = got
        if center is not None:
            center = (center[0] * scale, center[1] * scale)
            radius = None if radius is None else radius * scale
        out.append((k, abn, center, radius))
    return out


def film_patches(record: SourceRecord, options: PatchOptions) -> tuple[list[Patch], list[str]]:
    """Cut the tumour and non-tumour patches of one film.

    Tumour patches are cut for every abnormality with a location; non-tumour patches
    for a normal film (``normal_source="normal-films"``) or, with ``"lesion-free"``, for a
    film whose abnormalities are all located (tissue away from them).

    Args:
        record: the film's metadata (label, abnormalities with centre/radius or ROI mask).
        options: :class:`PatchOptions`.

    Returns:
        ``(patches, notes)``: patches with ``image`` set (``(size, size) float32`` in
        ``[0, 1]``) and ``split=None``; notes name what was skipped and why.

    Raises:
        DataError: the film (or an ROI mask) cannot be read.
    """
    import cv2

    pixels = read_mammogram(record.path).pixels
    scale = float(options.source_scale)
    if scale != 1.0:
        pixels = cv2.resize(pixels, (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale))),
                            interpolation=cv2.INTER_AREA)
    common = dict(patient_id=record.patient_id, dataset=record.dataset, source_image=record.image_id,
                  source_path=str(record.path), laterality=record.laterality, view=record.view)
    patches: list[Patch] = []
    notes: list[str] = []
    lesions = _lesion_geometry(record, pixels.shape, scale)
    crop = int(options.crop_size or options.size)
    for k, abn, center, radius in lesions:
        if center is None:
            notes.append(f"{record.image_id}: abnormality {k} ({abn.kind}) has no location; no tumour patch")
            continue
        side = crop
        if options.crop == "lesion" and radius:
            side = max(crop, int(np.ceil(2 * radius * options.lesion_margin)))
        img, box = crop_square(pixels, center, side, options.size)
        box = tuple(int(round(b / scale)) for b in box)
        patches.append(Patch(
            patch_id=f"{record.image_id}-t{k}", cls=TUMOUR, label=abn.severity or "unknown",
            abnormality=abn.kind, box=box, center=(center[0] / scale, center[1] / scale),
            radius=None if radius is None else radius / scale, image=img, **common))
    is_normal = (record.label or "normal") == "normal" and not record.abnormalities
    all_located = bool(record.abnormalities) and all(c is not None for _, _, c, _ in lesions)
    eligible = is_normal if options.normal_source == "normal-films" else (is_normal or all_located)
    if eligible and options.normals_per_film > 0:
        mask = breast_mask(pixels).mask
        exclude = None
        if lesions:
            exclude = np.zeros(pixels.shape, np.uint8)
            for _, _, center, radius in lesions:
                r = int(round((radius or crop / 2) * options.lesion_margin))
                cv2.circle(exclude, (int(round(center[1])), int(round(center[0]))), max(r, 1), 1, -1)
            exclude = exclude.astype(bool)
        rng = film_rng(options.seed, record.image_id)
        picks = sample_tissue_centres(mask, crop, options.normals_per_film, rng, options.min_tissue, exclude)
        if len(picks) < options.normals_per_film:
            notes.append(f"{record.image_id}: {len(picks)} of {options.normals_per_film} non-tumour patches "
                         f"fit inside the breast (min_tissue={options.min_tissue})")
        for j, (r, c, frac) in enumerate(picks):
            img, box = crop_square(pixels, (r - crop // 2 + crop / 2, c - crop // 2 + crop / 2), crop, options.size)
            box = tuple(int(round(b / scale)) for b in box)
            patches.append(Patch(
                patch_id=f"{record.image_id}-n{j}", cls=NON_TUMOUR, label="normal", abnormality=None, box=box,
                center=((box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0), tissue_fraction=frac,
                image=img, **common))
    return patches, notes


# --------------------------------------------------------------------------- splitting


def split_by_patient(patches: Sequence[Patch], test_fraction: float = 0.2, seed: int = 0) -> dict[str, str]:
    """Assign every patient to ``"train"`` or ``"test"``; all of a patient's patches follow.

    Patients with tumour patches are shuffled (``seed``) and moved to the test split
    until it holds ``round(test_fraction × tumour patches)`` tumour patches; patients
    with only non-tumour patches are shuffled and ``round(test_fraction × count)`` of them
    go to test. The thesis held out 100 of 500 images per class (0.2), §3.6.

    Args:
        patches: patches with ``patient_id`` and ``cls``.
        test_fraction: in ``(0, 1)``.
        seed: split seed.

    Returns:
        ``{patient_id: "train" | "test"}``; ``Patch.split`` is also set in place.

    Raises:
        DataError: fewer than 2 patients with tumour patches, or a split would hold no
            tumour or no non-tumour patch.
    """
    n_tumour: Counter = Counter(p.patient_id for p in patches if p.cls == TUMOUR)
    patients = sorted({p.patient_id for p in patches})
    tumour_patients = sorted(n_tumour)
    other = [pid for pid in patients if pid not in n_tumour]
    if len(tumour_patients) < 2:
        raise DataError(f"need tumour patches from at least 2 patients to split by patient, got {len(tumour_patients)}")
    rng = np.random.default_rng(int(seed))
    target = max(1, int(round(test_fraction * sum(n_tumour.values()))))
    split = {pid: TRAIN for pid in patients}
    held = 0
    for i in rng.permutation(len(tumour_patients)):
        if held >= target:
            break
        pid = tumour_patients[int(i)]
        split[pid] = TEST
        held += n_tumour[pid]
    n_other_test = int(round(test_fraction * len(other)))
    for i in rng.permutation(len(other))[:n_other_test]:
        split[other[int(i)]] = TEST
    for p in patches:
        p.split = split[p.patient_id]
    for s in (TRAIN, TEST):
        for c in CLASSES:
            if not any(p.split == s and p.cls == c for p in patches):
                raise DataError(f"the {s} split holds no {c} patch; use more films or another test_fraction")
    return split


# --------------------------------------------------------------------------- cutting all films, writing


def extract_patches(records: Iterable[SourceRecord], options: PatchOptions | None = None,
                    progress: bool = True) -> tuple[list[Patch], list[str]]:
    """Cut patches from every film and split them by patient.

    Args:
        records: films from a dataset adapter (e.g. ``MIASDataset(path).records()``).
        options: :class:`PatchOptions` (defaults if None).
        progress: show a tqdm bar over films.

    Returns:
        ``(patches, notes)`` with ``split`` set on every patch.

    Raises:
        ConfigError: invalid options. DataError: unreadable film, or no valid split.
    """
    from tqdm.auto import tqdm

    options = options or PatchOptions()
    options.validate()
    records = list(records)
    patches: list[Patch] = []
    notes: list[str] = []
    for rec in tqdm(records, desc="patches", unit="film", disable=not progress):
        got, why = film_patches(rec, options)
        patches.extend(got)
        notes.extend(why)
    if not patches:
        raise DataError("no patches could be cut: no located abnormality and no eligible normal film")
    split_by_patient(patches, options.test_fraction, options.seed)
    return patches, notes


def write_patch_set(patches: Sequence[Patch], out_dir: str | Path, options: PatchOptions,
                    source: dict | None = None, notes: Sequence[str] = ()) -> Path:
    """Write patches as a prepared-dataset directory plus the generator's training subset.

    Writes ``images/<patch_id>.png`` (16-bit), ``manifest.jsonl``, ``patches.json``
    (options, counts, split patient lists, notes, ``source``) and ``generator_train/``
    (training-split tumour patches only; see :func:`write_generator_training_set`).

    Returns:
        ``out_dir`` as a Path.

    Raises:
        DataError: a patch has no split or no image.
    """

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for p in patches:
        if p.split not in (TRAIN, TEST):
            raise DataError(f"patch {p.patch_id} has no train/test split; call split_by_patient first")
        if p.image is None:
            raise DataError(f"patch {p.patch_id} has no pixels to write")
        write_png(out / "images" / f"{p.patch_id}.png", p.image, bits=16)
        rows.append(p.manifest_row())
    write_manifest(out / "manifest.jsonl", rows)
    summary = {
        "format": "keras-mammo patch set v1",
        "options": dataclasses.asdict(options),
        "source": source or {},
        "counts": counts(rows),
        "patients": {s: sorted({r["patient_id"] for r in rows if r["split"] == s}) for s in (TRAIN, TEST)},
        "notes": list(notes),
    }
    write_json_atomic(out / "patches.json", summary)
    write_json_atomic(out / "dataset.json", {
        "size": int(options.size), "source": "keras-mammo patches", "counts": summary["counts"],
        "note": f"all patches, test split included: train a generator on {GENERATOR_TRAIN_DIR}/ only"})
    write_generator_training_set(out, out / GENERATOR_TRAIN_DIR)
    return out
