"""The cross-validated utility report: ``crossval.json``, ``report.md``, ROC curves, example grid.

Files written into the report folder (beside ``folds/``, the resumable per-fold results):

- ``crossval.json``: every number with its N, folds and seeds (layout in
  :mod:`keras_mammo.utility.crossval.run`).
- ``report.md``: per classifier, every arm's pooled out-of-fold balanced accuracy and ROC
  AUC, the paired Δ against its reference with the corrected-t and patient-bootstrap 95 %
  intervals, the minimum detectable effect, TSTR against TRTR, N, folds and budgets.
- ``roc_<classifier>.png``: pooled out-of-fold ROC curves of every arm.
- ``examples.png``: real tumour patches, their classical copies and each generator's
  synthetic tumours (fold 0).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_mammo.utility.report import _pyplot, _save, plot_examples

TITLES = {"balanced_accuracy": "balanced accuracy", "roc_auc": "ROC AUC"}


def _ci(c) -> str:
    return f"[{c[0]:+.3f}, {c[1]:+.3f}]"


def crossval_table(result: dict, clf: str) -> str:
    """Markdown table of one classifier: pooled metrics, Δ vs reference with intervals, MDE."""
    arms = result["classifiers"][clf]["arms"]
    lines = ["| Arm | Balanced accuracy (pooled) | ROC AUC (pooled) | ROC AUC (fold mean ± sd) | Reference | "
             "Δ bal. acc. (corrected t 95 %) | Δ ROC AUC (corrected t 95 %) | Δ ROC AUC (patient bootstrap 95 %) | "
             "MDE ROC AUC (t / bootstrap) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, e in arms.items():
        p = e["pooled"]
        folds = np.asarray(e["per_fold"]["roc_auc"])
        cells = [e["spec"]["title"], f"{p['balanced_accuracy']['mean']:.3f} ± {p['balanced_accuracy']['std']:.3f}",
                 f"{p['roc_auc']['mean']:.3f} ± {p['roc_auc']['std']:.3f} [{p['roc_auc']['ci95'][0]:.3f}, "
                 f"{p['roc_auc']['ci95'][1]:.3f}]", f"{folds.mean():.3f} ± {folds.std(ddof=1):.3f}"]
        d = e["delta"]
        if d:
            ba, auc = d["balanced_accuracy"], d["roc_auc"]
            cells += [d["roc_auc"]["reference"],
                      f"{ba['corrected_t']['mean']:+.3f} {_ci(ba['corrected_t']['ci95'])}",
                      f"{auc['corrected_t']['mean']:+.3f} {_ci(auc['corrected_t']['ci95'])}",
                      f"{auc['bootstrap']['mean']:+.3f} {_ci(auc['bootstrap']['ci95'])}",
                      f"{auc['mde_80']['corrected_t']:.3f} / {auc['mde_80']['bootstrap']:.3f}"]
        else:
            cells += ["—"] * 5
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tstr_lines(result: dict, clf: str) -> list[str]:
    """``TSTR / TRTR`` balanced-accuracy ratios of the generator arms (issue 22 target ≥ 0.9)."""
    arms = result["classifiers"][clf]["arms"]
    trtr = arms["real-only"]["pooled"]["balanced_accuracy"]["mean"]
    out = []
    for name, e in arms.items():
        if name.startswith("tstr-"):
            b = e["pooled"]["balanced_accuracy"]["mean"]
            out.append(f"- {name}: TSTR balanced accuracy {b:.3f} vs TRTR {trtr:.3f} (ratio {b / trtr:.2f})")
    return out or ["- no generator arm in this run: TSTR not measured (TRTR balanced accuracy "
                   f"{trtr:.3f})"]


def crossval_markdown(result: dict) -> str:
    """The report's Markdown."""
    o = result["options"]
    lines = ["# Does synthetic data help? Cross-validated utility report", "",
             f"Patches: {result['n']} ({result['counts']['tumour']} tumour, {result['counts']['non_tumour']} "
             f"non-tumour) from {result['n_patients']} patients; {result['folds']} patient-grouped stratified folds "
             f"(fold seed {o['fold_seed']}); classifier seeds {o['seeds']} in every fold; "
             f"{o['n_boot']} patient-bootstrap resamples (seed {o['boot_seed']}).", "",
             "Fold sizes (train / test patches, test tumours, test patients): "
             + "; ".join(f"{s['n_train']} / {s['n_test']}, {s['n_test_tumour']}, {s['n_test_patients']}"
                         for s in result["fold_sizes"]), "",
             f"Classical augmentation: {o['copies']} copies per real training patch, policy {o['policy']} "
             f"(seed {o['augment_seed']}); training patches only.", ""]
    if result["generators"]:
        lines.append("Generators (per fold, trained on that fold's training patients only):")
        for g, runs in result["generators"].items():
            lines.append(f"- {g}: budget {runs[0]['budget_s']:.0f} s; used CPU "
                         + ", ".join(f"{r['cpu_seconds']:.0f}" for r in runs) + " s; "
                         f"{runs[0]['n']} synthetic tumours per fold")
        lines.append("")
    else:
        lines += ["No generator arm in this run (baselines only).", ""]
    for clf, c in result["classifiers"].items():
        lines += [f"## Classifier: {clf}", "",
                  "Pooled: metrics of the pooled out-of-fold scores (every patch scored once per seed; mean ± std "
                  "over seeds; ROC AUC with its patient-bootstrap 95 % interval). Pooling mixes the score scales "
                  "of k models, which lowers the pooled ROC AUC of uncalibrated scores (a CNN's logits); the fold "
                  "mean (mean ± sd over folds of the per-fold metric, itself a mean over seeds) does not. Δ: paired "
                  "difference against the reference arm; corrected t = Nadeau & Bengio's corrected resampled t over "
                  "the per-fold differences; bootstrap = patient bootstrap of the pooled difference; MDE = minimum "
                  "detectable effect at 80 % power, two-sided α = 0.05.", "", crossval_table(result, clf), ""]
        if c["mde"]:
            m = c["mde"]["roc_auc"]
            b = c["mde"]["balanced_accuracy"]
            lines += [f"Minimum detectable effect of the protocol ({m['comparison']}): ROC AUC "
                      f"{m['corrected_t']:.3f} (corrected t, {result['folds'] - 1} df) / {m['bootstrap']:.3f} "
                      f"(patient bootstrap); balanced accuracy {b['corrected_t']:.3f} / {b['bootstrap']:.3f}.", ""]
        lines += tstr_lines(result, clf)
        lines += ["", f"Classifier time: {c['seconds']:.0f} s (wall, all folds, arms and seeds).", ""]
    lines += ["## Protocol", ""] + [f"- {k}: {v}" for k, v in result["protocol"].items()]
    return "\n".join(lines) + "\n"


def plot_crossval_roc(result: dict, clf: str, path: str | Path) -> Path:
    """Pooled out-of-fold ROC curve of every arm (TPR averaged over seeds on a common FPR grid)."""
    from keras_mammo.utility.classifier import roc_curve_points

    plt = _pyplot()
    y = np.asarray(result["y"])
    grid = np.linspace(0, 1, 201)
    fig, ax = plt.subplots(figsize=(5.4, 5.0))
    for name, e in result["classifiers"][clf]["arms"].items():
        tprs = [np.interp(grid, *roc_curve_points(y, np.asarray(s))) for s in e["oof"]]
        auc = e["pooled"]["roc_auc"]
        ax.plot(grid, np.mean(tprs, axis=0), label=f"{e['spec']['title'][:38]} (AUC {auc['mean']:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(f"{clf}: pooled out-of-fold ROC, N = {result['n']}, {result['folds']} folds × "
                 f"{len(result['seeds'])} seeds", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path, dpi=120)


def write_crossval_report(result: dict, out_dir: str | Path, figures: bool = True, data=None) -> dict[str, Path]:
    """Write ``crossval.json``, ``report.md`` and (with ``figures``) the ROC curves and example grid.

    ``result["classifiers"][clf]["arms"][arm]["oof"]`` (the pooled out-of-fold scores, one
    ``(N,)`` list per seed) is added here from the fold files so that the JSON alone can
    redraw every curve.
    """
    from keras_mammo.utils import write_json_atomic, write_text_atomic

    out = Path(out_dir)
    paths = {"json": out / "crossval.json", "markdown": out / "report.md"}
    write_json_atomic(paths["json"], result)
    write_text_atomic(paths["markdown"], crossval_markdown(result))
    if figures:
        for clf in result["classifiers"]:
            paths[f"roc_{clf}"] = plot_crossval_roc(result, clf, out / f"roc_{clf}.png")
        if data is not None:
            from keras_mammo.augment.classical import ClassicalPolicy, augment_copies

            tum = np.flatnonzero(np.asarray(result["y"]) == 1)[:8]
            pol = ClassicalPolicy(**result["options"]["policy"])
            rows = {"real tumour": data.images[tum],
                    "classical copy": augment_copies(data.images[tum], [data.ids[i] for i in tum], 1, pol,
                                                     result["options"]["augment_seed"])}
            for g in result["generators"]:
                f = out / "folds" / f"fold-0-{g}-samples.npz"
                if f.is_file():
                    with np.load(f) as z:
                        rows[f"synthetic ({g}, fold 0)"] = z["images"]
            paths["examples"] = plot_examples(rows, out / "examples.png")
    return paths
