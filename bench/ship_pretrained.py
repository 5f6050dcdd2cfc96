"""Ship a trained run as a pretrained generator: export, evaluate, model card, sample grid.

    python bench/ship_pretrained.py --table     # the Markdown table of what is shipped (docs, README)
    python bench/ship_pretrained.py --run /work/exp/runs/mias-64 --name mias-64 \\
        --config mias-best --commit c13de5e \\
        --command "keras-mammo preprocess --config mias-best --input data/mini-mias --out prepared/mias128" \\
        --command "keras-mammo train --config mias-best --prepared prepared/mias128 --resolution 64 --epochs 140 --seed 1234 --run runs/mias-64" \\
        --run-metrics /work/train-wt/reports/mias-64/metrics.json

writes ``keras_mammo/pretrained/<name>/`` (and, in a clone, the symlink ``saved_models/<name>``):

1. ``1/``: the run's ``best`` checkpoint exported with every signature of ``keras-mammo
   export`` (:func:`keras_mammo.generation.export.export_model`) in the run's own precision (so its
   images are those the run was evaluated on); the source run is named by its folder name
   only (``run_dir`` is dropped from ``assets.extra/keras_mammo.json``);
2. an export check: 64 images (seed 0) from the run's checkpoint and from the SavedModel;
   the SavedModel's uint8 pixels must equal the checkpoint's rounded to 8 bits (±1 grey level);
3. the evaluation, from the SavedModel as a user has it, by the CLI itself:
   ``keras-mammo evaluate --saved-model DIR/1 --real PREPARED -n 300`` (FID/KID at
   N = 158 per side against one real half, with the real-vs-real floor, as ``evaluate --run
   R -n 300``) and ``... -n 1000`` (near-copies among 1,000 generated images); reports in
   ``reports/ship-<name>-n300`` and ``-n1000``;
4. ``model_card.json`` (every figure from the metrics.json files of step 3, the run's
   ``eval.csv``, ``run.json`` and the export's metadata), ``MODEL_CARD.md``
   (:func:`keras_mammo.pretrained.card.render_card`) and ``samples.png`` (16 images, seed 0).

With ``--run-metrics`` (the ``metrics.json`` of ``keras-mammo evaluate --run R -n 300``) the
card also gives the run's FID beside the SavedModel's. The folder is built under a hidden
name and renamed into place at the end; an existing ``<name>`` is never replaced. It must
stay under ``--max-mb`` (25 MB). Nothing in the card may hold an absolute machine path.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARCHITECTURES = {
    "fastgan": "FastGAN, Liu et al., ICLR 2021: skip-layer excitation generator, self-supervised discriminator "
               "with reconstruction decoders",
}


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def eval_rows(run: Path) -> list[dict]:
    path = run / "eval.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def evaluate_cli(saved_model: Path, real: Path, n: int, out: Path, seed: int = 0) -> dict:
    """``keras-mammo evaluate --saved-model ... -n N`` in a subprocess; its metrics.json."""
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "cli.main", "evaluate", "--saved-model", str(saved_model), "--real", str(real),
           "-n", str(n), "--seed", str(seed), "--out", str(out), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    return json.loads((out / "metrics.json").read_text())


def export_check(run: Path, version_dir: Path, n: int = 64) -> dict:
    """The SavedModel's images vs the run checkpoint's (same seed): 8-bit pixel differences."""
    from keras_mammo.generation.generate import generate_images

    a = np.round(generate_images(run, n, seed=0) * 255.0).astype(np.int16)
    b = np.round(generate_images(version_dir, n, seed=0) * 255.0).astype(np.int16)
    d = np.abs(a - b)
    return {"n": n, "seed": 0, "max_abs_diff_uint8": int(d.max()), "share_equal": float((d == 0).mean())}


def main(argv=None) -> int:
    from keras_mammo.pretrained import CARD_JSON, CARD_MD, PRETRAINED_DIR, VERSION

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--table", action="store_true",
                    help="only print the Markdown table of the shipped generators (docs, README) and exit")
    ap.add_argument("--run", type=Path, help="finished training run (with checkpoints/best.npz)")
    ap.add_argument("--name", help="pretrained name, e.g. mias-64")
    ap.add_argument("--config", help="the config the run was trained with (bundled name or file)")
    ap.add_argument("--commit", help="keras-mammo commit the run was trained at")
    ap.add_argument("--command", action="append",
                    help="a command that made the run, with relative paths (repeat, in order)")
    ap.add_argument("--real", type=Path, default=None, help="prepared dataset (default: the run's data.prepared)")
    ap.add_argument("--run-metrics", type=Path, default=None,
                    help="metrics.json of `keras-mammo evaluate --run RUN -n 300`, compared with the SavedModel's")
    ap.add_argument("--hardware", default=f"{os.cpu_count()} CPU cores", help="what the run trained on")
    ap.add_argument("--root", type=Path, default=PRETRAINED_DIR, help="where the generator folders live")
    ap.add_argument("--max-mb", type=float, default=25.0)
    ap.add_argument("--max-grey-diff", type=int, default=2,
                    help="largest 8-bit difference allowed between the SavedModel's and the checkpoint's images "
                         "(bfloat16 graphs traced apart differ by 1-2 levels in a few %% of pixels; a wrong "
                         "checkpoint differs by tens)")
    ap.add_argument("-n", type=int, default=300, help="images generated for FID/KID (N per side: min(n, halves))")
    ap.add_argument("--copies-n", type=int, default=1000, help="images generated for the near-copy check")
    args = ap.parse_args(argv)
    if args.table:
        from keras_mammo.pretrained import read_card
        from keras_mammo.pretrained.card import markdown_table

        names = sorted((p.name for p in args.root.iterdir() if (p / CARD_JSON).is_file()),
                       key=lambda n: read_card(args.root / n)["resolution"])
        print(markdown_table([read_card(args.root / n) for n in names]))
        return 0
    missing = [f"--{k}" for k in ("run", "name", "config", "commit", "command") if not getattr(args, k)]
    if missing:
        ap.error(f"shipping needs {', '.join(missing)}")

    from keras_mammo.config import load_run_config
    from keras_mammo.data.io import write_png
    from keras_mammo.data.viz import image_grid
    from keras_mammo.errors import ConfigError
    from keras_mammo.generation.export import export_model
    from keras_mammo.generation.generate import generate_images
    from keras_mammo.pretrained.card import check_shareable, render_card
    from keras_mammo.savedmodel import METADATA, read_metadata
    from keras_mammo.training.checkpoint import best_checkpoint
    from keras_mammo.utils import write_json_atomic, write_text_atomic

    run, name, root = args.run.resolve(), args.name, args.root.resolve()
    final = root / name
    if final.exists():
        raise ConfigError(f"{final}: exists already; a shipped generator is never replaced (remove it first)")
    if best_checkpoint(run) is None:
        raise ConfigError(f"{run}: no checkpoints/best.npz; ship a run trained with train.eval_every > 0")
    status = json.loads((run / "run.json").read_text())
    if status.get("status") != "finished":
        raise ConfigError(f"{run}/run.json: status {status.get('status')!r}; ship a finished run")
    cfg = load_run_config(run)
    real = (args.real or Path(cfg.data.prepared)).resolve()
    partial = root / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        vdir = export_model(run, out_dir=root, name=partial.name, version=int(VERSION), checkpoint="best")
        meta_path = vdir / METADATA
        meta = read_metadata(vdir)
        meta.pop("run_dir", None)   # a path relative to this machine's folders; the run's name stays
        write_json_atomic(meta_path, meta)
        check = export_check(run, vdir)
        print(f"export check: {check}", flush=True)
        if check["max_abs_diff_uint8"] > args.max_grey_diff:
            raise RuntimeError(f"the SavedModel's images differ from the run's by {check['max_abs_diff_uint8']} "
                               f"grey levels; not shipped")
        reports = ROOT / "reports"
        m = evaluate_cli(vdir, real, args.n, reports / f"ship-{name}-n{args.n}")
        mc = evaluate_cli(vdir, real, args.copies_n, reports / f"ship-{name}-n{args.copies_n}")
        imgs = generate_images(vdir, 16, seed=0)
        write_png(partial / "samples.png", image_grid(imgs, ncols=8), bits=8,
                  text={"Synthetic": "true", "Model": name, "Seed": "0"})

        fm, km = m["fid"]["matched"], m["kid"]["matched"]
        rows = eval_rows(run)
        epoch = int(meta["epoch"])
        best_row = next((r for r in rows if int(float(r["epoch"])) == epoch), None)
        steps_total = int(status.get("step") or 0)
        per_img = cfg.train.batch_size
        dataset = json.loads((real / "dataset.json").read_text()) if (real / "dataset.json").is_file() else {}
        data_info = json.loads((run / "data_info.json").read_text())
        mem = mc["memorization"]
        card = {
            "name": name, "model": meta["model"], "architecture": ARCHITECTURES.get(meta["model"], meta["model"]),
            "resolution": int(meta["resolution"]), "latent_dim": int(meta["latent_dim"]),
            "precision": meta["precision"], "signatures": meta["signatures"], "version": int(VERSION),
            "data": {"name": "MIAS (Mammographic Image Analysis Society MiniMammographic Database)",
                     "films_kept": int(data_info["num_images"]), "films_total": int(dataset.get("files", 322)),
                     "prepared_size": int(dataset.get("size", data_info.get("resolution", 0))),
                     "rejected_by_reason": dict(dataset.get("rejected_by_reason") or {}),
                     "licence": "research use only; may not be rented, leased or sold",
                     "citation": "Suckling et al. (1994), Excerpta Medica ICS 1069, pp. 375-378"},
            "training": {
                "config": args.config, "commit": args.commit, "seed": int(cfg.seed), "precision": cfg.train.precision,
                "commands": args.command, "hardware": args.hardware, "run": run.name,
                "checkpoint_epoch": epoch,
                "images_seen": int(float(best_row["images_seen"])) if best_row else int(meta["step"]) * per_img,
                "epochs": int(status.get("epochs") or 0),
                "images_seen_total": int(float(rows[-1]["images_seen"])) if rows else steps_total * per_img,
                "seconds": float(status.get("seconds") or 0.0)},
            "evaluation": {
                "source": "the shipped SavedModel", "seed": 0, "n_generated": int(m["synthetic"]["n"]),
                "size_px": int(m["evaluation_size_px"]), "n_per_side": int(fm["n_per_side"]),
                "splits": int(fm["splits"]),
                "fid": fm["synthetic_vs_real_half"]["mean"], "fid_std": fm["synthetic_vs_real_half"]["std"],
                "fid_floor": fm["real_vs_real_floor"]["mean"],
                "fid_over_floor": fm["synthetic_vs_real_half"]["mean"] / fm["real_vs_real_floor"]["mean"],
                "kid": km["synthetic_vs_real_half"]["mean"], "kid_floor": km["real_vs_real_floor"]["mean"],
                "fid_all_images": m["fid"]["full"]["value"],
                "commands": [f"keras-mammo evaluate --saved-model saved_models/{name}/{VERSION} "
                             f"--real prepared/{real.name} -n {args.n}",
                             f"keras-mammo evaluate --saved-model saved_models/{name}/{VERSION} "
                             f"--real prepared/{real.name} -n {args.copies_n}"]},
            "memorization": {"n_synthetic": int(mem["n_synthetic"]), "near_copies": int(mem["n_flagged"]),
                             "threshold": mem["threshold"], "space": mc["memorization"]["space"],
                             "min_ratio": float(mem["ratio"]["min"]) if isinstance(mem.get("ratio"), dict)
                             else float("nan")},
            "export_check": check,
        }
        if best_row:
            card["evaluation"]["in_training"] = {"fid": float(best_row["fid"]), "n": int(float(best_row["n"])),
                                                 "fid_over_floor": float(best_row["fid_over_floor"])}
        if args.run_metrics:
            import time

            deadline = time.monotonic() + 900   # `evaluate --run` may still be running beside this script
            while not args.run_metrics.is_file() and time.monotonic() < deadline:
                time.sleep(10)
            rm = json.loads(args.run_metrics.read_text())
            run_fid = rm["fid"]["matched"]["synthetic_vs_real_half"]["mean"]
            card["evaluation"]["run_checkpoint"] = {
                "fid": run_fid, "kid": rm["kid"]["matched"]["synthetic_vs_real_half"]["mean"],
                "fid_floor": rm["fid"]["matched"]["real_vs_real_floor"]["mean"],
                "checkpoint": (rm.get("generation") or {}).get("checkpoint"),
                "fid_difference": card["evaluation"]["fid"] - run_fid}
        card["size_mb"] = round(folder_mb(partial), 2)
        check_shareable(card)
        write_json_atomic(partial / CARD_JSON, card)
        write_text_atomic(partial / CARD_MD, render_card(card))
        size = folder_mb(partial)
        if size > args.max_mb:
            raise RuntimeError(f"{partial}: {size:.1f} MB, above --max-mb {args.max_mb}; not shipped")
        partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    link = ROOT / "saved_models" / name
    if root == (ROOT / "keras_mammo" / "pretrained").resolve() and not link.exists():
        link.symlink_to(os.path.relpath(final, link.parent))
    print(json.dumps({k: card[k] for k in ("name", "resolution", "evaluation", "memorization", "size_mb")},
                     indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
