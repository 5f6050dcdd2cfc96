"""Experimental designs for hyper-parameter sweeps: Taguchi orthogonal arrays, the full
factorial, and the published (non-orthogonal) design of Reyes-Hernández et al. 2025.

A *design* is a table of coded levels: row ``r``, factor ``f`` holds an integer level
index ``0 … L_f − 1`` into that factor's list of values. :func:`make_design` returns it
as a :class:`pandas.DataFrame` of codes (one column per factor, in the given order, rows
numbered from 1 as in the handbooks) and :func:`decode` maps codes to values.

Arrays (Taguchi, Chowdhury & Wu 2005, "Taguchi's Quality Engineering Handbook", App. C;
Montgomery 2017, "Design and Analysis of Experiments", §8 and §12.7) are taken from
pyDOE3 (``pyDOE3.get_orthogonal_array``; their source: N. J. A. Sloane's library of
orthogonal arrays), not typed in here:

======  ==================  ====================================================
name    pyDOE3 array        factors and levels used
======  ==================  ====================================================
L4      ``L4(2^3)``         ≤ 3 factors at 2 levels
L8      ``L8(2^7)``         ≤ 7 factors at 2 levels
L9      ``L9(3^4)``         ≤ 4 factors at 3 levels (the default)
L18     ``L18(6^1 3^6)``    ≤ 6 factors at 3 levels (its six 3-level columns)
full    ``pyDOE3.fullfact`` any number of factors, every combination
paper   (constructed)       Reyes-Hernández et al. 2025, Table 1: 9 rows
======  ==================  ====================================================

Factors are assigned to the array's first columns in order; the unused columns are
empty and serve as the error term of the ANOVA. A 2-level array run on a 3-level
factor uses the factor's first and last level (its extremes).

The *paper* design: Reyes-Hernández et al. 2025 (Table 1) list learning rate
0.0001 / 0.0002 / 0.0003, batch size 16 / 32 / 64 and epochs 250 / 500 / 750 and ran nine
experiments; in all nine, batch size and epochs move together (16 with 250, 32 with 500,
64 with 750), crossed with the three learning rates. It is the full factorial of *two*
factors, not an L9 of three: batch size and epochs are completely confounded (aliased)
and their effects cannot be separated. :func:`paper_design` builds those rows (the first
factor crossed with the remaining factors moving together; rows ordered with the first
factor outermost — the order assumed for the paper's Table 3), and
:func:`check_orthogonality` names the confounded pairs.
"""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd

from keras_mammo.errors import ConfigError

#: Design names accepted by :func:`make_design`.
DESIGNS = ("L4", "L8", "L9", "L18", "full", "paper")

#: Our name → (pyDOE3 array name, number of levels of the columns used, columns used or None = all).
_ARRAYS = {
    "L4": ("L4(2^3)", 2, None),
    "L8": ("L8(2^7)", 2, None),
    "L9": ("L9(3^4)", 3, None),
    "L18": ("L18(6^1 3^6)", 3, slice(1, None)),
}


def orthogonal_array(name: str) -> np.ndarray:
    """The coded orthogonal array ``name`` (``L4``, ``L8``, ``L9``, ``L18``) from pyDOE3.

    Returns:
        ``(runs, columns) int64`` level codes starting at 0; for L18 only its six
        3-level columns (its 6-level first column is dropped).

    Raises:
        ConfigError: unknown name.
    """
    import pyDOE3

    if name not in _ARRAYS:
        raise ConfigError(f"sweep.design: {name!r} is not an orthogonal array; allowed: {', '.join(_ARRAYS)}")
    oa_name, _, cols = _ARRAYS[name]
    arr = np.asarray(pyDOE3.get_orthogonal_array(oa_name), dtype=np.int64)
    return arr[:, cols] if cols is not None else arr


def _check_levels(levels: dict[str, list]) -> None:
    if not levels:
        raise ConfigError("sweep.factors: name at least one factor (a dotted config key → its levels)")
    for key, vals in levels.items():
        if not isinstance(vals, (list, tuple)) or len(vals) < 2:
            raise ConfigError(f"sweep.factors.{key}: expected a list of 2 or 3 levels, got {vals!r}")
        if len({repr(v) for v in vals}) != len(vals):
            raise ConfigError(f"sweep.factors.{key}: levels must differ, got {vals!r}")


def paper_design(levels: dict[str, list]) -> pd.DataFrame:
    """Reyes-Hernández et al. 2025, Table 1: the first factor crossed with all the others
    moving together (level ``j`` of every other factor in the same row).

    With ``{lr: [1e-4, 2e-4, 3e-4], batch: [16, 32, 64], epochs: [250, 500, 750]}`` the
    rows are (1e-4, 16, 250), (1e-4, 32, 500), (1e-4, 64, 750), (2e-4, 16, 250), … —
    nine runs in which batch size and epochs are aliased.

    Returns:
        codes, ``L_0 × L_1`` rows (index 1 …), one column per factor.

    Raises:
        ConfigError: fewer than two factors, or the moving-together factors have
            different numbers of levels.
    """
    _check_levels(levels)
    keys = list(levels)
    if len(keys) < 2:
        raise ConfigError("sweep.factors: the paper design needs ≥ 2 factors (learning rate, then the factors "
                          "that move together, e.g. batch size and epochs)")
    n_together = {len(levels[k]) for k in keys[1:]}
    if len(n_together) != 1:
        raise ConfigError(f"sweep.factors: in the paper design {', '.join(keys[1:])} move together and need "
                          f"the same number of levels, got {[len(levels[k]) for k in keys[1:]]}")
    m = n_together.pop()
    rows = [[i] + [j] * (len(keys) - 1) for i in range(len(levels[keys[0]])) for j in range(m)]
    return _frame(np.array(rows, np.int64), keys)


def _frame(codes: np.ndarray, keys: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(codes, columns=keys)
    df.index = pd.RangeIndex(1, len(df) + 1, name="trial")
    return df


def make_design(name: str, levels: dict[str, list]) -> pd.DataFrame:
    """The design ``name`` for the factors ``levels`` (dotted config key → list of values).

    Args:
        name: one of :data:`DESIGNS`.
        levels: ordered mapping; factor ``f`` goes to column ``f`` of the array.

    Returns:
        codes ``(runs, factors) int64``, index ``trial`` = 1 … runs.

    Raises:
        ConfigError: unknown design, too many factors for the array, or a factor with
            fewer levels than the array's columns need (an L9 needs 3 per factor).
    """
    _check_levels(levels)
    keys = list(levels)
    if name == "paper":
        return paper_design(levels)
    if name == "full":
        import pyDOE3

        codes = np.asarray(pyDOE3.fullfact([len(levels[k]) for k in keys]), dtype=np.int64)
        # pyDOE3 varies the first factor fastest; order rows with the first factor outermost
        codes = codes[np.lexsort(codes.T[::-1])]
        return _frame(codes, keys)
    if name not in _ARRAYS:
        raise ConfigError(f"--design: {name!r} is not allowed; allowed values: {', '.join(DESIGNS)}")
    arr = orthogonal_array(name)
    n_levels = _ARRAYS[name][1]
    if len(keys) > arr.shape[1]:
        raise ConfigError(f"sweep.factors: {len(keys)} factors do not fit {name} ({arr.shape[1]} columns); "
                          f"use {'L18 or ' if len(keys) <= 6 else ''}full")
    codes = arr[:, :len(keys)].copy()
    for f, key in enumerate(keys):
        L = len(levels[key])
        if n_levels == 2:
            codes[:, f] = np.where(codes[:, f] == 0, 0, L - 1)  # 2-level array: the extremes
        elif L != n_levels:
            raise ConfigError(f"sweep.factors.{key}: {name} needs {n_levels} levels per factor, got {L}")
    return _frame(codes, keys)


def decode(codes: pd.DataFrame, levels: dict[str, list]) -> list[dict]:
    """Rows of ``codes`` as ``{dotted key: value}`` overrides, in row order."""
    return [{k: levels[k][int(row[k])] for k in codes.columns} for _, row in codes.iterrows()]


@dataclasses.dataclass
class Orthogonality:
    """Result of :func:`check_orthogonality`.

    Attributes:
        orthogonal: every pair of columns holds every level pair equally often and every
            column is balanced (strength-2 orthogonal array).
        confounded: pairs ``(a, b)`` whose codes determine each other one-to-one
            (completely aliased: their effects cannot be separated).
        unbalanced_pairs: pairs that are not balanced but not fully confounded either.
        unbalanced_factors: columns whose levels occur unequally often.
    """

    orthogonal: bool
    confounded: list[tuple[str, str]]
    unbalanced_pairs: list[tuple[str, str]]
    unbalanced_factors: list[str]

    def describe(self) -> str:
        """One line for the terminal / report."""
        if self.orthogonal:
            return "orthogonal: every pair of factors holds every level pair equally often"
        parts = []
        if self.confounded:
            parts.append("confounded (aliased, effects cannot be separated): "
                         + "; ".join(f"{a} with {b}" for a, b in self.confounded))
        if self.unbalanced_pairs:
            parts.append("not balanced: " + "; ".join(f"{a} × {b}" for a, b in self.unbalanced_pairs))
        if self.unbalanced_factors:
            parts.append("levels unequally often: " + ", ".join(self.unbalanced_factors))
        return "NOT orthogonal — " + " | ".join(parts)


def check_orthogonality(codes: pd.DataFrame) -> Orthogonality:
    """Check a coded design for orthogonality (strength 2) and name confounded factor pairs.

    A pair of columns is balanced when each of its ``L_a · L_b`` level pairs occurs
    ``runs / (L_a L_b)`` times (Montgomery 2017, §12.7; Hedayat, Sloane & Stufken 1999,
    Def. 1.1). A pair is *confounded* when one column's code determines the other's and
    vice versa (a bijection between their levels), as batch size and epochs in the
    paper's design.
    """
    keys = list(codes.columns)
    n = len(codes)
    unbalanced_factors = []
    for k in keys:
        counts = codes[k].value_counts()
        L = codes[k].nunique()
        if L < 2 or (counts != n / L).any():
            unbalanced_factors.append(k)
    confounded, unbalanced = [], []
    for a, b in itertools.combinations(keys, 2):
        la, lb = codes[a].nunique(), codes[b].nunique()
        pairs = codes.groupby([a, b]).size()
        balanced = len(pairs) == la * lb and (pairs == n / (la * lb)).all()
        if balanced:
            continue
        one_to_one = (codes.groupby(a)[b].nunique() == 1).all() and (codes.groupby(b)[a].nunique() == 1).all()
        (confounded if one_to_one else unbalanced).append((a, b))
    ok = not (confounded or unbalanced or unbalanced_factors)
    return Orthogonality(ok, confounded, unbalanced, unbalanced_factors)


def alias_groups(codes: pd.DataFrame) -> list[list[str]]:
    """Factors grouped by complete confounding (each group has one estimable effect).

    Returns:
        groups in column order, e.g. ``[["lr"], ["batch", "epochs"]]`` for the paper design.
    """
    groups: list[list[str]] = []
    for k in codes.columns:
        for g in groups:
            a = g[0]
            if (codes.groupby(a)[k].nunique() == 1).all() and (codes.groupby(k)[a].nunique() == 1).all():
                g.append(k)
                break
        else:
            groups.append([k])
    return groups
