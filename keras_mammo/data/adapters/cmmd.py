"""The Chinese Mammography Database, CMMD (Cui et al. 2021, TCIA, doi:10.7937/tcia.eqde-4b16).

Layout (the TCIA download through the NBIA Data Retriever)::

    <root>/CMMD_clinicaldata_revision.xlsx (or .csv)   one row per breast
    <root>/CMMD/<ID1>/<study folder>/<series folder>/1-1.dcm, 1-2.dcm, ...

Clinical-table columns: ``ID1, LeftRight, Age, number, abnormality, classification,
subtype`` (``classification``: Benign / Malignant; ``subtype`` for part of the
malignant cases). The table names a breast, not an image: laterality and view of each
DICOM come from its header (Image Laterality, View Position).
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

from keras_mammo.data.adapters import base
from keras_mammo.data.records import SourceRecord, dicom_header
from keras_mammo.errors import DataError

_ID1 = re.compile(r"^D\d-\d{4}$", re.IGNORECASE)


class CMMDDataset(base.TableAdapter):
    """CMMD: 5,202 DICOMs (1,775 patients), biopsy-confirmed benign or malignant breasts.

    Patient id: ``ID1`` (the first folder component matching ``D<n>-<4 digits>``).
    Laterality and view: the DICOM header (read without pixels while listing); the label
    (``classification`` in lower case) of the table row with the same ``ID1`` and
    ``LeftRight``. A film whose header gives no laterality takes the patient's only row
    when there is exactly one; otherwise its label stays unknown. No lesion locations
    are published. The image id is the patient pseudonym, 8 hex digits of the folder
    path and the file stem (``pid-…_1a2b3c4d_1-1``), so output names never carry ``ID1``.

    Raises:
        DataError: the clinical table is missing or lacks a required column, or no
            DICOM lies under an ``ID1`` folder.
    """

    name = "cmmd"
    REQUIRED = ("ID1", "LeftRight", "classification")
    TABLES = ("CMMD_clinicaldata_revision.csv", "CMMD_clinicaldata_revision.xlsx", "CMMD_clinicaldata.csv",
              "CMMD_clinicaldata.xlsx")

    def records(self) -> Iterator[SourceRecord]:
        table = self.tables[0] if self.tables else base.find_file(self.root, self.TABLES, "CMMD clinical table")
        breasts: dict[str, dict[str, dict]] = {}
        for row in base.read_table(table, self.REQUIRED, "CMMD clinical table"):
            breasts.setdefault(row["ID1"].upper(), {})[base.laterality(row["LeftRight"]) or "?"] = row
        files = sorted(p for p in self.root.rglob("*.dcm") if p.is_file())
        found = False
        for path in files:
            rel = path.relative_to(self.root)
            id1 = next((part.upper() for part in rel.parts[:-1] if _ID1.match(part)), None)
            if id1 is None:
                continue
            found = True
            head = dicom_header(path)
            lat = head.get("laterality")
            rows = breasts.get(id1, {})
            row = rows.get(lat) if lat else (next(iter(rows.values())) if len(rows) == 1 else None)
            if lat is None and row is not None:
                lat = base.laterality(row["LeftRight"])
            pseudonym = self.patient(id1)
            folder = hashlib.sha256(rel.parent.as_posix().encode()).hexdigest()[:8]
            image_id = f"{pseudonym}_{folder}_{re.sub(r'[^A-Za-z0-9._-]+', '-', path.stem)}"
            yield SourceRecord(
                path=path, dataset=self.name, image_id=image_id, patient_id=pseudonym, laterality=lat,
                view=head.get("view"), label=(row["classification"].lower() or None) if row else None,
            )
        if not found:
            raise DataError(f"{self.root}: no DICOM under a CMMD patient folder (expected CMMD/<ID1>/…/*.dcm, "
                            f"ID1 like D1-0001)")
