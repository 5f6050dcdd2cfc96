"""INbreast (Moreira et al. 2012, Academic Radiology 19(2):236–248).

Layout (the distribution)::

    <root>/INbreast.csv (or INbreast.xls / .xlsx)   one row per image
    <root>/AllDICOMs/<File Name>_<patient hash>_MG_<L|R>_<CC|ML>_ANON.dcm
    <root>/AllXML/<File Name>.xml                   OsiriX ROI plist (lesion outlines)

Table columns: ``Patient ID, Patient age, Laterality, View, Acquisition date, File Name,
ACR, Bi-Rads`` (the CSV export is semicolon-separated; ``Patient ID`` and age read
``removed`` in the public release). The XML is an Apple property list:
``Images[0].ROIs[*]`` each with ``Name`` (Mass, Calcification, Cluster, Distortion,
Asymmetry, Spiculated Region, …) and ``Point_px`` (strings ``"(x, y)"`` in pixels).
"""
from __future__ import annotations

import plistlib
import re
from collections.abc import Iterator
from pathlib import Path

from keras_mammo.data.adapters import base
from keras_mammo.data.records import Abnormality, SourceRecord, name_metadata
from keras_mammo.errors import DataError

#: Radius in pixels (70 µm) of the disk drawn for a one- or two-point ROI (a calcification): 0.35 mm.
POINT_RADIUS = 5.0


def read_inbreast_rois(path: Path) -> list[Abnormality]:
    """Lesion outlines of one INbreast XML (OsiriX plist) file.

    Returns:
        one :class:`Abnormality` per ROI: ``polygon`` ``[(row, col), ...]`` in pixels for
        outlines of three or more points, else ``center`` and ``radius`` (at least
        :data:`POINT_RADIUS`) for point marks.

    Raises:
        DataError: the file is not a readable property list of that structure.
    """
    try:
        with open(path, "rb") as fh:
            plist = plistlib.load(fh)
        rois = [roi for image in plist.get("Images", []) for roi in image.get("ROIs", [])]
    except Exception as exc:
        raise DataError(f"{path}: not an INbreast ROI plist ({type(exc).__name__}: {exc})") from exc
    out = []
    for roi in rois:
        pts = []
        for text in roi.get("Point_px", []):
            nums = re.findall(r"-?\d+(?:\.\d+)?", str(text))
            if len(nums) >= 2:
                pts.append((float(nums[1]), float(nums[0])))  # "(x, y)" → (row, col)
        if not pts:
            continue
        kind = str(roi.get("Name", "roi")).strip() or "roi"
        if len(pts) >= 3:
            out.append(Abnormality(kind=kind, severity=None, polygon=pts))
        else:
            r = sum(p[0] for p in pts) / len(pts)
            c = sum(p[1] for p in pts) / len(pts)
            spread = max(abs(p[0] - r) + abs(p[1] - c) for p in pts)
            out.append(Abnormality(kind=kind, severity=None, center=(r, c), radius=max(POINT_RADIUS, spread)))
    return out


class INbreastDataset(base.TableAdapter):
    """INbreast: 410 full-field DICOMs (115 cases), BI-RADS, ACR density and ROI outlines.

    Patient id: the patient hash of the file name (the table's ``Patient ID`` is
    ``removed`` in the public release; it is used when it holds a value). Laterality
    and view: the table, the file name as fallback. Label: the BI-RADS category
    (:data:`~keras_mammo.data.adapters.base.BIRADS_LABELS`; 6 = biopsy-proven malignant).
    ACR 1–4 becomes density A–D. ROIs of ``AllXML/<File Name>.xml`` become lesion masks.
    A corrupt XML is reported in :attr:`problems` (and ``dataset.json``) and skipped:
    its film is kept without a lesion mask.

    Raises:
        DataError: the table is missing or lacks a required column.
    """

    name = "inbreast"
    REQUIRED = ("File Name", "Laterality", "View", "ACR", "Bi-Rads")
    TABLES = ("INbreast.csv", "INbreast.xlsx", "INbreast.xls")

    def records(self) -> Iterator[SourceRecord]:
        table = self.tables[0] if self.tables else base.find_file(self.root, self.TABLES, "INbreast table")
        rows = base.read_table(table, self.REQUIRED, "INbreast table")
        dicoms: dict[str, Path] = {}
        for p in sorted(self.root.rglob("*.dcm")):
            dicoms.setdefault(p.name.split("_")[0], p)
        xml_dir = next((d for d in (self.root / "AllXML", table.parent / "AllXML") if d.is_dir()), None)
        for row in rows:
            file_id = row["File Name"].split(".")[0].strip()
            path = dicoms.get(file_id, self.root / "AllDICOMs" / f"{file_id}.dcm")  # missing: reported when read
            meta = name_metadata(path.name)
            pid = row.get("Patient ID", "")
            pid = pid if pid and pid.lower() != "removed" else meta.get("patient_id") or file_id
            category = base.birads(row["Bi-Rads"])
            abns: list[Abnormality] = []
            xml = xml_dir / f"{file_id}.xml" if xml_dir else None
            if xml is not None and xml.is_file():
                try:
                    abns = read_inbreast_rois(xml)
                except DataError as exc:
                    self.problems.append(f"{xml.name}: ROIs skipped: {str(exc).split(': ', 1)[-1]}")
            yield SourceRecord(
                path=path, dataset=self.name, image_id=file_id, patient_id=self.patient(pid),
                laterality=base.laterality(row["Laterality"]) or meta.get("laterality"),
                view=base.view(row["View"]) or meta.get("view"), label=base.birads_label(category),
                birads=category, density=base.density(row["ACR"]), abnormalities=abns,
            )
