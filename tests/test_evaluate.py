"""``keras-mammo evaluate`` end to end on a small prepared MIAS dataset."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from keras_mammo.metrics import inception as inc


@pytest.fixture(scope="module")
def fid_ready():
    ok, reason = inc.fid_weights_status()
    if not ok:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def synthetic_dir(mias_prepared, tmp_path_factory):
    """10 'synthetic' images: 6 blurred prepared films and 4 noise images, 64 px PNGs."""
    import cv2

    from keras_mammo.data.io import write_png
    from keras_mammo.metrics.imagesets import load_image_set

    real = load_image_set(mias_prepared)
    out = tmp_path_factory.mktemp("synthetic")
    rng = np.random.default_rng(0)
    for i in range(6):
        write_png(out / f"synthetic_{i:05d}.png", cv2.GaussianBlur(real.images[i], (0, 0), 3), bits=16)
    for i in range(6, 10):
        write_png(out / f"synthetic_{i:05d}.png", rng.random((64, 64)), bits=8)
    write_png(out / "synthetic_grid.png", np.zeros((200, 200)), bits=8)      # skipped: a sample grid
    return out


def _main():
    from cli.main import main

    return main


def test_cli_writes_every_metric_with_n_and_floor(fid_ready, mias_prepared, synthetic_dir, tmp_path):
    out = tmp_path / "report"
    res = CliRunner().invoke(_main(), ["evaluate", "--real", str(mias_prepared), "--synthetic", str(synthetic_dir),
                                       "--out", str(out), "--no-cache", "--splits", "2", "--kid-subsets", "20"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    n_real = m["real"]["n"]
    assert n_real >= 12 and m["synthetic"]["n"] == 10 and m["evaluation_size_px"] == 64
    assert m["fid"]["full"]["n_real"] == n_real and m["fid"]["full"]["n_synthetic"] == 10
    fm, km = m["fid"]["matched"], m["kid"]["matched"]
    assert fm["n_per_side"] == km["n_per_side"] <= n_real // 2 and fm["splits"] == 2
    assert len(fm["real_vs_real_floor"]["values"]) == 2
    # Blur and noise are far from real films; two halves of the real set are not.
    assert fm["synthetic_vs_real_half"]["mean"] > 1.5 * fm["real_vs_real_floor"]["mean"]
    assert km["synthetic_vs_real_half"]["mean"] > km["real_vs_real_floor"]["mean"] + 0.05
    for space in ("nearest_in_feature_space", "nearest_in_pixel_space"):
        block = m["psnr_ssim"]["synthetic_vs_nearest_real"][space]
        assert block["psnr_db"]["n"] == 10 and {"mean", "median", "p5", "p95"} <= set(block["ssim"])
        assert space in m["psnr_ssim"]["real_vs_real_floor"]
    assert m["histogram"]["wasserstein1"] > m["histogram"]["real_vs_real_floor_wasserstein1"]
    assert {"wasserstein1", "ks_statistic", "real_vs_real_floor"} <= set(m["tissue"]["dense_fraction"])
    assert m["memorization"]["n_synthetic"] == 10 and "real_vs_real_floor" in m["memorization"]
    assert any("2000" in w for w in m["warnings"])
    assert m["feature_network"]["resize_filter"] == inc.RESIZE_FILTER
    for rel in m["figures"].values():
        assert (out / rel).stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "real vs real (floor)" in report and "figures/samples.png" in report
    assert "FID" in res.output and "floor" in res.output


def test_feature_cache_and_html_report(fid_ready, mias_prepared, synthetic_dir, tmp_path):
    from keras_mammo.metrics.evaluate import evaluate_paths

    kw = dict(cache_dir=tmp_path / "cache", splits=1, kid_subsets=10, progress=False)
    with pytest.warns(UserWarning, match="biased"):
        first = evaluate_paths(mias_prepared, synthetic_dir, tmp_path / "a", **kw)
    with pytest.warns(UserWarning, match="biased"):
        second = evaluate_paths(mias_prepared, synthetic_dir, tmp_path / "b", report_format="html", **kw)
    assert first["feature_network"]["features_from_cache"] == {"real": False, "synthetic": False}
    assert second["feature_network"]["features_from_cache"] == {"real": True, "synthetic": True}
    assert len(list((tmp_path / "cache" / "features").glob("*.npz"))) == 2
    assert second["fid"]["full"]["value"] == pytest.approx(first["fid"]["full"]["value"], rel=1e-12)
    with pytest.warns(UserWarning, match="biased"):   # bfloat16 features: cached apart, FID close to float32
        fast = evaluate_paths(mias_prepared, synthetic_dir, tmp_path / "c", fid_precision="bfloat16", **kw)
    assert fast["feature_network"]["features_from_cache"] == {"real": False, "synthetic": False}
    assert fast["feature_network"]["precision"] == "bfloat16" and first["feature_network"]["precision"] == "float32"
    assert len(list((tmp_path / "cache" / "features").glob("*.npz"))) == 4
    # 1.9 % apart here: 10 images make FID's matrix square root touchy (0.06 % at 161 per side, docs/benchmarks.md)
    assert fast["fid"]["full"]["value"] == pytest.approx(first["fid"]["full"]["value"], rel=0.05)
    assert fast["fid"]["full"]["value"] != first["fid"]["full"]["value"]
    assert "compute precision: bfloat16" in (tmp_path / "c" / "report.md").read_text()
    html = (tmp_path / "b" / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<table>" in html and 'src="figures/histograms.png"' in html


def test_fewer_than_two_images_is_refused(fid_ready, mias_prepared, tmp_path):
    from keras_mammo.data.io import write_png

    one = tmp_path / "one"
    write_png(one / "synthetic_00000.png", np.full((64, 64), 0.5), bits=8)
    res = CliRunner().invoke(_main(), ["evaluate", "--real", str(mias_prepared), "--synthetic", str(one),
                                       "--out", str(tmp_path / "r"), "--no-cache"])
    assert res.exit_code != 0
    assert "at least 2 images per side" in res.output and "Traceback" not in res.output


def test_run_generates_and_summarizes_losses(fid_ready, mias_prepared, tmp_path, monkeypatch):
    """``--run``: real set from the run's config, images from generate_images, losses from its CSV."""
    import keras_mammo.generation.generate
    from keras_mammo.metrics.imagesets import load_image_set

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(f"data:\n  prepared: {mias_prepared}\n  size: 64\n")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "best.npz").write_bytes(b"")   # what generate_images uses by default
    rng = np.random.default_rng(1)
    rows = ["step,epoch,resolution,alpha,d_loss,g_loss"]
    rows += [f"{s},{s // 10 + 1},{32 if s <= 60 else 64},1.0,{0.6 + 0.01 * rng.standard_normal():.4f},"
             f"{(0.7 if s <= 60 else 1.1) + 0.01 * rng.standard_normal():.4f}" for s in range(1, 121)]
    (run / "losses_steps.csv").write_text("\n".join(rows) + "\n")
    real = load_image_set(mias_prepared).images
    calls = {}

    def fake_generate(source, n, seed=0, checkpoint=None, batch_size=64):
        calls.update(source=str(source), n=n, seed=seed)
        return np.clip(real[:n, ..., None][::-1] * 0.9, 0, 1).astype(np.float32)

    monkeypatch.setattr(keras_mammo.generation.generate, "generate_images", fake_generate)
    out = tmp_path / "rep"
    res = CliRunner().invoke(_main(), ["evaluate", "--run", str(run), "-n", "8", "--seed", "5", "--out", str(out),
                                       "--no-cache", "--splits", "1", "--kid-subsets", "10"])
    assert res.exit_code == 0, res.output
    assert calls == {"source": str(run), "n": 8, "seed": 5}
    m = json.loads((out / "metrics.json").read_text())
    assert m["generation"]["n"] == 8 and m["synthetic"]["n"] == 8
    assert m["generation"]["checkpoint"] == "best" and "checkpoint=best" in m["synthetic"]["source"]
    assert m["real"]["source"] == str(mias_prepared)
    phases = m["losses"]["phases"]
    assert [p["resolution"] for p in phases] == [32, 64] and phases[1]["start"] == 61
    assert phases[1]["g_loss_mean"] == pytest.approx(1.1, abs=0.01)
    assert (out / m["figures"]["losses"]).is_file()
