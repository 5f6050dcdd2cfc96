"""A sweep's outputs: ``trials.csv``, ``main_effects.csv``/``.png`` and ``report.md``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_mammo.sweep import analysis as an
from keras_mammo.sweep.analysis import sn_smaller_the_better
from keras_mammo.sweep.scoring import FLOOR_SPLITS, loadavg
from keras_mammo.sweep.trials import SweepSpec
from keras_mammo.utils import write_text_atomic


def row_record(trial, kind: str, overrides: dict, results: list[dict], levels: dict) -> dict:

    f = [r["fid"] for r in results]
    rec = {"trial": trial, **{k: overrides[k] for k in levels}}
    rec.update(fid=float(np.mean(f)), sn=sn_smaller_the_better(f) if np.isfinite(f).all() else float("nan"),
               kid=float(np.mean([r["kid"] for r in results])),
               seconds=round(float(sum(r["seconds"] for r in results)), 1), kind=kind,
               run_dir=";".join(r["run_dir"] for r in results),
               fid_matched=float(np.mean([r.get("fid_matched", np.nan) for r in results])),
               fid_floor=float(np.mean([r.get("fid_floor", np.nan) for r in results])),
               kid_floor=float(np.mean([r.get("kid_floor", np.nan) for r in results])),
               n_real=results[0].get("fid_n_real"), n_synthetic=results[0].get("fid_n_synthetic"),
               floor_n=results[0].get("floor_n"), epochs_done=results[0].get("epochs_done"),
               fid_repeats=" ".join(f"{x:.4g}" for x in f))
    rec["x_floor"] = rec["fid_matched"] / rec["fid_floor"]    # both at floor_n per side: the same N
    return rec


def write_outputs(out: Path, a, trials, confirmation, orth, spec: SweepSpec, seconds: float, n_trained: int):

    write_text_atomic(out / "trials.csv", trials.to_csv(index=False))
    write_text_atomic(out / "main_effects.csv", an.main_effects_csv(a).to_csv(index=False))
    an.plot_main_effects(a, out / "main_effects.png")
    design_rows = trials[trials.kind == "design"]
    lines = [f"# Taguchi sweep: {spec.design}, {len(a.codes)} rows × {spec.repeats} repeat(s)", "",
             f"Design: {orth.describe()}.", "",
             "Response: FID of N generated images vs the N prepared films (smaller is better); "
             "S/N = −10·log10(mean(FID²)) over the repeats, in dB (higher is better).",
             ("Trial budget: none (each trial runs its epochs)" if not spec.trial_seconds else
              f"Trial budget: {spec.trial_seconds:g} s of training (train.max_seconds)")
             + f"; this call trained {n_trained} trial(s) in {seconds:.0f} s wall; load {loadavg()}.", "",
             "## Trials", "",
             an.markdown_table(trials[["trial", *a.levels, "fid", "n_real", "sn", "fid_matched", "fid_floor",
                                       "x_floor", "kid", "kid_floor", "seconds", "kind"]]), "",
             "`fid`: N generated films vs all N_real prepared films (the response). `fid_matched`: the "
             "generated films vs a real half, and `fid_floor`: two disjoint halves of the real films compared "
             f"with each other, both at N={int(design_rows.floor_n.iloc[0]) if len(design_rows) else '?'} per side "
             f"(mean of {FLOOR_SPLITS} cuts); `x_floor` = fid_matched / fid_floor, the ratio at the same N. The "
             "floor is what two samples of the same distribution score; no trial can be expected below it.", "",
             "## Response table (mean S/N in dB and mean FID per level)", "",
             an.markdown_table(an.main_effects_csv(a)), "",
             "## ANOVA of S/N (percent contribution)", "", an.markdown_table(a.anova), "",
             "![main effects](main_effects.png)", "",
             "## Predicted optimum and confirmation", "",
             f"Optimum (best level of each factor): {', '.join(f'{k} = {v}' for k, v in a.optimum.items())}.", "",
             f"Predicted (additive model): S/N {a.predicted_sn:.2f} dB, i.e. FID ≈ {a.predicted_fid:.4g}."]
    if confirmation:
        within = confirmation["fid"] <= float(design_rows.fid.max())
        lines += [f"Confirmation run: S/N {confirmation['sn']:.2f} dB, FID {confirmation['fid']:.4g} "
                  f"(KID {confirmation['kid']:.4g}); the {len(design_rows)} design trials ranged FID "
                  f"{design_rows.fid.min():.4g} – {design_rows.fid.max():.4g}: the confirmation is "
                  + ("within that spread or better." if within else "WORSE than every design trial.")]
    if a.groups and any(len(g) > 1 for g in a.groups):
        lines += ["", "Confounded factors share one effect (their rows of the response table are identical); "
                  "the optimum counts it once and cannot say which of them caused it."]
    write_text_atomic(out / "report.md", "\n".join(lines) + "\n")
