"""Loopback load test of `keras-mammo serve` against in-process generation.

    python bench/bench_serve.py [--clients 8] [--requests 50] [--count 4] [--resolution 128]
                                [--signature generate_png] [--saved-model saved_models/NAME]
                                [--out bench_serve.json]

Without ``--saved-model`` a DCGAN (published widths) is built at ``--resolution``, trained
for one step on 8 MIAS films and exported (the weights do not change the cost of a
forward pass). Then, in this order:

0. the single-thread in-process images/s of ``generate_png`` and ``generate_png16``,
   interleaved (A B A B, ``--requests`` calls each), as the cost of 16-bit PNGs;
1. in-process A: the SavedModel's ``--signature`` (``generate_png``) called by ``--clients``
   threads, ``--requests`` calls each of ``--count`` images (and once by one thread);
2. served: ``keras-mammo serve`` on free 127.0.0.1 ports; ``--clients`` threads each send
   ``--requests`` REST ``:predict`` requests for ``--signature`` (``--count`` images, a
   different seed each) over one keep-alive connection; latency per request, errors
   (non-200 answers, wrong image counts, exceptions);
3. in-process B: as 1, again (drift check under the shared machine's load).

Reports p50/p99 latency, images/s, errors, and the ratio of served images/s to the mean
in-process images/s at the same concurrency (target: 0 errors, ratio ≥ 0.8), with
``/proc/loadavg`` before and after. Every loop is bounded (``clients × requests`` calls,
60 s timeout each); the server is stopped at the end. Only loopback addresses are used.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np



def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "n/a"


def export_bench_model(tmp: Path, resolution: int) -> Path:
    from keras_mammo.config import load_config
    from keras_mammo.data.datasets import default_mias_path
    from keras_mammo.data.prepare import prepare_dataset
    from keras_mammo.generation.export import export_model
    from keras_mammo.training.run import train

    mias = default_mias_path()
    if mias is None:
        raise SystemExit("MIAS not found (set KERAS_MAMMO_MIAS); or pass --saved-model")
    data = {"data.dataset": "mias", "data.path": str(mias), "data.prepared": str(tmp / "prepared"),
            "data.size": resolution, "data.workers": 2}
    prepare_dataset(load_config(None, data).data, limit=8, progress=False)
    cfg = load_config(None, {**data, "model.name": "dcgan", "run_dir": str(tmp / "run"),
                             "train.resolution": resolution, "train.epochs": 1, "train.batch_size": 4,
                             "train.steps_per_epoch": 1, "train.sample_count": 4, "train.tensorboard": False})
    run = train(cfg, progress=False)
    return export_model(run, out_dir=tmp / "saved", name="bench", version=1).parent


def in_process(fn, clients: int, requests: int, count: int) -> float:
    """images/s of ``clients`` threads each calling ``fn(count, seed)`` ``requests`` times."""
    def worker(c):
        for r in range(requests):
            fn(count, 1000 * c + r)

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return clients * requests * count / (time.perf_counter() - t0)


def load_test(url: str, clients: int, requests: int, count: int, signature: str = "generate_png") -> dict:
    import httpx

    latencies, errors, lock = [], [], threading.Lock()

    def worker(c):
        with httpx.Client(timeout=60) as http:
            for r in range(requests):
                body = {"signature_name": signature, "inputs": {"count": count, "seed": 1000 * c + r}}
                t0 = time.perf_counter()
                try:
                    resp = http.post(f"{url}/v1/models/bench:predict", json=body)
                    ok = resp.status_code == 200 and len(resp.json()["outputs"]) == count
                    err = None if ok else f"HTTP {resp.status_code}: {resp.text[:200]}"
                except Exception as exc:  # counted, never raised: the load test must finish
                    err = f"{type(exc).__name__}: {exc}"
                dt = time.perf_counter() - t0
                with lock:
                    (errors.append(err) if err else latencies.append(dt))

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.asarray(latencies) * 1000
    return {"requests": clients * requests, "ok": len(latencies), "errors": len(errors),
            "first_errors": errors[:3], "wall_s": round(wall, 2),
            "images_per_s": round(len(latencies) * count / wall, 2),
            "latency_ms_p50": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
            "latency_ms_p99": round(float(np.percentile(lat, 99)), 1) if len(lat) else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=50, help="requests per client")
    ap.add_argument("--count", type=int, default=4, help="images per request")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--signature", choices=["generate_png", "generate_png16"], default="generate_png",
                    help="PNG signature to load-test (8- or 16-bit)")
    ap.add_argument("--saved-model", type=Path, default=None, help="model base path (numeric version folders)")
    ap.add_argument("--out", type=Path, default=None, help="also write the report here (JSON)")
    args = ap.parse_args()

    import tensorflow as tf

    report = {"settings": vars(args) | {"saved_model": str(args.saved_model), "out": str(args.out)},
              "loadavg_before": loadavg(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmpdir:
        base = args.saved_model or export_bench_model(Path(tmpdir), args.resolution)
        version = max(int(p.name) for p in Path(base).iterdir() if p.name.isdigit())
        loaded = tf.saved_model.load(str(Path(base) / str(version)))

        def caller(name):
            sig = loaded.signatures[name]

            def fn(count, seed):
                out = sig(count=tf.constant(count, tf.int32), seed=tf.constant(seed, tf.int64))["images_png_bytes"]
                assert out.shape[0] == count
            fn(args.count, 0)  # warm-up
            return fn

        png = {name: caller(name) for name in ("generate_png", "generate_png16") if name in loaded.signatures}
        rates = {name: [] for name in png}
        for _ in range(2):
            for name, f in png.items():
                rates[name].append(in_process(f, 1, args.requests, args.count))
        report["in_process_single_thread_images_per_s_by_signature"] = {
            name: round(float(np.mean(r)), 2) for name, r in rates.items()}
        fn = png[args.signature]
        report["in_process_single_thread_images_per_s"] = round(in_process(fn, 1, args.requests, args.count), 2)
        a = in_process(fn, args.clients, args.requests, args.count)

        from keras_mammo.serving.launch import running_server

        try:
            with running_server("bench", base, start_timeout=300, stop_timeout=30,
                                log_path=Path(tmpdir) / "serve.log") as server:
                load_test(server.url, 1, 3, args.count, args.signature)  # warm-up of the server's threads
                served = load_test(server.url, args.clients, args.requests, args.count, args.signature)
        except RuntimeError as exc:
            raise SystemExit(f"bench_serve: {exc}") from None
        b = in_process(fn, args.clients, args.requests, args.count)

    report["in_process_images_per_s"] = {"before": round(a, 2), "after": round(b, 2)}
    report["served"] = served
    report["ratio_served_to_in_process"] = round(served["images_per_s"] / ((a + b) / 2), 3)
    report["loadavg_after"] = loadavg()
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
