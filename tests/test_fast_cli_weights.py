"""``keras-mammo weights info`` and ``fetch-fid`` on an empty and on the real cache (no conversion run:
that is ``test_inception_port.py``)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner


def test_info_on_an_empty_cache_says_how_to_fill_it(tmp_path, monkeypatch):
    from cli.weights import weights

    monkeypatch.setenv("KERAS_MAMMO_CACHE", str(tmp_path / "cache"))
    res = CliRunner().invoke(weights, ["info"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"not cached ({tmp_path / 'cache' / 'fid_inception'}")
    assert "run: keras-mammo weights fetch-fid" in res.output
    assert not (tmp_path / "cache").exists()                     # asking creates nothing


def test_info_and_fetch_on_the_filled_cache_check_the_sha256(tmp_path, monkeypatch):
    from cli.weights import weights
    from keras_mammo.metrics import inception as inc

    if inc.weights_info() is None:
        pytest.skip("FID Inception weights not converted here (keras-mammo weights fetch-fid)")
    res = CliRunner().invoke(weights, ["info"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["sha256_ok"] is True and info["sha256"] == inc.sha256_file(inc.weights_path())
    again = CliRunner().invoke(weights, ["fetch-fid"])             # valid weights: nothing converted again
    assert again.exit_code == 0 and again.output.startswith(f"already cached: {inc.weights_path()}")
    # a copy whose bytes differ from the recorded sha256 is reported as such
    cache = tmp_path / "cache"
    copy = inc.weights_path(cache)
    copy.parent.mkdir(parents=True)
    copy.write_bytes(b"not the weights")
    sidecar = inc.weights_path().with_name(inc.weights_path().name + ".json")     # sha256, max abs diff, …
    (copy.parent / sidecar.name).write_text(sidecar.read_text())
    monkeypatch.setenv("KERAS_MAMMO_CACHE", str(cache))
    bad = CliRunner().invoke(weights, ["info"])
    assert bad.exit_code == 0 and json.loads(bad.output)["sha256_ok"] is False
