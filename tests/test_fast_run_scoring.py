"""Scoring a run without training it (the fast lane): a sweep trial's FID/KID with the
real-vs-real floor (:func:`keras_mammo.sweep.scoring.score_run`) and the model-specific
metrics of a conditional run (:func:`keras_mammo.generation.run_metrics.evaluate_run_model_specific`),
on untrained runs over the 16 prepared MIAS films. Trained versions: ``test_sweep.py`` and
``test_models_train.py`` (slow)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from keras_mammo.errors import DataError

THESIS = {"model.params": {"g_channels": [8, 8], "d_channels": [16, 8], "base_channels": 16}, "model.latent_dim": 16,
          "train.resolution": 16}


def test_score_run_puts_an_untrained_generator_above_the_floor(make_untrained_run, mias_prepared, tmp_path):
    from keras_mammo.data.pipeline import kept_rows
    from keras_mammo.metrics import inception as inc
    from keras_mammo.sweep.scoring import score_run

    ok, reason = inc.fid_weights_status()
    if not ok:
        pytest.skip(reason)
    run = make_untrained_run(tmp_path / "run", {**THESIS, "data.prepared": str(mias_prepared)})
    s = score_run(run, mias_prepared, n=8)
    n_real = len(kept_rows(mias_prepared))
    assert (s["resolution"], s["fid_n_synthetic"], s["fid_n_real"]) == (16, 8, n_real)
    assert 2 <= s["floor_n"] <= min(8, n_real // 2)
    assert all(np.isfinite(s[k]) for k in ("fid", "fid_matched", "fid_floor", "kid", "kid_std", "kid_floor"))
    # an untrained generator's grey noise is further from the films than one half of them is from the other
    assert s["fid_matched"] > 1.5 * s["fid_floor"] > 0 and s["kid"] > s["kid_floor"]


def test_score_run_refuses_fewer_than_four_films(tmp_path):
    from keras_mammo.sweep.scoring import score_run

    prepared = tmp_path / "prepared"
    prepared.mkdir()
    rows = [{"image_id": f"f{i}", "patient_id": f"p{i}", "kept": True, "image": f"images/f{i}.png"} for i in range(3)]
    (prepared / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"prepared: 3 films; FID/KID with a floor need at least 4"):
        score_run(tmp_path / "no-run", prepared)


def test_unet_run_is_scored_on_heldout_and_training_patients(make_untrained_run, mias_prepared, tmp_path):
    from keras_mammo.data.pipeline import kept_rows
    from keras_mammo.generation.run_metrics import evaluate_run_model_specific

    thesis = make_untrained_run(tmp_path / "thesis", {**THESIS, "data.prepared": str(mias_prepared)})
    assert evaluate_run_model_specific(thesis) is None                  # no model-specific metrics
    run = make_untrained_run(tmp_path / "unet", {"model.name": "unet", "model.params": {"base_filters": 4, "depth": 3},
                                                 "train.resolution": 32, "data.prepared": str(mias_prepared)})
    rows = kept_rows(mias_prepared)
    whole = evaluate_run_model_specific(run)
    assert whole["model"] == "unet" and whole["n_films"] == whole["n"] == len(rows) and whole["resolution_px"] == 32
    assert 0.0 <= whole["dice"]["mean"] <= 1.0 and whole["n_lesion_films"] >= 2   # mdb001–016 hold lesions
    held = {rows[0]["patient_id"]}
    split = evaluate_run_model_specific(run, heldout_patients=held)
    n_held = sum(r["patient_id"] in held for r in rows)
    assert 0 < n_held < len(rows)
    assert split["heldout_patients"]["n"] == n_held and split["training_patients"]["n"] == len(rows) - n_held
