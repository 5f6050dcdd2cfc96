"""What the screening-dataset adapters share: reading their metadata tables and
normalizing laterality, view, BI-RADS and density to one vocabulary.

Each adapter reads a dataset's own published layout and yields
:class:`keras_mammo.data.datasets.SourceRecord` objects (metadata only; pixels are read
later). Patient ids always pass through
:func:`keras_mammo.data.datasets.pseudonymous_patient_id` with the prepared dataset's key,
so manifests never hold a dataset's patient id itself.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from keras_mammo.data.records import SourceRecord, pseudonymous_patient_id
from keras_mammo.errors import DataError

#: BI-RADS assessment category → label, where a dataset gives no pathology (ACR BI-RADS
#: Atlas, 5th ed., 2013: 1 negative, 2 benign, 3 probably benign, 4 suspicious,
#: 5 highly suggestive of malignancy, 6 known biopsy-proven malignancy; 0 incomplete).
BIRADS_LABELS = {"0": None, "1": "normal", "2": "benign", "3": "probably-benign", "4": "suspicious",
                 "5": "highly-suspicious", "6": "malignant"}


def read_table(path: Path, required: tuple[str, ...], what: str) -> list[dict[str, str]]:
    """Rows of a metadata table as ``{column: text}`` with stripped cells.

    CSV files may be comma-, semicolon- or tab-separated (INbreast's CSV export uses
    semicolons); ``.xlsx``/``.xls`` are read with pandas (which needs ``openpyxl`` /
    ``xlrd``). Column names are matched case-insensitively and with surrounding spaces
    removed; the returned keys are the required names as given.

    Raises:
        DataError: the file is missing or unreadable, or lacks a required column (the
            message names the file, the missing columns and the columns found).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    if path.suffix.lower() in (".xlsx", ".xls"):
        try:
            import pandas as pd

            frame = pd.read_excel(path, dtype=str)
        except ImportError as exc:
            raise DataError(f"{path}: reading {path.suffix} needs {exc.name} (pip install {exc.name}); "
                            f"or save the sheet as CSV and pass that") from exc
        except Exception as exc:
            raise DataError(f"{path}: cannot read the {what} ({type(exc).__name__}: {exc})") from exc
        header = [str(c) for c in frame.columns]
        raw_rows = [["" if v is None or str(v) == "nan" else str(v) for v in r] for r in frame.itertuples(index=False)]
    else:
        try:
            text = path.read_text(encoding="utf-8-sig", errors="replace")
        except OSError as exc:
            raise DataError(f"{path}: cannot read the {what} ({exc})") from exc
        first = text.splitlines()[0] if text else ""
        delim = max(",;\t", key=first.count)
        reader = csv.reader(text.splitlines(), delimiter=delim)
        header = next(reader, [])
        raw_rows = list(reader)
    cols = {c.strip().lower(): i for i, c in enumerate(header)}
    missing = [k for k in required if k.lower() not in cols]
    if missing:
        raise DataError(f"{path}: missing {what} column(s) {missing}; found {[c.strip() for c in header]}")
    names = {c.strip().lower(): c.strip() for c in header}
    rows = []
    for r in raw_rows:
        if not any(cell.strip() for cell in r):
            continue
        row = {names[k]: (r[i].strip() if i < len(r) else "") for k, i in cols.items()}
        for k in required:  # the required names as the adapter spells them
            row[k] = row.get(names[k.lower()], "")
        rows.append(row)
    return rows


def find_file(root: Path, names: tuple[str, ...], what: str) -> Path:
    """The first of ``names`` found in ``root`` or one folder below it.

    Raises:
        DataError: none is found (the message lists the names looked for).
    """
    for name in names:
        for cand in [root / name, *sorted(root.glob(f"*/{name}"))]:
            if cand.is_file():
                return cand
    raise DataError(f"{root}: {what} not found (looked for {', '.join(names)} here and one folder below)")


def laterality(value: str | None) -> str | None:
    """``"L"``/``"R"`` from ``L``, ``R``, ``left``, ``right`` (any case), else ``None``."""
    v = (value or "").strip().upper()[:1]
    return v if v in ("L", "R") else None


def view(value: str | None) -> str | None:
    """A DICOM view code (CID 4014) from a dataset's spelling; ``ML`` stays ``ML`` (INbreast's oblique view code)."""
    v = (value or "").strip().upper()
    return v or None


def birads(value: str | None) -> str | None:
    """BI-RADS category as ``"0"`` … ``"6"`` or ``"4A"`` … ``"4C"`` from ``"BI-RADS 4"``, ``"4b"``, ``"2.0"``."""
    v = (value or "").strip().upper().replace("BI-RADS", "").replace("BIRADS", "").strip()
    m = re.fullmatch(r"([0-6])(?:\.0+)?\s*([ABC])?", v)
    return (m.group(1) + (m.group(2) or "")) if m else None


def density(value: str | None) -> str | None:
    """ACR breast density ``"A"`` … ``"D"`` from ``"DENSITY C"``, ``"c"`` or ACR ``1`` … ``4``
    (1 → A … 4 → D)."""
    v = (value or "").strip().upper().replace("DENSITY", "").strip()
    if re.fullmatch(r"[1-4](?:\.0+)?", v):
        return "ABCD"[int(float(v)) - 1]
    return v if v in ("A", "B", "C", "D") else None


def birads_label(category: str | None) -> str | None:
    """The label a BI-RADS category stands for where no pathology is given (:data:`BIRADS_LABELS`)."""
    return BIRADS_LABELS.get((category or "")[:1])


class TableAdapter:
    """Base of the metadata-table adapters: ``root`` and optional replacement tables.

    Subclasses set ``name`` and implement :meth:`records`, naming patients with
    :meth:`patient`; metadata problems that skip part of a film's annotations (a
    corrupt ROI file) are appended to ``problems``.

    Args:
        root: the dataset's root folder.
        tables: metadata tables replacing the default ones (``--csv``).
        pseudonym_key: the prepared dataset's secret for patient pseudonyms
            (:func:`keras_mammo.data.datasets.pseudonym_key`); a random key for this
            listing only when none is given.

    Raises:
        DataError: ``root`` is not a folder.
    """

    name = "table"

    def __init__(self, root: str | Path, tables: list[str | Path] | None = None, pseudonym_key: bytes | None = None):
        import secrets

        if root is None:
            raise DataError(f"--dataset {self.name} needs --input (the dataset's root folder)")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: {self.name} dataset folder not found")
        self.tables = [Path(t) for t in (tables or [])]
        self.problems: list[str] = []
        self.pseudonym_key = pseudonym_key or secrets.token_bytes(32)

    def patient(self, dataset_patient_id: str) -> str:
        """A dataset's patient id as the project's keyed pseudonym (films of one patient share it)."""
        return pseudonymous_patient_id(dataset_patient_id, self.pseudonym_key)

    def records(self) -> Iterator[SourceRecord]:  # pragma: no cover - abstract
        raise NotImplementedError
