"""Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs", §4).

KID is the squared Maximum Mean Discrepancy between two sets of Inception features
with the cubic polynomial kernel ``k(x, y) = (xᵀy / D + 1)³``, estimated without bias:
for subsets ``X``, ``Y`` of ``m`` images each::

    MMD²_u = Σ_{i≠j} k(x_i, x_j) / (m(m−1)) + Σ_{i≠j} k(y_i, y_j) / (m(m−1))
             − 2 Σ_{i,j} k(x_i, y_j) / m²

averaged over random subsets (reported as mean ± standard deviation over subsets).
Unlike FID, its expectation does not depend on N, so it is the number to trust at the
few-hundred-image sizes of mammography datasets; it can be slightly negative when the
two distributions are equal.
"""
from __future__ import annotations

import numpy as np

from keras_mammo.errors import DataError
from keras_mammo.metrics.fid import _check_features


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> np.ndarray:
    """``(γ xᵀy + c)^degree`` for all pairs; ``γ = 1 / D`` by default.

    Args:
        x: ``(n, D)``; y: ``(m, D)``.

    Returns:
        ``(n, m) float64``.
    """
    g = 1.0 / x.shape[1] if gamma is None else gamma
    return (g * (x @ y.T) + coef0) ** degree


def _mmd2_from_kernels(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
    m, n = len(kxx), len(kyy)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with the cubic polynomial kernel (Gretton et al. 2012, "A Kernel
    Two-Sample Test", Lemma 6; kernel of Bińkowski et al. 2018, §4).

    Args:
        x: ``(m, D)``; y: ``(n, D)``; ``m, n ≥ 2``.

    Returns:
        MMD²_u (float; may be slightly negative).
    """
    return _mmd2_from_kernels(polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y))


#: Largest ``N_a · N_b`` for which the kernel matrices of the whole sets are computed once
#: and indexed per subset (≈ 200 MB of float64); larger sets compute them per subset.
_PRECOMPUTE_LIMIT = 25_000_000


def kid(feats_a, feats_b, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: mean and standard deviation of MMD²_u over random subsets.

    Each of ``subsets`` draws takes ``m = min(subset_size, N_a, N_b)`` images from each side
    without replacement (as in Bińkowski et al.'s code, StyleGAN's and clean-fid's). When
    ``m`` equals both set sizes every draw is the whole set and the std is 0; choose a
    ``subset_size`` below N (e.g. N/2) to see the sampling spread. For sets of up to a
    few thousand images the kernel matrices are computed once and indexed per subset.

    Args:
        feats_a, feats_b: ``(N_a, D)``, ``(N_b, D)`` Inception features, ``N ≥ 2``.
        subsets: number of random subsets (≥ 1).
        subset_size: images per side per subset (≥ 2).
        seed: seed of the subset sampler (NumPy ``default_rng``).

    Returns:
        ``(mean, std)`` of MMD²_u in squared kernel units (reported ×10³ by some papers).

    Raises:
        DataError: fewer than 2 images per side, mismatched dimensions, non-finite values.
        ValueError: ``subsets < 1`` or ``subset_size < 2``.
    """

    fa = _check_features(feats_a, "feats_a")
    fb = _check_features(feats_b, "feats_b")
    if fa.shape[1] != fb.shape[1]:
        raise DataError(f"feature dimensions differ: {fa.shape[1]} vs {fb.shape[1]}")
    if subsets < 1:
        raise ValueError(f"subsets must be ≥ 1, got {subsets}")
    if subset_size < 2:
        raise ValueError(f"subset_size must be ≥ 2, got {subset_size}")
    m = min(subset_size, len(fa), len(fb))
    rng = np.random.default_rng(seed)
    full = max(len(fa), len(fb)) ** 2 <= _PRECOMPUTE_LIMIT
    if full:
        kaa, kbb, kab = polynomial_kernel(fa, fa), polynomial_kernel(fb, fb), polynomial_kernel(fa, fb)
    vals = np.empty(subsets)
    for i in range(subsets):
        ia = rng.choice(len(fa), m, replace=False)
        ib = rng.choice(len(fb), m, replace=False)
        if full:
            vals[i] = _mmd2_from_kernels(kaa[np.ix_(ia, ia)], kbb[np.ix_(ib, ib)], kab[np.ix_(ia, ib)])
        else:
            vals[i] = mmd2_unbiased(fa[ia], fb[ib])
    return float(vals.mean()), float(vals.std())
