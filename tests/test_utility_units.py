"""Units of the utility experiments that need no mammogram: metrics, SVM, design, leakage, provenance.

Counts are checked against Rahali 2025, §3.6 (Experiment 1: 400 + 400 training
patches; Experiment 2: 300 real + 100 generated tumours + 400 non-tumours).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from keras_mammo.errors import ConfigError, DataError
from keras_mammo.utility.classifier import (
    classification_metrics,
    fit_linear_svm,
    patient_bootstrap,
    roc_auc,
    roc_curve_points,
)
from keras_mammo.utility.experiments import (
    ExperimentSpec,
    UtilityData,
    build_training_set,
    design_experiments,
    fixed_test_set,
    seed_draws,
)
from keras_mammo.utility.patches import DataLeakageError

# (T real training tumours, non-tumour pool) → {experiment: (real tumour, generated tumour, non-tumour)}
DESIGN_CASES = [
    (400, 400, {"real-only": (400, 0, 400), "replace-25": (300, 100, 400), "augment+25": (400, 100, 400),
                "augment+50": (400, 200, 400), "augment+100": (400, 400, 400), "tstr": (0, 400, 400)}),
    (95, 334, {"real-only": (95, 0, 95), "replace-25": (71, 24, 95), "augment+25": (95, 24, 95),
               "augment+50": (95, 48, 95), "augment+100": (95, 95, 95), "tstr": (0, 95, 95)}),
    (50, 30, {"real-only": (50, 0, 30), "replace-25": (38, 12, 30), "augment+25": (50, 12, 30),
              "augment+50": (50, 25, 30), "augment+100": (50, 50, 30), "tstr": (0, 50, 30)}),
]


@pytest.mark.parametrize("t, pool, expected", DESIGN_CASES)
def test_design_scales_thesis_ratios(t, pool, expected):
    specs = design_experiments(t, pool)
    got = {s.name: (s.n_real_tumour, s.n_generated_tumour, s.n_non_tumour) for s in specs}
    assert got == expected
    assert specs[0].thesis == "Experiment 1" and specs[1].thesis == "Experiment 2"
    assert [s.name for s in design_experiments(t, pool, have_generated=False)] == ["real-only"]
    with pytest.raises(DataError):
        design_experiments(3, 100)


def test_metrics_match_scikit_learn():
    from sklearn import metrics as skm

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    score = y * 0.8 + rng.normal(0, 1, 200)
    score[:20] = np.round(score[:20])  # ties
    m = classification_metrics(y, score)
    pred = (score > 0).astype(int)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["confusion"] == skm.confusion_matrix(y, pred).tolist()
    assert m["n"] == 200 and m["n_tumour"] == int(y.sum())
    fpr, tpr = roc_curve_points(y, score)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(m["roc_auc"])
    assert np.isnan(roc_auc(np.ones(4), np.arange(4)))


def _blobs(n=60, d=20, shift=1.0, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    X = rng.normal(0, 1, (n, d)) + shift * y[:, None] * (np.arange(d) < 3)
    groups = np.array([f"p{i // 2}" for i in range(n)])  # two patches per patient
    return X, y, groups


def test_svm_is_deterministic_and_selects_c_on_training_data():
    X, y, g = _blobs()
    a = fit_linear_svm(X, y, g, seed=3, c_grid=(1e-3, 1e-1, 10.0), inner_folds=4)
    b = fit_linear_svm(X, y, g, seed=3, c_grid=(1e-3, 1e-1, 10.0), inner_folds=4)
    assert a.C == b.C and a.cv_scores == b.cv_scores and a.inner_folds == 4
    Xt, yt, _ = _blobs(seed=1)
    np.testing.assert_array_equal(a.decision_function(Xt), b.decision_function(Xt))
    assert classification_metrics(yt, a.decision_function(Xt))["roc_auc"] > 0.8
    # folds shrink to the number of groups of the smaller class
    assert fit_linear_svm(X[:8], y[:8] * 0 + np.array([0, 0, 0, 0, 1, 1, 1, 1]), g[:8], c_grid=(1.0,)).inner_folds == 2
    with pytest.raises(ValueError, match="groups"):
        fit_linear_svm(X[:4], np.array([0, 0, 1, 1]), ["a", "a", "b", "b"])


def _toy_data(n_gen=10):
    # patients p0..p9: p0-p5 train, p6-p9 test; each has one tumour and two non-tumour patches
    rows, feats = [], []
    for p in range(10):
        for k, cls in enumerate(["tumour", "non-tumour", "non-tumour"]):
            rows.append({"image_id": f"p{p}-{k}", "patient_id": f"p{p}", "class": cls,
                         "split": "train" if p < 6 else "test"})
            feats.append(np.full(4, p + k / 10))
    return UtilityData.from_rows(rows, np.array(feats), np.zeros((n_gen, 4)))


def test_training_set_refuses_test_patients():
    data = _toy_data()
    test_idx = fixed_test_set(data, 0)
    assert len(test_idx) == 8 and (data.classes[test_idx] == "tumour").sum() == 4
    spec = ExperimentSpec("replace-25", "r", None, 4, 2, 6)
    ts = build_training_set(data, spec, seed_draws(data, 0), test_idx)
    assert ts.y.tolist().count(1) == 6 and ts.y.tolist().count(0) == 6
    assert not set(ts.groups) & set(data.patients[test_idx])
    data.splits[data.ids == "p7-1"] = "train"  # a test patient's patch slips into the training pool
    draws = seed_draws(data, 0)
    draws["non_tumour"] = np.r_[np.flatnonzero(data.ids == "p7-1"), draws["non_tumour"]]
    with pytest.raises(DataLeakageError, match="p7"):
        build_training_set(data, spec, draws, test_idx)
    with pytest.raises(DataError, match="generated"):
        build_training_set(_toy_data(n_gen=1), spec, seed_draws(_toy_data(n_gen=1), 0), test_idx)


def test_patient_bootstrap_is_seeded_and_paired():
    rng = np.random.default_rng(1)
    y = np.tile([0, 1], 20)
    patients = np.repeat([f"p{i}" for i in range(20)], 2)
    good = [y + rng.normal(0, 0.5, 40) - 0.5 for _ in range(2)]
    scores = {"real-only": good, "same": [s.copy() for s in good]}
    a = patient_bootstrap(y, scores, patients, n_boot=100, seed=5, reference="real-only")
    b = patient_bootstrap(y, scores, patients, n_boot=100, seed=5, reference="real-only")
    assert a == b
    lo, hi = a["real-only"]["roc_auc"]["ci95"]
    assert 0.5 < lo < hi <= 1.0
    assert a["same"]["delta_roc_auc"]["mean"] == 0.0 and a["same"]["delta_roc_auc"]["ci95"] == [0.0, 0.0]


def test_generator_provenance(tmp_path):
    from keras_mammo.utility.generated import generator_provenance, load_generated_dir
    from keras_mammo.utility.patches import PatchSet

    ps_dir = tmp_path / "ps"
    ps_dir.mkdir()
    rows = [{"image_id": f"p{p}-t0", "patient_id": f"p{p}", "class": "tumour", "split": "test" if p == 3 else "train",
             "image": f"images/p{p}-t0.png", "label": "benign", "kept": True} for p in range(4)]
    (ps_dir / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ps = PatchSet(ps_dir)

    run = tmp_path / "run"
    run.mkdir()
    (run / "dataset_manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))
    assert generator_provenance(run, ps)["verified"]
    # a SavedModel names its run (by name and fingerprint: no path) and the run beside it is found
    from keras_mammo.savedmodel import run_fingerprint

    sm = tmp_path / "saved" / "1" / "assets.extra"
    sm.mkdir(parents=True)
    (sm / "keras_mammo.json").write_text(json.dumps({"run": "run", "run_fingerprint": run_fingerprint(run)}))
    assert generator_provenance(tmp_path / "saved", ps)["run_dir"] == str(run.resolve())
    (sm / "keras_mammo.json").write_text(json.dumps({"run": "run", "run_fingerprint": "0" * 16}))  # another run
    assert generator_provenance(tmp_path / "saved", ps)["verified"] is False
    # a run that saw a test patient is refused
    (run / "dataset_manifest.jsonl").write_text(json.dumps(rows[3]) + "\n")
    with pytest.raises(DataLeakageError, match="p3"):
        generator_provenance(run, ps)
    # a plain folder cannot be verified, and says so
    plain = tmp_path / "plain"
    plain.mkdir()
    assert generator_provenance(plain, ps)["verified"] is False
    with pytest.raises(DataError, match="no image files"):
        load_generated_dir(plain)


def test_load_generated_dir(tmp_path):
    from keras_mammo.data.io import write_png
    from keras_mammo.utility.generated import load_generated_dir

    img = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    for i in range(3):
        write_png(tmp_path / f"s{i}.png", img, bits=16)
    arr, info = load_generated_dir(tmp_path)
    assert arr.shape == (3, 16, 16) and info["n"] == 3 and info["size"] == 16
    np.testing.assert_allclose(arr[0], img, atol=1 / 65535)
    write_png(tmp_path / "s9.png", np.zeros((8, 8)), bits=8)
    with pytest.raises(DataError, match="different sizes"):
        load_generated_dir(tmp_path)


def test_get_backbone_errors():
    from keras_mammo.utility.backbones import get_backbone

    with pytest.raises(ConfigError, match="allowed values"):
        get_backbone("vgg16")
    with pytest.raises(ConfigError, match="only the resnet50"):
        get_backbone("inception", weights="x.h5")
    with pytest.raises(DataError, match="not found"):
        get_backbone("resnet50", weights="/nonexistent/resnet.h5")


def test_resnet50_backbone_loads_local_weights(tmp_path):
    """The thesis backbone's code path, offline: a local weights file (notop or with the head)."""
    import keras

    from keras_mammo.utility.backbones import ResNet50Backbone

    imgs = np.random.default_rng(0).random((2, 40, 40)).astype(np.float32)
    notop = keras.applications.ResNet50(include_top=False, weights=None, pooling="avg", input_shape=(224, 224, 3))
    notop.save_weights(tmp_path / "notop.weights.h5")
    bb = ResNet50Backbone(tmp_path / "notop.weights.h5")
    f = bb.features(imgs, progress=False)
    assert f.shape == (2, 2048) and f.dtype == np.float64
    x = bb.preprocess(imgs)
    assert x.shape == (2, 224, 224, 3)
    np.testing.assert_allclose(f, np.asarray(notop(x)), rtol=1e-4, atol=1e-4)
    assert bb.identity()["weights_sha256"] and bb.identity()["backbone"] == "resnet50"
