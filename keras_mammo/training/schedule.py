"""Changing the length of a progressive schedule without dropping its stages.

``keras-mammo train --epochs`` on a progressive config (Karras et al. 2018; Rahali 2025,
§3.5.1) keeps every stage and changes how long each one lasts:

* ``--epochs N`` scales the stages' epochs to ``N`` in total, in proportion to the
  configured ones (largest-remainder rounding, at least one epoch per stage);
* ``--epochs A,B,...`` sets each stage's epochs (one number per stage).

A stage's fade-in (``fade_in_images``) is scaled by the same factor as its epochs, so a
shortened stage still finishes fading in at the same share of the stage.
"""
from __future__ import annotations

import dataclasses
import math

from keras_mammo.config import StageConfig
from keras_mammo.errors import ConfigError


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
