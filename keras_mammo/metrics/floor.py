"""The real-vs-real floor: what two samples of the *same* distribution score at a given N.

FID (Heusel et al. 2017) is biased upwards at small N (Chong & Forsyth 2020, "Effectively
Unbiased FID and Inception Score and where to find them", §3), so a synthetic set is
compared with real films only beside a floor measured the same way at the same N:

1. the real set is cut into two disjoint random halves A and B, never splitting a patient
   (:func:`real_halves`, by :func:`keras_mammo.metrics.imagesets.split_halves`), over
   ``splits`` random cuts;
2. at the matched ``n = min(|A|, |B|, N_synthetic)`` images per side (:func:`matched_n`),
   ``n`` synthetic images are compared with ``n`` of B and ``n`` of A with the same ``n``
   of B, by FID and KID (Bińkowski et al. 2018; :func:`kid_subset_size` subsets);
3. a synthetic set can at best reach the floor.

This module owns that protocol; ``keras-mammo evaluate``
(:func:`keras_mammo.metrics.evaluate.evaluate`), the in-training evaluation
(:class:`keras_mammo.training.evaluation.RealReference`) and the Taguchi sweep's scoring
(:func:`keras_mammo.sweep.scoring.score_run`) all call it. Features are ``(N, 2048)``
float64 pool_3 activations of the FID Inception network
(:func:`keras_mammo.metrics.inception.inception_features`); every random draw comes from
the ``numpy.random.Generator`` passed in, in a fixed order, so a seed gives the same
figures.
"""
from __future__ import annotations

import numpy as np

from keras_mammo.metrics.fid import fid
from keras_mammo.metrics.imagesets import split_halves
from keras_mammo.metrics.kid import kid


def kid_subset_size(n: int) -> int:
    """KID subset size for ``n`` images per side: half of ``n``, at least 2, at most 1000.

    Half the per-side N makes the subsets differ, so the KID's std over subsets means
    something (Bińkowski et al. 2018 use 1000 when N allows).
    """
    return int(min(1000, max(2, n // 2)))


def real_halves(patient_ids: list[str], splits: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """``splits`` random cuts of the real set into halves ``(index_a, index_b)`` (int64), patients kept whole."""
    return [split_halves(patient_ids, rng) for _ in range(splits)]


def matched_n(halves: list[tuple[np.ndarray, np.ndarray]], n_synthetic: int | None = None) -> int:
    """The per-side N of the floor: the smallest half over all cuts, and at most ``n_synthetic``."""
    n = min(min(len(a), len(b)) for a, b in halves)
    return int(n if n_synthetic is None else min(n, n_synthetic))


def draw_matched(a: np.ndarray, b: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` indices drawn without replacement from half A, then ``n`` from half B."""
    return rng.choice(a, n, replace=False), rng.choice(b, n, replace=False)


def floor_scores(f_syn: np.ndarray, f_real: np.ndarray, halves: list[tuple[np.ndarray, np.ndarray]], n: int,
                 rng: np.random.Generator, kid_subsets: int = 100, seed: int = 0,
                 synthetic_kid: bool = True) -> dict[str, list[float]]:
    """Matched-N FID and KID of synthetic vs real half B, and of real half A vs B, for every cut.

    For cut ``k`` (in order): ``n`` of A and ``n`` of B (:func:`draw_matched`), then ``n``
    synthetic images, all drawn from ``rng``; the KIDs use seed ``seed + k``.

    Args:
        f_syn: ``(N_s, D)`` features of the synthetic images (``N_s ≥ n``).
        f_real: ``(N_r, D)`` features of the real images the halves index.
        halves: from :func:`real_halves`.
        n: per-side N (:func:`matched_n`), ≥ 2.
        rng: the generator of the draws.
        kid_subsets: KID subsets per score.
        seed: base seed of the KID subsets.
        synthetic_kid: also compute the synthetic-vs-half KID (``kid_synthetic``).

    Returns:
        ``{"fid_synthetic", "fid_floor", "kid_floor"[, "kid_synthetic"]}``: one value per
        cut (FID in Inception feature units², KID unbiased MMD²).
    """
    out: dict[str, list[float]] = {"fid_synthetic": [], "fid_floor": [], "kid_floor": []}
    if synthetic_kid:
        out["kid_synthetic"] = []
    subset = kid_subset_size(n)
    for k, (a, b) in enumerate(halves):
        a_n, b_n = draw_matched(a, b, n, rng)
        s_n = rng.choice(len(f_syn), n, replace=False)
        out["fid_synthetic"].append(fid(f_syn[s_n], f_real[b_n]))
        out["fid_floor"].append(fid(f_real[a_n], f_real[b_n]))
        if synthetic_kid:
            out["kid_synthetic"].append(kid(f_syn[s_n], f_real[b_n], kid_subsets, subset, seed + k)[0])
        out["kid_floor"].append(kid(f_real[a_n], f_real[b_n], kid_subsets, subset, seed + k)[0])
    return out
