"""Patient-grouped, class-stratified folds: every patient is tested exactly once.

Issue 22: one 24 + 24 test split gives 95 % intervals of ±0.05–0.08, too wide to see the
+0.03 ROC AUC the literature reports. k-fold cross-validation over **all** patches tests
every patch once (out of fold), with all of a patient's patches in one fold, so that a
patient (MIAS: the left and right film of one woman) is never on both sides of a split.

Folds come from scikit-learn's ``StratifiedGroupKFold`` (groups = patients, strata =
tumour / non-tumour), shuffled with a seed.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keras_mammo.errors import DataError
from keras_mammo.utility.patchset import DataLeakageError


def patient_folds(labels: Sequence[int], patients: Sequence[str], k: int = 5, seed: int = 0) -> np.ndarray:
    """Assign every patch to one of ``k`` test folds, grouped by patient, stratified by class.

    Args:
        labels: ``(N,) int``, 1 = tumour, 0 = non-tumour.
        patients: ``(N,)`` patient ids.
        k: number of folds, ≥ 2.
        seed: shuffling seed of ``StratifiedGroupKFold``.

    Returns:
        ``(N,) int`` fold index in ``[0, k)``: the fold in which the patch is tested.

    Raises:
        DataError: ``k < 2`` or a class has fewer than ``k`` patients.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(labels, int)
    g = np.asarray(patients).astype(str)
    if len(y) != len(g):
        raise ValueError(f"{len(y)} labels but {len(g)} patient ids")
    if k < 2:
        raise DataError(f"folds: need at least 2 folds, got {k}")
    per_class = {c: len(set(g[y == c])) for c in (0, 1)}
    if min(per_class.values()) < k:
        raise DataError(f"folds: {k} folds need ≥ {k} patients per class; got {per_class[1]} tumour and "
                        f"{per_class[0]} non-tumour patients")
    fold = np.full(len(y), -1, int)
    for f, (_, test) in enumerate(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=int(seed))
                                  .split(np.zeros(len(y)), y, g)):
        fold[test] = f
    check_fold_disjoint(fold, g)
    for f in range(k):
        if len(set(y[fold == f])) < 2:
            raise DataError(f"folds: test fold {f} holds one class only; use fewer folds")
    return fold


def check_fold_disjoint(fold: np.ndarray, patients: Sequence[str]) -> None:
    """Raise if a patient's patches fall in more than one fold.

    Raises:
        DataLeakageError: naming the patient and the folds.
    """
    g = np.asarray(patients).astype(str)
    seen: dict[str, int] = {}
    for p, f in zip(g, np.asarray(fold, int)):
        if seen.setdefault(p, int(f)) != int(f):
            raise DataLeakageError(f"patient {p!r} has patches in folds {seen[p]} and {int(f)}: it would be "
                                   "trained on and tested")


def validation_split(labels: Sequence[int], patients: Sequence[str], fraction: float = 0.2, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Split training patches into fit / validation parts by patient (for early stopping).

    Uses ``StratifiedGroupKFold`` with ``round(1 / fraction)`` splits and takes its first
    split, so the validation part holds about ``fraction`` of the patches, both classes and
    no patient of the fit part.

    Returns:
        ``(fit_idx, val_idx)`` integer indices into ``labels``.

    Raises:
        DataError: a class has fewer than 2 patients.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(labels, int)
    g = np.asarray(patients).astype(str)
    n = max(2, int(round(1.0 / fraction)))
    n = min(n, len(set(g[y == 0])), len(set(g[y == 1])))
    if n < 2:
        raise DataError("validation split: each class needs patches from ≥ 2 patients")
    fit, val = next(StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=int(seed)).split(np.zeros(len(y)), y, g))
    return fit, val
