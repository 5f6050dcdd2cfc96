"""Config validation: every bad key or value names the key and the allowed values."""
from __future__ import annotations

import dataclasses

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


def test_bad_model_params_without_tensorflow():
    """Validating a config, bad ``model.params`` included, never imports TensorFlow (issue 13, item 11)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from keras_mammo.config import load_config\n"
        "from keras_mammo.errors import ConfigError\n"
        "load_config('quickstart', {'model.name': 'fastgan', 'model.params.ngf': 8})\n"
        "try:\n"
        "    load_config('quickstart', {'model.params.bogus': 1})\n"
        "except ConfigError as e:\n"
        "    print(e)\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == ("model.params.bogus: unknown key; allowed keys in model.params: base_resolution, "
                        "base_channels, g_channels, d_channels, dropout")
    assert lines[1] == "[]", out.stdout


def test_declared_params_match_the_models():
    """The dataclasses read from the model modules' source equal the real ones (fields, types, defaults, choices)."""
    import dataclasses
    import typing

    from keras_mammo.models import catalog, registry

    parsed = {name: decl for mod in catalog.MODEL_MODULES for name, decl in catalog._parse(mod).items()}
    assert set(parsed) == set(registry.available_models())  # imports every model (TensorFlow)
    for name, decl in parsed.items():
        real = registry._BUILDERS[name][1]
        assert decl.summary == registry._BUILDERS[name][2]
        if real is None:
            assert decl.params is None and decl.params_name is None
            continue
        assert decl.params is not None and decl.params is not real, name  # read, not imported
        fields = [(f.name, f.default, f.default_factory() if f.default_factory is not dataclasses.MISSING else None,
                   dict(f.metadata)) for f in dataclasses.fields(decl.params)]
        want = [(f.name, f.default, f.default_factory() if f.default_factory is not dataclasses.MISSING else None,
                 dict(f.metadata)) for f in dataclasses.fields(real)]
        assert fields == want, name
        assert typing.get_type_hints(decl.params) == typing.get_type_hints(real), name


def test_undeclarable_params_fall_back_to_the_module():
    """A params dataclass that needs its module (a default from a module constant) is not guessed."""
    import ast

    from keras_mammo.models import catalog

    src = ("import dataclasses\nWIDTH = 4\n@dataclasses.dataclass\nclass P:\n    a: int = 1\n"
           "    def check(self):\n        return WIDTH\n@dataclasses.dataclass\nclass Q:\n    b: int = WIDTH\n")
    tree = ast.parse(src)
    p = catalog._params_class(tree, "P", "<test>", "test_module")
    assert [f.name for f in dataclasses.fields(p)] == ["a"] and p().a == 1
    assert catalog._params_class(tree, "Q", "<test>", "test_module") is None
    assert catalog._params_class(tree, "R", "<test>", "test_module") is None


def test_resolve_run_config_reads_the_run_once_and_returns_a_new_config(tmp_path, monkeypatch):
    """train.precision: auto → the machine's choice for a new run, the recorded one for a resumed
    run; the caller's config is never changed (issue 23)."""
    from keras_mammo import precision
    from keras_mammo.config import dump_config, resolve_run_config

    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda cpuinfo="": True)
    cfg = load_config("quickstart", {"run_dir": str(tmp_path / "r")})
    assert cfg.train.precision == "auto"
    new, previous, text = resolve_run_config(cfg, tmp_path / "r")          # a new run
    assert (new.train.precision, previous, text) == ("mixed_bfloat16", None, None)
    assert cfg.train.precision == "auto" and new is not cfg

    (tmp_path / "r").mkdir()
    recorded = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision="float32"))
    (tmp_path / "r" / "config.yaml").write_text(dump_config(recorded))
    new, previous, text = resolve_run_config(cfg, tmp_path / "r")          # resumed on a bfloat16 machine
    assert new.train.precision == "float32" and previous.train.precision == "float32"
    assert text == dump_config(recorded) and cfg.train.precision == "auto"
    forced = load_config("quickstart", {"run_dir": str(tmp_path / "r"), "train.precision": "mixed_bfloat16"})
    assert resolve_run_config(forced, tmp_path / "r").config.train.precision == "mixed_bfloat16"
