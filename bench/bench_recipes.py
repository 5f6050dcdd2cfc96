"""Every unconditional generator at an equal wall-clock budget, published settings vs the
small-data recipe (issue 9, deliverable 8).

    python bench/bench_recipes.py --prepared prepared/mias128 [--resolution 64] [--seconds 1200]
        [--models thesis,dcgan,stylegan,fastgan] [--arms published,recipe] [--n 300]
        [--out reports/recipes] [--dry-run]

Each (model, arm) is the command a user would type, run as a subprocess so that every run
pays its own start-up::

    keras-mammo train --config MODEL --prepared P --resolution R --max-seconds S --run OUT/runs/MODEL-ARM [--set ...]
    keras-mammo evaluate --run OUT/runs/MODEL-ARM -n N --out OUT/runs/MODEL-ARM.report

- ``published``: the bundled config of the model (``thesis`` is Rahali 2025's settings;
  ``dcgan``, ``stylegan``, ``fastgan`` their papers').
- ``recipe``: the same config plus the small-data keys of ``configs/mias-best.yaml``
  (EMA generator, ADA, in-training FID with a ``best`` checkpoint), read from that file,
  and, for thesis, G and D at mias-best's learning rate (the published D rate of 1e-5
  is the setting the fidelity work found to stall).

``evaluate`` compares N generated images with the prepared films: FID and KID of the
synthetic set against a real half, beside the real-vs-real floor at the same N per side,
and near-copies. The table (``OUT/table.md``, ``OUT/results.json``) gives FID, × floor,
KID, near-copies, images seen, and wall time of training and evaluation. Finished pairs
(a ``result.json`` in their folder) are not run again, so a killed comparison continues.
Run it on an otherwise idle machine: the budget is wall-clock.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from keras_mammo.config import load_config  # noqa: E402  (no TensorFlow import)
#: the keys of mias-best's train section that make up the small-data recipe
RECIPE_KEYS = ("ema", "ema_rampup", "augment", "ada_target", "ada_kimg", "eval_n")
#: evaluation interval of the recipe arm, in epochs, as the table in docs/small-data.md was measured: fixed
#: here because mias-best's own interval is set for fastgan's slower epochs (25), which would
#: spend a fifth of dcgan's 20 minutes evaluating
RECIPE_EVAL_EVERY = 100
#: epochs of the last stage: enough that the wall-clock budget, not the epochs, ends every run
UNTIL_BUDGET = 100_000


def budget_epochs(model: str, resolution: int) -> str:
    """``--epochs`` for ``model`` at ``resolution``: the bundled config's epochs of its lower
    stages (progressive configs), :data:`UNTIL_BUDGET` for the last one. The bundled dcgan and
    fastgan configs would otherwise stop after 30 epochs (about a minute)."""
    stages = [st for st in load_config(model).train.stages or [] if st.resolution <= resolution]
    return ",".join([str(st.epochs) for st in stages[:-1]] + [str(UNTIL_BUDGET)])


def recipe_overrides(model: str) -> dict:
    """``{dotted key: value}`` of the recipe arm for ``model``, read from ``configs/mias-best.yaml``."""
    best = load_config("mias-best").train
    out = {f"train.{k}": getattr(best, k) for k in RECIPE_KEYS}
    out["train.eval_every"] = RECIPE_EVAL_EVERY
    if model == "thesis":
        out.update({"train.g_learning_rate": best.g_learning_rate, "train.d_learning_rate": best.d_learning_rate})
    return out


def commands(model: str, arm: str, prepared: str, resolution: int, seconds: float, n: int, run: Path):
    """The ``train`` and ``evaluate`` argument lists of one pair."""
    train = ["keras-mammo", "train", "--config", model, "--prepared", prepared, "--resolution", str(resolution),
             "--max-seconds", f"{seconds:g}", "--run", str(run), "--quiet"]
    train += ["--epochs", budget_epochs(model, resolution)]
    if arm == "recipe":
        for k, v in recipe_overrides(model).items():
            train += ["--set", f"{k}={json.dumps(v)}"]
    evaluate = ["keras-mammo", "evaluate", "--run", str(run), "-n", str(n), "--out", f"{run}.report", "--quiet"]
    return train, evaluate


def summarize(run: Path, train_s: float, eval_s: float) -> dict:
    """FID/KID with floors and near-copies from ``evaluate``'s metrics.json; images seen from the loss CSV."""
    m = json.loads((Path(f"{run}.report") / "metrics.json").read_text())
    fid, kid = m["fid"]["matched"], m["kid"]["matched"]
    with open(run / "losses_epochs.csv") as fh:
        epochs = list(csv.DictReader(fh))
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    steps = sum(int(r["steps"]) for r in epochs)
    out = {"fid": fid["synthetic_vs_real_half"]["mean"], "fid_floor": fid["real_vs_real_floor"]["mean"],
           "n_per_side": fid.get("n_per_side"), "kid": kid["synthetic_vs_real_half"]["mean"],
           "kid_floor": kid["real_vs_real_floor"]["mean"], "near_copies": m["memorization"]["n_flagged"],
           "n_synthetic": m["memorization"]["n_synthetic"], "epochs": len(epochs), "steps": steps,
           "images": steps * int(cfg["train"]["batch_size"]), "resolution": int(epochs[-1]["resolution"]),
           "train_seconds": round(train_s, 1),
           "eval_seconds": round(eval_s, 1), "loadavg": list(os.getloadavg())}
    out["x_floor"] = out["fid"] / out["fid_floor"]
    return out


def table(results: dict, args) -> str:
    floor = next((r["fid_floor"] for r in results.values() if r.get("resolution") == args.resolution), float("nan"))
    n = next((r["n_per_side"] for r in results.values()), "?")
    lines = [f"MIAS up to {args.resolution} px, {args.seconds:g} s of training per run (`--max-seconds`), "
             f"`evaluate -n {args.n}`: FID and KID against a real half at N = {n} per side, at the resolution "
             f"the run reached; real-vs-real floor {floor:.1f} (at {args.resolution} px).", "",
             "| model | arm | px reached | FID | × floor | KID | near-copies | images seen | train s | eval s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in results.items():
        model, arm = key.split("/")
        lines.append(f"| {model} | {arm} | {r['resolution']} | {r['fid']:.1f} | {r['x_floor']:.2f} | {r['kid']:.3f} | "
                     f"{r['near_copies']}/{r['n_synthetic']} | {r['images']:,} | {r['train_seconds']:.0f} | "
                     f"{r['eval_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prepared", required=True, help="prepared MIAS (e.g. prepared/mias128)")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--seconds", type=float, default=1200.0, help="training wall-clock budget per run")
    p.add_argument("--models", default="thesis,dcgan,stylegan,fastgan")
    p.add_argument("--arms", default="published,recipe")
    p.add_argument("--n", type=int, default=300, help="images generated for evaluate")
    p.add_argument("--out", default="reports/recipes")
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = p.parse_args(argv)

    out = Path(args.out)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for model in args.models.split(","):
        for arm in args.arms.split(","):
            run = (out / "runs" / f"{model}-{arm}").resolve()
            train, evaluate = commands(model, arm, args.prepared, args.resolution, args.seconds, args.n, run)
            if args.dry_run:
                print(" ".join(train) + "\n" + " ".join(evaluate))
                continue
            if (run / "result.json").is_file():
                results[f"{model}/{arm}"] = json.loads((run / "result.json").read_text())
                continue
            run.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            subprocess.run(train, check=True)
            t1 = time.perf_counter()
            subprocess.run(evaluate, check=True)
            r = summarize(run, t1 - t0, time.perf_counter() - t1)
            (run / "result.json").write_text(json.dumps(r, indent=2))
            results[f"{model}/{arm}"] = r
            results_path.write_text(json.dumps(results, indent=2))
            print(f"{model}/{arm}: FID {r['fid']:.1f} ({r['x_floor']:.2f}x floor), KID {r['kid']:.3f}", flush=True)
    if not args.dry_run and results:
        text = table(results, args)
        (out / "table.md").write_text(text)
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
