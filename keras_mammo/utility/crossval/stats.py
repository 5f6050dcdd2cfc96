"""Intervals for cross-validated paired differences, and the protocol's minimum detectable effect.

Cross-validation folds share most of their training data, so the k per-fold differences
between two arms are positively correlated, and the naive t-interval (variance / k) is too
narrow. Nadeau & Bengio (2003), "Inference for the Generalization Error", Machine
Learning 52:239–281, §4 (the *corrected resampled t-test*) inflate the variance:

    Var[d̄] ≈ (1/J + n_test/n_train) · s²,   s² = sample variance of the J differences,

and use Student's t with ``J − 1`` degrees of freedom. Bouckaert & Frank (2004), PAKDD,
LNCS 3056, recommend this correction for k-fold CV.

The minimum detectable effect (MDE) of a design with standard error SE, for a two-sided
test at level α with power 1 − β, is (Bloom 1995, "Minimum detectable effects: a simple
way to report the statistical power of experimental designs", Evaluation Review
19(5):547–556, eq. 1)::

    MDE = (q_{1−α/2} + q_{1−β}) · SE

with q the standard-normal quantile (or Student's t with ``df`` degrees of freedom when
the SE is estimated from few units). At α = 0.05 and 80 % power with the normal:
``(1.960 + 0.842) · SE = 2.80 · SE``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def corrected_resampled_t(differences: Sequence[float], n_train: float, n_test: float, alpha: float = 0.05) -> dict:
    """Nadeau & Bengio's corrected resampled t-test of paired per-fold differences.

    Args:
        differences: ``(J,)`` per-fold differences (arm − reference) of a metric, J ≥ 2.
        n_train: training-set size of one fold (mean over folds), > 0.
        n_test: test-set size of one fold (mean over folds), > 0.
        alpha: two-sided level of the interval.

    Returns:
        ``{"mean", "se", "ci95": [lo, hi], "t", "df", "p", "J", "n_train", "n_test",
        "correction": 1/J + n_test/n_train}``; ``se = sqrt(correction · s²)``,
        ``ci = mean ± t_{1−α/2, J−1} · se``; ``p`` two-sided (nan when se = 0).

    Raises:
        ValueError: fewer than 2 differences or non-positive sizes.
    """
    from scipy import stats

    d = np.asarray(differences, np.float64)
    if d.ndim != 1 or len(d) < 2:
        raise ValueError(f"corrected_resampled_t: need ≥ 2 per-fold differences, got shape {d.shape}")
    if n_train <= 0 or n_test <= 0:
        raise ValueError(f"corrected_resampled_t: sizes must be > 0, got n_train={n_train}, n_test={n_test}")
    j = len(d)
    corr = 1.0 / j + float(n_test) / float(n_train)
    mean = float(d.mean())
    se = float(np.sqrt(corr * d.var(ddof=1)))
    df = j - 1
    q = float(stats.t.ppf(1.0 - alpha / 2.0, df))
    t = mean / se if se > 0 else float("nan")
    p = float(2.0 * stats.t.sf(abs(t), df)) if se > 0 else float("nan")
    return {"mean": mean, "se": se, "ci95": [mean - q * se, mean + q * se], "t": t, "df": df, "p": p, "J": j,
            "n_train": float(n_train), "n_test": float(n_test), "correction": corr}


def minimum_detectable_effect(se: float, alpha: float = 0.05, power: float = 0.8, df: int | None = None) -> float:
    """Smallest true difference a two-sided test at ``alpha`` detects with probability ``power``.

    ``MDE = (q_{1−α/2} + q_{power}) · se`` (Bloom 1995, eq. 1), q the standard-normal
    quantile, or Student's t quantile with ``df`` degrees of freedom when given. The
    opposite tail's rejections are ignored (negligible for power ≥ 0.5).

    Args:
        se: standard error of the estimated difference (same unit as the metric, e.g. ROC
            AUC), ≥ 0.
        alpha: two-sided significance level in (0, 1).
        power: wanted power in (0, 1).
        df: degrees of freedom of a t-based test, or None for the normal.

    Returns:
        the MDE in the metric's unit.

    Raises:
        ValueError: ``se < 0`` or ``alpha``/``power`` outside (0, 1).
    """
    from scipy import stats

    if se < 0 or not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"minimum_detectable_effect: need se ≥ 0 and alpha, power in (0, 1); got se={se}, "
                         f"alpha={alpha}, power={power}")
    dist = stats.norm if df is None else stats.t(df)
    return float((dist.ppf(1.0 - alpha / 2.0) + dist.ppf(power)) * se)
