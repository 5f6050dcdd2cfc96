"""RSNA Screening Mammography Breast Cancer Detection (Kaggle / RSNA 2022–23).

Layout (the competition's download)::

    <root>/train.csv                               one row per image
    <root>/train_images/<patient_id>/<image_id>.dcm

``train.csv`` columns: ``site_id, patient_id, image_id, laterality, view, age, cancer,
biopsy, invasive, BIRADS, implant, density, machine_id, difficult_negative_case``
(``test.csv`` has a subset, without ``cancer``/``BIRADS``/``density``).
"""
from __future__ import annotations

from collections.abc import Iterator

from keras_mammo.data.adapters import base
from keras_mammo.data.records import SourceRecord


class RSNADataset(base.TableAdapter):
    """RSNA Screening Mammography (54,706 training DICOMs, ~314 GB; Carr et al. 2022).

    Label: ``"malignant"`` when ``cancer`` is 1, ``"benign"`` when ``biopsy`` is 1 and
    ``cancer`` 0 (a biopsy that found no cancer), else ``"normal"``; no ``cancer``
    column (the test table) leaves it unknown. ``BIRADS`` (0, 1, 2 in the training
    table) and ``density`` (A–D) are kept as given. Views other than CC/MLO (AT, ML,
    LM, LMO) are kept with their code. No lesion locations are published. The image id is
    RSNA's ``image_id`` (unique in the dataset), so output names never carry the patient id.

    Args:
        root: the folder holding ``train.csv`` and ``train_images/``.
        tables: another table in the same layout (e.g. ``test.csv``); images are then
            looked up in ``<table stem>_images/``.

    Raises:
        DataError: the table is missing or lacks a required column.
    """

    name = "rsna"
    REQUIRED = ("patient_id", "image_id", "laterality", "view")

    def records(self) -> Iterator[SourceRecord]:
        tables = self.tables or [self.root / "train.csv"]
        for table in tables:
            images = self.root / f"{table.stem}_images"
            for row in base.read_table(table, self.REQUIRED, "RSNA table"):
                pid, iid = row["patient_id"], row["image_id"]
                cancer, biopsy = row.get("cancer", ""), row.get("biopsy", "")
                label = None
                if cancer != "":
                    label = "malignant" if cancer in ("1", "1.0") else "benign" if biopsy in ("1", "1.0") else "normal"
                yield SourceRecord(
                    path=images / pid / f"{iid}.dcm", dataset=self.name, image_id=iid,
                    patient_id=self.patient(pid), laterality=base.laterality(row["laterality"]),
                    view=base.view(row["view"]), label=label, birads=base.birads(row.get("BIRADS")),
                    density=base.density(row.get("density")),
                )
