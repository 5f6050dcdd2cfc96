"""Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs", §3, eq. 3).

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


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with the cubic polynomial kernel (Bińkowski et al. 2018, eq. 3).

    Args:
        x: ``(m, D)``; y: ``(n, D)``; ``m, n ≥ 2``.

    Returns:
        MMD²_u (float; may be slightly negative).
    """
    m, n = len(x), len(y)
    kxx = polynomial_kernel(x, x)
    kyy = polynomial_kernel(y, y)
    kxy = polynomial_kernel(x, y)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def kid(feats_a, feats_b, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: mean and standard deviation of MMD²_u over random subsets.

    Each of ``subsets`` draws takes ``m = min(subset_size, N_a, N_b)`` images from each side
    without replacement (as in Bińkowski et al.'s code, StyleGAN's and clean-fid's). When
    ``m`` equals both set sizes every draw is the whole set and the std is 0; choose a
    ``subset_size`` below N (e.g. N/2) to see the sampling spread.

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
    from keras_mammo.errors import DataError

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
    vals = np.empty(subsets)
    for i in range(subsets):
        xa = fa[rng.choice(len(fa), m, replace=False)]
        xb = fb[rng.choice(len(fb), m, replace=False)]
        vals[i] = mmd2_unbiased(xa, xb)
    return float(vals.mean()), float(vals.std())
