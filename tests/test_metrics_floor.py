"""The real-vs-real floor protocol (keras_mammo.metrics.floor) on MIAS films.

Features here are 8-bin grey-level histograms of the films (cheap, no Inception): the
protocol — halves by patient, matched N, the order of the draws — does not depend on
which features are compared.
"""
import numpy as np
import pytest

from keras_mammo.metrics import floor
from keras_mammo.metrics.fid import fid
from keras_mammo.metrics.imagesets import load_image_set
from keras_mammo.metrics.kid import kid


def _hist_features(images):
    return np.stack([np.histogram(im, bins=8, range=(0.0, 1.0))[0] / im.size for im in images]).astype(np.float64)


@pytest.fixture(scope="module")
def mias_features(mias_prepared):
    real = load_image_set(mias_prepared, size=32, name="real")
    return real, _hist_features(real.images)


def test_halves_keep_patients_whole_and_n_is_matched(mias_features):
    real, _ = mias_features
    halves = floor.real_halves(real.patient_ids, 3, np.random.default_rng(0))
    pid = np.asarray(real.patient_ids)
    for a, b in halves:
        assert not set(a) & set(b) and len(a) + len(b) == len(real)
        assert not set(pid[a]) & set(pid[b])                 # no patient on both sides
    n = floor.matched_n(halves)
    assert n == min(min(len(a), len(b)) for a, b in halves) and floor.matched_n(halves, 3) == 3
    assert floor.kid_subset_size(n) == max(2, n // 2) and floor.kid_subset_size(5000) == 1000


def test_floor_scores_draw_a_then_b_then_synthetic_and_compare_with_half_b(mias_features):
    real, f_real = mias_features
    f_syn = _hist_features(np.clip(real.images * 0.8 + 0.15, 0, 1))   # a brighter "synthetic" set
    rng = np.random.default_rng(3)
    halves = floor.real_halves(real.patient_ids, 2, rng)
    n = floor.matched_n(halves, len(f_syn))
    state = rng.bit_generator.state
    got = floor.floor_scores(f_syn, f_real, halves, n, rng, kid_subsets=10, seed=7)

    rng = np.random.default_rng()
    rng.bit_generator.state = state
    a, b = halves[0]
    a_n, b_n, s_n = rng.choice(a, n, replace=False), rng.choice(b, n, replace=False), rng.choice(len(f_syn), n, False)
    assert got["fid_floor"][0] == fid(f_real[a_n], f_real[b_n])
    assert got["fid_synthetic"][0] == fid(f_syn[s_n], f_real[b_n])
    assert got["kid_floor"][0] == kid(f_real[a_n], f_real[b_n], 10, floor.kid_subset_size(n), 7)[0]
    assert got["kid_synthetic"][0] == kid(f_syn[s_n], f_real[b_n], 10, floor.kid_subset_size(n), 7)[0]
    assert all(len(v) == 2 for v in got.values())
    assert np.mean(got["fid_synthetic"]) > np.mean(got["fid_floor"])    # the shifted set is above the floor
