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


def test_exports_and_images_made_elsewhere_hold_no_machine_path(tiny_run, tmp_path, tmp_path_factory):
    """Export to a folder unrelated to the run, generate PNG and DICOM from both; no output names
    the machine's paths (issue 24, item 4). Exporting next to the run hid a climbing ``run_dir``."""
    from keras_mammo.generation.export import export_model
    from keras_mammo.savedmodel import find_run, run_fingerprint
    from keras_mammo.generation.generate import write_images
    from keras_mammo.utility.generated import _run_dir_of

    run, near = tiny_run
    elsewhere = tmp_path / "share" / "models"  # another pytest tmp folder: no common parent below the base temp
    saved = export_model(run, out_dir=elsewhere, name="shared")
    write_images(saved, 2, tmp_path / "png", seed=1)
    write_images(saved, 2, tmp_path / "dcm", seed=1, fmt="dicom")
    write_images(run, 2, tmp_path / "run-png", seed=1)
    write_images(run, 2, tmp_path / "run-dcm", seed=1, fmt="dicom")
    outputs = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(outputs) > 12
    needles = {str(run), str(run.parent), str(run.resolve()), str(tmp_path), os.path.realpath(tmp_path),
               str(tmp_path_factory.getbasetemp()), str(elsewhere), os.getcwd(), os.path.expanduser("~"), "/work/",
               "/tmp/"}
    found = [(n, p.relative_to(tmp_path)) for p in outputs for n in needles if n.encode() in p.read_bytes()]
    assert found == []
    texts = [p for p in outputs if p.suffix in (".json", ".txt", ".yaml", ".csv", ".dcm", ".png")]
    assert [p.relative_to(tmp_path) for p in texts if b"../" in p.read_bytes()] == []
    meta = json.loads((saved / "assets.extra" / "keras_mammo.json").read_text())
    assert meta["run"] == "tiny-run" and meta["run_fingerprint"] == run_fingerprint(run) and "run_dir" not in meta
    assert not any(isinstance(v, str) and ("/" in v or "\\" in v) for v in meta.values())
    # provenance still finds the run from an export beside it (the default layout) and checks it is that run
    assert _run_dir_of(near.parent) == run.resolve()
    assert find_run(saved, meta) is None and find_run(saved, meta, extra_roots=(run.parent,)) == run.resolve()
    assert find_run(saved, {**meta, "run_fingerprint": "0" * 16}, extra_roots=(run.parent,)) is None