"""``preprocess`` under change and failure: reuse by file list, unique ids, colour rejection,
per-file failures (MemoryError), interrupted batches, the folder adapter's metadata
(keras_mammo.data.prepare, keras_mammo.data.datasets, keras_mammo.data.io)."""
from __future__ import annotations

import json
import os
import shutil

import cv2
import numpy as np
import pytest

from keras_mammo.errors import DataError
from keras_mammo.data.prepare import prepare_dataset, read_manifest


def _cfg(src, out, **kw):
    from keras_mammo.config import load_config

    overrides = {"data.dataset": "folder", "data.path": str(src), "data.prepared": str(out), "data.size": 32,
                 "data.workers": 1, "data.min_shape_score": 0.5}
    overrides.update({f"data.{k}": v for k, v in kw.items()})
    return load_config(None, overrides).data


@pytest.fixture()
def films(mias_dir, tmp_path):
    """A folder with 3 MIAS films (mdb001–mdb003, all kept at shape score ≥ 0.5)."""
    src = tmp_path / "films"
    src.mkdir()
    for i in (1, 2, 3):
        shutil.copy(mias_dir / f"mdb{i:03d}.png", src / f"mdb{i:03d}.png")
    return src


def test_rerun_processes_only_what_changed(films, mias_dir, tmp_path):
    out = tmp_path / "prep"
    first = prepare_dataset(_cfg(films, out), progress=False)
    assert first["kept"] == 3 and first["processed"] == 3
    assert prepare_dataset(_cfg(films, out), progress=False)["reused"] is True
    # a new file is processed, the others are reused
    shutil.copy(mias_dir / "mdb004.png", films / "mdb004.png")
    second = prepare_dataset(_cfg(films, out), progress=False)
    assert not second.get("reused") and second["processed"] == 1 and second["reused_files"] == 3
    assert second["files"] == 4 and [r["image_id"] for r in read_manifest(out)] == [
        "mdb001", "mdb002", "mdb003", "mdb004"]
    # a changed file (new content, new mtime) is processed again
    shutil.copy(mias_dir / "mdb005.png", films / "mdb002.png")
    os.utime(films / "mdb002.png", ns=(1, 10**18))
    third = prepare_dataset(_cfg(films, out), progress=False)
    assert third["processed"] == 1
    row = next(r for r in read_manifest(out) if r["image_id"] == "mdb002")
    redone = cv2.imread(str(out / row["image"]), cv2.IMREAD_UNCHANGED)
    assert row["source_mtime_ns"] == 10**18 and redone is not None
    # a removed file leaves the manifest and its outputs are deleted
    (films / "mdb003.png").unlink()
    fourth = prepare_dataset(_cfg(films, out), progress=False)
    assert fourth["files"] == 3 and fourth["processed"] == 0
    assert not (out / "images" / "mdb003.png").exists()
    assert all(r["source"] == f"{r['image_id']}.png" for r in read_manifest(out))  # relative to the dataset root


def test_nothing_kept_fails_every_time(tmp_path):
    from click.testing import CliRunner

    from cli.main import main

    src = tmp_path / "bad"
    src.mkdir()
    (src / "broken.png").write_bytes(b"\x89PNG not really")
    args = ["preprocess", "--dataset", "folder", "--input", str(src), "--out", str(tmp_path / "p"), "--size", "32"]
    first = CliRunner().invoke(main, args)
    second = CliRunner().invoke(main, args)
    assert first.exit_code != 0 and second.exit_code != 0
    assert "no image was kept" in second.output
    assert read_manifest(tmp_path / "p")[0]["reason"].startswith("unreadable")


def test_colliding_ids_are_renamed_and_reported(mias_dir, tmp_path):
    src = tmp_path / "c"
    (src / "sub").mkdir(parents=True)
    shutil.copy(mias_dir / "mdb001.png", src / "x.png")
    cv2.imwrite(str(src / "x.tif"), cv2.imread(str(mias_dir / "mdb003.png"), cv2.IMREAD_GRAYSCALE))
    shutil.copy(mias_dir / "mdb005.png", src / "sub" / "y.png")
    shutil.copy(mias_dir / "mdb007.png", src / "sub__y.png")
    out = tmp_path / "p"
    summary = prepare_dataset(_cfg(src, out), progress=False)
    rows = read_manifest(out)
    assert len(rows) == 4 and summary["kept"] == 4
    assert len({r["image_id"] for r in rows}) == 4 and len({r["image"] for r in rows}) == 4
    assert len(summary["renamed_ids"]) == 2 and all("collides" in n for n in summary["renamed_ids"])
    assert sorted(r["renamed_from"] for r in rows if r["renamed_from"]) == ["sub__y", "x"]
    images = [cv2.imread(str(out / r["image"]), cv2.IMREAD_UNCHANGED) for r in rows]
    assert len({im.tobytes() for im in images}) == 4  # four films, none lost


def test_colour_images_are_rejected_grey_as_rgb_is_kept(mias_dir, tmp_path):
    from keras_mammo.data.io import read_mammogram

    grey = cv2.imread(str(mias_dir / "mdb001.png"), cv2.IMREAD_GRAYSCALE)
    src = tmp_path / "rgb"
    src.mkdir()
    cv2.imwrite(str(src / "grey_as_rgb.png"), cv2.merge([grey, grey, grey]))
    cv2.imwrite(str(src / "grey_as_rgb.jpg"), cv2.merge([grey, grey, grey]), [cv2.IMWRITE_JPEG_QUALITY, 80])
    photo = cv2.merge([grey, (grey * 0.4).astype(np.uint8), 255 - grey])  # a colour picture, breast-shaped
    cv2.imwrite(str(src / "photo.png"), photo)
    np.testing.assert_array_equal(read_mammogram(src / "grey_as_rgb.png").pixels, grey / np.float32(255))
    with pytest.raises(DataError, match=r"photo.png: colour image"):
        read_mammogram(src / "photo.png")
    prepare_dataset(_cfg(src, tmp_path / "p"), progress=False)
    rows = {r["image_id"]: r for r in read_manifest(tmp_path / "p")}
    assert rows["grey_as_rgb"]["kept"] and rows["grey_as_rgb~2"]["kept"]
    assert not rows["photo"]["kept"] and "colour image" in rows["photo"]["reason"]


def test_memory_error_is_recorded_and_leaves_no_orphans(films, tmp_path, monkeypatch):
    import keras_mammo.data.film as film

    original = film._lesion_mask

    def exploding(record, shape):  # after the film's PNGs are written
        if record.image_id == "mdb002":
            raise MemoryError("cannot allocate 9.1 GiB")
        return original(record, shape)

    monkeypatch.setattr(film, "_lesion_mask", exploding)
    out = tmp_path / "p"
    summary = prepare_dataset(_cfg(films, out), progress=False)
    rows = {r["image_id"]: r for r in read_manifest(out)}
    assert summary["kept"] == 2 and rows["mdb001"]["kept"] and rows["mdb003"]["kept"]
    assert rows["mdb002"]["reason"] == "failed: MemoryError: cannot allocate 9.1 GiB"
    assert sorted(p.name for p in (out / "images").iterdir()) == ["mdb001.png", "mdb003.png"]
    assert not any("mdb002" in p.name for p in (out / "masks").iterdir())


def test_interrupted_batch_still_writes_the_manifest(films, tmp_path, monkeypatch):
    import keras_mammo.data.prepare as prepare

    original = prepare.process_record

    def interrupted(record, cfg, out_dir):
        if record.image_id == "mdb003":
            raise KeyboardInterrupt
        return original(record, cfg, out_dir)

    monkeypatch.setattr(prepare, "process_record", interrupted)
    out = tmp_path / "p"
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(_cfg(films, out), progress=False)
    rows = read_manifest(out)
    assert [r["kept"] for r in rows] == [True, True, False]
    assert rows[2]["reason"] == "not processed: the batch was interrupted"


def test_folder_adapter_uses_dicom_patient_id_and_inbreast_names(identified_dicom, mias_dir, tmp_path):
    import pydicom

    from keras_mammo.data.datasets import FolderDataset
    from keras_mammo.data.records import pseudonymous_patient_id

    path, ident = identified_dicom
    src = tmp_path / "f"
    src.mkdir()
    shutil.copy(path, src / "a.dcm")
    ds = pydicom.dcmread(path)
    ds.ImageLaterality = "L"
    ds.save_as(src / "b.dcm")
    ds.PatientID = "someone-else"
    ds.save_as(src / "c.dcm")
    shutil.copy(mias_dir / "mdb001.png", src / "22678622_61b13c59bcba149e_MG_R_CC_ANON.png")
    shutil.copy(mias_dir / "mdb002.png", src / "22678700_61b13c59bcba149e_MG_L_MLO_ANON.png")
    key = b"k" * 32
    recs = {r.image_id: r for r in FolderDataset(src, pseudonym_key=key).records()}
    assert recs["a"].patient_id == recs["b"].patient_id == pseudonymous_patient_id(ident["PatientID"], key)
    assert recs["c"].patient_id != recs["a"].patient_id
    assert ident["PatientID"] not in json.dumps([str(r.patient_id) for r in recs.values()])
    assert recs["b"].laterality == "L"
    inb = [recs["22678622_61b13c59bcba149e_MG_R_CC_ANON"], recs["22678700_61b13c59bcba149e_MG_L_MLO_ANON"]]
    assert [(r.laterality, r.view) for r in inb] == [("R", "CC"), ("L", "MLO")]
    assert inb[0].patient_id == inb[1].patient_id == "inbreast-61b13c59bcba149e"


def _old_public_pseudonym(patient_id: str) -> str:
    """The unkeyed scheme before issue 24: sha256 of a public prefix + PatientID."""
    import hashlib

    return "pid-" + hashlib.sha256(f"keras-mammo:{patient_id}".encode()).hexdigest()[:16]


def test_pseudonyms_are_keyed_per_dataset_and_not_found_by_hashing_candidates(identified_dicom, tmp_path):
    """A numeric PatientID cannot be recovered by hashing all candidates (issue 24, item 3)."""
    import hashlib
    import hmac

    import pydicom

    from keras_mammo.data.datasets import FolderDataset
    from keras_mammo.data.records import PSEUDONYM_KEY_FILE, pseudonym_key

    path, _ = identified_dicom
    src = tmp_path / "f"
    src.mkdir()
    ds = pydicom.dcmread(path)
    ds.PatientID = "40217"  # a 5-digit numeric ID space: 100,000 candidates
    ds.save_as(src / "a.dcm")
    ds.save_as(src / "b.dcm")
    k1, made1 = pseudonym_key(tmp_path / "prep1")
    k2, _ = pseudonym_key(tmp_path / "prep2")
    again, made_again = pseudonym_key(tmp_path / "prep1")
    assert made1 and not made_again and again == k1 and k1 != k2 and len(k1) == 32
    key_file = tmp_path / "prep1" / PSEUDONYM_KEY_FILE
    assert (key_file.stat().st_mode & 0o777) == 0o600 and key_file.read_text().strip() == k1.hex()
    p1 = {r.image_id: r.patient_id for r in FolderDataset(src, pseudonym_key=k1).records()}
    p2 = {r.image_id: r.patient_id for r in FolderDataset(src, pseudonym_key=k2).records()}
    assert p1["a"] == p1["b"] and p2["a"] == p2["b"]  # one patient, one pseudonym within a dataset
    assert p1["a"] != p2["a"]  # two datasets, two pseudonyms
    assert p1["a"] == "pid-" + hmac.new(k1, b"40217", hashlib.sha256).hexdigest()[:16]
    # the attack the issue describes: hash every candidate ID with the public scheme
    table = {_old_public_pseudonym(str(i)): i for i in range(100_000)}
    assert table.get(_old_public_pseudonym("40217")) == 40217  # it did find the old pseudonym
    assert p1["a"] not in table and p2["a"] not in table  # it finds nothing now
    bad = tmp_path / "prep3" / PSEUDONYM_KEY_FILE
    bad.parent.mkdir()
    bad.write_text("not hex\n")
    with pytest.raises(DataError, match=r"\.pseudonym-key: not a pseudonym key \(expected 64 hex digits\)"):
        pseudonym_key(bad.parent)


def test_old_prepared_folders_are_rekeyed_with_a_message(identified_dicom, tmp_path, capsys):
    from keras_mammo.data.records import PSEUDONYM_KEY_FILE, pseudonymous_patient_id

    path, ident = identified_dicom
    src, out = tmp_path / "f", tmp_path / "prep"
    src.mkdir()
    shutil.copy(path, src / "a.dcm")
    prepare_dataset(_cfg(src, out), progress=False)
    key = bytes.fromhex((out / PSEUDONYM_KEY_FILE).read_text())
    assert read_manifest(out)[0]["patient_id"] == pseudonymous_patient_id(ident["PatientID"], key)
    # make it look like a folder prepared before keyed pseudonyms: public-scheme ids, no key
    old = _old_public_pseudonym(ident["PatientID"])
    rows = read_manifest(out)
    (out / "manifest.jsonl").write_text("".join(json.dumps({**r, "patient_id": old}) + "\n" for r in rows))
    (out / PSEUDONYM_KEY_FILE).unlink()
    summary = json.loads((out / "dataset.json").read_text())  # and the settings as they were written then
    summary["settings"] = {**summary["settings"], "path": str(src)}
    del summary["settings"]["source_id"]
    (out / "dataset.json").write_text(json.dumps(summary))
    capsys.readouterr()
    summary = prepare_dataset(_cfg(src, out), progress=False)
    new_key = bytes.fromhex((out / PSEUDONYM_KEY_FILE).read_text())
    assert summary["rekeyed_pseudonyms"] == 1 and summary["processed"] == 0  # no film decoded again
    assert "re-keyed 1 patient pseudonym(s)" in capsys.readouterr().out
    row = read_manifest(out)[0]
    assert row["patient_id"] == pseudonymous_patient_id(ident["PatientID"], new_key) != old
    assert old not in (out / "manifest.csv").read_text()
    assert prepare_dataset(_cfg(src, out), progress=False)["reused"]  # and then it is up to date


def test_shared_files_of_a_prepared_dataset_hold_no_machine_path(films, tmp_path):
    """Rejection reasons, manifests and dataset.json name files relative to the dataset root (issue 24, item 4)."""
    (films / "broken.png").write_bytes(b"not an image at all")
    (films / "gone.png").symlink_to(tmp_path / "nowhere" / "gone.png")  # a dangling link is listed, not dropped
    out = tmp_path / "prep"
    prepare_dataset(_cfg(films, out), progress=False)
    rows = {r["image_id"]: r for r in read_manifest(out)}
    assert rows["broken"]["reason"] == "unreadable: broken.png: cannot decode image (corrupt, truncated or " \
                                       "unsupported format)"
    assert rows["gone"]["reason"] == "unreadable: gone.png: dangling link (the file it points to does not exist)"
    assert not rows["gone"]["kept"] and rows["gone"]["source"] == "gone.png"
    for name in ("manifest.jsonl", "manifest.csv", "dataset.json"):
        text = (out / name).read_text()
        assert str(tmp_path) not in text and os.path.realpath(tmp_path) not in text and "../" not in text, name
    settings = json.loads((out / "dataset.json").read_text())["settings"]
    assert settings["path"] == "films" and len(settings["source_id"]) == 16
    # the same input is recognized (up to date); another folder of the same name is not
    assert prepare_dataset(_cfg(films, out), progress=False)["reused"]
    other = tmp_path / "elsewhere" / "films"
    shutil.copytree(films, other, symlinks=True)
    with pytest.raises(Exception, match="made with other settings"):
        prepare_dataset(_cfg(other, out), progress=False)
