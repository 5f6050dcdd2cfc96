"""FID and KID as functions of features, checked against independent NumPy computations."""
from __future__ import annotations

import numpy as np
import pytest

from keras_mammo.errors import DataError
from keras_mammo.metrics.fid import fid, frechet_distance
from keras_mammo.metrics.kid import kid


#: float64 unit round-off.
U64 = np.finfo(np.float64).eps


def _numerically_nonzero(w: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with those below the numerical-rank cutoff
    ``D·u·λ_max`` (as ``numpy.linalg.matrix_rank``) set to 0: round-off makes a zero
    eigenvalue ±D·u·λ_max, and its square root (~1e-7 of λ_max) would swamp the result."""
    return np.where(w > len(w) * U64 * max(w.max(), 0.0), w, 0.0)


def fid_reference(a: np.ndarray, b: np.ndarray) -> float:
    """FID written independently: symmetric form Tr((Σa^½ Σb Σa^½)^½) by eigendecomposition."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca = np.cov(a, rowvar=False)
    cb = np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(ca)
    root_a = (v * np.sqrt(_numerically_nonzero(w))) @ v.T
    inner = _numerically_nonzero(np.linalg.eigvalsh(root_a @ cb @ root_a))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(ca) + np.trace(cb) - 2 * np.sum(np.sqrt(inner)))


def identical_set_tolerance(n: int, d: int, trace: float) -> float:
    """Bound on |FID(a, a)| from float64 arithmetic: the eigen/square-root solvers are
    backward stable with error O(m·u·‖M‖) for an m × m matrix built from O(n·d) sums,
    so FID(a, a) = 0 holds to a small multiple of max(n, d)·d·u·Tr Σ on any BLAS."""
    return 16 * max(n, d) * d * U64 * max(1.0, trace)


def mmd2_reference(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with k(x, y) = (x·y/d + 1)³, written with explicit loops over pairs."""
    d = x.shape[1]
    k = lambda p, q: (p @ q / d + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return float(sxx + syy - 2 * sxy)


def features(seed: int, n: int, d: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """``n`` draws from one fixed distribution per ``(d, shift, scale)``."""
    mix = np.random.default_rng(d).standard_normal((d, d)) / np.sqrt(d)   # correlated features
    rng = np.random.default_rng(seed)
    return np.abs(rng.standard_normal((n, d)) @ mix * scale + shift)   # non-negative, like pool_3


# (n_a, n_b, d): n > d uses the D × D square root, n ≤ d the Gram form.
SHAPES = [(60, 50, 8), (40, 40, 16), (12, 15, 32), (5, 7, 64)]


@pytest.mark.parametrize("n_a,n_b,d", SHAPES)
@pytest.mark.parametrize("method", ["auto", "sqrtm", "gram"])
def test_fid_matches_independent_numpy(n_a, n_b, d, method):
    a = features(1, n_a, d)
    b = features(2, n_b, d, shift=0.3, scale=1.4)
    ref = fid_reference(a, b)
    assert ref > 0.1
    assert fid(a, b, method=method) == pytest.approx(ref, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("n_a,n_b,d", SHAPES)
def test_fid_zero_on_identical_sets_and_symmetric(n_a, n_b, d):
    a = features(3, n_a, d)
    b = features(4, n_b, d, shift=0.5)
    for method in ("auto", "gram"):
        assert abs(fid(a, a, method=method)) < identical_set_tolerance(n_a, d, np.trace(np.cov(a, rowvar=False)))
    assert fid(a, b) == pytest.approx(fid(b, a), rel=1e-9)
    assert fid(a, b, method="sqrtm") == pytest.approx(fid(b, a, method="sqrtm"), rel=1e-7)


def test_fid_closed_form_one_dimension():
    # 1-D Gaussians: FID = (μa − μb)² + (σa − σb)² with the sample moments.
    rng = np.random.default_rng(0)
    a = rng.normal(1.0, 2.0, (500, 1))
    b = rng.normal(-0.5, 0.5, (300, 1))
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    assert fid(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T)) == pytest.approx(expected, rel=1e-9)


def test_fid_singular_covariances_use_eps_offset():
    # Rank-deficient covariances (n − 1 < d): the reference path must still return a finite value
    # equal to the Gram form.
    a = features(5, 10, 40)
    b = features(6, 10, 40, shift=0.2)
    assert np.isfinite(fid(a, b, method="sqrtm"))
    assert fid(a, b, method="sqrtm") == pytest.approx(fid(a, b, method="gram"), rel=1e-4)


@pytest.mark.parametrize("n", [0, 1])
def test_fid_and_kid_refuse_fewer_than_two_images(n):
    a = features(7, 10, 8)
    with pytest.raises(DataError, match="at least 2 images"):
        fid(a[:n], a)
    with pytest.raises(DataError, match="at least 2 images"):
        kid(a, a[:n])


def test_fid_rejects_mismatched_or_nonfinite_features():
    with pytest.raises(DataError, match="dimensions differ"):
        fid(features(1, 5, 4), features(2, 5, 6))
    bad = features(1, 5, 4)
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        fid(bad, bad)


@pytest.mark.parametrize("precompute", [True, False])
@pytest.mark.parametrize("m,n,d", [(6, 6, 4), (9, 7, 16)])
def test_kid_matches_independent_loops(m, n, d, precompute, monkeypatch):
    import keras_mammo.metrics.kid as kid_module

    if not precompute:   # kernel matrices per subset instead of indexed from the whole sets
        monkeypatch.setattr(kid_module, "_PRECOMPUTE_LIMIT", 0)
    x = features(10, m, d)
    y = features(11, n, d, shift=0.4)
    # One subset holding every image (subset_size ≥ both sizes, equal sizes) is the plain estimate.
    size = min(m, n)
    mean, std = kid(x[:size], y[:size], subsets=3, subset_size=1000)
    assert mean == pytest.approx(mmd2_reference(x[:size], y[:size]), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_unbiased_near_zero_for_one_distribution_and_positive_for_two():
    same, shifted = [], []
    for seed in range(20):
        a = features(100 + seed, 50, 16)
        b = features(200 + seed, 50, 16)
        c = features(300 + seed, 50, 16, shift=1.0)
        same.append(kid(a, b, subsets=10, subset_size=25, seed=seed)[0])
        shifted.append(kid(a, c, subsets=10, subset_size=25, seed=seed)[0])
    same, shifted = np.array(same), np.array(shifted)
    # Unbiased: the average over independent draws is within 3 standard errors of 0 ...
    assert abs(same.mean()) < 3 * same.std() / np.sqrt(len(same)) + 1e-12
    # ... and far below the value for two different distributions.
    assert shifted.mean() > 10 * same.std()
    assert (shifted > same.max()).all()


def test_kid_subsets_same_with_and_without_precomputed_kernels(monkeypatch):
    import keras_mammo.metrics.kid as kid_module

    a, b = features(1, 40, 8), features(2, 30, 8, shift=0.3)
    fast = kid(a, b, subsets=7, subset_size=12, seed=9)
    monkeypatch.setattr(kid_module, "_PRECOMPUTE_LIMIT", 0)
    assert kid(a, b, subsets=7, subset_size=12, seed=9) == pytest.approx(fast, rel=1e-10)


def test_kid_symmetric_and_seeded():
    a = features(1, 30, 8)
    b = features(2, 30, 8, shift=0.2)
    # Whole sets (subset_size ≥ N): MMD² is symmetric exactly.
    assert kid(a, b, subsets=2)[0] == pytest.approx(kid(b, a, subsets=2)[0], rel=1e-12)
    assert kid(a, b, subsets=5, subset_size=10, seed=3) == kid(a, b, subsets=5, subset_size=10, seed=3)
    assert kid(a, b, subsets=5, subset_size=10, seed=3) != kid(a, b, subsets=5, subset_size=10, seed=4)
    with pytest.raises(ValueError):
        kid(a, b, subset_size=1)
