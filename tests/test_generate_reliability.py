"""Generation and export under misuse: batches, a bound on -n, no overwriting, synthetic-image
text chunks, non-finite latents refused by the SavedModel, no absolute paths in its metadata
(keras_mammo.generation.generate, keras_mammo.generation.export)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from keras_mammo.errors import DataError

#: every test here uses the trained, exported ``tiny_run`` fixture
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(mias_prepared, tmp_path_factory):
    """A 2-epoch thesis run (16 → 32 px, one step per epoch) and its SavedModel."""
    from keras_mammo.config import load_config
    from keras_mammo.generation.export import export_model
    from keras_mammo.training.run import train

    root = tmp_path_factory.mktemp("gen")
    cfg = load_config(None, {
        "data.prepared": str(mias_prepared), "run_dir": str(root / "runs" / "tiny-run"), "seed": 3,
        "train.stages": [{"resolution": 16, "epochs": 1}, {"resolution": 32, "epochs": 1}],
        "train.batch_size": 4, "train.steps_per_epoch": 1, "train.sample_count": 4, "train.tensorboard": False,
        "model.params": {"g_channels": [16, 16, 8], "d_channels": [32, 16, 8], "base_channels": 32}})
    run = train(cfg, progress=False)
    saved = export_model(run, out_dir=root / "saved", name="tiny")
    return run, saved


def test_batches_give_the_same_images_as_one_pass(tiny_run):
    from keras_mammo.generation.generate import generate_images, iter_images

    run, saved = tiny_run
    for source in (run, saved):
        batches = list(iter_images(source, 10, seed=4, batch_size=3))
        assert [s for s, _ in batches] == [0, 3, 6, 9] and [len(b) for _, b in batches] == [3, 3, 3, 1]
        np.testing.assert_array_equal(np.concatenate([b for _, b in batches]),
                                      generate_images(source, 10, seed=4, batch_size=10))
    # the SavedModel's batches reproduce its one-call `generate` signature exactly
    import tensorflow as tf

    sig = tf.saved_model.load(str(saved)).signatures["generate"]
    whole = sig(count=tf.constant(10, tf.int32), seed=tf.constant(4, tf.int64))["images"].numpy() / 255.0
    np.testing.assert_array_equal(generate_images(saved, 10, seed=4, batch_size=3), whole.astype(np.float32))


def test_count_has_an_upper_bound(tiny_run):
    from click.testing import CliRunner

    from cli.main import main
    from keras_mammo.generation.generate import MAX_IMAGES, generate_images

    run, _ = tiny_run
    with pytest.raises(DataError, match=f"at most {MAX_IMAGES:,} images per call"):
        generate_images(run, MAX_IMAGES + 1)
    res = CliRunner().invoke(main, ["generate", "--run", str(run), "-n", "1000000000", "--out", str(run / "x")])
    assert res.exit_code != 0 and "at most 100,000 images per call" in res.output
    assert not (run / "x").exists()


def test_existing_outputs_are_not_overwritten_without_flag(tiny_run, tmp_path):
    from click.testing import CliRunner

    from cli.main import main
    from keras_mammo.data.io import read_png_text

    run, _ = tiny_run
    out = tmp_path / "out"
    args = ["generate", "--run", str(run), "-n", "3", "--out", str(out), "--seed", "5"]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert sorted(os.listdir(out)) == ["synthetic_00000.png", "synthetic_00001.png", "synthetic_00002.png",
                                       "synthetic_grid.png"]
    (out / "synthetic_00000.png").unlink()
    (out / "synthetic_00001.png").write_bytes(b"mine")
    (out / "synthetic_00002.png").unlink()
    again = CliRunner().invoke(main, args)  # only the grid and one image clash
    assert again.exit_code != 0 and "exists already" in again.output and "--overwrite" in again.output
    assert (out / "synthetic_00001.png").read_bytes() == b"mine" and not (out / "synthetic_00000.png").exists()
    assert CliRunner().invoke(main, args + ["--overwrite"]).exit_code == 0
    text = read_png_text(out / "synthetic_00001.png")
    assert text["Synthetic"] == "true" and "not an image of a real patient" in text["Description"]
    assert (text["Model"], text["Run"], text["Seed"], text["Image index"]) == ("thesis", "tiny-run", "5", "1")
    assert read_png_text(out / "synthetic_grid.png")["Synthetic"] == "true"


def test_saved_model_refuses_non_finite_latents_and_bad_counts(tiny_run):
    import tensorflow as tf

    _, saved = tiny_run
    loaded = tf.saved_model.load(str(saved))
    fn = loaded.signatures["serving_default"]
    good = np.zeros((2, 128), np.float32)
    assert fn(latent=tf.constant(good))["images"].shape == (2, 32, 32, 1)
    for bad in (np.nan, np.inf, -np.inf):
        z = good.copy()
        z[1, 7] = bad
        with pytest.raises(tf.errors.InvalidArgumentError, match="latent: contains NaN or Inf"):
            fn(latent=tf.constant(z))
    gen = loaded.signatures["generate"]
    for count in (0, 100_001):
        with pytest.raises(tf.errors.InvalidArgumentError, match="count: "):
            gen(count=tf.constant(count, tf.int32), seed=tf.constant(1, tf.int64))


def test_saved_model_metadata_holds_no_absolute_path(tiny_run, mias_prepared):
    from keras_mammo.utility.generated import _run_dir_of

    run, saved = tiny_run
    meta = json.loads((saved / "assets.extra" / "keras_mammo.json").read_text())
    text = json.dumps(meta)
    assert str(run.parent) not in text and str(saved.parent) not in text
    assert not any(isinstance(v, str) and v.startswith("/") for v in meta.values())
    assert meta["run"] == "tiny-run"
    assert _run_dir_of(saved.parent) == run.resolve()  # provenance still finds the run
