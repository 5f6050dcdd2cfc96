"""Comparison table of keras-mammo's generators: the same data, the same CPU-time budget.

Every model trains through ``keras_mammo.training.run.train`` (the code path of
``keras-mammo train``) on the same patient split of MIAS prepared at 64 px, for as many
epochs as fit in ``--budget-cpu-s`` seconds of process CPU time (user + system over all
threads; the model pays for its own building and tracing). Then, per model:

- unconditional generators (thesis, dcgan, stylegan): N images from fixed latents;
  conditional ones: one image per real film, from its lesion mask (seg-cdcgan) or its
  breast mask, lesion mask and class (pix2pix);
- ``keras_mammo.metrics.evaluate.evaluate`` (the library behind ``keras-mammo evaluate``)
  against all prepared real films: KID and FID with their N and real-vs-real floors,
  near-copies (memorization);
- the model-specific metrics of :mod:`keras_mammo.metrics.model_specific` on the films of
  the held-out patients: U-Net Dice/IoU; seg-cdcgan SSIM to the conditioning film and
  U-Net Dice on the synthetic films; pix2pix "multistage CNN" accuracy.

Usage (from the repository root)::

    python bench/compare_models.py --budget-cpu-s 240 --out reports/compare

Writes ``<out>/results.json``, ``<out>/table.md`` and one evaluation report per model
(``<out>/<model>/report.md``). Runs go to ``runs/compare/<model>`` and resume if present.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

UNCONDITIONAL = ("thesis", "dcgan", "stylegan")
ORDER = ("unet", "thesis", "dcgan", "stylegan", "seg-cdcgan", "pix2pix")


def make_split(prepared: Path, out: Path, holdout: float, seed: int) -> tuple[Path, set]:
    """A prepared-dataset view without the held-out patients (their rows marked not kept)."""
    from keras_mammo.data.prepare import read_manifest

    rows = read_manifest(prepared)
    patients = sorted({r["patient_id"] for r in rows if r.get("kept")})
    rng = np.random.default_rng(seed)
    held = set(rng.permutation(patients)[: max(1, round(holdout * len(patients)))].tolist())
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("images", "masks"):
        link = out / sub
        if not link.exists():
            os.symlink((prepared / sub).resolve(), link)
    shutil.copy(prepared / "dataset.json", out / "dataset.json")
    lines = []
    for r in rows:
        if r.get("kept") and r["patient_id"] in held:
            r = {**r, "kept": False, "reason": "held out for evaluation (bench/compare_models.py)"}
        lines.append(json.dumps(r) + "\n")
    text = "".join(lines)
    if not (out / "manifest.jsonl").is_file() or (out / "manifest.jsonl").read_text() != text:
        (out / "manifest.jsonl").write_text(text)
    return out, held


def model_overrides(name: str, train_dir: Path, run_dir: Path, epochs: int) -> tuple[str | None, dict]:
    base = {"data.prepared": str(train_dir), "run_dir": str(run_dir), "train.checkpoint_every": 100000,
            "train.sample_every": 100000, "train.tensorboard": False, "train.batch_size": 16}
    if name == "thesis":
        return None, {**base, "model.name": "thesis", "train.resolution": 64, "train.epochs": epochs,
                      "data.dataset": "mias", "data.size": 64}
    if name == "stylegan":
        fade = 240  # about one epoch of the ~250 training films
        stages = [{"resolution": 8, "epochs": 2, "fade_in_images": 0},
                  {"resolution": 16, "epochs": 2, "fade_in_images": fade},
                  {"resolution": 32, "epochs": 2, "fade_in_images": fade},
                  {"resolution": 64, "epochs": epochs, "fade_in_images": fade}]
        return name, {**base, "train.stages": stages}
    return name, {**base, "train.epochs": epochs}


def train_with_budget(name: str, train_dir: Path, run_dir: Path, budget: float) -> dict:
    """Train until ``budget`` CPU seconds are spent (the epochs of the last stage grow)."""
    from keras_mammo.config import load_config
    from keras_mammo.training.run import train

    used, epochs, done, calls = 0.0, 1, 0, 0
    while True:
        cfg_name, ov = model_overrides(name, train_dir, run_dir, epochs)
        cfg = load_config(cfg_name, ov)
        t0 = time.process_time()
        train(cfg, progress=False)
        dt = time.process_time() - t0
        used, calls = used + dt, calls + 1
        per_epoch = dt / max(1, epochs - done)
        done = epochs
        more = int((budget - used) // per_epoch)
        print(f"[{name}] {epochs} epochs of the last stage, {used:.0f}/{budget:.0f} CPU s", flush=True)
        if more < 1:
            break
        epochs += more
    return {"epochs_last_stage": epochs, "cpu_seconds": round(used, 1), "train_calls": calls}


def synthetic_images(name: str, run_dir: Path, full) -> np.ndarray:
    """``(N, 64, 64, 1)`` in ``[0, 1]``: N images from fixed latents (unconditional models), or one
    image per real film of ``full`` (all prepared films) from its masks and class (conditional ones)."""
    from keras_mammo.data.pipeline import fixed_batch
    from keras_mammo.generation.generate import generate_images
    from keras_mammo.metrics.model_specific import remap_labels
    from keras_mammo.training.run import load_data_info, load_run_config

    if name in UNCONDITIONAL:
        return generate_images(run_dir, full.size, seed=0)
    conditions = {k: np.asarray(v) for k, v in fixed_batch(full, full.size).items() if k != "image"}
    if name == "seg-cdcgan":
        conditions = {"lesion_mask": conditions["lesion_mask"]}
    else:  # pix2pix's class indices: model.params.classes, else its training data's (may differ from full's)
        classes = load_run_config(run_dir).model.params.get("classes") or load_data_info(run_dir).classes
        conditions["label"] = remap_labels(conditions["label"], full.classes, classes)
    return generate_images(run_dir, full.size, seed=0, conditions=conditions)


def model_specific(name: str, run_dir: Path, unet_run: Path, prepared: Path, held: set) -> dict:
    """The library's model-specific metrics (``keras-mammo evaluate --run``), on the held-out patients."""
    from keras_mammo.generation.run_metrics import evaluate_run_model_specific

    return evaluate_run_model_specific(run_dir, segmenter_run=unet_run if name == "seg-cdcgan" else None, seed=0,
                                       classifier_epochs=20, prepared=prepared, heldout_patients=held) or {}


def _fmt(x, scale=1.0, digits=2):
    return "–" if x is None or x != x else f"{x * scale:.{digits}f}"


def table(results: dict, budget: float, n_train: int, n_held: int) -> str:
    lines = [f"Same data (MIAS, 64 px, {n_train} training films; {n_held} films of held-out patients), "
             f"same budget ({budget:.0f} CPU s per model, this 2-core machine, shared).", "",
             "| model | epochs* | CPU s | KID ×10³ (floor) | FID (floor) | N/side | near-copies | model-specific |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        tr = r.get("training", {})
        ev = r.get("evaluation", {})
        kid = ev.get("kid", {}).get("matched", {})
        fid = ev.get("fid", {}).get("matched", {})
        kid_s = (f"{_fmt(kid.get('synthetic_vs_real_half', {}).get('mean'), 1e3)} "
                 f"({_fmt(kid.get('real_vs_real_floor', {}).get('mean'), 1e3)})") if kid else "–"
        fid_s = (f"{_fmt(fid.get('synthetic_vs_real_half', {}).get('mean'), 1, 1)} "
                 f"({_fmt(fid.get('real_vs_real_floor', {}).get('mean'), 1, 1)})") if fid else "–"
        mem = ev.get("memorization", {})
        copies = f"{mem.get('n_flagged')}/{mem.get('n_synthetic')}" if mem else "–"
        ms = r.get("model_specific", {})
        if name == "unet":
            h = ms["heldout_patients"]
            spec = (f"held-out Dice {_fmt(h['dice']['mean'])}, on {h['n_lesion_films']} lesion films "
                    f"Dice {_fmt(h['dice_lesion_films']['mean'])} / IoU {_fmt(h['iou_lesion_films']['mean'])}")
        elif name == "seg-cdcgan":
            spec = (f"SSIM to conditioning film {_fmt(ms['ssim_to_conditioning_image']['mean'])}; U-Net Dice on "
                    f"lesion films: synthetic {_fmt(ms['unet_on_synthetic']['dice_lesion_films']['mean'])}, "
                    f"real {_fmt(ms['unet_on_real']['dice_lesion_films']['mean'])}")
        elif name == "pix2pix":
            spec = (f"CNN balanced accuracy: held-out real {_fmt(ms['real_heldout']['balanced_accuracy'])}, "
                    f"synthetic own class {_fmt(ms['synthetic_own_class']['balanced_accuracy'])}, "
                    f"every class {_fmt(ms['synthetic_every_class']['balanced_accuracy'])}")
        else:
            spec = ""
        lines.append(f"| {name} | {tr.get('epochs_last_stage', '–')} | {tr.get('cpu_seconds', '–')} | {kid_s} | "
                     f"{fid_s} | {fid.get('n_per_side', '–')} | {copies} | {spec} |")
    lines += ["", "\\* epochs of the last (64 px) stage; stylegan first trains 2 epochs each at 8, 16 and 32 px."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget-cpu-s", type=float, default=240.0, help="CPU seconds of training per model")
    p.add_argument("--models", nargs="+", default=list(ORDER), choices=list(ORDER))
    p.add_argument("--out", default="reports/compare")
    p.add_argument("--runs", default="runs/compare")
    p.add_argument("--holdout", type=float, default=0.2, help="fraction of patients held out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-eval", action="store_true", help="train only")
    p.add_argument("--prepared", default=None,
                   help="a prepared 64-px MIAS dataset (default: the dcgan config's, preprocessed if missing)")
    args = p.parse_args(argv)

    from keras_mammo.config import load_config
    from keras_mammo.data.pipeline import kept_rows, load_stage_arrays
    from keras_mammo.data.prepare import prepare_dataset

    data = load_config("dcgan").data
    prepared = Path(args.prepared or data.prepared)
    if not (prepared / "manifest.jsonl").is_file():
        prepare_dataset(data, prepared, progress=True)
    train_dir, held = make_split(prepared, Path(str(prepared) + "-train"), args.holdout, args.seed)
    rows = kept_rows(prepared)
    patients = [r["patient_id"] for r in rows]
    full = load_stage_arrays(prepared, 64, ("breast_mask", "lesion_mask", "label"), rows=rows)
    n_held = sum(p in held for p in patients)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for name in [m for m in ORDER if m in args.models]:
        run_dir = Path(args.runs) / name
        r = results.setdefault(name, {})
        r["training"] = train_with_budget(name, train_dir, run_dir, args.budget_cpu_s)
        if not args.no_eval:
            if name != "unet":
                from keras_mammo.metrics.evaluate import evaluate
                from keras_mammo.metrics.imagesets import image_set_from_array

                syn = synthetic_images(name, run_dir, full)
                ev = evaluate(prepared, image_set_from_array(syn, "synthetic", size=64, source=f"{name} run"),
                              out / name, size=64, seed=args.seed, run_dir=run_dir, progress=False)
                r["evaluation"] = {k: ev[k] for k in ("fid", "kid", "memorization") if k in ev}
            unet_run = Path(args.runs) / "unet"
            if name != "seg-cdcgan" or (unet_run / "checkpoints").is_dir():
                r["model_specific"] = model_specific(name, run_dir, unet_run, prepared, held)
        results_path.write_text(json.dumps(results, indent=2, default=float))
    text = table(results, args.budget_cpu_s, len(rows) - n_held, n_held)
    (out / "table.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
