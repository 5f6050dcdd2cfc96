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

Scoring (per trial, :mod:`keras_mammo.sweep.scoring`): ``N`` images are generated from
the newest checkpoint and compared with the prepared films by FID and KID beside the
real-vs-real floor at matched N (:mod:`keras_mammo.metrics.floor`). The Taguchi response
is the full-N FID.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from keras_mammo.config import set_dotted
from keras_mammo.data.prepare import prepare_dataset
from keras_mammo.errors import ConfigError, DataError
from keras_mammo.sweep import analysis as an
from keras_mammo.sweep.backends import ray_init, run_local, run_ray
from keras_mammo.sweep.design import check_orthogonality, decode, make_design
from keras_mammo.sweep.outputs import row_record, write_outputs
from keras_mammo.sweep.scoring import run_trial
from keras_mammo.sweep.trials import (
    CONFIRM_SEED_OFFSET,
    SweepSpec,
    absolute_paths,
    apply_resolution,
    build_config,
    config_hash,
    split_sweep_config,
    trial_spec,
)
from keras_mammo.utils import write_json_atomic


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

    tree, spec = split_sweep_config(config)
    for k, v in dict(design=design, resolution=resolution, **overrides).items():
        if v is not None:
            setattr(spec, k, v)
    if spec.repeats < 1:
        raise ConfigError(f"--repeats: must be ≥ 1, got {spec.repeats}")
    absolute_paths(tree, Path.cwd())
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

    levels = spec.factors
    rows = decode(codes, levels)
    specs = [trial_spec(tree, out, f"t{r:02d}-s{k}", "design", r, k, ov, base.seed + k, spec)
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
        tag = config_hash(a.optimum)
        cspecs = [trial_spec(tree, out, f"confirm-{tag}-s{k}", "confirmation", None, k, dict(a.optimum),
                              base.seed + CONFIRM_SEED_OFFSET + k, spec) for k in range(spec.repeats)]
        trained += [s["name"] for s in _run(engine, cspecs, out, spec, address, trial_fn, echo)]
        cres = [json.loads((Path(s["trial_dir"]) / "result.json").read_text()) for s in cspecs]
        confirmation = row_record("confirmation", "confirmation", a.optimum, cres, levels)

    records = [row_record(r, "design", ov, [results[f"t{r:02d}-s{k}"] for k in range(spec.repeats)], levels)
               for r, ov in zip(codes.index, rows)]
    import pandas as pd

    trials = pd.DataFrame(records + ([confirmation] if confirmation else []))
    seconds = time.perf_counter() - t_start
    write_outputs(out, a, trials, confirmation, orth, spec, seconds, len(trained))
    echo(f"wrote {out}/trials.csv, main_effects.csv, main_effects.png, report.md")
    return SweepResult(out, a, trials, confirmation, trained, orth, seconds)
