"""Speed features (issue 10): train.precision, the async step log, the faded-out branch skip."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from keras_mammo.config import load_config
from keras_mammo.errors import ConfigError


def _cfg(prepared, run_dir, **extra):
    overrides = {"data.prepared": str(prepared), "run_dir": str(run_dir), "seed": 3,
                 "train.resolution": 16, "train.epochs": 2, "train.batch_size": 4, "train.steps_per_epoch": 3,
                 "train.sample_count": 4, "train.tensorboard": False, "train.sample_every": 2,
                 "model.params": {"g_channels": [8, 8], "d_channels": [16, 8], "base_channels": 16}}
    overrides.update(extra)
    return load_config(None, overrides)


def test_precision_key_and_deprecated_alias():
    assert load_config(None, {}).train.precision == "auto"
    assert load_config(None, {"train.precision": "mixed_bfloat16"}).train.precision == "mixed_bfloat16"
    with pytest.warns(FutureWarning, match="train.mixed_precision is deprecated; use train.precision: mixed_float16"):
        cfg = load_config(None, {"train.mixed_precision": True})
    assert cfg.train.precision == "mixed_float16" and cfg.train.mixed_precision is None
    with pytest.raises(ConfigError, match="train.precision: 'bfloat16' is not allowed; allowed values: auto, "
                                          "float32, mixed_bfloat16, mixed_float16"):
        load_config(None, {"train.precision": "bfloat16"})


@pytest.mark.slow
def test_bfloat16_run_logs_every_step_and_restores_policy(mias_prepared, tmp_path):
    """mixed_bfloat16 trains (no loss scaling); every step is logged once, in order, with finite losses."""
    import keras

    from keras_mammo.training.run import load_run_model, train

    run = train(_cfg(mias_prepared, tmp_path / "bf", **{"train.precision": "mixed_bfloat16"}), progress=False)
    assert keras.mixed_precision.global_policy().name == "float32"
    rows = list(csv.DictReader(open(run / "losses_steps.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [int(r["epoch"]) for r in rows] == [1, 1, 1, 2, 2, 2]
    assert all(np.isfinite(float(r["d_loss"])) and np.isfinite(float(r["g_loss"])) for r in rows)
    epochs = list(csv.DictReader(open(run / "losses_epochs.csv")))
    assert [int(e["skipped_steps"]) for e in epochs] == [0, 0]
    # the epoch means are the means of the logged steps
    assert float(epochs[1]["d_loss"]) == pytest.approx(np.mean([float(r["d_loss"]) for r in rows[3:]]), abs=1e-5)
    # curve drawn with the sample grid at epoch 2 only
    assert (run / "loss_curve.png").is_file() and sorted(p.name for p in (run / "samples").glob("epoch_*")) == \
        ["epoch_000002.png"]
    model, _, state = load_run_model(run)
    assert int(model.step.numpy()) == 6 and state["epoch"] == 2


def test_faded_out_path_not_computed_at_alpha_one():
    """At α = 1 the old path is skipped (a NaN there does not reach the output); below 1 it is blended."""
    import keras
    import tensorflow as tf

    from keras_mammo.models.blocks import fade_in_lazy

    new = tf.ones((2, 4, 4, 1))
    old_fn = lambda: tf.fill((2, 4, 4, 1), float("nan"))  # noqa: E731
    alpha = keras.Variable(1.0, trainable=False)
    traced = tf.function(lambda: fade_in_lazy(alpha, old_fn, new))
    for out in (fade_in_lazy(1.0, old_fn, new), fade_in_lazy(tf.constant(1.0), old_fn, new), traced()):
        np.testing.assert_array_equal(out, new)
    alpha.assign(0.5)
    assert np.isnan(traced()).all()  # the same traced function blends while α < 1
    halves = fade_in_lazy(alpha, lambda: tf.zeros((2, 4, 4, 1)), new)
    np.testing.assert_allclose(halves, 0.5 * new)


def test_streamed_stage_gives_the_cached_batches(mias_prepared):
    """Above the cache budget films are streamed from disk and decoded per epoch: the same batches."""
    from keras_mammo.data.pipeline import StageArrays, StageFiles, fixed_batch, make_train_dataset, open_stage

    keys = ("breast_mask", "label")
    cached = open_stage(mias_prepared, 32, keys)
    streamed = open_stage(mias_prepared, 32, keys, cache_bytes=0)
    assert isinstance(cached, StageArrays) and isinstance(streamed, StageFiles) and streamed.size == cached.size
    a = list(make_train_dataset(cached, 4, 5, 2, 4, 3).as_numpy_iterator())
    b = list(make_train_dataset(streamed, 4, 5, 2, 4, 3).as_numpy_iterator())
    assert len(a) == len(b) == 6
    for x, y in zip(a, b):
        assert x["image"].shape == (4, 32, 32, 1) and set(x) == {"image", "breast_mask", "label"}
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    for k, v in fixed_batch(cached, 3).items():
        np.testing.assert_array_equal(v, fixed_batch(streamed, 3)[k])


@pytest.mark.parametrize("side", [37, 64, 256, 300, 1024])
def test_batched_tf_resize_is_the_clean_pillow_resize(side):
    """The batched TensorFlow resize equals the per-image Pillow float bicubic (≤ 0.01 of 255)."""
    from keras_mammo.metrics.inception import resize_299, resize_299_batch

    rng = np.random.default_rng(side)
    imgs = (rng.random((3, side, side + 3 * (side % 2), 1)) * 255).astype(np.float32)  # noise: worst case
    batched = resize_299_batch(imgs)
    assert batched.shape == (3, 299, 299, 1) and batched.dtype == np.float32
    for i in range(3):
        assert np.abs(batched[i, ..., 0] - resize_299(imgs[i, ..., 0])).max() <= 0.01


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_inference_upsample_conv_equals_layer_path(precision):
    """UpsampleConvBlock at inference (2×2 convs at low resolution, BN folded) = upsample → conv → BN → ReLU."""
    import keras

    from keras_mammo.models.blocks import UpsampleConvBlock

    keras.mixed_precision.set_global_policy(precision)
    try:
        block = UpsampleConvBlock(6, name="b")
        x = np.random.default_rng(0).standard_normal((10, 5, 7, 4)).astype(np.float32)
        block(x, training=True)  # build, and move the BN statistics away from (0, 1)
        rng = np.random.default_rng(1)
        for v, lo in ((block.bn.gamma, 0.5), (block.bn.beta, -1), (block.bn.moving_mean, -1), (block.bn.moving_variance, 0.2)):
            v.assign(lo + rng.random(v.shape).astype(np.float32))
        fused = np.asarray(block(x, training=False), np.float32)
        layered = np.asarray(block.act(block.bn(block.conv(block.up(x)), training=False)), np.float32)
        parts = np.concatenate([np.asarray(block(x[i:i + 3], training=False), np.float32) for i in range(0, 10, 3)])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert fused.shape == (10, 10, 14, 6) and layered.std() > 0.1
    np.testing.assert_array_equal(parts, fused)  # an image's result does not depend on its batch
    tol = 1e-5 if precision == "float32" else 5e-2
    np.testing.assert_allclose(fused, layered, atol=tol * np.abs(layered).max())


@pytest.mark.slow
def test_run_generation_is_traced_not_eager(mias_prepared, tmp_path):
    """iter_images on a run goes through GAN.generate_traced: traces do not grow with the batches."""
    from keras_mammo.generation.generate import iter_images
    from keras_mammo.models.gan import GAN
    from keras_mammo.training.run import train

    run = train(_cfg(mias_prepared, tmp_path / "r", **{"train.epochs": 1, "train.steps_per_epoch": 1}),
                progress=False)
    calls = []
    orig = GAN.generate_traced
    GAN.generate_traced = lambda self, *a: calls.append(self) or orig(self, *a)
    try:
        out = list(iter_images(run, 13, seed=2, batch_size=3))
    finally:
        GAN.generate_traced = orig
    assert [len(b) for _, b in out] == [3, 3, 3, 3, 1] and len(calls) == 5
    fns = list(calls[0]._generate_fns.values())
    assert len(fns) == 1 and fns[0].experimental_get_tracing_count() <= 2  # (3, d), then (None, d)
    whole = np.concatenate([b for _, b in iter_images(run, 13, seed=2, batch_size=13)])
    np.testing.assert_allclose(np.concatenate([b for _, b in out]), whole, atol=1e-6)


@pytest.mark.slow
def test_bfloat16_generation_from_a_run_and_an_export(mias_prepared, tmp_path):
    """generate/export --precision bfloat16: bfloat16 convolutions (the images move, slightly), float32 in and out,
    the global policy untouched; a SavedModel source refuses the flag."""
    import json

    import keras

    from keras_mammo.generation.export import export_model
    from keras_mammo.generation.generate import generate_images
    from keras_mammo.training.run import load_run_model, train

    run = train(_cfg(mias_prepared, tmp_path / "r", **{"train.epochs": 1, "train.precision": "float32"}),
                progress=False)
    fp32 = generate_images(run, 6, seed=4)
    np.testing.assert_array_equal(generate_images(run, 6, seed=4, precision="float32"), fp32)  # the run's own
    bf16 = generate_images(run, 6, seed=4, precision="bfloat16")
    assert keras.mixed_precision.global_policy().name == "float32"
    assert bf16.shape == fp32.shape == (6, 16, 16, 1) and bf16.dtype == np.float32
    assert 0 <= bf16.min() and bf16.max() <= 1 and fp32.std() > 1e-3
    diff = np.abs(bf16 - fp32).max()
    assert 0 < diff <= 0.02, diff           # bfloat16 really ran, and stayed close
    model, _, state = load_run_model(run, precision="bfloat16")
    assert state["precision"] == "bfloat16" and model.generator.compute_dtype == "bfloat16"
    assert model.generator.variable_dtype == "float32"
    with pytest.raises(ValueError, match="precision must be one of"):
        load_run_model(run, precision="float16")

    version = export_model(run, tmp_path / "saved", "m", 1, precision="bfloat16")
    assert json.loads((version / "assets.extra" / "keras_mammo.json").read_text())["precision"] == "bfloat16"
    served = generate_images(version, 6, seed=4)
    assert np.abs(served - bf16).max() <= 1.5 / 255       # the export computes what the run does, then rounds
    with pytest.raises(ValueError, match="applies to runs only"):
        generate_images(version, 2, precision="bfloat16")


@pytest.mark.slow
def test_auto_precision_by_cpu_flags_and_kept_by_a_resumed_run(mias_prepared, tmp_path, monkeypatch):
    """train.precision: auto → mixed_bfloat16 on a CPU with bfloat16 instructions, float32 elsewhere; the choice
    is recorded in config.yaml, a resumed run keeps it whatever the machine says, and generate/export default to it
    (so their images are those of in-training evaluation)."""
    import json

    from PIL import Image

    from keras_mammo.generation.export import export_model
    from keras_mammo.generation.generate import generate_images, write_images
    from keras_mammo import precision as prec
    from keras_mammo.training.run import load_run_config, load_run_model, train

    flags = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f {}\nbogomips\t: 4000\n"
    (tmp_path / "bf16").write_text(flags.format("avx512_bf16 amx_tile"))
    (tmp_path / "amx").write_text(flags.format("amx_bf16"))
    (tmp_path / "plain").write_text(flags.format("avx512_vnni"))
    assert prec.cpu_has_bfloat16(tmp_path / "bf16") and prec.cpu_has_bfloat16(tmp_path / "amx")
    assert not prec.cpu_has_bfloat16(tmp_path / "plain") and not prec.cpu_has_bfloat16(tmp_path / "missing")
    assert prec.auto_precision(tmp_path / "bf16") == "mixed_bfloat16"   # no GPU on the test machines
    assert prec.auto_precision(tmp_path / "plain") == "float32"
    assert prec.resolve_precision("float32", "mixed_bfloat16") == "float32"
    assert prec.resolve_precision("auto", "float32") == "float32"       # runs from before `auto` resume unchanged

    monkeypatch.setattr(prec, "cpu_has_bfloat16", lambda cpuinfo="": True)
    cfg = _cfg(mias_prepared, tmp_path / "r", **{"train.epochs": 1})
    assert cfg.train.precision == "auto"
    run = train(cfg, progress=False)
    assert load_run_config(run).train.precision == "mixed_bfloat16"
    model, _, state = load_run_model(run)
    assert state["precision"] == "bfloat16" and model.generator.compute_dtype == "bfloat16"
    own = generate_images(run, 4, seed=1)
    np.testing.assert_array_equal(own, generate_images(run, 4, seed=1, precision="bfloat16"))
    assert np.abs(own - generate_images(run, 4, seed=1, precision="float32")).max() > 0
    write_images(run, 2, tmp_path / "png", seed=1)
    assert Image.open(tmp_path / "png" / "synthetic_00000.png").text["Precision"] == "bfloat16"
    version = export_model(run, tmp_path / "saved", "m", 1)
    assert json.loads((version / "assets.extra" / "keras_mammo.json").read_text())["precision"] == "bfloat16"

    monkeypatch.setattr(prec, "cpu_has_bfloat16", lambda cpuinfo="": False)   # resumed on another machine
    train(_cfg(mias_prepared, tmp_path / "r", **{"train.epochs": 2}), progress=False)
    assert load_run_config(run).train.precision == "mixed_bfloat16"
    assert load_run_model(run)[2]["epoch"] == 2
    fresh = train(_cfg(mias_prepared, tmp_path / "new", **{"train.epochs": 1}), progress=False)
    assert load_run_config(fresh).train.precision == "float32"
