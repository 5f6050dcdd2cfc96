"""``keras-mammo preprocess``: turn a raw dataset into a prepared dataset directory.

Layout written (the input of ``keras-mammo train``)::

    <out>/images/<image_id>.png        16-bit grey PNG, size×size, [0, 1] ↔ 0..65535,
                                       background 0, chest wall on the chosen side
    <out>/masks/<image_id>_breast.png  8-bit 0/255 breast mask, same geometry
    <out>/masks/<image_id>_lesion.png  8-bit 0/255 lesion mask (films with located lesions)
    <out>/manifest.jsonl               one JSON object per input file, kept or not
    <out>/manifest.csv                 the same table as CSV
    <out>/dataset.json                 settings, counts, reasons for rejection
    <out>/preview.png                  a grid of kept images

Every input file appears in the manifest: a corrupt or unreadable file is recorded with
its reason and skipped; it never aborts the run.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from keras_mammo.config import DataConfig
from keras_mammo.data.datasets import SourceRecord, open_dataset
from keras_mammo.data.io import read_mammogram, write_png
from keras_mammo.data.preprocess import crop_pad_resize, preprocess_mammogram
from keras_mammo.errors import ConfigError, DataError
from keras_mammo.utils import write_json_atomic, write_text_atomic

MANIFEST_FIELDS = [
    "image_id", "patient_id", "dataset", "source", "kept", "reason", "image", "breast_mask", "lesion_mask",
    "label", "laterality", "view", "tissue", "n_abnormalities", "shape_score", "chest_wall",
    "orientation_source", "orientation_agrees", "flipped", "source_bits",
]


def _lesion_mask(record: SourceRecord, shape: tuple[int, int]) -> np.ndarray | None:
    """Lesion mask at the film's resolution: MIAS disks (centre, radius) or CBIS-DDSM ROI masks."""
    import cv2

    mask = np.zeros(shape, np.uint8)
    found = False
    for abn in record.abnormalities:
        if abn.center is not None and abn.radius:
            r, c = abn.center
            cv2.circle(mask, (int(round(c)), int(round(r))), int(round(abn.radius)), 1, thickness=-1)
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
    if cfg.laterality != "any" and row.get("laterality") and row["laterality"] != cfg.laterality:
        return f"laterality {row['laterality']} (kept: {cfg.laterality})"
    if cfg.views and row.get("view") and row["view"].upper() not in [v.upper() for v in cfg.views]:
        return f"view {row['view']} (kept: {', '.join(cfg.views)})"
    if cfg.labels and (row.get("label") or "") not in cfg.labels:
        return f"label {row.get('label')} (kept: {', '.join(cfg.labels)})"
    return None


def process_record(record: SourceRecord, cfg: DataConfig, out_dir: str) -> dict:
    """Read, filter, preprocess and write one film; return its manifest row (never raises for data errors)."""
    out = Path(out_dir)
    row = {k: None for k in MANIFEST_FIELDS}
    row.update(image_id=record.image_id, patient_id=record.patient_id, dataset=record.dataset,
               source=str(record.path), kept=False, label=record.label, laterality=record.laterality,
               view=record.view, tissue=record.tissue, n_abnormalities=len(record.abnormalities))
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
    write_png(out / img_rel, res.image, bits=16)
    bm_rel = f"masks/{record.image_id}_breast.png"
    write_png(out / bm_rel, (transform(mask) > 0.5).astype(np.float32), bits=8)
    row.update(kept=True, image=img_rel, breast_mask=bm_rel)
    lesion = _lesion_mask(record, mammo.pixels.shape)
    if lesion is not None:
        les_rel = f"masks/{record.image_id}_lesion.png"
        write_png(out / les_rel, (transform(lesion) > 0.5).astype(np.float32), bits=8)
        row["lesion_mask"] = les_rel
    return row


def reason_category(reason: str | None) -> str:
    """Group a rejection reason for the summary: filtered, unreadable, shape score, no breast."""
    reason = reason or ""
    if reason.startswith("shape score"):
        return "shape score below threshold"
    return reason.split(":")[0] or "unknown"


def _settings(cfg: DataConfig) -> dict:
    d = dataclasses.asdict(cfg)
    d.pop("workers", None)
    d.pop("cache_mb", None)  # how training holds the films, not how they are prepared
    d.pop("prepared", None)
    return d


def read_manifest(prepared_dir: str | Path) -> list[dict]:
    """All rows of a prepared dataset's ``manifest.jsonl``.

    Raises:
        DataError: the directory or its manifest is missing or malformed.
    """
    path = Path(prepared_dir) / "manifest.jsonl"
    if not path.is_file():
        raise DataError(f"{prepared_dir}: not a prepared dataset (no manifest.jsonl); run `keras-mammo preprocess`")
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{i}: invalid JSON ({exc})") from exc
    return rows


def _preview(out: Path, rows: list[dict], n: int = 16) -> None:
    from keras_mammo.viz import image_grid, save_image

    kept = [r for r in rows if r["kept"]][:n]
    if not kept:
        return
    imgs = np.stack([read_mammogram(out / r["image"]).pixels for r in kept])[..., None]
    save_image(out / "preview.png", image_grid(imgs))


def prepare_dataset(cfg: DataConfig, out_dir: str | Path | None = None, overwrite: bool = False,
                    progress: bool = True, limit: int | None = None) -> dict:
    """Preprocess every film of ``cfg``'s dataset into ``out_dir`` (default ``cfg.prepared``).

    Args:
        cfg: the ``data`` section of the config.
        out_dir: prepared-dataset directory.
        overwrite: replace a prepared dataset made with different settings.
        progress: show a progress bar.
        limit: only the first ``limit`` films (quick runs and tests).

    Returns:
        the summary written to ``dataset.json`` (counts, reasons, settings).

    Raises:
        ConfigError: ``out_dir`` is inside the input folder, or holds a prepared dataset
            made with other settings and ``overwrite`` is False.
        DataError: no film was kept (the message gives the reasons).
    """
    from tqdm.auto import tqdm

    out = Path(out_dir or cfg.prepared)
    if cfg.path and out.resolve().is_relative_to(Path(cfg.path).resolve()):
        raise ConfigError(f"data.prepared: {out} is inside the input folder {cfg.path}; choose another directory")
    settings = _settings(cfg)
    summary_path = out / "dataset.json"
    if summary_path.is_file():
        old = json.loads(summary_path.read_text())
        if old.get("settings") == settings and old.get("limit") == limit and (out / "manifest.jsonl").is_file():
            old["reused"] = True
            return old
        if not overwrite:
            raise ConfigError(f"data.prepared: {out} already holds a prepared dataset made with other settings; "
                              f"pass --overwrite or choose another directory")
    records = list(open_dataset(cfg.dataset, cfg.path, cfg.csv_files, cfg.class_subfolders).records())
    if limit:
        records = records[:limit]
    if not records:
        raise DataError(f"{cfg.path}: the dataset lists no images")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    workers = max(1, min(cfg.workers, os.cpu_count() or 1, len(records)))
    bar = tqdm(total=len(records), desc="preprocess", unit="film", disable=not progress)
    rows: list[dict] = []
    if workers == 1:
        for rec in records:
            rows.append(process_record(rec, cfg, str(out)))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for row in pool.map(process_record, records, [cfg] * len(records), [str(out)] * len(records),
                                chunksize=4):
                rows.append(row)
                bar.update()
    bar.close()
    write_text_atomic(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out / "manifest.csv", buf.getvalue())
    kept = sum(r["kept"] for r in rows)
    reasons = Counter(reason_category(r["reason"]) for r in rows if not r["kept"])
    summary = {
        "settings": settings, "limit": limit, "files": len(rows), "kept": kept, "rejected": len(rows) - kept,
        "rejected_by_reason": dict(reasons), "size": cfg.size,
        "labels": dict(Counter(r["label"] for r in rows if r["kept"])),
    }
    write_json_atomic(summary_path, summary)
    if kept == 0:
        details = "; ".join(f"{k}: {v}" for k, v in reasons.items())
        first = next((r["reason"] for r in rows if r["reason"]), "")
        raise DataError(f"no image was kept out of {len(rows)} ({details}); e.g. {first}")
    _preview(out, rows)
    return summary
