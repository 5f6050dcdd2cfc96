"""Figures of the evaluation report (matplotlib, Agg backend, PNG)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_mammo.data.viz import image_grid
from keras_mammo.utils import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _plt()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def sample_grids(real: np.ndarray, synthetic: np.ndarray, path: Path, n: int = 16) -> Path:
    """Real and synthetic sample grids side by side. Images: ``(N, S, S)`` in [0, 1]."""

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.4), dpi=100)
    for ax, imgs, title in ((axes[0], real, "real"), (axes[1], synthetic, "synthetic")):
        k = min(n, len(imgs))
        ax.imshow(image_grid(imgs[:k]), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{title} ({k} of {len(imgs)})")
        ax.axis("off")
    return _save(fig, path)


def histograms(h_real: np.ndarray, h_synth: np.ndarray, path: Path, w1: float) -> Path:
    """Pooled breast grey-level histograms (probability per bin over [0, 1])."""
    plt = _plt()
    centers = (np.arange(len(h_real)) + 0.5) / len(h_real)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(centers, h_real, color="tab:blue", label="real")
    ax.plot(centers, h_synth, color="tab:orange", label="synthetic")
    ax.set_xlabel("grey level inside the breast (0 = black, 1 = white)")
    ax.set_ylabel("fraction of breast pixels per bin")
    ax.set_title(f"Grey-level histograms (Wasserstein-1 = {w1:.4f})")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def tissue(real: dict, synth: dict, path: Path) -> Path:
    """Distributions of breast-area and dense-tissue fractions. ``{"area": (N,), "dense": (N,)}``."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for ax, key, label in ((axes[0], "area", "breast-area fraction"), (axes[1], "dense", "dense-tissue fraction")):
        r = np.asarray(real[key], float)
        s = np.asarray(synth[key], float)
        r, s = r[np.isfinite(r)], s[np.isfinite(s)]
        bins = np.linspace(0, 1, 26)
        ax.hist(r, bins=bins, alpha=0.5, density=True, label=f"real (N={r.size})", color="tab:blue")
        ax.hist(s, bins=bins, alpha=0.5, density=True, label=f"synthetic (N={s.size})", color="tab:orange")
        ax.set_xlabel(label)
        ax.set_ylabel("density")
        ax.legend()
    return _save(fig, path)


def nearest_pairs(synthetic: np.ndarray, real: np.ndarray, order: np.ndarray, nearest: np.ndarray,
                  ratio: np.ndarray, path: Path, k: int = 8, synthetic_ids=None, real_ids=None) -> Path:
    """The ``k`` synthetic images closest to a training image, each above its nearest real image.

    ``order`` lists synthetic indices by increasing ``ratio``; ``nearest[i]`` indexes ``real``.
    """
    plt = _plt()
    k = min(k, len(order))
    fig, axes = plt.subplots(2, max(k, 1), figsize=(2 * max(k, 1), 4.4), dpi=100, squeeze=False)
    for j in range(k):
        i = order[j]
        axes[0, j].imshow(synthetic[i], cmap="gray", vmin=0, vmax=1)
        s_name = synthetic_ids[i] if synthetic_ids is not None else f"#{i}"
        r_name = real_ids[nearest[i]] if real_ids is not None else f"#{nearest[i]}"
        axes[0, j].set_title(f"{s_name}\nratio {ratio[i]:.2f}", fontsize=7)
        axes[1, j].imshow(real[nearest[i]], cmap="gray", vmin=0, vmax=1)
        axes[1, j].set_title(f"nearest: {r_name}", fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    return _save(fig, path)


def loss_curve(cols: dict, phases: list[dict], path: Path) -> Path:
    """d_loss and g_loss against steps, with the phases of G/D balance shaded."""
    plt = _plt()
    x = np.asarray(cols.get("step", cols.get("epoch", np.arange(len(cols["d_loss"])))), float)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.plot(x, cols["d_loss"], color="tab:red", linewidth=0.8, label="discriminator")
    ax.plot(x, cols["g_loss"], color="tab:blue", linewidth=0.8, label="generator")
    for p in phases:
        if p["index"] % 2:
            ax.axvspan(p["start"], p["end"], color="grey", alpha=0.12)
        ax.text(p["start"], 1.0, f" P{p['index'] + 1}", transform=ax.get_xaxis_transform(), va="top", fontsize=8)
    ax.set_xlabel("step" if "step" in cols else "epoch")
    ax.set_ylabel("loss")
    ax.set_title("Losses and phases of G/D balance")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def metric_vs_floor(rows: list[tuple[str, float, float]], path: Path) -> Path:
    """Bar chart: each metric for synthetic vs real and its real-vs-real floor."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(rows), figsize=(3.2 * len(rows), 3.4), dpi=100, squeeze=False)
    for ax, (name, synth, floor) in zip(axes[0], rows):
        ax.bar([0, 1], [synth, floor], color=["tab:orange", "tab:blue"])
        ax.set_xticks([0, 1], ["synthetic\nvs real", "real vs real\n(floor)"])
        ax.set_title(name)
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
