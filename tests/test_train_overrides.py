"""``train`` refuses or states every override it cannot honour (issue 24, deliverable 5),
and every run end leaves what its closing line names (issue 24, item 8).

The refusals happen before TensorFlow trains anything, so they are CliRunner calls of a
second or two on the MIAS films prepared at 64 px."""
from __future__ import annotations

import json
import os
import signal

import keras
import pytest
import yaml
from click.testing import CliRunner

from cli.main import main


#: keeps a wrongly accepted override from training long (it then fails on the assertions, quickly)
SHORT = ("--epochs", "2", "--set", "train.steps_per_epoch=1", "--set", "train.tensorboard=false", "-q")


def _train(*args):
    res = CliRunner().invoke(main, ["train", *args])
    return res.exit_code, res.output


def _error_line(output: str) -> str:
    lines = [x for x in output.splitlines() if x.startswith("Error:")]
    assert len(lines) == 1, output
    return lines[0]


@pytest.mark.parametrize("config", ["quickstart", "dcgan"])
def test_resolution_above_the_prepared_size_is_refused_on_any_config(mias_prepared, tmp_path, config):
    """quickstart is progressive (32 → 64 px), dcgan has one fixed resolution: on 64 px
    films --resolution 256 was trained silently as 32 → 64 px on the first."""
    code, out = _train("--config", config, "--prepared", str(mias_prepared), "--run", str(tmp_path / "r"),
                       "--resolution", "256", *SHORT)
    assert code != 0
    line = _error_line(out)
    assert "--resolution 256 is above the prepared size 64 px" in line and str(mias_prepared) in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("config", ["quickstart", "dcgan"])
def test_resolution_not_a_power_of_two_is_refused_in_one_line(mias_prepared, tmp_path, config):
    """--resolution 100 trained at 64 px with a garbled note ("training the stages up to 100 px only")."""
    code, out = _train("--config", config, "--prepared", str(mias_prepared), "--run", str(tmp_path / "r"),
                       "--resolution", "100", *SHORT)
    assert code != 0
    assert _error_line(out) == ("Error: --resolution 100 is not a power of two ≥ 4 (each generator block "
                                "doubles the side); use 64 or 128")
    assert "stages up to" not in out and not (tmp_path / "r").exists()


def test_resolution_between_stages_is_refused(mias_prepared, tmp_path):
    cfg = tmp_path / "three.yaml"
    cfg.write_text(yaml.safe_dump({"train": {"stages": [{"resolution": 16, "epochs": 1},
                                                        {"resolution": 64, "epochs": 1}]}}))
    code, out = _train("--config", str(cfg), "--prepared", str(mias_prepared), "--run", str(tmp_path / "r"),
                       "--resolution", "32", *SHORT)
    assert code != 0
    assert "--resolution 32: this progressive config has no 32 px stage" in _error_line(out)
    assert "give one of 16, 64" in out


def test_resolution_on_a_stage_says_which_stages_train(mias_prepared):
    from keras_mammo.config import load_config
    from keras_mammo.training.schedule import apply_schedule_options

    notes = []
    cfg = load_config("quickstart", {"data.prepared": str(mias_prepared)})
    out = apply_schedule_options(cfg, None, 32, note=notes.append)
    assert [s.resolution for s in out.train.schedule()] == [32]
    assert notes == ["--resolution 32: training 32 px × 20 epochs only, not the config's "
                     "32 px × 20 + 64 px × 20 (fade-in 800 images) epochs"]


@pytest.mark.parametrize("key, value, option", [("train.epochs", "3", "--epochs"),
                                                 ("train.resolution", "32", "--resolution")])
def test_set_keys_a_progressive_config_ignores_are_refused(mias_prepared, tmp_path, key, value, option):
    code, out = _train("--config", "quickstart", "--prepared", str(mias_prepared), "--run", str(tmp_path / "r"),
                       "--set", f"{key}={value}", *SHORT)
    assert code != 0
    line = _error_line(out)
    assert f"--set {key}={value}: this progressive config ignores {key}" in line and option in line


def test_set_unknown_key_is_refused(mias_prepared, tmp_path):
    code, out = _train("--config", "quickstart", "--prepared", str(mias_prepared), "--set", "train.epoch=3")
    assert code != 0 and "train.epoch: unknown key" in _error_line(out)


def test_batch_size_above_the_images_is_refused(mias_prepared, tmp_path):
    code, out = _train("--config", "dcgan", "--prepared", str(mias_prepared), "--run", str(tmp_path / "r"),
                       "--resolution", "16", "--epochs", "1", "--batch-size", "999", "-q")
    assert code != 0
    assert "train.batch_size: 999 is larger than the" in _error_line(out)


def _tiny(tmp_path, mias_prepared, **train):
    cfg = {"run_dir": str(tmp_path / "run"), "data": {"prepared": str(mias_prepared)},
           "model": {"name": "thesis", "params": {"base_channels": 64, "g_channels": [32, 32, 16],
                                                  "d_channels": [64, 32, 16]}},
           "train": {"resolution": 16, "epochs": 3, "batch_size": 4, "steps_per_epoch": 1, "sample_count": 4,
                     "tensorboard": False, "checkpoint_every": 10, "sample_every": 10, **train}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_seed_and_batch_size_on_resume_are_refused_and_nothing_to_train_is_said(mias_prepared, tmp_path,
                                                                               monkeypatch):
    """A resumed run cannot change its seed or batch size (refused, naming the key); an
    --epochs / --max-seconds that leaves nothing to train says so instead of ending silently."""
    import keras_mammo.training.run as run_module
    from keras_mammo.training.evaluation import Budget

    class SlowFirstSession(Budget):  # the tiny first session may train in under the 1 s budget on an idle CPU
        def __init__(self, max_seconds, spent_before=0.0):
            super().__init__(max_seconds, spent_before + 5.0 if spent_before else 0.0)

    monkeypatch.setattr(run_module, "Budget", SlowFirstSession)
    cfg = _tiny(tmp_path, mias_prepared, epochs=1)
    code, out = _train("--config", str(cfg), "-q")
    assert code == 0, out
    for flag, value, key in (("--seed", "7", "seed"), ("--batch-size", "2", "train.batch_size")):
        code, out = _train("--config", str(cfg), flag, value, "-q")
        assert code != 0 and "was started with a different configuration" in _error_line(out) and key in out
    code, out = _train("--config", str(cfg), "-q")
    assert code == 0 and "has already trained 1 epochs (this schedule has 1): nothing to train" in out
    code, out = _train("--config", str(cfg), "--epochs", "2", "--max-seconds", "1", "-q")
    assert code == 0 and "train.max_seconds:" in out and "budget: nothing to train" in out


class _Signal(keras.callbacks.Callback):
    """Sends this process ``signals`` at the start of the first epoch (as Ctrl-C / kill would)."""

    def __init__(self, *signals):
        super().__init__()
        self.signals = signals

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 0:
            for s in self.signals:
                os.kill(os.getpid(), s)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_at_the_epoch_end_with_a_checkpoint_samples_and_curve(mias_prepared, tmp_path, sig):
    """Before: Ctrl-C printed only "Aborted!" and lost up to checkpoint_every (here 10) epochs;
    a run ended before sample_every named samples/latest.png and loss_curve.png that did not exist."""
    from cli.train import run_summary
    from keras_mammo.config import load_config
    from keras_mammo.training.checkpoint import list_checkpoints
    from keras_mammo.training.run import train

    cfg = load_config(str(_tiny(tmp_path, mias_prepared)))
    out = train(cfg, progress=False, callbacks=(_Signal(sig),))
    assert [p.name for p in list_checkpoints(out)] == ["ckpt-000001.npz"]
    status = json.loads((out / "run.json").read_text())
    assert status["status"] == "stopped" and status["signal"] == sig.name and status["epochs"] == 1
    assert (out / "samples" / "latest.png").is_file() and (out / "loss_curve.png").is_file()
    summary = run_summary(out)
    assert f"samples: {out}/samples/latest.png, loss curve: {out}/loss_curve.png" in summary
    assert summary.endswith("; rerun the same command to resume")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # handlers restored


@pytest.mark.slow
def test_a_sweep_trial_is_not_stopped_gracefully(mias_prepared, tmp_path):
    """A sweep trial (stop_on_signal=False) ends at once on a signal: a graceful stop would
    look like a trial that used its budget, and be scored."""
    from keras_mammo.config import load_config
    from keras_mammo.training.run import train

    cfg = load_config(str(_tiny(tmp_path, mias_prepared)))
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False, callbacks=(_Signal(signal.SIGINT),), stop_on_signal=False)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "interrupted"


@pytest.mark.slow
def test_a_second_signal_stops_at_once_and_the_cli_says_how_to_resume(mias_prepared, tmp_path, monkeypatch):
    import keras_mammo.training.run as run_module

    cfg = _tiny(tmp_path, mias_prepared)
    real = run_module.train
    monkeypatch.setattr(run_module, "train", lambda c, progress=True: real(c, progress, (_Signal(*[signal.SIGINT] * 2),)))
    code, out = _train("--config", str(cfg), "-q")
    assert code == 1
    assert _error_line(out) == (f"Error: interrupted: the epoch in progress is lost; {tmp_path / 'run'} resumes from "
                                f"its start (no checkpoint yet): rerun the same command to resume")
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "interrupted"


@pytest.mark.slow
def test_budget_stop_before_sample_every_leaves_samples_and_curve(mias_prepared, tmp_path):
    from cli.train import run_summary
    from keras_mammo.config import load_config
    from keras_mammo.training.run import train

    cfg = load_config(str(_tiny(tmp_path, mias_prepared, max_seconds=1, epochs=50)))
    out = train(cfg, progress=False)
    status = json.loads((out / "run.json").read_text())
    assert status["status"] == "stopped" and status["epochs"] < 50
    assert (out / "samples" / "latest.png").is_file() and (out / "loss_curve.png").is_file()
    assert "samples:" in run_summary(out) and "rerun" not in run_summary(out)


@pytest.mark.parametrize("resolution, message", [
    (100, "--resolution 100 is not a power of two ≥ 4"),
    (24, "--resolution 24 is not a power of two ≥ 4"),
    (128, "--resolution 128: this progressive config has no 128 px stage"),
])
def test_sweep_resolution_follows_the_same_rule(resolution, message):
    """``sweep --resolution`` goes through the check of ``train --resolution`` (one owner)."""
    from keras_mammo.errors import ConfigError
    from keras_mammo.sweep.trials import apply_resolution

    tree = {"train": {"stages": [{"resolution": 16, "epochs": 1}, {"resolution": 32, "epochs": 1},
                                 {"resolution": 64, "epochs": 1}]}}
    with pytest.raises(ConfigError, match=message):
        apply_resolution(tree, resolution)
    apply_resolution(tree, 32)
    assert [s["resolution"] for s in tree["train"]["stages"]] == [16, 32]
