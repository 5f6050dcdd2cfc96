"""No identifying data in anything a pipeline run writes: preprocess → train → generate →
export on a DICOM whose PatientName, PatientID, BirthDate, InstitutionName and
AccessionNumber are filled; every output file is searched for those values."""
from __future__ import annotations

import shutil

import pytest

#: runs the whole pipeline: preprocess, train, generate, export
pytestmark = pytest.mark.slow


def test_pipeline_outputs_hold_no_identifying_dicom_values(identified_dicom, tmp_path):
    from keras_mammo.config import load_config
    from keras_mammo.data.prepare import prepare_dataset
    from keras_mammo.generation.export import export_model
    from keras_mammo.generation.generate import write_images
    from keras_mammo.training.run import train

    film, ident = identified_dicom
    src = tmp_path / "pacs-export"
    src.mkdir()
    for name in ("a.dcm", "b.dcm"):  # two films of the one patient
        shutil.copy(film, src / name)
    cfg = load_config(None, {
        "data.dataset": "folder", "data.path": str(src), "data.prepared": str(tmp_path / "prepared"),
        "data.size": 32, "data.workers": 1, "data.min_shape_score": 0.5,
        "run_dir": str(tmp_path / "runs" / "private"), "seed": 1,
        "train.stages": [{"resolution": 16, "epochs": 1}, {"resolution": 32, "epochs": 1}],
        "train.batch_size": 2, "train.steps_per_epoch": 1, "train.sample_count": 2, "train.tensorboard": False,
        "model.params": {"g_channels": [16, 16, 8], "d_channels": [32, 16, 8], "base_channels": 32}})
    assert prepare_dataset(cfg.data, progress=False)["kept"] == 2
    run = train(cfg, progress=False)
    write_images(run, 3, tmp_path / "generated", seed=2)
    export_model(run, out_dir=tmp_path / "saved", name="private")

    outputs = [p for d in ("prepared", "runs", "generated", "saved") for p in (tmp_path / d).rglob("*") if p.is_file()]
    assert len(outputs) > 20
    needles = {tag: value.encode() for tag, value in ident.items()}
    needles["PatientName (DICOM PN, spaces)"] = ident["PatientName"].replace("^", " ").encode()
    found = [(tag, p.relative_to(tmp_path)) for p in outputs for tag, value in needles.items()
             if value in p.read_bytes()]
    assert found == []
    # what is shared (SavedModel, generated images, manifests, dataset.json) does not name the source folder
    # either; only the run's resolved config (config.yaml: data.path) keeps it, to re-run
    shared = [p for p in outputs if p.name != "config.yaml"]
    assert [p.relative_to(tmp_path) for p in shared if str(src).encode() in p.read_bytes()] == []
    # the pseudonym key stays beside the prepared data: no run, image or export holds it (issue 24, item 3)
    from keras_mammo.data.records import PSEUDONYM_KEY_FILE, pseudonymous_patient_id

    key_file = tmp_path / "prepared" / PSEUDONYM_KEY_FILE
    key = bytes.fromhex(key_file.read_text())
    assert (key_file.stat().st_mode & 0o777) == 0o600
    pid = pseudonymous_patient_id(ident["PatientID"], key)
    elsewhere = [p for p in outputs if p.parts[len(tmp_path.parts)] != "prepared"]
    assert [p for p in elsewhere if p.name == PSEUDONYM_KEY_FILE or key.hex().encode() in p.read_bytes()
            or key in p.read_bytes()] == []
    assert pid.encode() in (tmp_path / "runs" / "private" / "dataset_manifest.jsonl").read_bytes()
