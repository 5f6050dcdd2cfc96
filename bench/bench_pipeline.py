"""Input-pipeline throughput and peak memory as the dataset grows (streamed vs cached stages).

    python bench/bench_pipeline.py [--resolution 256] [--batch 32] [--batches 40] [--scale 10]
                                   [--train-steps 3] [--json out.json]

1. Throughput: images/s of ``make_train_dataset`` on MIAS at ``--resolution`` when the
   stage is streamed from disk (decoded every epoch), beside the thesis GAN's training
   images/s at the same resolution measured in the same process (``fit`` on the cached
   stage after a warm-up step). The pipeline must sustain ≥ 10× the training rate.
2. Peak memory: a fresh process per case iterates ``--batches`` batches and reports its
   peak resident memory (``ru_maxrss``) for MIAS × 1 and MIAS × ``--scale`` (the prepared
   films replicated by symbolic links in a temporary directory; nothing is committed),
   streamed (``cache_bytes=0``) and cached. Streaming must stay flat.

Load averages (``/proc/loadavg``) are printed beside every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def replicate(prepared: Path, out: Path, times: int) -> Path:
    """``prepared`` with every kept film listed ``times`` times (symbolic links, new ids)."""
    rows = [json.loads(x) for x in (prepared / "manifest.jsonl").read_text().splitlines() if x.strip()]
    out.mkdir(parents=True, exist_ok=True)
    (out / "films").mkdir(exist_ok=True)
    for name in ("dataset.json",):
        if (prepared / name).is_file():
            (out / name).write_text((prepared / name).read_text())
    lines = []
    for t in range(times):
        for r in rows:
            if not r.get("kept"):
                continue
            r = dict(r, image_id=f"{r['image_id']}_{t}")
            for key in ("image", "breast_mask", "lesion_mask"):
                if r.get(key):
                    link = out / "films" / f"{t}_{Path(r[key]).name}"
                    if not link.exists():
                        link.symlink_to((prepared / r[key]).resolve())
                    r[key] = str(link.relative_to(out))
            lines.append(json.dumps(r))
    (out / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return out


def child(prepared: str, resolution: int, batch: int, batches: int, cache_bytes: int) -> None:
    """Iterate the pipeline; print images/s and this process's peak RSS (MiB) as JSON."""
    from keras_mammo.data.pipeline import make_train_dataset, open_stage

    stage = open_stage(prepared, resolution, (), cache_bytes)
    steps = max(1, stage.size // batch)
    it = iter(make_train_dataset(stage, batch, 0, 0, 1000, steps))
    next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    ips = batches * batch / (time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"films": stage.size, "streamed": type(stage).__name__ == "StageFiles",
                      "images_per_second": round(ips, 1), "peak_rss_mib": round(peak, 1)}))


def run_child(prepared: Path, args, cache_bytes: int) -> dict:
    cmd = [sys.executable, __file__, "--child", str(prepared), "--resolution", str(args.resolution),
           "--batch", str(args.batch), "--batches", str(args.batches), "--cache-bytes", str(cache_bytes)]
    before = loadavg()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return {**json.loads(out), "load_before": before, "load_after": loadavg()}


def training_rate(prepared: Path, args) -> float:
    from keras_mammo.config import load_config
    from keras_mammo.data.pipeline import make_train_dataset, open_stage
    from keras_mammo.models.registry import DataInfo
    from keras_mammo.training.run import build_run_model

    stage = open_stage(prepared, args.resolution)
    cfg = load_config("thesis", {"train.stages": [], "train.resolution": args.resolution,
                                 "train.batch_size": args.batch})
    model = build_run_model(cfg, DataInfo())
    model.set_stage(args.resolution)
    ds = make_train_dataset(stage, args.batch, 0, 0, 100, args.train_steps)
    model.fit(ds, epochs=1, steps_per_epoch=1, verbose=0)
    t0 = time.perf_counter()
    model.fit(ds, epochs=1, steps_per_epoch=args.train_steps, verbose=0)
    return args.train_steps * args.batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--prepared", default=str(Path(tempfile.gettempdir()) / "keras-mammo-bench-mias" / "256"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cache-bytes", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.resolution, args.batch, args.batches, args.cache_bytes)
    prepared = Path(args.prepared)
    if not (prepared / "manifest.jsonl").is_file():
        raise SystemExit(f"{prepared}: run bench/bench_train.py once (it prepares MIAS there) or pass --prepared")
    result = {"resolution": args.resolution, "batch": args.batch, "command": " ".join(sys.argv)}
    with tempfile.TemporaryDirectory() as tmp:
        big = replicate(prepared, Path(tmp) / f"x{args.scale}", args.scale)
        one = replicate(prepared, Path(tmp) / "x1", 1)
        cases = {}
        for name, path, cache in (("x1_streamed", one, 0), (f"x{args.scale}_streamed", big, 0),
                                  ("x1_cached", one, 1 << 40), (f"x{args.scale}_cached", big, 1 << 40)):
            cases[name] = run_child(path, args, cache)
            print(name, cases[name], flush=True)
        result["cases"] = cases
        before = loadavg()
        train_ips = training_rate(prepared, args)
        result["training_images_per_second"] = round(train_ips, 2)
        result["training_load"] = [before, loadavg()]
        pipe = cases["x1_streamed"]["images_per_second"]
        result["streamed_over_training"] = round(pipe / train_ips, 1)
        grow = cases[f"x{args.scale}_streamed"]["peak_rss_mib"] / cases["x1_streamed"]["peak_rss_mib"]
        result["streamed_peak_growth"] = round(grow, 3)
    print(f"{args.resolution} px: streamed pipeline {pipe:.0f} images/s, training {train_ips:.1f} images/s "
          f"→ {pipe / train_ips:.0f}×; streamed peak RSS ×{grow:.2f} for {args.scale}× the films "
          f"(cached ×{cases[f'x{args.scale}_cached']['peak_rss_mib'] / cases['x1_cached']['peak_rss_mib']:.2f}); "
          f"load {loadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
