"""VinDr-Mammo (Nguyen et al. 2023, Scientific Data 10:277; PhysioNet v1.0.0).

Layout (the PhysioNet download)::

    <root>/breast-level_annotations.csv   one row per image
    <root>/finding_annotations.csv        one row per finding (or one "No Finding" row)
    <root>/images/<study_id>/<image_id>.dicom

``breast-level_annotations.csv``: ``study_id, series_id, image_id, laterality,
view_position, height, width, breast_birads, breast_density, split``;
``finding_annotations.csv`` adds ``finding_categories, finding_birads, xmin, ymin,
xmax, ymax`` (pixels of the full-size film; empty for ``['No Finding']``).
"""
from __future__ import annotations

from collections.abc import Iterator

from keras_mammo.data.adapters import base
from keras_mammo.data.records import Abnormality, SourceRecord


def _box(row: dict) -> tuple[float, float, float, float] | None:
    try:
        x0, y0, x1, y1 = (float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
    except (KeyError, ValueError):
        return None
    return (min(y0, y1), min(x0, x1), max(y0, y1), max(x0, x1))


def _categories(text: str) -> str:
    return ", ".join(t.strip(" '\"") for t in text.strip("[]").split(",") if t.strip(" '\"")) or "finding"


class VinDrMammoDataset(base.TableAdapter):
    """VinDr-Mammo: 20,000 DICOMs of 5,000 four-view exams, double-read BI-RADS and density.

    Patient id: the ``study_id`` (the dataset publishes one exam per patient and no
    other patient key). Label: the breast-level BI-RADS assessment
    (:data:`~keras_mammo.data.adapters.base.BIRADS_LABELS`; VinDr gives no pathology).
    Findings with a box become lesion masks (the box, filled); ``split`` is the official
    ``training``/``test`` split.

    Raises:
        DataError: a table is missing or lacks a required column.
    """

    name = "vindr"
    REQUIRED = ("study_id", "image_id", "laterality", "view_position", "breast_birads", "breast_density", "split")
    FINDINGS = ("image_id", "finding_categories", "xmin", "ymin", "xmax", "ymax")

    def records(self) -> Iterator[SourceRecord]:
        breast = self.tables[0] if self.tables else base.find_file(
            self.root, ("breast-level_annotations.csv",), "VinDr-Mammo breast-level_annotations.csv")
        rows = base.read_table(breast, self.REQUIRED, "VinDr-Mammo breast-level table")
        findings: dict[str, list[Abnormality]] = {}
        finding_path = self.tables[1] if len(self.tables) > 1 else breast.parent / "finding_annotations.csv"
        if finding_path.is_file():
            for f in base.read_table(finding_path, self.FINDINGS, "VinDr-Mammo finding table"):
                box = _box(f)
                if box is None:
                    continue
                findings.setdefault(f["image_id"], []).append(Abnormality(
                    kind=_categories(f["finding_categories"]), severity=None, box=box,
                    birads=base.birads(f.get("finding_birads"))))
        images = breast.parent / "images"
        for row in rows:
            category = base.birads(row["breast_birads"])
            yield SourceRecord(
                path=images / row["study_id"] / f"{row['image_id']}.dicom", dataset=self.name,
                image_id=row["image_id"], patient_id=self.patient(row["study_id"]),
                laterality=base.laterality(row["laterality"]), view=base.view(row["view_position"]),
                label=base.birads_label(category), birads=category, density=base.density(row["breast_density"]),
                split=row["split"].lower() or None, abnormalities=findings.get(row["image_id"], []),
            )
