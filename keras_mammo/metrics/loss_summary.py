"""Loss-curve summary of a training run: phases of generator/discriminator balance.

Rahali (2025, §4.4) reads the generator and discriminator loss curves of a run as a
sequence of phases of G/D balance, each described by the losses' level and spread.
keras-mammo makes that reading reproducible: the *balance* ``g_loss − d_loss`` is cut
into segments of constant mean by binary segmentation (Scott & Knott 1974) with a
BIC-like penalty ``penalty · σ² · ln n`` (σ² = the step-to-step noise variance of the
balance, from the median absolute deviation of its differences), a minimum phase length
(a tenth of the run), at most 6 phases (largest changes first), and forced cuts at
resolution changes (progressive growing). Each phase is reported with its step range,
resolution, and the mean and standard deviation of ``d_loss``, ``g_loss`` and the
balance, plus the balance's trend (slope per 1,000 steps).

The balance has no absolute "equilibrium" value — it depends on the loss (e.g. the
non-saturating loss balances near ``ln 2 − 2 ln 2 = −0.69``, a WGAN critic anywhere) —
so phases are defined by *changes* of the balance, not by thresholds on it.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from keras_mammo.errors import DataError
from keras_mammo.metrics.image_metrics import summarize


def read_loss_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Read a run's ``losses_steps.csv`` or ``losses_epochs.csv``.

    Returns:
        ``{column: (N,) float64}``; non-numeric cells become NaN.

    Raises:
        DataError: the file is missing, empty, or lacks ``d_loss``/``g_loss``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: loss CSV not found")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        fields = [f.strip() for f in (reader.fieldnames or [])]
    if not rows:
        raise DataError(f"{path}: loss CSV has no rows")
    missing = [c for c in ("d_loss", "g_loss") if c not in fields]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {fields}")

    def num(v):
        try:
            return float(v)
        except (TypeError, ValueError):
            return float("nan")

    return {f: np.array([num(r.get(f) if f in r else r.get(" " + f)) for r in rows]) for f in fields}


def _noise_variance(x: np.ndarray) -> float:
    if len(x) < 3:
        return float(np.var(x)) or 1.0
    d = np.diff(x)
    mad = np.median(np.abs(d - np.median(d))) * 1.4826
    var = (mad ** 2) / 2.0
    return var if var > 0 else float(np.var(x)) or 1e-12


def _best_split(x: np.ndarray, min_len: int) -> tuple[int, float]:
    """Split index and SSE reduction of the best two-mean split of ``x``."""
    n = len(x)
    if n < 2 * min_len:
        return -1, 0.0
    c1 = np.cumsum(x)
    c2 = np.cumsum(x * x)
    total = c2[-1] - c1[-1] ** 2 / n
    k = np.arange(min_len, n - min_len + 1)
    left = c2[k - 1] - c1[k - 1] ** 2 / k
    right = (c2[-1] - c2[k - 1]) - (c1[-1] - c1[k - 1]) ** 2 / (n - k)
    gain = total - (left + right)
    i = int(np.argmax(gain))
    return int(k[i]), float(gain[i])


def segment_phases(balance: np.ndarray, forced: list[int] | None = None, min_len: int | None = None,
                   penalty: float = 3.0, max_phases: int = 6) -> list[tuple[int, int]]:
    """Cut a series into segments of constant mean (binary segmentation).

    Args:
        balance: ``(N,)`` finite values.
        forced: indices where a new segment must start (e.g. resolution changes).
        min_len: shortest segment (default ``max(5, N // 10)``).
        penalty: a split is kept when it reduces the squared error by more than
            ``penalty · σ² · ln N``.
        max_phases: upper bound on the number of segments (forced cuts included; the
            largest changes are cut first, so this keeps the main phases of a long run).

    Returns:
        sorted ``[(start, stop), ...]`` half-open index ranges covering ``0 … N``.
    """
    n = len(balance)
    if n == 0:
        return []
    min_len = min_len or max(5, n // 10)
    cuts = sorted({0, n, *[int(i) for i in (forced or []) if 0 < int(i) < n]})
    sigma2 = _noise_variance(balance)
    threshold = penalty * sigma2 * math.log(max(n, 2))
    while len(cuts) - 1 < max_phases:
        best = None
        for a, b in zip(cuts[:-1], cuts[1:]):
            k, gain = _best_split(balance[a:b], min_len)
            if k > 0 and gain > threshold and (best is None or gain > best[1]):
                best = (a + k, gain)
        if best is None:
            break
        cuts = sorted(cuts + [best[0]])
    return list(zip(cuts[:-1], cuts[1:]))


def summarize_losses(path_or_columns, penalty: float = 3.0, min_len: int | None = None,
                     max_phases: int = 6) -> dict:
    """Phases of G/D balance of a run's loss curve (see the module docstring).

    Args:
        path_or_columns: a loss CSV path or the dict from :func:`read_loss_csv`.
        penalty, min_len, max_phases: see :func:`segment_phases`.

    Returns:
        ``{"n_rows", "n_nonfinite", "x": "step"|"epoch", "d_loss": summarize(...),
        "g_loss": summarize(...), "phases": [{"index", "start", "end", "n", "resolution",
        "d_loss_mean", "d_loss_std", "g_loss_mean", "g_loss_std", "balance_mean",
        "balance_std", "balance_slope_per_1k"}, ...]}``; ``start``/``end`` in units of ``x``.

    Raises:
        DataError: unreadable CSV or no finite loss rows.
    """
    cols = read_loss_csv(path_or_columns) if isinstance(path_or_columns, (str, Path)) else path_or_columns
    d, g = np.asarray(cols["d_loss"], float), np.asarray(cols["g_loss"], float)
    xname = "step" if "step" in cols else ("epoch" if "epoch" in cols else None)
    x = np.asarray(cols[xname], float) if xname else np.arange(len(d), dtype=float)
    finite = np.isfinite(d) & np.isfinite(g) & np.isfinite(x)
    if not finite.any():
        raise DataError("loss CSV has no row with finite d_loss and g_loss")
    res = np.asarray(cols["resolution"], float)[finite] if "resolution" in cols else None
    d, g, x = d[finite], g[finite], x[finite]
    bal = g - d
    forced = list(np.flatnonzero(np.diff(res) != 0) + 1) if res is not None else []
    phases = []
    for i, (a, b) in enumerate(segment_phases(bal, forced, min_len=min_len, penalty=penalty,
                                                     max_phases=max_phases)):
        xs, bs = x[a:b], bal[a:b]
        slope = float(np.polyfit(xs, bs, 1)[0] * 1000.0) if b - a >= 3 and np.ptp(xs) > 0 else 0.0
        r = res[a:b] if res is not None else None
        phases.append({
            "index": i, "start": float(xs[0]), "end": float(xs[-1]), "n": int(b - a),
            "resolution": (int(np.median(r)) if r is not None and np.isfinite(r).any() else None),
            "d_loss_mean": float(d[a:b].mean()), "d_loss_std": float(d[a:b].std()),
            "g_loss_mean": float(g[a:b].mean()), "g_loss_std": float(g[a:b].std()),
            "balance_mean": float(bs.mean()), "balance_std": float(bs.std()),
            "balance_slope_per_1k": slope,
        })
    return {
        "n_rows": int(len(finite)), "n_nonfinite": int((~finite).sum()), "x": xname or "row",
        "balance": "g_loss - d_loss",
        "d_loss": summarize(d), "g_loss": summarize(g), "phases": phases,
    }
