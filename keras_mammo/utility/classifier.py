"""Linear SVM on standardized backbone features, and the metrics it is judged by.

Rahali 2025, §3.6 classifies ResNet50 features of tumour and non-tumour patches with a
linear support-vector machine and reports accuracy and the confusion matrices of
Tables 4.4–4.5. The thesis does not say how the SVM's C was set; here it is chosen by
inner cross-validation **on the training set only** (grouped by patient, so that two
patches of one patient never sit on both sides of an inner fold), and the features are
standardized inside the pipeline (mean/std from the training folds only).

Metrics (tumour = positive class, label 1): accuracy, balanced accuracy (mean of the
two recalls), ROC AUC of the SVM's decision function (Mann–Whitney statistic, ties
counted half), F1 of the tumour class, and the confusion matrix ``[[TN, FP], [FN, TP]]``.
:func:`patient_bootstrap` gives percentile 95 % intervals by resampling test *patients*
(the independent units) with replacement.
"""
from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence

import numpy as np

#: Candidate values of the SVM's C (inverse regularization), searched by inner CV.
DEFAULT_C_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
METRICS = ("accuracy", "balanced_accuracy", "roc_auc", "f1")


@dataclasses.dataclass
class FittedSVM:
    """A fitted ``StandardScaler → LinearSVC`` pipeline and how its C was chosen.

    Attributes:
        pipeline: the scikit-learn pipeline, refitted on the whole training set.
        C: the chosen C.
        inner_cv_score: mean inner-CV balanced accuracy of that C.
        inner_folds: number of inner folds actually used.
        cv_scores: ``{C: mean inner-CV balanced accuracy}``.
    """

    pipeline: object
    C: float
    inner_cv_score: float
    inner_folds: int
    cv_scores: dict

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Signed distance to the hyperplane, ``(N,) float64``; > 0 means tumour."""
        return np.asarray(self.pipeline.decision_function(X), np.float64)


def _make_pipeline(C: float, seed: int):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    return make_pipeline(StandardScaler(), LinearSVC(C=C, class_weight="balanced", dual="auto",
                                                     max_iter=20000, random_state=int(seed)))


def fit_linear_svm(X: np.ndarray, y: np.ndarray, groups: Sequence | None = None, seed: int = 0,
                   c_grid: Sequence[float] = DEFAULT_C_GRID, inner_folds: int = 5) -> FittedSVM:
    """Fit a linear SVM with C chosen by grouped, stratified inner cross-validation.

    The inner CV (``StratifiedGroupKFold``, shuffled with ``seed``) only ever sees
    ``X``: the test set plays no part in choosing C. Scoring is balanced accuracy; ties
    go to the smaller C (stronger regularization). Classes are weighted inversely to
    their frequency (``class_weight="balanced"``), which matters only for the
    augmentation experiments, whose training sets hold more tumour than non-tumour
    patches.

    Args:
        X: ``(N, D) float`` features.
        y: ``(N,) int`` labels, 0 = non-tumour, 1 = tumour; both must occur.
        groups: ``(N,)`` patient ids (generated images: one group each); None = each
            sample its own group.
        seed: fold shuffling and LinearSVC's coordinate-descent order.
        c_grid: candidate C values.
        inner_folds: wanted folds; reduced to the smallest class's number of groups.

    Returns:
        :class:`FittedSVM`.

    Raises:
        ValueError: a class is missing or has fewer than 2 groups.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedGroupKFold

    X = np.asarray(X, np.float64)
    y = np.asarray(y, int)
    groups = np.asarray(groups if groups is not None else np.arange(len(y))).astype(str)
    per_class_groups = [len(set(groups[y == c])) for c in (0, 1)]
    if min(per_class_groups) < 2:
        raise ValueError(f"each class needs ≥ 2 groups for inner CV; got {per_class_groups} (non-tumour, tumour)")
    k = int(min(inner_folds, *per_class_groups))
    folds = list(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=int(seed)).split(X, y, groups))
    cv_scores = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for C in sorted(float(c) for c in c_grid):
            scores = []
            for tr, va in folds:
                pipe = _make_pipeline(C, seed).fit(X[tr], y[tr])
                pred = (pipe.decision_function(X[va]) > 0).astype(int)
                scores.append(balanced_accuracy(y[va], pred))
            cv_scores[C] = float(np.mean(scores))
        best_c = max(cv_scores, key=lambda c: (cv_scores[c], -c))
        pipe = _make_pipeline(best_c, seed).fit(X, y)
    return FittedSVM(pipe, best_c, cv_scores[best_c], k, cv_scores)


# --------------------------------------------------------------------------- metrics


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean of sensitivity and specificity; ``nan`` if a class is absent."""
    y, pred = np.asarray(y), np.asarray(pred)
    pos, neg = y == 1, y == 0
    if not pos.any() or not neg.any():
        return float("nan")
    return float(0.5 * ((pred[pos] == 1).mean() + (pred[neg] == 0).mean()))


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve = P(score of a tumour > score of a non-tumour), ties ½.

    Computed from average ranks (Mann–Whitney U / (n₊ n₋)); ``nan`` if a class is absent.
    """
    from scipy.stats import rankdata

    y = np.asarray(y)
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, np.float64))
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def f1_tumour(y: np.ndarray, pred: np.ndarray) -> float:
    """F1 of the tumour class, 2TP / (2TP + FP + FN); 0 when there is no TP."""
    y, pred = np.asarray(y), np.asarray(pred)
    tp = int(((pred == 1) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    return float(2 * tp / (2 * tp + fp + fn)) if tp else 0.0


def confusion(y: np.ndarray, pred: np.ndarray) -> list[list[int]]:
    """``[[TN, FP], [FN, TP]]`` (rows: true non-tumour, tumour; columns: predicted)."""
    y, pred = np.asarray(y), np.asarray(pred)
    return [[int(((y == t) & (pred == p)).sum()) for p in (0, 1)] for t in (0, 1)]


def classification_metrics(y: np.ndarray, score: np.ndarray) -> dict:
    """All metrics of one classifier on one test set.

    Args:
        y: ``(N,)`` true labels (1 = tumour).
        score: ``(N,)`` decision values; predicted tumour where ``score > 0``.

    Returns:
        ``{"accuracy", "balanced_accuracy", "roc_auc", "f1", "confusion", "n", "n_tumour",
        "n_non_tumour"}``.
    """
    y = np.asarray(y, int)
    pred = (np.asarray(score) > 0).astype(int)
    return {
        "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
        "balanced_accuracy": balanced_accuracy(y, pred),
        "roc_auc": roc_auc(y, score),
        "f1": f1_tumour(y, pred),
        "confusion": confusion(y, pred),
        "n": int(len(y)), "n_tumour": int((y == 1).sum()), "n_non_tumour": int((y == 0).sum()),
    }


_METRIC_FNS: dict[str, Callable] = {
    "accuracy": lambda y, s: float(((s > 0).astype(int) == y).mean()),
    "balanced_accuracy": lambda y, s: balanced_accuracy(y, (s > 0).astype(int)),
    "roc_auc": roc_auc,
    "f1": lambda y, s: f1_tumour(y, (s > 0).astype(int)),
}


def roc_curve_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)`` of the ROC curve, from (0, 0) to (1, 1), one point per distinct threshold."""
    y = np.asarray(y, int)
    s = np.asarray(score, np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(y)[distinct]
    fp = np.cumsum(1 - y)[distinct]
    tpr = np.r_[0.0, tp / max(1, y.sum())]
    fpr = np.r_[0.0, fp / max(1, (1 - y).sum())]
    return fpr, tpr


def patient_bootstrap(y: np.ndarray, scores: dict[str, Sequence[np.ndarray]], patients: Sequence[str],
                      n_boot: int = 1000, seed: int = 0, reference: str | None = None,
                      metrics: Sequence[str] = METRICS) -> dict:
    """Percentile 95 % intervals of seed-averaged metrics, resampling test patients.

    Each replicate draws the test patients with replacement (all of a drawn patient's
    patches come along), evaluates every seed's scores on that resample and averages over
    seeds. Replicates that lack a class are redrawn. With ``reference``, the paired
    difference (experiment − reference) on the same replicate is also summarized.

    Args:
        y: ``(N,)`` test labels.
        scores: ``{experiment: [ (N,) scores of seed 1, seed 2, ... ]}``.
        patients: ``(N,)`` patient id of each test patch.
        n_boot: replicates.
        seed: the bootstrap's own seed.
        reference: experiment name the differences are taken against.

    Raises:
        ValueError: the test set holds one class only.

    Returns:
        ``{experiment: {metric: {"ci95": [lo, hi], "n_boot": B},
        "delta_<metric>": {"mean": point difference, "ci95": [lo, hi], "p_le_0": share of
        replicates with difference ≤ 0, "se": standard deviation of the replicates' differences
        (the bootstrap standard error)}}}`` (deltas only when ``reference`` is set).
    """
    y = np.asarray(y, int)
    patients = np.asarray(patients).astype(str)
    uniq = np.unique(patients)
    members = [np.flatnonzero(patients == p) for p in uniq]
    rng = np.random.default_rng(int(seed))
    boots: dict[str, dict[str, list[float]]] = {e: {m: [] for m in metrics} for e in scores}
    if y.min() == y.max():
        raise ValueError("the test set holds one class only; no interval can be computed")
    done = tries = 0
    while done < n_boot:
        tries += 1
        if tries > 100 * n_boot:
            raise ValueError("patient resamples almost never hold both classes; the test set is too small")
        pick = rng.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([members[i] for i in pick])
        yy = y[idx]
        if yy.min() == yy.max():
            continue
        for e, per_seed in scores.items():
            for m in metrics:
                fn = _METRIC_FNS[m]
                boots[e][m].append(float(np.mean([fn(yy, np.asarray(s)[idx]) for s in per_seed])))
        done += 1
    out: dict = {}
    point = {e: {m: float(np.mean([_METRIC_FNS[m](y, np.asarray(s)) for s in per_seed])) for m in metrics}
             for e, per_seed in scores.items()}
    for e in scores:
        out[e] = {}
        for m in metrics:
            arr = np.asarray(boots[e][m])
            out[e][m] = {"ci95": [float(np.nanpercentile(arr, 2.5)), float(np.nanpercentile(arr, 97.5))],
                         "n_boot": int(n_boot)}
            if reference is not None and e != reference and reference in scores:
                d = arr - np.asarray(boots[reference][m])
                out[e][f"delta_{m}"] = {
                    "mean": point[e][m] - point[reference][m],
                    "ci95": [float(np.nanpercentile(d, 2.5)), float(np.nanpercentile(d, 97.5))],
                    "p_le_0": float(np.mean(d <= 0)), "se": float(np.nanstd(d, ddof=1)), "n_boot": int(n_boot),
                }
    return out
