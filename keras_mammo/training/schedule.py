"""Changing the length of a progressive schedule without dropping its stages.

``keras-mammo train --epochs`` on a progressive config (Karras et al. 2018; Rahali 2025,
§3.5.1) keeps every stage and changes how long each one lasts:

* ``--epochs N`` scales the stages' epochs to ``N`` in total, in proportion to the
  configured ones (largest-remainder rounding, at least one epoch per stage);
* ``--epochs A,B,...`` sets each stage's epochs (one number per stage).

``--resolution R`` trains only the stages up to ``R`` (:func:`stages_up_to`).
:func:`apply_schedule_options` applies both to a config, for ``keras-mammo train``; the
sweep's ``resolution`` (:func:`keras_mammo.sweep.trials.apply_resolution`) keeps its stages
the same way.

A stage's fade-in (``fade_in_images``) is scaled by the same factor as its epochs, so a
shortened stage still finishes fading in at the same share of the stage.

The validity of a training resolution (``--resolution``, a fixed ``train.resolution``,
every stage's) is checked once, here, where the schedule is built
(:func:`check_resolution`): a power of two ≥ 4 (each generator block doubles the side),
at most the prepared films' size (no upscaling), and on a progressive config one of its
stages.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Callable

from keras_mammo.config import Config, StageConfig, is_power_of_two, validate
from keras_mammo.errors import ConfigError, OptionError


def parse_epochs(text: str) -> list[int]:
    """``"40"`` → ``[40]``; ``"10,30"`` → ``[10, 30]``.

    Raises:
        ConfigError: not a comma-separated list of integers ≥ 1.
    """
    try:
        values = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise ConfigError(f"--epochs: {text!r}: expected a number of epochs ≥ 1, or one number per stage "
                          f"(e.g. 10,30)")
    return values


def scale_stages(stages: list[StageConfig], epochs: list[int]) -> list[StageConfig]:
    """The stages with their epochs (and fade-ins) changed as ``--epochs`` asks.

    Args:
        stages: the configured progressive stages (two or more, or one).
        epochs: ``[N]`` — scale to ``N`` epochs in total; or one count per stage.

    Returns:
        New :class:`StageConfig` objects; resolutions unchanged.

    Raises:
        ConfigError: as many counts as stages are needed, or ``N`` is smaller than the
            number of stages.
    """
    n = len(stages)
    if len(epochs) == n:
        counts = list(epochs)
    elif len(epochs) == 1:
        total = epochs[0]
        if total < n:
            raise ConfigError(f"--epochs: {total} is fewer than the config's {n} stages (each needs ≥ 1 epoch); "
                              f"give at least {n}, or --resolution R for one fixed-resolution stage")
        weights = [max(s.epochs, 0) for s in stages]
        if sum(weights) == 0:
            weights = [1] * n
        extra = total - n   # one epoch per stage first, the rest in proportion
        exact = [extra * w / sum(weights) for w in weights]
        counts = [1 + math.floor(x) for x in exact]
        order = sorted(range(n), key=lambda i: (exact[i] - math.floor(exact[i]), -i), reverse=True)
        for i in order[:total - sum(counts)]:
            counts[i] += 1
    else:
        raise ConfigError(f"--epochs: {len(epochs)} numbers for {n} stages; give one total or one per stage")
    out = []
    for s, e in zip(stages, counts):
        fade = round(s.fade_in_images * e / s.epochs) if s.epochs > 0 else s.fade_in_images
        out.append(dataclasses.replace(s, epochs=e, fade_in_images=fade))
    return out


def describe_stages(stages: list[StageConfig]) -> str:
    """``"32 px × 20 + 64 px × 20 epochs (fade-in 800 images)"``."""
    parts = []
    for s in stages:
        fade = f" (fade-in {s.fade_in_images} images)" if s.fade_in_images else ""
        parts.append(f"{s.resolution} px × {s.epochs}{fade}")
    return " + ".join(parts) + " epochs"


def stages_up_to(stages: list[StageConfig], resolution: int) -> list[StageConfig]:
    """The stages at or below ``resolution`` px (stages grow in resolution).

    Raises:
        OptionError: no stage is at or below ``resolution``.
    """
    kept = [s for s in stages if s.resolution <= resolution]
    if not kept:
        raise OptionError(f"--resolution {resolution}: no stage of this config is at or below "
                          f"{resolution} px ({describe_stages(stages)})")
    return kept


def apply_schedule_options(cfg: Config, epochs: str | None, resolution: int | None,
                           note: Callable[[str], None] = lambda message: None) -> Config:
    """A new ``cfg`` with ``keras-mammo train --epochs`` / ``--resolution`` applied (``cfg`` is not changed).

    On a progressive config ``--resolution R`` trains the stages up to ``R``
    (``train.max_resolution``; the stages are kept) and ``--epochs`` goes to those stages
    (:func:`scale_stages`); on a fixed-resolution config they set ``train.resolution`` and
    ``train.epochs``. Every change to the stages is announced through ``note``.

    Args:
        cfg: a validated config.
        epochs: ``"N"`` or ``"A,B,..."`` (:func:`parse_epochs`), or None.
        resolution: side in pixels, or None.
        note: called with one line per change.

    Raises:
        OptionError: no stage at or below ``resolution``, or several ``--epochs`` numbers
            for a fixed-resolution config.
        ConfigError: a bad ``--epochs`` value, a ``resolution`` that cannot be honoured
            (:func:`check_resolution`), or a result the config rejects.
    """
    counts = parse_epochs(epochs) if epochs is not None else None
    t = cfg.train
    kept = t.stages
    if resolution is not None:
        check_resolution(resolution, t.stages, prepared_size(cfg), cfg.data.prepared)
    if resolution is not None and t.stages:
        kept = stages_up_to(t.stages, resolution)
        if len(kept) < len(t.stages):
            note(f"--resolution {resolution}: training {describe_stages(kept)} only, not the config's "
                 f"{describe_stages(t.stages)}")
        t = dataclasses.replace(t, max_resolution=kept[-1].resolution)
    elif resolution is not None:
        t = dataclasses.replace(t, resolution=resolution)
    if counts is not None:
        if t.stages:   # the trained stages get the epochs; stages above --resolution stay as they are
            new = scale_stages(kept, counts)
            how = f"scaled to {counts[0]} epochs in total" if len(counts) == 1 and len(kept) > 1 else "set"
            note(f"--epochs {epochs}: stages {describe_stages(kept)} → {describe_stages(new)} ({how})")
            t = dataclasses.replace(t, stages=new + t.stages[len(kept):])
        else:
            if len(counts) != 1:
                raise OptionError(f"--epochs {epochs}: this config has one fixed resolution; give one number")
            t = dataclasses.replace(t, epochs=counts[0])
    if t is cfg.train:
        return cfg
    cfg = dataclasses.replace(cfg, train=t)
    validate(cfg)
    return cfg


def prepared_size(cfg: Config) -> int | None:
    """Side in pixels of the films a run of ``cfg`` trains on.

    Returns:
        ``size`` of the prepared dataset's ``dataset.json``; ``cfg.data.size`` when the
        dataset is not prepared yet (``train`` prepares it at that size); None when a
        prepared folder does not record its size.
    """
    prepared = Path(cfg.data.prepared)
    if not (prepared / "manifest.jsonl").is_file():
        return cfg.data.size
    path = prepared / "dataset.json"
    try:
        return int(json.loads(path.read_text())["size"]) if path.is_file() else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_resolution(resolution: int, stages: list[StageConfig], size: int | None, prepared: str = "",
                     option: str = "--resolution") -> None:
    """Refuse a training resolution that cannot be honoured, in one line naming ``option``.

    Args:
        resolution: the asked side in pixels.
        stages: the config's progressive stages (empty for a fixed-resolution config).
        size: the prepared films' side in pixels (:func:`prepared_size`), None if unknown.
        prepared: the prepared folder, named in the message.
        option: how the user gave it (``--resolution``, ``train.resolution``).

    Raises:
        ConfigError: not a power of two ≥ 4; above ``size`` (the films would be
            upscaled); or, on a progressive config, not one of its stages' resolutions.
    """
    head = f"{option} {resolution}" if option.startswith("-") else f"{option}: {resolution} px"
    if not is_power_of_two(resolution):
        low = 1 << max(2, int(resolution).bit_length() - 1) if resolution >= 4 else 4
        raise ConfigError(f"{head} is not a power of two ≥ 4 (each generator block doubles the side); use {low}"
                          + (f" or {low * 2}" if resolution > low else ""))
    if size and resolution > size:
        raise ConfigError(f"{head} is above the prepared size {size} px{' of ' + prepared if prepared else ''} "
                          f"(films would be upscaled); train at ≤ {size} px or preprocess with "
                          f"data.size ≥ {resolution} into another prepared folder")
    if stages and resolution not in [s.resolution for s in stages]:
        raise ConfigError(f"{head}: this progressive config has no {resolution} px stage "
                          f"({describe_stages(stages)}); give one of {', '.join(str(s.resolution) for s in stages)}")
