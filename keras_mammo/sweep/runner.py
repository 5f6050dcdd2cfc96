"""Running a sweep: every design row is a real training run, scored by FID and KID.

``run_sweep`` turns a sweep config (a normal keras-mammo config plus a ``sweep:``
section) into trials, runs them on Ray Tune (``Tuner(trainable, param_space=...)``,
Liaw et al. 2018, "Tune: A Research Platform for Distributed Model Selection and
Training") or sequentially in this process, analyses them
(:mod:`keras_mammo.sweep.analysis`) and runs the predicted optimum once more as a
confirmation run (Taguchi's confirmation experiment). Layout of the sweep directory::

    sweep.json                 design, factors, levels, settings (a rerun must match)
    trials/t01-s0/run/         the trial's training run (config.yaml, checkpoints/, …)
    trials/t01-s0/result.json  its FID/KID/floor/seconds; present = trial finished
    trials/confirm-<hash>-s0/  the confirmation run(s)
    ray/                       Ray Tune's experiment folders
    trials.csv main_effects.csv main_effects.png report.md

Resumability: a trial is finished when its ``result.json`` exists; a rerun of the same
command skips finished trials, and a half-finished one calls
:func:`keras_mammo.training.run.train` on its run directory again, which resumes from
the newest checkpoint (a run whose training had ended is only scored).

Scoring (per trial): ``N`` images are generated from the newest checkpoint (``N`` = the
number of prepared films, or ``eval_n``) and compared with the prepared films at the
trial's resolution: FID (Heusel et al. 2017) and KID (Bińkowski et al. 2018) on the FID
Inception network's pool_3 features, with the real-vs-real floor at matched N (two
disjoint halves of the real films, never splitting a patient; mean over 3 cuts), as in
``keras-mammo evaluate``. The Taguchi response is the full-N FID.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from keras_mammo.config import Config, from_dict, resolve_config_path, set_dotted, validate
from keras_mammo.errors import ConfigError, DataError, TrialFailedError

#: Keys of the ``sweep:`` section.
SWEEP_KEYS = ("factors", "design", "repeats", "trial_seconds", "eval_n", "confirm", "cpus_per_trial",
              "gpus_per_trial", "resolution")
#: Seed offset of the confirmation runs (distinct from every repeat's seed).
CONFIRM_SEED_OFFSET = 1000
#: Seed of the latent vectors used to score every trial (common random numbers).
SCORE_SEED = 0
FLOOR_SPLITS = 3
KID_SUBSETS = 100


@dataclasses.dataclass
class SweepSpec:
    """The ``sweep:`` section of a config.

    Attributes:
        factors: dotted config key → its levels (2 or 3 values), in column order; a
            key ``a+b`` sets several config keys to the same level (one factor).
        design: ``L9`` (default), ``L4``, ``L8``, ``L18``, ``full`` or ``paper``.
        repeats: seeds per design row (``seed``, ``seed + 1``, …); S/N is over them.
        trial_seconds: wall-clock budget of each trial's training (``train.max_seconds``).
        eval_n: images generated per trial for FID/KID (default: the number of prepared films).
        confirm: run the predicted optimum as a confirmation run.
        cpus_per_trial, gpus_per_trial: Ray resources per trial (default: every CPU of
            the local machine, so trials run one at a time; 0 GPUs).
        resolution: training resolution of every trial (default: the config's).
    """

    factors: dict
    design: str = "L9"
    repeats: int = 1
    trial_seconds: float | None = None
    eval_n: int | None = None
    confirm: bool = True
    cpus_per_trial: float | None = None
    gpus_per_trial: float = 0.0
    resolution: int | None = None


def split_sweep_config(path: str | Path) -> tuple[dict, SweepSpec]:
    """Read a sweep config: the normal config tree and its ``sweep:`` section.

    The ``sweep:`` section is removed before the config is validated as usual
    (:func:`keras_mammo.config.from_dict`), and every factor is checked by building
    the config at each of its levels.

    Raises:
        ConfigError: no ``sweep:`` section, an unknown key in it, or a factor key/level
            the config rejects (the message names ``sweep.factors.<key>``).
    """
    from keras_mammo.sweep.design import DESIGNS

    p = resolve_config_path(path)
    try:
        tree = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML: {exc}") from exc
    if not isinstance(tree, dict) or not isinstance(tree.get("sweep"), dict):
        raise ConfigError(f"{p}: no `sweep:` section (it names the factors: dotted config key → levels)")
    section = tree.pop("sweep")
    unknown = sorted(set(section) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(f"sweep.{unknown[0]}: unknown key; allowed keys in sweep: {', '.join(SWEEP_KEYS)}")
    factors = section.get("factors")
    if not isinstance(factors, dict) or not factors:
        raise ConfigError("sweep.factors: expected a mapping of dotted config keys to lists of levels, "
                          "e.g. {train.g_learning_rate: [0.0001, 0.0002, 0.0003]}")
    spec = SweepSpec(factors={str(k): list(v) if isinstance(v, (list, tuple)) else v for k, v in factors.items()},
                     **{k: v for k, v in section.items() if k != "factors"})
    if spec.design not in DESIGNS:
        raise ConfigError(f"sweep.design: {spec.design!r} is not allowed; allowed values: {', '.join(DESIGNS)}")
    for key, vals in spec.factors.items():
        if not isinstance(vals, list) or len(vals) < 2:
            raise ConfigError(f"sweep.factors.{key}: expected a list of 2 or 3 levels, got {vals!r}")
        for v in vals:
            try:
                build_config(tree, {key: v})
            except ConfigError as exc:
                raise ConfigError(f"sweep.factors.{key}: level {v!r} rejected: {exc}") from None
    from_dict(Config, tree)
    return tree, spec


def apply_resolution(tree: dict, resolution: int) -> None:
    """Train every trial at ``resolution``: a fixed-resolution config sets
    ``train.resolution``; a progressive one keeps its stages up to that resolution.

    Raises:
        ConfigError: no stage at or below ``resolution``.
    """
    train = tree.setdefault("train", {})
    stages = train.get("stages") or []
    if stages:
        kept = [s for s in stages if int(s.get("resolution", 64)) <= resolution]
        if not kept:
            raise ConfigError(f"--resolution: {resolution} is below the first stage "
                              f"({stages[0].get('resolution')} px)")
        train["stages"] = kept
    else:
        train["resolution"] = resolution


def _absolute_paths(tree: dict, base: Path) -> None:
    data = tree.setdefault("data", {})
    for key in ("path", "prepared"):
        if data.get(key):
            data[key] = str((base / data[key]).resolve())
    if data.get("csv_files"):
        data["csv_files"] = [str((base / c).resolve()) for c in data["csv_files"]]


def build_config(tree: dict, overrides: dict[str, Any], run_dir: str | None = None, seed: int | None = None,
                 max_seconds: float | None = None) -> Config:
    """A trial's validated :class:`Config`: ``tree`` with dotted-key ``overrides``.

    Raises:
        ConfigError: a bad key or value (named).
    """
    t = copy.deepcopy(tree)
    for k, v in overrides.items():
        for key in k.split("+"):  # "train.g_learning_rate+train.d_learning_rate": one factor, several keys
            set_dotted(t, key.strip(), v)
    if run_dir is not None:
        t["run_dir"] = run_dir
    if seed is not None:
        t["seed"] = seed
    if max_seconds is not None:
        set_dotted(t, "train.max_seconds", int(max_seconds))
    cfg = from_dict(Config, t)
    validate(cfg)
    return cfg


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


# --------------------------------------------------------------------------- one trial


_REAL_CACHE: dict = {}


def _real_set(prepared: str, size: int):
    from keras_mammo.metrics.imagesets import load_image_set

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
    from keras_mammo.generation.generate import generate_images
    from keras_mammo.metrics.features import set_features
    from keras_mammo.metrics.fid import fid
    from keras_mammo.metrics.imagesets import image_set_from_array, split_halves
    from keras_mammo.metrics.kid import kid

    from keras_mammo.data.pipeline import kept_rows

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
    sub = lambda m: int(min(1000, max(2, m // 2)))  # noqa: E731  (as keras-mammo evaluate)
    out = {"resolution": size, "fid": fid(f_syn, f_real), "fid_n_real": len(real), "fid_n_synthetic": n}
    out["kid"], out["kid_std"] = kid(f_syn, f_real, KID_SUBSETS, sub(min(n, len(real))), seed)
    rng = np.random.default_rng(seed)
    halves = [split_halves(real.patient_ids, rng) for _ in range(FLOOR_SPLITS)]
    m = min(min(len(a), len(b)) for a, b in halves)
    m = min(m, n)
    fs, ff, kf = [], [], []
    for k, (a, b) in enumerate(halves):
        a_m, b_m, s_m = rng.choice(a, m, replace=False), rng.choice(b, m, replace=False), rng.choice(n, m, False)
        fs.append(fid(f_syn[s_m], f_real[b_m]))
        ff.append(fid(f_real[a_m], f_real[b_m]))
        kf.append(kid(f_real[a_m], f_real[b_m], KID_SUBSETS, sub(m), seed + k)[0])
    out.update(floor_n=int(m), fid_matched=float(np.mean(fs)), fid_floor=float(np.mean(ff)),
               kid_floor=float(np.mean(kf)))
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
    from keras_mammo.errors import TrainingDivergedError
    from keras_mammo.training.run import train
    from keras_mammo.utils import write_json_atomic

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
        train(cfg, progress=False)
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
              "note": note, "loadavg": _loadavg()}
    write_json_atomic(result_path, result)
    return result


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return ""


# --------------------------------------------------------------------------- engines


def run_local(specs: list[dict], trial_fn: Callable[[dict], dict] = run_trial,
              on_result: Callable[[dict], None] | None = None) -> list[dict]:
    """Run trials one after another in this process (no Ray)."""
    out = []
    for s in specs:
        r = trial_fn(s)
        out.append(r)
        if on_result:
            on_result(r)
        try:
            import keras

            keras.backend.clear_session()
        except ImportError:
            pass
    return out


def _ray_trainable(config: dict) -> dict:
    fn = config.get("trial_fn") or run_trial
    r = fn(config["spec"])
    return {k: v for k, v in r.items() if isinstance(v, (int, float, str, bool)) or v is None}


def ray_init(address: str | None = None) -> bool:
    """Start (or join, with ``address``) Ray unless it is running: no dashboard, no usage
    statistics, nothing downloaded. Returns whether this call started it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import ray

    if ray.is_initialized():
        return False
    kwargs = dict(include_dashboard=False, log_to_driver=True, configure_logging=False)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=os.cpu_count(), **kwargs)
    return True


def run_ray(specs: list[dict], storage: str | Path, address: str | None = None, cpus_per_trial: float | None = None,
            gpus_per_trial: float = 0.0, trial_fn: Callable[[dict], dict] | None = None,
            on_result: Callable[[dict], None] | None = None) -> list[dict]:
    """Run trials on Ray Tune: ``Tuner(with_resources(trainable), param_space=grid over specs)``.

    Local by default (``ray.init`` with the dashboard and usage statistics off; nothing
    is downloaded); ``address`` joins an existing cluster (``"auto"`` or ``host:port``).
    Each trial asks for ``cpus_per_trial`` CPUs (default: every CPU of the local
    machine, so trials run one at a time) and ``gpus_per_trial`` GPUs.

    Returns:
        each trial's result, read back from its ``result.json`` (the file is the truth:
        a trial whose file is missing failed and raises).

    Raises:
        TrialFailedError: a trial failed (its whole error is written to ``<trial_dir>/error.txt``).
    """
    import ray
    from ray import tune

    started_here = ray_init(address)
    try:
        if cpus_per_trial is None:
            cpus_per_trial = float(ray.cluster_resources().get("CPU", 1)) if not address else 1.0
        trainable = tune.with_resources(_ray_trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})

        class _Echo(tune.Callback):
            def on_trial_result(self, iteration, trials, trial, result, **info):
                if on_result:
                    on_result(result)

        space = {"spec": tune.grid_search(specs)}
        if trial_fn is not None:
            space["trial_fn"] = trial_fn
        tuner = tune.Tuner(trainable, param_space=space,
                           tune_config=tune.TuneConfig(max_concurrent_trials=None, reuse_actors=False),
                           run_config=tune.RunConfig(storage_path=str(Path(storage).resolve()),
                                                     name=time.strftime("tune-%Y%m%d-%H%M%S"), verbose=0,
                                                     callbacks=[_Echo()]))
        grid = tuner.fit()
        errors = {((r.config or {}).get("spec") or {}).get("name"): str(r.error) for r in grid if r.error is not None}
    finally:
        if started_here:
            ray.shutdown()
    out = []
    for s in specs:
        p = Path(s["trial_dir"]) / "result.json"
        if not p.is_file():
            text = re.sub(r"\x1b\[[\d;]*m", "", errors.get(s["name"]) or "it wrote no result.json")
            where = Path(s["trial_dir"]) / "error.txt"
            where.parent.mkdir(parents=True, exist_ok=True)
            where.write_text(text + "\n")
            last = next((x.strip() for x in reversed(text.splitlines()) if x.strip()), text)
            raise TrialFailedError(f"trial {s['name']} failed: {last} (the whole error: {where}); finished "
                                   "trials are kept: rerun the same command to retry the others")
        out.append(json.loads(p.read_text()))
    return out


# --------------------------------------------------------------------------- the sweep


@dataclasses.dataclass
class SweepResult:
    """What :func:`run_sweep` produced.

    Attributes:
        out_dir: the sweep directory.
        analysis: the Taguchi analysis of the design rows.
        trials: ``trials.csv`` as a DataFrame.
        confirmation: the confirmation row (dict) or None.
        trained: names of the trials run by this call (finished ones are skipped).
        orthogonality: the design's orthogonality check.
        seconds: wall time of this call.
    """

    out_dir: Path
    analysis: Any
    trials: Any
    confirmation: dict | None
    trained: list
    orthogonality: Any
    seconds: float


def _trial_spec(tree: dict, out: Path, name: str, kind: str, row, repeat: int, overrides: dict, seed: int,
                spec: SweepSpec) -> dict:
    trial_dir = out / "trials" / name
    cfg = build_config(tree, overrides, run_dir=str(trial_dir / "run"), seed=seed, max_seconds=spec.trial_seconds)
    return {"name": name, "kind": kind, "row": row, "repeat": repeat, "overrides": overrides,
            "config": cfg.to_dict(), "trial_dir": str(trial_dir), "eval_n": spec.eval_n}


def _run(engine: str, specs: list[dict], out: Path, spec: SweepSpec, address, trial_fn, echo) -> list[dict]:
    pending = [s for s in specs if not (Path(s["trial_dir"]) / "result.json").is_file()]
    done = len(specs) - len(pending)
    if done:
        echo(f"{done} of {len(specs)} trial(s) finished earlier: not re-trained")
    if not pending:
        return []

    def show(r):
        if "fid" in r and "name" in r:
            nan = float("nan")
            echo(f"  {r['name']}: FID {r['fid']:.2f}; at N={r.get('floor_n')}/side "
                 f"{r.get('fid_matched', nan):.2f} = {r.get('fid_matched', nan) / r.get('fid_floor', nan):.2f}× "
                 f"the floor {r.get('fid_floor', nan):.2f}; KID {r.get('kid', nan):.4f}; {r.get('seconds')} s")

    if engine == "ray":
        run_ray(pending, out / "ray", address, spec.cpus_per_trial, spec.gpus_per_trial,
                None if trial_fn is run_trial else trial_fn, on_result=show)
    elif engine == "local":
        run_local(pending, trial_fn, on_result=show)
    else:
        raise ConfigError(f"--engine: {engine!r} is not allowed; allowed values: ray, local")
    return pending


def plan_sweep(config: str | Path, design: str | None = None, prepared: str | None = None,
               resolution: int | None = None, **overrides):
    """The sweep config, its settings and its design, without running anything.

    Args:
        config: sweep config path or bundled name.
        design, prepared, resolution, overrides: as :func:`run_sweep` (None keeps the config's).

    Returns:
        ``(config tree with absolute data paths, SweepSpec, design codes, Orthogonality)``.

    Raises:
        ConfigError: bad sweep section, design or flag.
    """
    from keras_mammo.sweep.design import check_orthogonality, make_design

    tree, spec = split_sweep_config(config)
    for k, v in dict(design=design, resolution=resolution, **overrides).items():
        if v is not None:
            setattr(spec, k, v)
    if spec.repeats < 1:
        raise ConfigError(f"--repeats: must be ≥ 1, got {spec.repeats}")
    _absolute_paths(tree, Path.cwd())
    if prepared:
        set_dotted(tree, "data.prepared", str(Path(prepared).resolve()))
    if spec.resolution:
        apply_resolution(tree, int(spec.resolution))
    codes = make_design(spec.design, spec.factors)
    return tree, spec, codes, check_orthogonality(codes)


def run_sweep(config: str | Path, out_dir: str | Path, design: str | None = None, prepared: str | None = None,
              resolution: int | None = None, trial_seconds: float | None = None, repeats: int | None = None,
              engine: str = "ray", address: str | None = None, cpus_per_trial: float | None = None,
              gpus_per_trial: float | None = None, eval_n: int | None = None, confirm: bool | None = None,
              echo: Callable[[str], None] = print, trial_fn: Callable[[dict], dict] = run_trial) -> SweepResult:
    """Run (or continue) a Taguchi sweep and write its analysis.

    Args:
        config: a sweep config (normal config + ``sweep:`` section) or bundled name.
        out_dir: the sweep directory (a rerun with the same arguments continues it).
        design, resolution, trial_seconds, repeats, cpus_per_trial, gpus_per_trial,
            eval_n, confirm: override the ``sweep:`` section.
        prepared: prepared dataset (``data.prepared``); prepared first when missing.
        engine: ``ray`` (Ray Tune; ``address`` for an existing cluster) or ``local``
            (sequential, in this process).
        echo: where progress lines go.
        trial_fn: runs one trial (tests replace it; default :func:`run_trial`).

    Returns:
        :class:`SweepResult`.

    Raises:
        ConfigError: bad sweep section or flags, or ``out_dir`` holds a different sweep.
    """
    from keras_mammo.utils import write_json_atomic

    t_start = time.perf_counter()
    tree, spec, codes, orth = plan_sweep(config, design=design, prepared=prepared, resolution=resolution,
                                         trial_seconds=trial_seconds, repeats=repeats,
                                         cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                                         eval_n=eval_n, confirm=confirm)
    levels = spec.factors
    echo(f"design {spec.design}: {len(codes)} rows × {spec.repeats} repeat(s), factors "
         f"{', '.join(levels)}; {orth.describe()}")

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    identity = {"design": spec.design, "factors": levels, "repeats": spec.repeats,
                "trial_seconds": spec.trial_seconds, "eval_n": spec.eval_n, "config": tree}
    sj = out / "sweep.json"
    if sj.is_file():
        old = json.loads(sj.read_text())
        diff = sorted(k for k in identity if json.dumps(old.get(k), sort_keys=True, default=str)
                      != json.dumps(identity[k], sort_keys=True, default=str))
        if diff:
            raise ConfigError(f"--out: {out} holds a different sweep ({', '.join(diff)} differ); "
                              f"choose a new --out to run these settings")
    else:
        write_json_atomic(sj, identity)

    base = build_config(tree, {})
    if not (Path(base.data.prepared) / "manifest.jsonl").is_file():
        from keras_mammo.data.prepare import prepare_dataset

        echo(f"no prepared dataset at {base.data.prepared}: preprocessing first")
        prepare_dataset(base.data, base.data.prepared, progress=False)

    started_ray = engine == "ray" and ray_init(address)
    try:
        return _sweep(tree, spec, codes, orth, out, base, engine, address, trial_fn, echo, t_start)
    finally:
        if started_ray:
            import ray

            ray.shutdown()


def _sweep(tree, spec, codes, orth, out, base, engine, address, trial_fn, echo, t_start) -> SweepResult:
    from keras_mammo.sweep import analysis as an
    from keras_mammo.sweep.design import decode

    levels = spec.factors
    rows = decode(codes, levels)
    specs = [_trial_spec(tree, out, f"t{r:02d}-s{k}", "design", r, k, ov, base.seed + k, spec)
             for r, ov in zip(codes.index, rows) for k in range(spec.repeats)]
    trained = [s["name"] for s in _run(engine, specs, out, spec, address, trial_fn, echo)]
    results = {s["name"]: json.loads((Path(s["trial_dir"]) / "result.json").read_text()) for s in specs}
    fids = [[results[f"t{r:02d}-s{k}"]["fid"] for k in range(spec.repeats)] for r in codes.index]
    bad = [f"t{r:02d}" for r, f in zip(codes.index, fids) if not np.isfinite(f).all()]
    if bad:
        raise DataError(f"{out}: trial(s) {', '.join(bad)} have no FID (see their result.json notes); "
                        "the analysis needs every design row")
    a = an.analyze(codes, fids, levels)
    echo(f"predicted optimum: {a.optimum}; predicted S/N {a.predicted_sn:.2f} dB (FID ≈ {a.predicted_fid:.3g})")

    confirmation = None
    if spec.confirm:
        tag = _hash(a.optimum)
        cspecs = [_trial_spec(tree, out, f"confirm-{tag}-s{k}", "confirmation", None, k, dict(a.optimum),
                              base.seed + CONFIRM_SEED_OFFSET + k, spec) for k in range(spec.repeats)]
        trained += [s["name"] for s in _run(engine, cspecs, out, spec, address, trial_fn, echo)]
        cres = [json.loads((Path(s["trial_dir"]) / "result.json").read_text()) for s in cspecs]
        confirmation = _row_record("confirmation", "confirmation", a.optimum, cres, levels)

    records = [_row_record(r, "design", ov, [results[f"t{r:02d}-s{k}"] for k in range(spec.repeats)], levels)
               for r, ov in zip(codes.index, rows)]
    import pandas as pd

    trials = pd.DataFrame(records + ([confirmation] if confirmation else []))
    seconds = time.perf_counter() - t_start
    _write_outputs(out, a, trials, confirmation, orth, spec, seconds, len(trained))
    echo(f"wrote {out}/trials.csv, main_effects.csv, main_effects.png, report.md")
    return SweepResult(out, a, trials, confirmation, trained, orth, seconds)


def _row_record(trial, kind: str, overrides: dict, results: list[dict], levels: dict) -> dict:
    from keras_mammo.sweep.analysis import sn_smaller_the_better

    f = [r["fid"] for r in results]
    rec = {"trial": trial, **{k: overrides[k] for k in levels}}
    rec.update(fid=float(np.mean(f)), sn=sn_smaller_the_better(f) if np.isfinite(f).all() else float("nan"),
               kid=float(np.mean([r["kid"] for r in results])),
               seconds=round(float(sum(r["seconds"] for r in results)), 1), kind=kind,
               run_dir=";".join(r["run_dir"] for r in results),
               fid_matched=float(np.mean([r.get("fid_matched", np.nan) for r in results])),
               fid_floor=float(np.mean([r.get("fid_floor", np.nan) for r in results])),
               kid_floor=float(np.mean([r.get("kid_floor", np.nan) for r in results])),
               n_real=results[0].get("fid_n_real"), n_synthetic=results[0].get("fid_n_synthetic"),
               floor_n=results[0].get("floor_n"), epochs_done=results[0].get("epochs_done"),
               fid_repeats=" ".join(f"{x:.4g}" for x in f))
    rec["x_floor"] = rec["fid_matched"] / rec["fid_floor"]    # both at floor_n per side: the same N
    return rec


def _write_outputs(out: Path, a, trials, confirmation, orth, spec: SweepSpec, seconds: float, n_trained: int):
    from keras_mammo.sweep import analysis as an
    from keras_mammo.utils import write_text_atomic

    write_text_atomic(out / "trials.csv", trials.to_csv(index=False))
    write_text_atomic(out / "main_effects.csv", an.main_effects_csv(a).to_csv(index=False))
    an.plot_main_effects(a, out / "main_effects.png")
    design_rows = trials[trials.kind == "design"]
    lines = [f"# Taguchi sweep: {spec.design}, {len(a.codes)} rows × {spec.repeats} repeat(s)", "",
             f"Design: {orth.describe()}.", "",
             "Response: FID of N generated images vs the N prepared films (smaller is better); "
             "S/N = −10·log10(mean(FID²)) over the repeats, in dB (higher is better).",
             ("Trial budget: none (each trial runs its epochs)" if not spec.trial_seconds else
              f"Trial budget: {spec.trial_seconds:g} s of training (train.max_seconds)")
             + f"; this call trained {n_trained} trial(s) in {seconds:.0f} s wall; load {_loadavg()}.", "",
             "## Trials", "",
             an.markdown_table(trials[["trial", *a.levels, "fid", "n_real", "sn", "fid_matched", "fid_floor",
                                       "x_floor", "kid", "kid_floor", "seconds", "kind"]]), "",
             "`fid`: N generated films vs all N_real prepared films (the response). `fid_matched`: the "
             "generated films vs a real half, and `fid_floor`: two disjoint halves of the real films compared "
             f"with each other, both at N={int(design_rows.floor_n.iloc[0]) if len(design_rows) else '?'} per side "
             f"(mean of {FLOOR_SPLITS} cuts); `x_floor` = fid_matched / fid_floor, the ratio at the same N. The "
             "floor is what two samples of the same distribution score; no trial can be expected below it.", "",
             "## Response table (mean S/N in dB and mean FID per level)", "",
             an.markdown_table(an.main_effects_csv(a)), "",
             "## ANOVA of S/N (percent contribution)", "", an.markdown_table(a.anova), "",
             "![main effects](main_effects.png)", "",
             "## Predicted optimum and confirmation", "",
             f"Optimum (best level of each factor): {', '.join(f'{k} = {v}' for k, v in a.optimum.items())}.", "",
             f"Predicted (additive model): S/N {a.predicted_sn:.2f} dB, i.e. FID ≈ {a.predicted_fid:.4g}."]
    if confirmation:
        within = confirmation["fid"] <= float(design_rows.fid.max())
        lines += [f"Confirmation run: S/N {confirmation['sn']:.2f} dB, FID {confirmation['fid']:.4g} "
                  f"(KID {confirmation['kid']:.4g}); the {len(design_rows)} design trials ranged FID "
                  f"{design_rows.fid.min():.4g} – {design_rows.fid.max():.4g}: the confirmation is "
                  + ("within that spread or better." if within else "WORSE than every design trial.")]
    if a.groups and any(len(g) > 1 for g in a.groups):
        lines += ["", "Confounded factors share one effect (their rows of the response table are identical); "
                  "the optimum counts it once and cannot say which of them caused it."]
    write_text_atomic(out / "report.md", "\n".join(lines) + "\n")
