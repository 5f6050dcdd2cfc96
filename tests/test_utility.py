"""Downstream-utility experiments on real MIAS patches with the offline (FID Inception) backbone.

Rahali 2025, §3.6: linear SVM on frozen ImageNet features, real-only vs part-synthetic
training. These tests pin what makes the comparison sound: the classifier beats chance on
real data, no patient is on both sides of the split, the replacement experiment keeps the
classes balanced and the test set fixed, and the same seed gives the same numbers.

Speed: one module-scoped patch set (films mdb001–mdb200, one non-tumour patch per normal
film) whose features are extracted once and cached; SVM settings are reduced (3 C values,
3 inner folds, 2 seeds, 200 bootstrap resamples).

"Generated" patches here are a stand-in (the training split's real tumour patches,
mirrored), because the tests pin the experiment machinery, not a generator's quality; the
generator path itself is covered by ``test_train_patch_generator_sees_training_tumours_only``.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from keras_mammo.data.datasets import default_mias_path
from keras_mammo.utility.experiments import UtilityData, build_training_set, fixed_test_set, seed_draws
from keras_mammo.utility.patches import (
    GENERATOR_TRAIN_DIR,
    TEST,
    TRAIN,
    TUMOUR,
    PatchSet,
)

MIAS = default_mias_path()
N_FILMS = 200
FAST = dict(seeds=[0, 1], n_boot=200, c_grid=(1e-4, 1e-2, 1.0), inner_folds=3, progress=False)


@pytest.fixture(scope="module")
def patch_dir(tmp_path_factory):
    if MIAS is None:
        pytest.skip("MIAS not found: set $KERAS_MAMMO_MIAS or provide ../shared/data/mini-mias")
    from conftest import write_mias_patches

    return write_mias_patches(MIAS, tmp_path_factory.mktemp("utility") / "patches", N_FILMS, size=64)


@pytest.fixture(scope="module")
def stand_in_generated(patch_dir):
    ps = PatchSet(patch_dir)
    return ps.load_images([r["image_id"] for r in ps.select(TRAIN, TUMOUR)])[:, :, ::-1].copy()


@pytest.fixture(scope="module")
def backbone():
    from keras_mammo.metrics.inception import FIDWeightsError
    from keras_mammo.utility.backbones import get_backbone

    bb = get_backbone("inception")
    try:
        bb.identity()  # converts the weights on first use
    except FIDWeightsError as exc:
        pytest.skip(f"FID Inception weights unavailable: {exc}")
    return bb


@pytest.fixture(scope="module")
def result(patch_dir, stand_in_generated, backbone, tmp_path_factory):
    from keras_mammo.utility.run import run_utility

    out = tmp_path_factory.mktemp("report")
    res = run_utility(patch_dir, out, backbone=backbone, generated=stand_in_generated,
                      generated_info={"source": "stand-in: mirrored real training tumours"},
                      cache_dir=patch_dir / "feature_cache", **FAST)
    res["_out"] = out
    return res


def test_real_only_beats_chance(result):
    s = result["experiments"]["real-only"]["summary"]
    assert result["test"]["n"] >= 24
    assert s["roc_auc"]["mean"] >= 0.72, s["roc_auc"]
    assert s["roc_auc"]["ci95"][0] > 0.55, s["roc_auc"]          # patient-bootstrap lower bound
    assert s["balanced_accuracy"]["mean"] >= 0.62, s["balanced_accuracy"]


def test_no_patient_in_both_train_and_test(result, patch_dir):
    ps = PatchSet(patch_dir)
    split = {r["image_id"]: r["split"] for r in ps.rows}
    patient = {r["image_id"]: r["patient_id"] for r in ps.rows}
    test_patients = set(result["test"]["patients"])
    assert all(split[i] == TEST for i in result["test"]["ids"])
    assert {patient[i] for i in result["test"]["ids"]} == test_patients
    for name, e in result["experiments"].items():
        for run in e["runs"]:
            train_patients = {patient[i] for i in run["train_ids"]}
            assert not train_patients & test_patients, name
            assert all(split[i] == TRAIN for i in run["train_ids"]), name
    assert not {r["patient_id"] for r in ps.select(TRAIN)} & ps.test_patients()


def test_replacement_keeps_balance_and_test_set(result, patch_dir, backbone, stand_in_generated):
    exps = result["experiments"]
    t = exps["real-only"]["spec"]["n_real_tumour"]
    rep = exps["replace-25"]["spec"]
    assert rep["n_real_tumour"] + rep["n_generated_tumour"] == t == rep["n_non_tumour"]
    assert rep["n_generated_tumour"] == round(0.25 * t)
    for e in exps.values():
        for run in e["runs"]:
            assert run["metrics"]["n"] == result["test"]["n"]
            assert len(run["scores"]) == result["test"]["n"]
    # rebuild the training sets: replacement is balanced, and the test set is one fixed set
    from keras_mammo.utility.experiments import ExperimentSpec
    from keras_mammo.utility.features import cached_features

    ps = PatchSet(patch_dir)
    feats, info = cached_features(ps.load_images(), backbone, patch_dir / "feature_cache", "real-64px", progress=False)
    assert info["cached"]
    gen = np.zeros((len(stand_in_generated), feats.shape[1]))
    data = UtilityData.from_rows(ps.rows, feats, gen)
    test_idx = fixed_test_set(data, seed=0)
    assert list(data.ids[test_idx]) == result["test"]["ids"]
    y_test = (data.classes[test_idx] == TUMOUR)
    assert y_test.sum() == (~y_test).sum()                                    # balanced test set
    for seed in (0, 1, 7):
        ts = build_training_set(data, ExperimentSpec(**rep), seed_draws(data, seed), test_idx)
        assert ts.y.sum() == (1 - ts.y).sum() == t                             # balanced training set
        assert len(ts.generated_idx) == rep["n_generated_tumour"]
        assert list(data.ids[fixed_test_set(data, seed=0)]) == result["test"]["ids"]


def test_same_seed_same_results(result, patch_dir, backbone, stand_in_generated):
    from keras_mammo.utility.run import run_utility

    again = run_utility(patch_dir, None, backbone=backbone, generated=stand_in_generated,
                        cache_dir=patch_dir / "feature_cache", **FAST)
    assert again["features"]["real"]["cached"] and again["features"]["generated"]["cached"]
    assert again["test"] == result["test"]
    assert again["experiments"] == result["experiments"]
    # a seed's run does not depend on which other seeds ran with it
    alone = run_utility(patch_dir, None, backbone=backbone, generated=stand_in_generated,
                        cache_dir=patch_dir / "feature_cache", **dict(FAST, seeds=[1], n_boot=20))
    for name, e in alone["experiments"].items():
        assert e["runs"][0] == result["experiments"][name]["runs"][1]
    # another seed draws another training set
    a, b = result["experiments"]["real-only"]["runs"]
    assert a["train_ids"] != b["train_ids"]


def test_report_carries_n_and_seeds(result):
    out = result["_out"]
    for name in ("utility.json", "report.md", "confusion_matrices.png", "roc_curves.png"):
        assert (out / name).is_file(), name
    data = json.loads((out / "utility.json").read_text())
    assert set(data["experiments"]) == {"real-only", "replace-25", "augment+25", "augment+50", "augment+100", "tstr"}
    for e in data["experiments"].values():
        for m in ("accuracy", "balanced_accuracy", "roc_auc", "f1"):
            s = e["summary"][m]
            assert s["n_test"] == data["test"]["n"] and s["seeds"] == [0, 1] and s["n_boot"] == 200
            vals = np.array([r["metrics"][m] for r in e["runs"]], np.float64)  # recomputed from the runs
            assert s["mean"] == pytest.approx(vals.mean()) and s["std"] == pytest.approx(vals.std(ddof=1))
            assert s["min"] == vals.min() and s["max"] == vals.max() and s["n_seeds"] == len(vals) == 2
            assert 0.0 <= s["ci95"][0] <= s["ci95"][1] <= 1.0
        assert np.sum(e["summary"]["confusion_sum"]) == 2 * data["test"]["n"]
    md = (out / "report.md").read_text()
    assert f"(N = {data['test']['n']})" in md and "seeds (0, 1)" in md
    assert data["generator_provenance"]["verified"] is False  # an array has no provenance, and the report says so
    assert "NOT verified" in md


def test_utility_cli_with_generated_folder(result, patch_dir, stand_in_generated, tmp_path):
    from click.testing import CliRunner

    from cli.main import main
    from keras_mammo.data.io import write_png

    gen_dir = tmp_path / "generated"
    for i, img in enumerate(stand_in_generated):
        write_png(gen_dir / f"g{i:04d}.png", img, bits=16)
    out = tmp_path / "report"
    res = CliRunner().invoke(main, [
        "utility", "--patches", str(patch_dir), "--generated", str(gen_dir), "--out", str(out), "--seeds", "0",
        "--bootstrap", "50", "--inner-folds", "3", "--augment", "0.5", "--no-tstr", "--quiet"])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "utility.json").read_text())
    assert data["features"]["real"]["cached"] and data["features"]["generated"]["cached"]
    assert list(data["experiments"]) == ["real-only", "replace-25", "augment+50"]
    assert "| Real only (thesis Experiment 1) |" in res.output
    bad = CliRunner().invoke(main, ["utility", "--patches", str(patch_dir), "--generated", str(gen_dir),
                                    "--generator", str(gen_dir)])
    assert bad.exit_code != 0 and "at most one" in bad.output


@pytest.mark.slow
def test_train_patch_generator_sees_training_tumours_only(patch_dir, tmp_path):
    """A (tiny) real training run: its data manifest holds exactly the training split's tumour patches."""
    from keras_mammo.utility.generated import generate_patches, generator_provenance, train_patch_generator

    ps = PatchSet(patch_dir)
    run = train_patch_generator(patch_dir, tmp_path / "gan", overrides={
        "train.stages": [], "train.resolution": 16, "train.epochs": 1, "train.batch_size": 8,
        "train.steps_per_epoch": 1, "train.tensorboard": False, "train.sample_count": 4, "seed": 0}, progress=False)
    rows = [json.loads(x) for x in (run / "dataset_manifest.jsonl").read_text().splitlines() if x.strip()]
    assert {r["image_id"] for r in rows} == {r["image_id"] for r in ps.select(TRAIN, TUMOUR)}
    assert not {r["patient_id"] for r in rows} & ps.test_patients()
    prov = generator_provenance(run, ps)
    assert prov["verified"] and prov["n_training_images"] == len(rows)
    imgs, info = generate_patches(run, 3, seed=0)
    assert imgs.shape == (3, 16, 16) and imgs.dtype == np.float32 and 0 <= imgs.min() and imgs.max() <= 1
    assert info["source"] == "run"
    assert (patch_dir / GENERATOR_TRAIN_DIR / "manifest.jsonl").is_file()
