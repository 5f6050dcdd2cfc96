"""The utility report: ``utility.json``, ``report.md`` and the figures.

Files written into the report folder:

- ``utility.json``: every number with the N it was computed on and the seeds (see
  :func:`keras_mammo.utility.run.run_utility` for the layout).
- ``report.md``: the per-experiment table (mean ± std over seeds, patient-bootstrap 95 %
  intervals, difference to real-only), the counts behind every row, the protocol.
- ``confusion_matrices.png``: one confusion matrix per experiment, mean counts per seed
  (the thesis's Tables 4.4–4.5 as figures).
- ``roc_curves.png``: ROC curves of every experiment (vertical average over seeds).
- ``examples.png``: real tumour, generated and non-tumour training patches as the backbone
  sees them (written by :func:`~keras_mammo.utility.run.run_utility`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_mammo.utility.classifier import roc_curve_points
from keras_mammo.utils import atomic_path, write_json_atomic, write_text_atomic

METRIC_TITLES = {"accuracy": "Accuracy", "balanced_accuracy": "Balanced accuracy", "roc_auc": "ROC AUC", "f1": "F1"}


def _seeds_text(seeds) -> str:
    seeds = list(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


def _cell(s: dict) -> str:
    lo, hi = s["ci95"]
    return f"{s['mean']:.3f} ± {s['std']:.3f} [{lo:.2f}, {hi:.2f}]"


def _delta(s: dict | None) -> str:
    if not s:
        return "—"
    lo, hi = s["ci95"]
    return f"{s['mean']:+.3f} [{lo:+.2f}, {hi:+.2f}]"


def _train_counts(spec: dict) -> str:
    t = f"{spec['n_real_tumour']} real"
    if spec["n_generated_tumour"]:
        t += f" + {spec['n_generated_tumour']} gen."
    return f"{t} / {spec['n_non_tumour']}"


def results_table(result: dict) -> str:
    """The Markdown table of all experiments (the tables of docs/utility.md)."""
    test = result["test"]
    seeds = result["seeds"]
    n_boot = result["bootstrap"]["n_boot"]
    lines = [
        "| Experiment | Train tumour / non-tumour (N) | Accuracy | Balanced accuracy | ROC AUC | F1 | "
        "Δ balanced acc. vs real only | Δ ROC AUC vs real only |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, e in result["experiments"].items():
        spec, s = e["spec"], e["summary"]
        title = spec["title"] + (f" (thesis {spec['thesis']})" if spec.get("thesis") else "")
        lines.append(
            f"| {title} | {_train_counts(spec)} | {_cell(s['accuracy'])} | {_cell(s['balanced_accuracy'])} | "
            f"{_cell(s['roc_auc'])} | {_cell(s['f1'])} | {_delta(s.get('delta_balanced_accuracy'))} | "
            f"{_delta(s.get('delta_roc_auc'))} |")
    lines.append("")
    lines.append(
        f"Each cell: mean ± standard deviation over {len(seeds)} seeds ({_seeds_text(seeds)}) "
        f"[95 % percentile interval of the seed mean, {n_boot} bootstrap resamples of the "
        f"{test['n_patients']} test patients, bootstrap seed {result['bootstrap']['seed']}]. "
        f"Test set (identical for every row and seed): {test['n_tumour']} tumour + {test['n_non_tumour']} "
        f"non-tumour real patches (N = {test['n']}) from {test['n_patients']} patients held out by patient. "
        "Δ: paired difference to the real-only row on the same seeds and bootstrap resamples.")
    return "\n".join(lines)


def markdown_report(result: dict) -> str:
    """The whole ``report.md`` text."""
    ps = result["patch_set"]
    c = ps["counts"]
    gen = result.get("generated") or {}
    prov = result.get("generator_provenance") or {}
    bb = result["backbone"]
    lines = [
        "# Downstream utility of synthetic tumour patches",
        "",
        "Protocol after Rahali (2025), §3.6: frozen ImageNet backbone → 2048-d features → linear SVM "
        "(standardized features, C chosen by grouped inner cross-validation on the training set only), "
        "tumour vs non-tumour patches; confusion matrices as in the thesis's Tables 4.4–4.5.",
        "",
        "## Data",
        "",
        f"- Patch set: `{ps['path']}` — dataset {ps.get('dataset') or 'unknown'}, patch size "
        f"{ps.get('size')} px, split seed {ps.get('seed')}.",
        f"- Training split: {c['train']['tumour']} tumour + {c['train']['non-tumour']} non-tumour patches from "
        f"{c['train']['patients']} patients; test split: {c['test']['tumour']} tumour + "
        f"{c['test']['non-tumour']} non-tumour patches from {c['test']['patients']} patients "
        "(no patient in both).",
        f"- Test set used by every experiment: {result['test']['n_tumour']} tumour + "
        f"{result['test']['n_non_tumour']} non-tumour (balanced, drawn once with seed {result['test']['seed']}).",
        "- Both classes come from the same dataset (the thesis took non-tumour tissue from RSNA and tumours "
        "from CBIS-DDSM, which lets a classifier tell the sources apart instead of the classes).",
    ]
    if gen:
        lines.append(
            f"- Generated tumour patches: {gen.get('n')} from {gen.get('source')}"
            + (f" `{gen['path']}`" if gen.get("path") else "")
            + (f" (seed {gen['seed']})" if gen.get("seed") is not None else "")
            + f", {gen.get('size')} px.")
        lines.append(f"- Generator provenance: {'verified' if prov.get('verified') else 'NOT verified'} — "
                     f"{prov.get('note', '')}.")
    else:
        lines.append("- No generated patches were given: only the real-only experiment was run.")
    lines += [
        f"- Features: backbone `{bb['backbone']}` ({bb.get('network')}), patches resized to "
        f"{result['analysis_size']} px first (so real and generated patches share one resolution), "
        f"then to the backbone's input ({bb.get('input')}).",
        "",
        "## Results",
        "",
        results_table(result),
        "",
        "![Confusion matrices](confusion_matrices.png)",
        "",
        "![ROC curves](roc_curves.png)",
        "",
        "![Example patches at the analysis resolution](examples.png)",
        "",
        "## Per-seed confusion matrices [[TN, FP], [FN, TP]]",
        "",
        "| Experiment | " + " | ".join(f"seed {s}" for s in result["seeds"]) + " | chosen C per seed |",
        "|---|" + "---|" * (len(result["seeds"]) + 1),
    ]
    for name, e in result["experiments"].items():
        cms = " | ".join(str(r["metrics"]["confusion"]) for r in e["runs"])
        cs = ", ".join(f"{r['C']:g}" for r in e["runs"])
        lines.append(f"| {e['spec']['title']} | {cms} | {cs} |")
    lines += ["", f"Written by keras-mammo {result.get('keras_mammo_version', '')} on {result.get('created', '')}.", ""]
    return "\n".join(lines)



def _pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (imported only when plotting)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path, dpi: int) -> Path:
    """Lay out, write atomically (format from the suffix) and close ``fig``; returns the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fig.tight_layout()
    try:
        with atomic_path(path, durable=False) as tmp:
            fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path


def plot_confusion_matrices(result: dict, path: str | Path) -> Path:
    """One 2 × 2 matrix per experiment: mean counts per seed, row-normalized colour."""
    plt = _pyplot()

    exps = list(result["experiments"].items())
    n = len(exps)
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, (name, e) in zip(axes.ravel(), exps):
        cm = np.asarray(e["summary"]["confusion_mean"], float)
        frac = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1e-9)
        ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
        for i in range(2):
            for j in range(2):
                ax.text(j, i, f"{cm[i, j]:.1f}\n({100 * frac[i, j]:.0f} %)", ha="center", va="center",
                        color="white" if frac[i, j] > 0.6 else "black", fontsize=9)
        ax.set_xticks([0, 1], ["non-tumour", "tumour"])
        ax.set_yticks([0, 1], ["non-tumour", "tumour"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{e['spec']['title'][:34]}\nN test = {result['test']['n']}, {len(e['runs'])} seeds", fontsize=9)
    fig.suptitle("Confusion matrices (mean count per seed)", fontsize=11)
    return _save(fig, path, dpi=120)


def plot_roc_curves(result: dict, path: str | Path) -> Path:
    """ROC curve of every experiment: TPR averaged over seeds on a common FPR grid."""
    plt = _pyplot()

    y = np.asarray(result["test"]["y"])
    grid = np.linspace(0, 1, 201)
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    for name, e in result["experiments"].items():
        tprs = []
        for r in e["runs"]:
            fpr, tpr = roc_curve_points(y, np.asarray(r["scores"]))
            tprs.append(np.interp(grid, fpr, tpr))
        s = e["summary"]["roc_auc"]
        ax.plot(grid, np.mean(tprs, axis=0), label=f"{e['spec']['title'][:40]} (AUC {s['mean']:.3f} ± {s['std']:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    t = result["test"]
    ax.set_title(f"ROC, real test set ({t['n_tumour']} + {t['n_non_tumour']}), {len(result['seeds'])} seeds",
                 fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path, dpi=120)


def plot_examples(rows: dict[str, np.ndarray], path: str | Path, n: int = 8) -> Path:
    """A grid of example patches, one row per named set (e.g. real tumour, generated, non-tumour).

    Args:
        rows: ``{label: (N, H, W) float32 in [0, 1]}``; the first ``n`` of each are shown.
    """
    plt = _pyplot()

    fig, axes = plt.subplots(len(rows), n, figsize=(1.3 * n, 1.45 * len(rows)), squeeze=False)
    for r, (label, imgs) in enumerate(rows.items()):
        for c in range(n):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(imgs):
                ax.imshow(imgs[c], cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_title(f"{label} (first {min(n, len(imgs))} of {len(imgs)})", fontsize=8, loc="left")
    return _save(fig, path, dpi=110)


def write_report(result: dict, out_dir: str | Path, figures: bool = True) -> dict[str, Path]:
    """Write ``utility.json``, ``report.md`` and (with ``figures``) the two PNG figures.

    Returns:
        ``{"json", "markdown", "confusion", "roc"}`` paths (figures absent when skipped).
    """

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "utility.json", "markdown": out / "report.md"}
    write_json_atomic(paths["json"], result)
    if figures:
        paths["confusion"] = plot_confusion_matrices(result, out / "confusion_matrices.png")
        paths["roc"] = plot_roc_curves(result, out / "roc_curves.png")
    write_text_atomic(paths["markdown"], markdown_report(result))
    return paths
