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

from keras_mammo.data.datasets import open_dataset
from keras_mammo.data.distributed import ray_process_records
from keras_mammo.data.film import (
    MANIFEST_FIELDS,
    failed_row,
    file_stat,
    process_record,
    source_label,
)
from keras_mammo.data.io import read_mammogram
from keras_mammo.data.records import PSEUDONYM_KEY_FILE, SourceRecord, pseudonym_key
from keras_mammo.data.viz import image_grid, save_image
from keras_mammo.errors import ConfigError, DataError
from keras_mammo.utils import write_json_atomic, write_text_atomic

if TYPE_CHECKING:   # annotations only: the data layer sits below the config
    from keras_mammo.config import DataConfig


def filter_category(reason: str | None) -> str | None:
    """The filter that rejected a film (``"laterality"``, ``"birads"``, …) from its reason, else None."""
    if not (reason or "").startswith("filtered: "):
        return None
    return reason[len("filtered: "):].split(" ", 1)[0]


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
        size, mtime = file_stat(Path(rec.path))
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
                        rows[i] = failed_row(records[i], cfg, f"failed: worker process died ({exc}); "
                                                               f"out of memory? retry with --workers 1")
    finally:
        bar.close()
        # the manifest is written even when the batch is interrupted
        done = [r if r is not None else failed_row(rec, cfg, "not processed: the batch was interrupted")
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


def _write_manifest(out: Path, rows: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out / "manifest.csv", buf.getvalue())
