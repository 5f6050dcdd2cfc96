"""Pictures people would rather look at than read: sample grids and loss curves."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from keras_mammo.data.io import write_png
from keras_mammo.utils import atomic_path


def image_grid(images: np.ndarray, ncols: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile ``(N, H, W)`` or ``(N, H, W, 1)`` images in ``[0, 1]`` into one ``(H', W')`` array.

    ``ncols`` defaults to ``ceil(sqrt(N))``; tiles are separated by ``pad`` white pixels.
    """
    imgs = np.asarray(images, np.float32)
    if imgs.ndim == 4:
        imgs = imgs[..., 0]
    n, h, w = imgs.shape
    ncols = ncols or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncols))
    grid = np.ones((nrows * (h + pad) + pad, ncols * (w + pad) + pad), np.float32)
    for i in range(n):
        r, c = divmod(i, ncols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = imgs[i]
    return np.clip(grid, 0.0, 1.0)


def save_image(path: str | Path, image01: np.ndarray, bits: int = 8) -> Path:
    """Write a ``[0, 1]`` greyscale array as PNG atomically; returns the path."""

    write_png(path, image01, bits=bits)
    return Path(path)


def plot_loss_curve(steps: dict, epochs: dict, path: str | Path, title: str = "GAN losses",
                    stage_starts: list[tuple[int, int]] | None = None) -> Path:
    """Loss curve PNG in the style of Rahali 2025, Figure 4.1.

    Args:
        steps: ``{"step": [...], "d_loss": [...], "g_loss": [...]}`` per training step.
        epochs: ``{"step_end": [...], "d_loss": [...], "g_loss": [...]}`` epoch means, placed
            at the last step of each epoch.
        path: output PNG.
        stage_starts: ``[(step, resolution), ...]`` drawn as vertical lines.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    colors = {"d_loss": "tab:red", "g_loss": "tab:blue"}
    labels = {"d_loss": "discriminator", "g_loss": "generator"}
    # every logged loss: d_loss/g_loss for GANs, loss for the U-Net segmenter, r1, ...
    keys = sorted(k for k in steps if k.endswith("loss"))
    for i, key in enumerate(keys):
        colors.setdefault(key, f"C{i + 2}")
        labels.setdefault(key, key)
    for key in keys:
        if steps.get(key):
            ax.plot(steps["step"], steps[key], color=colors[key], alpha=0.25, linewidth=0.8)
        if epochs.get(key):
            ax.plot(epochs["step_end"], epochs[key], color=colors[key], linewidth=2, label=f"{labels[key]} (epoch mean)")
    for step, res in stage_starts or []:
        ax.axvline(step, color="grey", linestyle="--", linewidth=0.8)
        ax.text(step, ax.get_ylim()[1], f" {res}px", va="top", fontsize=8, color="grey")
    ax.set_xlabel("generator step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
