"""Config validation: every bad key or value names the key and the allowed values."""
from __future__ import annotations

import pytest

from keras_mammo.config import load_config
from keras_mammo.errors import ConfigError


@pytest.mark.parametrize("overrides, message", [
    ({"trian.epochs": 3}, "trian: unknown key; allowed keys: seed, run_dir, data, model, train, export"),
    ({"train.epoch": 3}, "train.epoch: unknown key; allowed keys in train: stages, resolution, epochs"),
    ({"train.strategy": "tpu"}, "train.strategy: 'tpu' is not allowed; allowed values: default, mirrored, multi_worker"),
    ({"train.batch_size": "many"}, "train.batch_size: expected an integer"),
    ({"data.size": 100}, "data.size: 100 is not a power of two"),
    ({"data.chest_wall": "up"}, "data.chest_wall: 'up' is not allowed; allowed values: left, right"),
    ({"model.name": "vae"}, "model.name: 'vae' is not a registered model; allowed values:"),
    ({"model.params": {"dropuot": 0.1}}, "model.params.dropuot: unknown key"),
    ({"train.stages": [{"resolution": 64, "epochs": 1}, {"resolution": 32, "epochs": 1}]},
     r"train.stages\[1\].resolution: stages must grow"),
])
def test_bad_config_names_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_bundled_configs_load():
    for name in ("quickstart", "thesis", "mias"):
        cfg = load_config(name)
        assert cfg.model.name == "thesis"
    thesis = load_config("thesis")
    assert [s.resolution for s in thesis.train.stages] == [64, 128]
    assert sum(s.epochs for s in thesis.train.stages) == 20000 and thesis.train.batch_size == 32


def test_cli_prints_one_line_error(tmp_path):
    from click.testing import CliRunner

    from cli.main import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  batch_size: [1, 2]\n")
    result = CliRunner().invoke(main, ["train", "--config", str(bad)])
    assert result.exit_code != 0 and "train.batch_size: expected an integer" in result.output
    assert "Traceback" not in result.output
