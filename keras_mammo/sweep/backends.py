"""Back ends that run a sweep's trials: Ray Tune or one after another in this process.

Ray Tune (``Tuner(trainable, param_space=...)``, Liaw et al. 2018, "Tune: A Research
Platform for Distributed Model Selection and Training") runs each trial in a worker
process; :func:`run_local` runs them here. Both take the trial function
(:func:`keras_mammo.sweep.scoring.run_trial` by default).
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Callable

from keras_mammo.errors import TrialFailedError
from keras_mammo.sweep.scoring import run_trial
from keras_mammo.utils import ray_init  # one owner: shared with data.distributed


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


def run_ray(specs: list[dict], storage: str | Path, address: str | None = None, cpus_per_trial: float | None = None,
            gpus_per_trial: float = 0.0, trial_fn: Callable[[dict], dict] | None = None,
            on_result: Callable[[dict], None] | None = None) -> list[dict]:
    """Run trials on Ray Tune: ``Tuner(with_resources(trainable), param_space=grid over specs)``.

    Local by default (``ray.init`` with the dashboard and usage statistics off; nothing
    is downloaded); ``address`` joins an existing cluster (``"auto"`` or ``host:port``).
    Each trial asks for ``cpus_per_trial`` CPUs (default: every CPU of the local
    machine, so trials run one at a time) and ``gpus_per_trial`` GPUs.

    SIGINT and SIGTERM end the Ray instance this call started (``ray.shutdown``: its raylet,
    GCS server and workers) before the process exits.

    Returns:
        each trial's result, read back from its ``result.json`` (the file is the truth:
        a trial whose file is missing failed and raises).

    Raises:
        TrialFailedError: a trial failed (its whole error is written to ``<trial_dir>/error.txt``).
        EngineStartError: Ray did not start (:func:`keras_mammo.utils.ray_init`).
    """
    import ray
    from ray import tune

    from keras_mammo.utils import sigterm_as_interrupt

    import logging

    tune_log = logging.getLogger("ray.tune")
    tune_level = tune_log.level
    with sigterm_as_interrupt():   # SIGTERM, like Ctrl-C, reaches the finally below: no orphaned Ray processes
        started_here = ray_init(address)
        # a failed trial's coloured traceback, logged by Tune, is written plain to <trial_dir>/error.txt instead
        tune_log.setLevel(logging.CRITICAL)
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
            errors = {((r.config or {}).get("spec") or {}).get("name"): str(r.error)
                      for r in grid if r.error is not None}
        finally:
            tune_log.setLevel(tune_level)
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
