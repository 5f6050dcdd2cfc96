"""Scoring one trial: train (or resume) it, then FID and KID with the real-vs-real floor.

Scoring (per trial): ``N`` images are generated from the newest checkpoint (``N`` = the
number of prepared films, or ``eval_n``) and compared with the prepared films at the
trial's resolution: FID (Heusel et al. 2017) and KID (Bińkowski et al. 2018) on the FID
Inception network's pool_3 features, with the real-vs-real floor at matched N
(:mod:`keras_mammo.metrics.floor`, as ``keras-mammo evaluate``: two disjoint halves of
the real films, never splitting a patient; mean over 3 cuts). The Taguchi response is
the full-N FID.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from keras_mammo.config import Config, from_dict
from keras_mammo.errors import DataError, TrainingDivergedError
from keras_mammo.generation.generate import generate_images
from keras_mammo.metrics.features import set_features
from keras_mammo.metrics.fid import fid
from keras_mammo.metrics.floor import floor_scores, kid_subset_size, matched_n, real_halves
from keras_mammo.metrics.imagesets import image_set_from_array, load_image_set
from keras_mammo.metrics.kid import kid
from keras_mammo.utils import write_json_atomic

#: Seed of the latent vectors used to score every trial (common random numbers).
SCORE_SEED = 0
FLOOR_SPLITS = 3
KID_SUBSETS = 100

_REAL_CACHE: dict = {}


def _real_set(prepared: str, size: int):

    key = (prepared, size)
    if key not in _REAL_CACHE:
        _REAL_CACHE.clear()
        _REAL_CACHE[key] = load_image_set(prepared, size=size, name="real")
    return _REAL_CACHE[key]


def score_run(run_dir: str | Path, prepared: str | Path, n: int | None = None, seed: int = SCORE_SEED) -> dict:
    """FID and KID of a run's newest checkpoint against the prepared films, with floors.

    Args:
        run_dir: a training run with a checkpoint.
        prepared: the prepared dataset (the real films).
        n: images to generate (default: as many as there are real films).
        seed: latent seed of the generated images.

    Returns:
        ``fid`` (N synthetic vs all N_real real), ``fid_n_real``, ``fid_n_synthetic``,
        ``fid_matched`` / ``fid_floor`` (synthetic vs a real half, real half vs real half,
        at ``floor_n`` per side, mean over 3 cuts), ``kid``, ``kid_std``, ``kid_floor``,
        ``resolution``.

    Raises:
        DataError: no checkpoint, or fewer than 4 real films.
    """

    from keras_mammo.data.pipeline import kept_rows  # imports TensorFlow: on first use only

    n_real = len(kept_rows(Path(prepared)))
    if n_real < 4:
        raise DataError(f"{prepared}: {n_real} films; FID/KID with a floor need at least 4")
    n = int(n or n_real)
    images = generate_images(run_dir, n, seed=seed)
    size = int(images.shape[1])
    real = _real_set(str(prepared), size)
    syn = image_set_from_array(images, "synthetic")
    f_real, _ = set_features(real, None, progress=False)
    f_syn, _ = set_features(syn, False, progress=False)
    out = {"resolution": size, "fid": fid(f_syn, f_real), "fid_n_real": len(real), "fid_n_synthetic": n}
    out["kid"], out["kid_std"] = kid(f_syn, f_real, KID_SUBSETS, kid_subset_size(min(n, len(real))), seed)
    rng = np.random.default_rng(seed)
    halves = real_halves(real.patient_ids, FLOOR_SPLITS, rng)
    m = matched_n(halves, n)
    fl = floor_scores(f_syn, f_real, halves, m, rng, KID_SUBSETS, seed, synthetic_kid=False)
    out.update(floor_n=int(m), fid_matched=float(np.mean(fl["fid_synthetic"])), fid_floor=float(np.mean(fl["fid_floor"])),
               kid_floor=float(np.mean(fl["kid_floor"])))
    return out


def run_trial(spec: dict) -> dict:
    """Train (or resume) one trial and score it; writes ``result.json`` last.

    Args:
        spec: ``name``, ``kind`` (design | confirmation), ``row``, ``repeat``,
            ``overrides``, ``config`` (the resolved config as a dict), ``trial_dir``,
            ``eval_n``.

    Returns:
        the result dict (also in ``<trial_dir>/result.json``); ``train_seconds`` includes
        ``train_seconds_earlier``, the training time of earlier attempts that were killed.
    """
    from keras_mammo.training.run import train  # imports TensorFlow: on first use only

    trial_dir = Path(spec["trial_dir"])
    result_path = trial_dir / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    trial_dir.mkdir(parents=True, exist_ok=True)
    cfg = from_dict(Config, spec["config"])
    with open(trial_dir / "attempts.log", "a") as log:
        log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} start pid {os.getpid()}\n")
    note = ""
    run_json = Path(cfg.run_dir) / "run.json"
    # training seconds of earlier, interrupted attempts (the run's own count, kept across resumes)
    earlier = float(json.loads(run_json.read_text()).get("seconds") or 0.0) if run_json.is_file() else 0.0
    t0 = time.perf_counter()
    try:
        train(cfg, progress=False, stop_on_signal=False)   # a signal ends the trial, never 'finishes' it
    except TrainingDivergedError as exc:
        note = f"diverged: {exc}; scored at the last good checkpoint"
    t_train = time.perf_counter() - t0 + earlier
    t1 = time.perf_counter()
    try:
        scores = score_run(cfg.run_dir, cfg.data.prepared, spec.get("eval_n"))
    except DataError as exc:
        scores = {"fid": float("nan"), "kid": float("nan")}
        note = (note + "; " if note else "") + f"not scored: {exc}"
    t_score = time.perf_counter() - t1
    status = json.loads(run_json.read_text()) if run_json.is_file() else {}
    result = {"name": spec["name"], "kind": spec["kind"], "row": spec.get("row"), "repeat": spec.get("repeat"),
              "seed": cfg.seed, "overrides": spec["overrides"], **scores,
              "train_seconds": round(t_train, 2), "train_seconds_earlier": round(earlier, 2),
              "score_seconds": round(t_score, 2),
              "seconds": round(t_train + t_score, 2), "epochs_done": status.get("epochs"),
              "max_seconds": getattr(cfg.train, "max_seconds", None), "run_dir": str(cfg.run_dir),
              "note": note, "loadavg": loadavg()}
    write_json_atomic(result_path, result)
    return result


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return ""
