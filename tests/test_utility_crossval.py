"""The cross-validated utility protocol (issue 22) on real MIAS patches.

Pinned here: folds never split a patient; the corrected resampled t interval and the
minimum detectable effect against hand-computed values; the classical augmentation
policy's shapes, ranges and determinism, and that it reaches training patches only; a
run killed mid-way resumes from its finished folds and ends with the numbers of an
uninterrupted run.

Speed: one module-scoped patch set (MIAS films mdb001–mdb160, 32 px patches of 128 film
px, one non-tumour patch per normal film). The SVM runs on a cheap pixel backbone (area
down-sampling + histogram, :class:`PixelBackbone`) so that these tests pin the protocol's
machinery, not the Inception network (covered by ``test_utility.py``).
"""
from __future__ import annotations

import json
import numpy as np
import pytest

from keras_mammo.augment.classical import ClassicalPolicy, augment_copies, augment_patch, patch_rng
from keras_mammo.errors import ConfigError
from keras_mammo.utility.backbones import Backbone
from keras_mammo.utility.crossval.arms import (
    CLASSICAL,
    REAL_ONLY,
    check_training_rows,
    design_arms,
    training_rows,
)
from keras_mammo.utility.crossval.folds import patient_folds, validation_split
from keras_mammo.utility.crossval.stats import corrected_resampled_t, minimum_detectable_effect
from keras_mammo.utility.patchset import TUMOUR, DataLeakageError, PatchSet

N_FILMS = 160


@pytest.fixture(scope="module")
def patch_dir(mias_dir, tmp_path_factory):
    from conftest import write_mias_patches

    return write_mias_patches(mias_dir, tmp_path_factory.mktemp("cv") / "patches", N_FILMS, size=32)


@pytest.fixture(scope="module")
def manifest(patch_dir):
    ps = PatchSet(patch_dir)
    labels = np.array([int(r["class"] == TUMOUR) for r in ps.rows])
    patients = np.array([r["patient_id"] for r in ps.rows])
    return ps, labels, patients


class PixelBackbone(Backbone):
    """Cheap real features: 8 × 8 area-downsampled pixels and a 16-bin intensity histogram."""

    name = "pixels"
    feature_dim = 80

    def identity(self) -> dict:
        return {"backbone": "pixels-8x8+hist16"}

    def features(self, images, batch_size=32, progress=True):
        import cv2

        out = []
        for im in np.asarray(images, np.float32):
            small = cv2.resize(im, (8, 8), interpolation=cv2.INTER_AREA).ravel()
            hist = np.histogram(im, bins=16, range=(0, 1))[0] / im.size
            out.append(np.concatenate([small, hist]))
        return np.asarray(out, np.float64)


# --------------------------------------------------------------------------- folds


def test_folds_never_split_a_patient_and_test_every_patch_once(manifest):
    ps, labels, patients = manifest
    fold = patient_folds(labels, patients, k=5, seed=0)
    assert fold.shape == labels.shape and set(fold.tolist()) == set(range(5))  # every patch in one test fold
    for p in set(patients):
        assert len(set(fold[patients == p])) == 1, f"patient {p} is split across folds"
    for f in range(5):  # stratified: every test fold holds both classes, tumour share near the overall
        share = labels[fold == f].mean()
        assert 0 < share < 1 and abs(share - labels.mean()) < 0.15
    # MIAS left/right films of one woman share a patient id; they must land in one fold
    pairs = [r for r in ps.rows if r["source_image"] in ("mdb001", "mdb002")]
    assert len({r["patient_id"] for r in pairs}) == 1 and len({fold[ps.rows.index(r)] for r in pairs}) == 1
    fit, val = validation_split(labels, patients, 0.2, seed=0)
    assert not set(patients[fit]) & set(patients[val]) and set(labels[val]) == {0, 1}


def test_folds_refuse_too_few_patients():
    from keras_mammo.errors import DataError

    with pytest.raises(DataError, match="5 folds need"):
        patient_folds([1, 1, 0, 0, 0], ["a", "b", "c", "d", "e"], k=5)


# --------------------------------------------------------------------------- statistics


def test_corrected_resampled_t_matches_hand_computation():
    d = [0.01, 0.03, -0.02, 0.04, 0.02]
    got = corrected_resampled_t(d, n_train=400, n_test=100)
    # mean 0.016; s² = 2.12e-3 / 4 = 5.3e-4; correction 1/5 + 100/400 = 0.45
    se = np.sqrt(0.45 * 5.3e-4)
    q = 2.7764451051977987  # t_{0.975, 4}
    assert got["mean"] == pytest.approx(0.016)
    assert got["correction"] == pytest.approx(0.45)
    assert got["se"] == pytest.approx(se, rel=1e-9)
    assert got["ci95"] == pytest.approx([0.016 - q * se, 0.016 + q * se], rel=1e-9)
    assert got["df"] == 4 and got["t"] == pytest.approx(0.016 / se)
    # the uncorrected interval would be narrower: the correction must widen it
    assert got["se"] > np.sqrt(5.3e-4 / 5)
    with pytest.raises(ValueError):
        corrected_resampled_t([0.1], 10, 2)


def test_minimum_detectable_effect_formula():
    # (z_0.975 + z_0.8) = 1.959964 + 0.841621 = 2.801585 (Bloom 1995, eq. 1)
    assert minimum_detectable_effect(0.01) == pytest.approx(0.02801585, rel=1e-6)
    # t with 4 df: 2.776445 + 0.940965
    assert minimum_detectable_effect(0.01, df=4) == pytest.approx(0.0371741, rel=1e-5)
    assert minimum_detectable_effect(0.01, power=0.9) == pytest.approx(0.01 * (1.959964 + 1.281552), rel=1e-6)
    with pytest.raises(ValueError):
        minimum_detectable_effect(-1.0)


# --------------------------------------------------------------------------- classical augmentation


def test_classical_policy_shapes_ranges_and_determinism(manifest):
    ps = manifest[0]
    ids = [r["image_id"] for r in ps.rows[:12]]
    imgs = ps.load_images(ids)
    out = augment_copies(imgs, ids, 2, seed=3)
    assert out.shape == (24, 32, 32) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not np.allclose(out[:12], imgs, atol=1e-3) and not np.allclose(out[:12], out[12:], atol=1e-3)
    # a patch's copy depends on (seed, copy, id) only, not on the other patches augmented with it
    alone = augment_copies(imgs[5:6], ids[5:6], 2, seed=3)
    np.testing.assert_array_equal(alone[1], out[12 + 5])
    # intensity changes stay small: the policy keeps the patch's mean within ±0.15
    assert np.abs(out[:12].mean(axis=(1, 2)) - imgs.mean(axis=(1, 2))).max() < 0.15
    # with every random part off the policy is the identity; with flips only it is an exact dihedral map
    off = ClassicalPolicy(p_flip=0.0, rot90=False, max_rotate_deg=0, max_scale=0, max_shift=0, max_brightness=0,
                          max_contrast=0, max_gamma=1.0)
    np.testing.assert_allclose(augment_patch(imgs[0], off, patch_rng(0, 0, "x")), imgs[0], atol=1e-6)
    flips = ClassicalPolicy(p_flip=1.0, rot90=False, max_rotate_deg=0, max_scale=0, max_shift=0, max_brightness=0,
                            max_contrast=0, max_gamma=1.0)
    np.testing.assert_allclose(augment_patch(imgs[0], flips, patch_rng(0, 0, "x")), imgs[0][::-1, ::-1], atol=1e-6)
    with pytest.raises(ConfigError, match="max_rotate_deg"):
        ClassicalPolicy(max_rotate_deg=90).validate()


def test_classical_copies_come_from_training_patients_only(manifest):
    _, labels, patients = manifest
    fold = patient_folds(labels, patients, k=5, seed=0)
    n = len(labels)
    arms = {a.name: a for a in design_arms({"g": None})}
    for f in range(5):
        train, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        for arm in arms.values():
            rows = training_rows(arm, train, labels, n, 2, 7)
            check_training_rows(rows, patients, test, arm.name)
            used = set(rows["real"]) | set(rows["real_of_copies"])
            assert not used & set(test.tolist())
            assert not {patients[i] for i in used} & set(patients[test])
        cl = training_rows(arms[CLASSICAL], train, labels, n, 2, 0)
        assert sorted(cl["real_of_copies"].tolist()) == sorted(train.tolist() * 2)
        assert len(training_rows(arms[REAL_ONLY], train, labels, n, 2, 0)["copies"]) == 0
        tstr = training_rows(arms["tstr-g"], train, labels, n, 2, 7)
        assert labels[tstr["real"]].sum() == 0 and len(tstr["synthetic"]) == 7
    rows = training_rows(arms[CLASSICAL], np.r_[train, test[:1]], labels, n, 2, 0)
    with pytest.raises(DataLeakageError, match="test fold"):
        check_training_rows(rows, patients, test, CLASSICAL)


# --------------------------------------------------------------------------- run, kill, resume


class MirrorArm:
    """Stand-in generator arm: mirrored real training tumours (pins the machinery, not a GAN).

    Records the patients it was given; raises in ``fail_fold`` to simulate a killed run.
    """

    def __init__(self, fail_fold=None):
        self.fail_fold = fail_fold
        self.calls = []

    def __call__(self, patches, fold, budget_s, seed):
        self.calls.append((fold, set(patches.patients.tolist())))
        if fold == self.fail_fold:
            raise KeyboardInterrupt("killed")
        return patches.tumours()[:, :, ::-1]


def _opts(**kw):
    from keras_mammo.utility.crossval.run import CrossvalOptions

    base = dict(folds=3, seeds=(0, 1), classifiers=("svm",), copies=1, c_grid=(1e-2, 1.0), inner_folds=3,
                n_boot=100, generator_budget_s=5.0)
    base.update(kw)
    return CrossvalOptions(**base)


def test_run_is_resumable_per_fold(patch_dir, manifest, tmp_path):
    from keras_mammo.utility.crossval.run import run_crossval

    _, labels, patients = manifest
    common = dict(backbone=PixelBackbone(), cache_dir=tmp_path / "cache", progress=False, figures=False)
    killed = MirrorArm(fail_fold=1)
    with pytest.raises(KeyboardInterrupt):
        run_crossval(patch_dir, tmp_path / "run", _opts(), generators={"mirror": killed}, **common)
    assert (tmp_path / "run/folds/fold-0.json").is_file() and not (tmp_path / "run/folds/fold-1.json").exists()
    before = (tmp_path / "run/folds/fold-0.json").read_bytes()

    resumed_arm = MirrorArm()
    lines = []
    resumed = run_crossval(patch_dir, tmp_path / "run", _opts(), generators={"mirror": resumed_arm}, log=lines.append,
                           **common)
    assert [c[0] for c in resumed_arm.calls] == [1, 2]  # fold 0 was not recomputed
    assert "resumed" in lines[0] and (tmp_path / "run/folds/fold-0.json").read_bytes() == before

    fresh_arm = MirrorArm()
    fresh = run_crossval(patch_dir, tmp_path / "fresh", _opts(), generators={"mirror": fresh_arm}, **common)
    for clf in ("svm",):
        for arm, e in fresh["classifiers"][clf]["arms"].items():
            got = resumed["classifiers"][clf]["arms"][arm]
            assert got["pooled"]["roc_auc"]["mean"] == pytest.approx(e["pooled"]["roc_auc"]["mean"], abs=1e-12)
    # generators never saw a patient of the fold they are tested on
    fold = np.asarray(fresh["fold"])
    for f, seen in fresh_arm.calls:
        assert not seen & set(patients[fold == f])
    # every patch is scored once per seed; the report names the MDE and the arms
    res = json.loads((tmp_path / "fresh/crossval.json").read_text())
    arms = res["classifiers"]["svm"]["arms"]
    assert set(arms) == {REAL_ONLY, CLASSICAL, "classical+mirror", "tstr-mirror"}
    assert all(np.isfinite(s).all() and len(s) == len(labels) for s in arms[REAL_ONLY]["oof"])
    assert arms["classical+mirror"]["delta"]["roc_auc"]["reference"] == CLASSICAL
    assert arms[CLASSICAL]["delta"]["roc_auc"]["reference"] == REAL_ONLY and not arms[REAL_ONLY]["delta"]
    assert arms["tstr-mirror"]["delta"]["roc_auc"]["reference"] == REAL_ONLY
    assert arms[REAL_ONLY]["pooled"]["roc_auc"]["mean"] > 0.6  # real features beat chance
    md = (tmp_path / "fresh/report.md").read_text()
    assert "Minimum detectable effect" in md and "TSTR balanced accuracy" in md
    # other options never mix with the finished folds
    with pytest.raises(ConfigError, match="other options"):
        run_crossval(patch_dir, tmp_path / "run", _opts(copies=2), generators={"mirror": MirrorArm()}, **common)


@pytest.mark.slow
def test_cnn_arm_trains_with_early_stopping(patch_dir, tmp_path):
    from keras_mammo.utility.cnn import CNNOptions
    from keras_mammo.utility.crossval.run import run_crossval

    opts = _opts(classifiers=("cnn",), seeds=(0,), cnn=CNNOptions(size=32, epochs=8, patience=2, min_epochs=2))
    res = run_crossval(patch_dir, tmp_path / "cnn", opts, progress=False, figures=True)
    fold0 = json.loads((tmp_path / "cnn/folds/fold-0.json").read_text())
    run = fold0["classifiers"]["cnn"][REAL_ONLY][0]
    assert 1 <= run["best_epoch"] <= run["epochs_run"] <= 8 and run["n_val"] > 0
    assert res["classifiers"]["cnn"]["arms"][REAL_ONLY]["pooled"]["roc_auc"]["mean"] > 0.55
    assert (tmp_path / "cnn/roc_cnn.png").is_file() and (tmp_path / "cnn/examples.png").is_file()


# --------------------------------------------------------------------------- command line


def test_cli_folds_refuses_one_generator_for_all_folds_and_bad_classifier(patch_dir, tmp_path):
    from click.testing import CliRunner

    from cli.main import main

    res = CliRunner().invoke(main, ["utility", "--patches", str(patch_dir), "--folds", "3", "--generated",
                                    str(patch_dir / "images"), "--out", str(tmp_path / "r")])
    assert res.exit_code != 0 and "refused with --folds" in res.output
    res = CliRunner().invoke(main, ["utility", "--patches", str(patch_dir), "--folds", "3", "--classifiers", "svm,rf",
                                    "--out", str(tmp_path / "r"), "--quiet"])
    assert res.exit_code != 0 and "classifiers" in res.output and "rf" in res.output
    assert not (tmp_path / "r" / "folds").exists()  # refused before any work


@pytest.mark.slow
def test_cli_folds_runs_and_resumes(patch_dir, tmp_path):
    """The whole protocol from one command on the Inception backbone; a second call resumes every fold."""
    from click.testing import CliRunner

    from cli.main import main

    args = ["utility", "--patches", str(patch_dir), "--folds", "3", "--seeds", "0", "--copies", "1",
            "--bootstrap", "50", "--inner-folds", "3", "--out", str(tmp_path / "cv")]
    res = CliRunner().invoke(main, args + ["--quiet"])
    assert res.exit_code == 0, res.output
    assert "minimum detectable effect" in res.output and "| Real + classical augmentation |" in res.output
    data = json.loads((tmp_path / "cv/crossval.json").read_text())
    assert data["n"] == len(PatchSet(patch_dir)) and data["folds"] == 3
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and again.output.count("resumed from fold-") == 3, again.output
