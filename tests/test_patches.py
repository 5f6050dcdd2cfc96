"""Patch sets for the utility experiments: geometry, patient-level split, files, CLI.

The MIAS tests read ../shared/data/mini-mias (or $KERAS_MAMMO_MIAS) and skip when absent.
"""
from __future__ import annotations

import json
from itertools import islice

import numpy as np
import pytest

from keras_mammo.data.datasets import MIASDataset, default_mias_path
from keras_mammo.utility.patches import (
    GENERATOR_TRAIN_DIR,
    NON_TUMOUR,
    TEST,
    TRAIN,
    TUMOUR,
    DataLeakageError,
    PatchOptions,
    PatchSet,
    check_no_test_leakage,
    crop_square,
    extract_patches,
    roi_center_radius,
    sample_tissue_centres,
    split_by_patient,
    write_patch_set,
)

MIAS = default_mias_path()
needs_mias = pytest.mark.skipif(MIAS is None, reason="MIAS not found: set $KERAS_MAMMO_MIAS or provide "
                                                     "../shared/data/mini-mias")
N_FILMS = 60  # mdb001–mdb060: 30 patients, 20 located lesions, 38 normal films


# ------------------------------------------------------------------ geometry (no data needed)

# (image side, centre (row, col), crop side, expected box)
CROP_CASES = [
    (100, (50, 50), 20, (40, 40, 60, 60)),     # interior: centred
    (100, (5, 50), 20, (0, 40, 20, 60)),       # top edge: shifted down, lesion still inside
    (100, (98, 99), 20, (80, 80, 100, 100)),   # bottom-right corner: shifted up-left
    (30, (15, 15), 40, (-5, -5, 35, 35)),      # larger than the film: zero-padded
]


@pytest.mark.parametrize("side_img, center, side, box", CROP_CASES)
def test_crop_square_box(side_img, center, side, box):
    img = np.random.default_rng(0).random((side_img, side_img)).astype(np.float32)
    out, got = crop_square(img, center, side, side)
    assert got == box
    assert out.shape == (side, side) and out.dtype == np.float32
    r0, c0, r1, c1 = box
    if r0 >= 0 and c0 >= 0:
        np.testing.assert_array_equal(out, img[r0:r1, c0:c1])
    else:
        assert out[0, 0] == 0.0 and out[-1, -1] == 0.0  # padding
        np.testing.assert_array_equal(out[5:35, 5:35], img)


def test_crop_square_resizes():
    img = np.ones((200, 200), np.float32)
    out, box = crop_square(img, (100, 100), 120, 64)
    assert out.shape == (64, 64) and box == (40, 40, 160, 160)
    np.testing.assert_allclose(out, 1.0, atol=1e-6)


def test_roi_center_radius_scales_mask_to_film():
    mask = np.zeros((50, 40), np.uint8)
    mask[10:20, 5:25] = 255                     # rows 10..19, cols 5..24
    (r, c), rad = roi_center_radius(mask, (100, 80))  # film twice the mask's size
    assert (r, c) == (30.0, 30.0)
    assert rad == 20.0                          # longer side 40 px at film scale / 2
    assert roi_center_radius(np.zeros((4, 4)), (8, 8)) is None


def test_sample_tissue_centres_inside_nonoverlapping_and_deterministic():
    mask = np.zeros((300, 300), bool)
    mask[20:280, 0:200] = True
    exclude = np.zeros_like(mask)
    exclude[100:140, 50:90] = True
    a = sample_tissue_centres(mask, 64, 6, np.random.default_rng(3), min_tissue=1.0, exclude=exclude)
    b = sample_tissue_centres(mask, 64, 6, np.random.default_rng(3), min_tissue=1.0, exclude=exclude)
    assert a == b and len(a) >= 4
    for r, c, frac in a:
        r0, c0 = r - 32, c - 32
        assert mask[r0:r0 + 64, c0:c0 + 64].all() and frac == pytest.approx(1.0)
        assert not exclude[r0:r0 + 64, c0:c0 + 64].any()
    for i, (r, c, _) in enumerate(a):
        for r2, c2, _ in a[i + 1:]:
            assert abs(r - r2) >= 64 or abs(c - c2) >= 64
    assert sample_tissue_centres(np.zeros((50, 50), bool), 64, 2, np.random.default_rng(0)) == []


# ------------------------------------------------------------------ MIAS


@pytest.fixture(scope="module")
def mias_patches():
    if MIAS is None:
        pytest.skip("MIAS not found")
    records = list(islice(MIASDataset(MIAS).records(), N_FILMS))
    patches, notes = extract_patches(records, PatchOptions(size=64, seed=0), progress=False)
    return records, patches, notes


@needs_mias
def test_mias_tumour_patches_are_centred_on_info_txt_lesions(mias_patches):
    _, patches, notes = mias_patches
    by_id = {p.patch_id: p for p in patches}
    # Info.txt: "mdb005 F CIRC B 477 133 30" (second row 500 168 26): y from the bottom → row = 1024 - y
    p = by_id["mdb005-t0"]
    assert p.center == (1024 - 133, 477) and p.radius == 30 and p.label == "benign" and p.abnormality == "CIRC"
    assert p.box == (1024 - 133 - 32, 477 - 32, 1024 - 133 + 32, 477 + 32)
    assert by_id["mdb005-t1"].center == (1024 - 168, 500)
    # mdb059 has no coordinates: no tumour patch, and a note says why
    assert not any(pid.startswith("mdb059-t") for pid in by_id)
    assert any(n.startswith("mdb059") for n in notes)
    n_located = sum(a.center is not None for r in mias_patches[0] for a in r.abnormalities)
    assert sum(p.cls == TUMOUR for p in patches) == n_located


@needs_mias
def test_mias_non_tumour_patches_come_from_normal_films(mias_patches):
    records, patches, _ = mias_patches
    label = {r.image_id: r.label for r in records}
    non = [p for p in patches if p.cls == NON_TUMOUR]
    assert non and all(label[p.source_image] == "normal" for p in non)
    assert all(p.tissue_fraction >= 0.95 for p in non)
    assert all(p.image.shape == (64, 64) and 0.0 <= p.image.min() and p.image.max() <= 1.0 for p in patches)
    # breast tissue, not background: mean intensity well above the film background
    assert np.mean([p.image.mean() for p in non]) > 0.3


@needs_mias
def test_split_is_by_patient(mias_patches):
    _, patches, _ = mias_patches
    split_of = {}
    for p in patches:
        assert split_of.setdefault(p.patient_id, p.split) == p.split, f"patient {p.patient_id} in both splits"
    train_pat = {p.patient_id for p in patches if p.split == TRAIN}
    test_pat = {p.patient_id for p in patches if p.split == TEST}
    assert train_pat and test_pat and not train_pat & test_pat
    n_t = sum(p.cls == TUMOUR for p in patches)
    n_t_test = sum(p.cls == TUMOUR and p.split == TEST for p in patches)
    assert round(0.2 * n_t) <= n_t_test <= round(0.2 * n_t) + 2  # whole patients: may overshoot by one patient


@needs_mias
def test_split_depends_only_on_seed(mias_patches):
    _, patches, _ = mias_patches
    a = split_by_patient(patches, 0.2, seed=0)
    b = split_by_patient(patches, 0.2, seed=0)
    c = split_by_patient(patches, 0.2, seed=1)
    assert a == b and a != c
    split_by_patient(patches, 0.2, seed=0)  # restore for the other tests


@needs_mias
def test_write_and_read_patch_set(mias_patches, tmp_path):
    records, patches, notes = mias_patches
    out = write_patch_set(patches, tmp_path / "ps", PatchOptions(size=64, seed=0), notes=notes)
    ps = PatchSet(out)
    assert len(ps) == len(patches)
    row = ps.rows[0]
    for key in ("image_id", "patient_id", "dataset", "label", "kept", "image", "class", "severity", "source_image",
                "box", "split"):
        assert key in row
    imgs = ps.load_images([p.patch_id for p in patches[:5]])
    np.testing.assert_allclose(imgs, np.stack([p.image for p in patches[:5]]), atol=1 / 65535 + 1e-7)
    assert json.loads((out / "dataset.json").read_text())["size"] == 64
    info = ps.info["counts"]
    assert info[TRAIN]["tumour"] + info[TEST]["tumour"] == sum(p.cls == TUMOUR for p in patches)

    # generator_train: the training split's tumour patches, nothing else
    g = PatchSet(out / GENERATOR_TRAIN_DIR)
    assert {r["image_id"] for r in g.rows} == {p.patch_id for p in patches if p.split == TRAIN and p.cls == TUMOUR}
    assert not {r["patient_id"] for r in g.rows} & ps.test_patients()
    assert all((out / GENERATOR_TRAIN_DIR / r["image"]).is_file() for r in g.rows)
    assert json.loads((out / GENERATOR_TRAIN_DIR / "dataset.json").read_text())["size"] == 64

    check_no_test_leakage(ps, g.rows)
    with pytest.raises(DataLeakageError, match="held-out test split"):
        check_no_test_leakage(ps, g.rows + ps.select(TEST, TUMOUR)[:1])
    # another film of a test patient leaks too, even if that exact patch is unknown
    pid = sorted(ps.test_patients())[0]
    with pytest.raises(DataLeakageError):
        check_no_test_leakage(ps, [{"image_id": "elsewhere", "patient_id": pid}])


@needs_mias
def test_patches_cli(tmp_path):
    from click.testing import CliRunner

    from cli.main import main

    out = tmp_path / "cli-ps"
    args = ["patches", "--input", str(MIAS), "--out", str(out), "--limit", "30", "--size", "32", "--quiet"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "train:" in res.output and (out / "manifest.jsonl").is_file()
    again = CliRunner().invoke(main, args)
    assert again.exit_code != 0 and "--overwrite" in again.output
    assert CliRunner().invoke(main, args + ["--overwrite"]).exit_code == 0
