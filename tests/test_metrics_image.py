"""Per-image measures: PSNR/SSIM, nearest neighbours, breast histograms, tissue, memorization, losses."""
from __future__ import annotations

import numpy as np
import pytest

from keras_mammo.metrics.image_metrics import (
    PSNR_CAP_DB,
    compare_distributions,
    histogram_wasserstein,
    masked_histogram,
    nearest_neighbours,
    psnr_ssim,
    summarize,
    tissue_measures,
)
from keras_mammo.metrics.loss_summary import read_loss_csv, segment_phases, summarize_losses
from keras_mammo.metrics.memorization import downsample, memorization_summary, nearest_training


@pytest.fixture(scope="module")
def mias64(mias_dir):
    """48 MIAS films (24 patients) at 64 px, with their patient ids."""
    from keras_mammo.metrics.imagesets import load_image_set

    return load_image_set(mias_dir, size=64, limit=48)


# ------------------------------------------------------------------ PSNR / SSIM

def test_psnr_known_values_and_ssim_bounds():
    rng = np.random.default_rng(0)
    a = rng.random((3, 32, 32)) * 0.8
    b = a + 0.1                                   # MSE = 0.01 → PSNR = 10·log10(1 / 0.01) = 20 dB
    psnr, ssim = psnr_ssim(b, a)
    np.testing.assert_allclose(psnr, 20.0, atol=1e-9)
    assert ((ssim > 0.5) & (ssim < 1.0)).all()
    psnr_same, ssim_same = psnr_ssim(a, a)
    assert (psnr_same == PSNR_CAP_DB).all() and np.allclose(ssim_same, 1.0)
    noise = rng.random((3, 32, 32))
    _, ssim_noise = psnr_ssim(noise, a)
    assert (ssim_noise < 0.3).all()


def test_nearest_neighbours_match_brute_force():
    rng = np.random.default_rng(1)
    q, r = rng.standard_normal((7, 5)), rng.standard_normal((11, 5))
    idx, dist = nearest_neighbours(q, r)
    brute = np.linalg.norm(q[:, None] - r[None], axis=-1)
    np.testing.assert_array_equal(idx, brute.argmin(1))
    np.testing.assert_allclose(dist, brute.min(1), atol=1e-9)
    idx_self, _ = nearest_neighbours(r, r, exclude_self=True)
    assert (idx_self != np.arange(len(r))).all()


def test_summarize_percentiles():
    s = summarize(np.arange(101, dtype=float))
    assert (s["n"], s["mean"], s["median"], s["p5"], s["p95"]) == (101, 50.0, 50.0, 5.0, 95.0)
    assert summarize([np.nan])["n"] == 0


# ------------------------------------------------------------------ histograms and tissue

def test_histogram_wasserstein_is_the_grey_level_shift():
    rng = np.random.default_rng(2)
    img = rng.uniform(0.2, 0.6, (4, 64, 64))
    mask = np.ones_like(img, bool)
    h1 = masked_histogram(img, mask)
    h2 = masked_histogram(img + 0.1, mask)
    assert h1.sum() == pytest.approx(1.0)
    assert histogram_wasserstein(h1, h2) == pytest.approx(0.1, abs=2 / 256)
    assert histogram_wasserstein(h1, h1) == 0.0
    # Pixels outside the mask do not count.
    masked = img.copy()
    masked[:, :32] = 1.0
    half = np.zeros_like(mask)
    half[:, 32:] = True
    assert histogram_wasserstein(masked_histogram(masked, half), masked_histogram(img, half)) == 0.0


def test_tissue_measures_on_a_known_phantom():
    img = np.zeros((100, 100))
    mask = np.zeros((100, 100), bool)
    mask[:, :50] = True                   # breast: left half → area fraction 0.5
    img[:, :50] = 0.3
    img[:30, :50] = 0.8                   # dense tissue: 30 of 100 breast rows
    area, dense, thr = tissue_measures(img, mask)
    assert area == pytest.approx(0.5)
    assert dense == pytest.approx(0.3)
    assert 0.3 <= thr < 0.8
    assert np.isnan(tissue_measures(np.zeros((8, 8)), np.zeros((8, 8), bool))[1])


def test_compare_distributions():
    out = compare_distributions([0.1, 0.2, 0.3], [0.4, 0.5, 0.6])
    assert out["wasserstein1"] == pytest.approx(0.3)
    assert out["ks_statistic"] == pytest.approx(1.0)
    assert out["real"]["n"] == 3


def test_breast_measures_on_mias_are_plausible(mias64):
    from keras_mammo.metrics.imagesets import breast_masks

    masks = breast_masks(mias64)
    vals = np.array([tissue_measures(i, m)[:2] for i, m in zip(mias64.images, masks)])
    # MIAS films: the breast covers a fifth to two thirds of the 1024² film; Otsu splits it.
    assert 0.15 < np.median(vals[:, 0]) < 0.7
    assert 0.2 < np.median(vals[:, 1]) < 0.8
    h = masked_histogram(mias64.images, masks)
    assert h[:5].sum() < 0.01             # background (0) excluded by the mask


# ------------------------------------------------------------------ memorization

def test_memorization_flags_copies_not_real_films(mias64):
    import cv2

    a, b = np.arange(0, 24), np.arange(24, 48)          # patients 1–12 train, 13–24 held out
    train = downsample(mias64.images[a])
    rng = np.random.default_rng(3)
    copies = np.clip(mias64.images[a[:8]] + rng.normal(0, 0.03, (8, 64, 64)), 0, 1)
    blurred_copies = np.stack([cv2.GaussianBlur(x, (0, 0), 0.7) for x in mias64.images[a[8:16]]])
    held_out = nearest_training(downsample(mias64.images[b]), train)
    res = nearest_training(downsample(np.concatenate([copies, blurred_copies])), train)
    # Copies (noise or blur added) are flagged and point at their source film ...
    assert res["flagged"].all()
    np.testing.assert_array_equal(res["nearest"], np.arange(16))
    assert res["ratio"].max() < 0.4
    # ... real films never seen in training are not.
    assert not held_out["flagged"].any()
    assert held_out["ratio"].min() > 0.5 and np.median(held_out["ratio"]) > 0.7
    s = memorization_summary(res)
    assert s["n_flagged"] == 16 and s["n_training"] == len(a)


# ------------------------------------------------------------------ loss summary

def test_segment_phases_finds_mean_changes_and_forced_cuts():
    rng = np.random.default_rng(4)
    x = np.concatenate([np.full(100, 0.0), np.full(100, 1.0), np.full(100, 0.2)]) + rng.normal(0, 0.05, 300)
    phases = segment_phases(x, min_len=10)
    assert [(a, b) for a, b in phases] == [(0, 100), (100, 200), (200, 300)]
    flat = rng.normal(0, 0.05, 300)
    assert segment_phases(flat) == [(0, 300)]
    assert segment_phases(flat, forced=[150]) == [(0, 150), (150, 300)]


def test_summarize_losses_from_a_run_csv(tmp_path):
    rng = np.random.default_rng(5)
    steps = np.arange(1, 301)
    d = np.where(steps <= 150, 0.6, 0.3) + rng.normal(0, 0.01, 300)
    g = np.where(steps <= 150, 0.7, 1.5) + rng.normal(0, 0.01, 300)
    res = np.where(steps <= 200, 32, 64)
    lines = ["step,epoch,resolution,alpha,d_loss,g_loss"]
    lines += [f"{s},{(s - 1) // 10 + 1},{r},1.0,{a:.5f},{b:.5f}" for s, r, a, b in zip(steps, res, d, g)]
    lines[10] = "10,1,32,1.0,nan,0.7"
    path = tmp_path / "losses_steps.csv"
    path.write_text("\n".join(lines) + "\n")
    assert set(read_loss_csv(path)) >= {"step", "d_loss", "g_loss", "resolution"}
    out = summarize_losses(path)
    assert out["n_nonfinite"] == 1 and out["x"] == "step"
    starts = [p["start"] for p in out["phases"]]
    assert starts == [1, 151, 201]                        # balance change at 151, resolution change at 201
    assert out["phases"][0]["balance_mean"] == pytest.approx(0.1, abs=0.01)
    assert out["phases"][1]["balance_mean"] == pytest.approx(1.2, abs=0.01)
    assert out["phases"][2]["resolution"] == 64
    assert out["phases"][1]["d_loss_std"] == pytest.approx(0.01, rel=0.3)
