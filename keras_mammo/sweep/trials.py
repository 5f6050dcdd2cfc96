"""Trial configurations of a sweep: the ``sweep:`` section, each trial's validated config.

A sweep config is a normal keras-mammo config plus a ``sweep:`` section (:class:`SweepSpec`);
every design row becomes a trial config (:func:`build_config`, :func:`trial_spec`) with
the row's factor levels set by dotted keys. See :mod:`keras_mammo.sweep.runner`.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from keras_mammo.config import Config, StageConfig, from_dict, resolve_config_path, set_dotted, validate
from keras_mammo.errors import ConfigError
from keras_mammo.sweep.design import DESIGNS
from keras_mammo.training.schedule import check_resolution, stages_up_to

#: Keys of the ``sweep:`` section.
SWEEP_KEYS = ("factors", "design", "repeats", "trial_seconds", "eval_n", "confirm", "cpus_per_trial",
              "gpus_per_trial", "resolution")
#: Seed offset of the confirmation runs (distinct from every repeat's seed).
CONFIRM_SEED_OFFSET = 1000


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

    The stages kept are those of :func:`keras_mammo.training.schedule.stages_up_to`
    (``keras-mammo train --resolution`` keeps the same ones); unlike ``train``, the sweep
    drops the others from each trial's config.

    Raises:
        OptionError: no stage at or below ``resolution``.
        ConfigError: a stage the config rejects, or a resolution that is not a power of
            two ≥ 4 or not one of the stages' (:func:`~keras_mammo.training.schedule.check_resolution`).
    """
    train = tree.setdefault("train", {})
    stages = train.get("stages") or []
    parsed = [from_dict(StageConfig, s) for s in stages]
    check_resolution(resolution, parsed, None)   # the rule of `train --resolution`; the size is checked per trial
    if stages:
        stages_up_to(parsed, resolution)   # refuses a resolution below every stage
        train["stages"] = [s for s, p in zip(stages, parsed) if p.resolution <= resolution]
    else:
        train["resolution"] = resolution


def absolute_paths(tree: dict, base: Path) -> None:
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


def config_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


def trial_spec(tree: dict, out: Path, name: str, kind: str, row, repeat: int, overrides: dict, seed: int,
                spec: SweepSpec) -> dict:
    trial_dir = out / "trials" / name
    cfg = build_config(tree, overrides, run_dir=str(trial_dir / "run"), seed=seed, max_seconds=spec.trial_seconds)
    return {"name": name, "kind": kind, "row": row, "repeat": repeat, "overrides": overrides,
            "config": cfg.to_dict(), "trial_dir": str(trial_dir), "eval_n": spec.eval_n}
