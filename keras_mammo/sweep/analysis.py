"""Taguchi analysis of a sweep: S/N ratios, response table, ANOVA, predicted optimum.

Plain functions on arrays and DataFrames (no Ray, no TensorFlow), after Taguchi,
Chowdhury & Wu 2005 ("Taguchi's Quality Engineering Handbook", Part III) and
Montgomery 2017 ("Design and Analysis of Experiments", §12.7):

* **S/N, smaller the better** per design row over its repeats ``y_1 … y_K`` (here y = FID):
  ``S/N = −10 · log10(mean(y²))`` in dB (pyDOE3's ``compute_snr``). Higher is better.
* **Response table**: for each factor and level, the mean S/N (and mean FID) of the rows
  run at that level; *delta* = max − min of a factor's level means; *rank* 1 = largest
  delta (the most influential factor).
* **ANOVA** of the row S/N ratios on the factors (statsmodels ``ols`` + ``anova_lm``);
  *percent contribution* = a factor's sum of squares / the total sum of squares × 100.
  Empty array columns form the error term; with as many factors as the array has
  columns the error has 0 degrees of freedom and no F test is possible.
* **Predicted optimum** (additive model): the best level of each factor and
  ``S/N_pred = mean + Σ_f (mean S/N at f's best level − mean)``; the FID it implies for one
  run is ``10^(−S/N_pred / 20)``. Confounded factors (:func:`~keras_mammo.sweep.design.alias_groups`)
  share one effect, counted once.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd

from keras_mammo.sweep.design import alias_groups
from keras_mammo.utils import atomic_path


def sn_smaller_the_better(y) -> float:
    """Smaller-the-better signal-to-noise ratio ``−10 log10(mean(y²))`` in dB.

    Args:
        y: the K ≥ 1 responses (e.g. FIDs of the repeats of one design row), finite.

    Raises:
        ValueError: empty, or a non-finite value.
    """
    from pyDOE3 import TaguchiObjective, compute_snr

    y = np.asarray(y, dtype=np.float64).ravel()
    if y.size == 0:
        raise ValueError("S/N needs at least one response")
    if not np.isfinite(y).all():
        raise ValueError(f"S/N of non-finite responses {y.tolist()}")
    return float(compute_snr(y, TaguchiObjective.SMALLER_IS_BETTER))


@dataclasses.dataclass
class Analysis:
    """Everything :func:`analyze` derives from a design and its responses.

    Attributes:
        codes: the design's level codes (index = trial).
        levels: factor → list of values.
        sn: ``(runs,)`` S/N per row (dB).
        mean_y: ``(runs,)`` mean response per row.
        table: response table, one row per (factor, level): ``factor, level, value,
            mean_sn, mean_fid, n_rows``.
        effects: one row per factor: ``factor, delta, rank, best_level, best_value,
            confounded_with``.
        anova: one row per estimable term and ``error``: ``term, df, sum_sq, percent``.
        optimum: factor → best value.
        optimum_codes: factor → best level index.
        predicted_sn: additive-model S/N of the optimum (dB).
        predicted_fid: ``10^(−predicted_sn / 20)``.
        groups: alias groups (confounded factors together).
    """

    codes: pd.DataFrame
    levels: dict
    sn: np.ndarray
    mean_y: np.ndarray
    table: pd.DataFrame
    effects: pd.DataFrame
    anova: pd.DataFrame
    optimum: dict
    optimum_codes: dict
    predicted_sn: float
    predicted_fid: float
    groups: list


def response_table(codes: pd.DataFrame, sn, y, levels: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean S/N and mean response per factor level; delta and rank per factor.

    Args:
        codes: design codes ``(runs, factors)``.
        sn: ``(runs,)`` S/N per row.
        y: ``(runs,)`` mean response (FID) per row.
        levels: factor → values, for the ``value`` column (codes when None).

    Returns:
        ``(table, effects)`` (see :class:`Analysis`). Ties in delta share the lower rank.
    """
    sn = np.asarray(sn, float)
    y = np.asarray(y, float)
    groups = alias_groups(codes)
    alias = {k: [m for m in g if m != k] for g in groups for k in g}
    rows, eff = [], []
    for k in codes.columns:
        c = codes[k].to_numpy()
        means = {}
        for lv in sorted(set(c.tolist())):
            sel = c == lv
            means[lv] = float(sn[sel].mean())
            rows.append({"factor": k, "level": int(lv) + 1,
                         "value": levels[k][lv] if levels else int(lv),
                         "mean_sn": means[lv], "mean_fid": float(y[sel].mean()), "n_rows": int(sel.sum())})
        best = max(means, key=means.get)
        eff.append({"factor": k, "delta": max(means.values()) - min(means.values()), "best_level": int(best) + 1,
                    "best_value": levels[k][best] if levels else int(best),
                    "confounded_with": ", ".join(alias[k])})
    table = pd.DataFrame(rows)
    table["value"] = pd.Series([r["value"] for r in rows], dtype=object)  # keep 16 an int beside 1e-4
    effects = pd.DataFrame(eff)
    effects["best_value"] = pd.Series([e["best_value"] for e in eff], dtype=object)
    effects.insert(2, "rank", effects["delta"].round(9).rank(ascending=False, method="min").astype(int))
    return table, effects


def anova_contribution(codes: pd.DataFrame, sn) -> pd.DataFrame:
    """ANOVA of the S/N ratios on the factors, with percent contribution (statsmodels).

    One term per alias group (confounded factors cannot be separated; the term is
    named ``a = b``). Sums of squares are sequential (type I), equal to type II and III
    for an orthogonal array.

    Returns:
        ``term, df, sum_sq, percent, F, p`` with an ``error`` row (df 0 and NaN F/p when
        the design leaves no column for error).
    """
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    groups = alias_groups(codes)
    data = pd.DataFrame({f"x{i}": codes[g[0]].to_numpy() for i, g in enumerate(groups)})
    data["sn"] = np.asarray(sn, float)
    formula = "sn ~ " + " + ".join(f"C(x{i})" for i in range(len(groups)))
    fit = smf.ols(formula, data=data).fit()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # F and p are undefined with 0 error df
        table = anova_lm(fit, typ=1)
    total = float(((data["sn"] - data["sn"].mean()) ** 2).sum())
    out = []
    for i, g in enumerate(groups):
        r = table.loc[f"C(x{i})"]
        out.append({"term": " = ".join(g), "df": int(r["df"]), "sum_sq": float(r["sum_sq"])})
    resid_df = int(round(fit.df_resid))
    resid_ss = max(total - sum(o["sum_sq"] for o in out), 0.0) if resid_df > 0 else 0.0  # 0 df: round-off only
    out.append({"term": "error", "df": resid_df, "sum_sq": resid_ss})
    df = pd.DataFrame(out)
    df["percent"] = 100.0 * df["sum_sq"] / total if total > 0 else np.nan
    if resid_df > 0 and resid_ss > 0:
        ms_e = resid_ss / resid_df
        df["F"] = [(r.sum_sq / r.df) / ms_e if r.term != "error" else np.nan for r in df.itertuples()]
        from scipy import stats

        df["p"] = [float(stats.f.sf(f, r.df, resid_df)) if r.term != "error" else np.nan
                   for f, r in zip(df["F"], df.itertuples())]
    else:
        df["F"] = np.nan
        df["p"] = np.nan
    return df


def predict_optimum(codes: pd.DataFrame, sn, levels: dict | None = None) -> tuple[dict, dict, float]:
    """Best level of every factor and the additive-model S/N of that combination.

    Returns:
        ``(optimum values, optimum codes, predicted S/N in dB)``. A confounded group
        contributes one effect (its first factor's); its other members take the level
        that always accompanies it.
    """
    sn = np.asarray(sn, float)
    grand = float(sn.mean())
    pred = grand
    opt_codes = {}
    for g in alias_groups(codes):
        c = codes[g[0]].to_numpy()
        means = {lv: float(sn[c == lv].mean()) for lv in sorted(set(c.tolist()))}
        best = max(means, key=means.get)
        pred += means[best] - grand
        sel = c == best
        for k in g:
            opt_codes[k] = int(codes[k].to_numpy()[sel][0])
    opt_codes = {k: opt_codes[k] for k in codes.columns}
    values = {k: (levels[k][v] if levels else v) for k, v in opt_codes.items()}
    return values, opt_codes, pred


def analyze(codes: pd.DataFrame, responses, levels: dict | None = None) -> Analysis:
    """The whole Taguchi analysis of a design.

    Args:
        codes: design codes, ``runs`` rows.
        responses: per row, the responses of its repeats (a ``(runs,)`` or
            ``(runs, K)`` array, or a list of ``runs`` sequences).
        levels: factor → values.

    Raises:
        ValueError: the number of response rows differs from the design's.
    """
    rows = [np.atleast_1d(np.asarray(r, float)) for r in (responses if not isinstance(responses, np.ndarray)
                                                         or responses.ndim > 1 else responses[:, None])]
    if len(rows) != len(codes):
        raise ValueError(f"{len(rows)} response rows for a design of {len(codes)} rows")
    sn = np.array([sn_smaller_the_better(r) for r in rows])
    mean_y = np.array([float(r.mean()) for r in rows])
    table, effects = response_table(codes, sn, mean_y, levels)
    anova = anova_contribution(codes, sn)
    values, opt_codes, pred = predict_optimum(codes, sn, levels)
    return Analysis(codes, dict(levels or {}), sn, mean_y, table, effects, anova, values, opt_codes, pred,
                    float(10 ** (-pred / 20.0)), alias_groups(codes))


def main_effects_csv(a: Analysis) -> pd.DataFrame:
    """The response table joined with each factor's delta and rank (``main_effects.csv``)."""
    return a.table.merge(a.effects[["factor", "delta", "rank"]], on="factor")


def plot_main_effects(a: Analysis, path: str | Path) -> Path:
    """The main-effects plot: mean S/N (dB) by level, one panel per factor, the grand mean dashed.

    Returns:
        ``path`` (PNG, written atomically).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    factors = list(a.codes.columns)
    fig, axes = plt.subplots(1, len(factors), figsize=(3.0 * len(factors), 3.0), sharey=True, squeeze=False)
    grand = float(np.mean(a.sn))
    for ax, k in zip(axes[0], factors):
        t = a.table[a.table.factor == k]
        ax.plot(range(len(t)), t.mean_sn, "o-", color="C0")
        ax.axhline(grand, ls="--", color="grey", lw=0.8)
        ax.set_xticks(range(len(t)), [str(v) for v in t.value])
        ax.set_title("+".join(part.split(".")[-1] for part in k.split("+")) + (" (aliased)" if a.effects.set_index("factor").loc[k, "confounded_with"]
                                         else ""), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean S/N (dB), smaller-the-better FID")
    fig.suptitle("Main effects of S/N ratio", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _fmt(v) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—"
        return f"{v:.4g}"
    return str(v)


def markdown_table(df: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table (no extra dependency)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v) for v in r) + " |")
    return "\n".join(lines)
