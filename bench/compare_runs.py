"""Compare the in-training FID trajectories of finished runs: recipes × seeds (issue 21, deliverables 1–3).

    python bench/compare_runs.py --run "A seed 1234=runs/a-1234" --run "A seed 2=runs/a-2" \\
        --run "B seed 1234=runs/b-1234" [--out reports/compare-128] [--within 0.10]

Each ``--run LABEL=DIR`` names a run directory written by ``keras-mammo train`` with
``train.eval_every`` > 0; the recipe is the label's text before `` seed`` (runs of one
recipe are pooled for the seed spread). From each run's ``eval.csv`` (FID at the matched N
per side, beside the real-vs-real floor at that N) it reports:

- the best evaluation (FID × floor, images seen), the final one, and the last three;
- **holds**: whether the last three in-training FIDs are all within ``--within`` (10 %)
  of the best, issue 21's test of a run that does not get worse after its best point;
- per recipe: the mean and spread (min–max) of the best and the final FID over seeds, the
  training-seed spread that issue 21 deliverable 2 asks for.

Writes ``OUT/compare.md`` (the tables) and ``OUT/trajectories.png`` (FID × floor against
images seen, one line per run, one colour per recipe). Nothing is typed in: every figure
comes from the runs' own ``eval.csv``.
"""
from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path


def read_eval(run: Path) -> list[dict]:
    """Rows of ``run/eval.csv`` as floats: images_seen, fid_matched, floor_fid, fid_over_floor, kid.

    Raises:
        SystemExit: the file is missing or holds no evaluation (one line naming it).
    """
    path = run / "eval.csv"
    if not path.is_file():
        raise SystemExit(f"{path}: no eval.csv (train with train.eval_every > 0)")
    rows = []
    with path.open() as fh:
        for r in csv.DictReader(fh):
            rows.append({"epoch": int(r["epoch"]), "images": int(r["images_seen"]),
                         "fid": float(r["fid_matched"]), "floor": float(r["floor_fid"]),
                         "ratio": float(r["fid_over_floor"]), "kid": float(r["kid"]),
                         "seconds": float(r["seconds"])})
    if not rows:
        raise SystemExit(f"{path}: no evaluation rows")
    return rows


def summarize(rows: list[dict], within: float) -> dict:
    """Best, final and last-three figures of one run's evaluations."""
    best = min(rows, key=lambda r: r["fid"])
    last3 = rows[-3:]
    return {"best": best, "final": rows[-1], "last3": [r["fid"] for r in last3],
            "holds": all(r["fid"] <= best["fid"] * (1 + within) for r in last3),
            "worst_last3_over_best": max(r["fid"] for r in last3) / best["fid"] - 1,
            "n_evals": len(rows)}


def recipe_of(label: str) -> str:
    return label.split(" seed")[0].strip()


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f} (1 seed)"
    return f"{statistics.mean(values):.1f} (range {min(values):.1f}–{max(values):.1f}, n = {len(values)})"


def tables(summaries: dict[str, dict], within: float) -> str:
    lines = ["| run | evals | best FID (× floor) at images | final FID (× floor) at images | last three | "
             f"last three within {within:.0%} of best | wall s |", "|---|---|---|---|---|---|---|"]
    for label, s in summaries.items():
        b, f = s["best"], s["final"]
        lines.append(f"| {label} | {s['n_evals']} | {b['fid']:.1f} ({b['ratio']:.2f}×) at {b['images']:,} | "
                     f"{f['fid']:.1f} ({f['ratio']:.2f}×) at {f['images']:,} | "
                     f"{', '.join(f'{v:.1f}' for v in s['last3'])} | "
                     f"{'yes' if s['holds'] else 'no'} (worst +{s['worst_last3_over_best']:.0%}) | {f['seconds']:.0f} |")
    lines += ["", "| recipe | best FID over seeds | final FID over seeds | runs that hold |", "|---|---|---|---|"]
    recipes: dict[str, list[dict]] = {}
    for label, s in summaries.items():
        recipes.setdefault(recipe_of(label), []).append(s)
    for name, ss in recipes.items():
        lines.append(f"| {name} | {spread([s['best']['fid'] for s in ss])} | {spread([s['final']['fid'] for s in ss])} | "
                     f"{sum(s['holds'] for s in ss)}/{len(ss)} |")
    return "\n".join(lines) + "\n"


def plot(runs: dict[str, list[dict]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    colours: dict[str, str] = {}
    styles = ["-", "--", ":", "-."]
    seen: dict[str, int] = {}
    for label, rows in runs.items():
        recipe = recipe_of(label)
        colour = colours.setdefault(recipe, f"C{len(colours)}")
        k = seen.get(recipe, 0)
        seen[recipe] = k + 1
        ax.plot([r["images"] / 1000 for r in rows], [r["ratio"] for r in rows], styles[k % 4], marker="o", ms=3,
                color=colour, label=label)
    ax.axhline(2.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("thousands of images seen")
    ax.set_ylabel("in-training FID / real-vs-real floor")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", action="append", required=True, metavar="LABEL=DIR")
    ap.add_argument("--out", default="reports/compare-runs")
    ap.add_argument("--within", type=float, default=0.10)
    args = ap.parse_args(argv)
    runs = {}
    for item in args.run:
        if "=" not in item:
            raise SystemExit(f"--run {item!r}: expected LABEL=DIR")
        label, d = item.split("=", 1)
        runs[label] = read_eval(Path(d))
    summaries = {label: summarize(rows, args.within) for label, rows in runs.items()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = tables(summaries, args.within)
    (out / "compare.md").write_text(text)
    plot(runs, out / "trajectories.png")
    print(text)
    print(f"wrote {out / 'compare.md'} and {out / 'trajectories.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
