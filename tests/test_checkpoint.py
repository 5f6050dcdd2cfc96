"""Checkpoints: durable writes, restore by name, corrupt-checkpoint fallback, rotation
(keras_mammo.training.checkpoint, keras_mammo.utils.atomic_path); the run-directory lock and
the refusals of ``train`` (keras_mammo.training.lock, keras_mammo.training.run)."""
from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest

from keras_mammo.errors import ConfigError, DataError
from keras_mammo.training.checkpoint import (
    CorruptCheckpointError,
    list_checkpoints,
    restore_checkpoint,
    restore_latest,
    save_checkpoint,
    variable_names,
)


def _model(extra_layers: int = 0, seed: int = 0, widths=(5, 3), named: bool = False):
    """A tiny generator-like model plus Adam slots; ``extra_layers`` shifts Keras' automatic names."""
    for _ in range(extra_layers):
        keras.layers.Dense(1)  # bumps the per-process name counters (dense_N)
    keras.utils.set_random_seed(seed)
    inp = keras.Input((4,))
    x = inp
    for i, w in enumerate(widths):
        x = keras.layers.Dense(w, name=f"fc{i}" if named else None)(x)
    model = keras.Model(inp, x, name="generator")
    opt = keras.optimizers.Adam(1e-3)
    opt.build(model.trainable_variables)
    with_opt = list(model.variables) + list(opt.variables)
    # non-zero optimizer state so a swapped restore would show
    for i, v in enumerate(opt.variables):
        v.assign(np.full(v.shape, i + 1, dtype=v.dtype))
    return with_opt


def _values(variables):
    return [np.asarray(v) for v in variables]


def test_restore_by_name_across_processes(tmp_path):
    """Keras' automatic suffixes (dense_3 here, dense_11 in another process) do not matter."""
    a = _model(seed=1)
    path = save_checkpoint(tmp_path, 1, a, {"epoch": 1})
    b = _model(extra_layers=7, seed=2)  # another process: other automatic suffixes, other values
    assert [v.path for v in a] != [v.path for v in b]
    assert variable_names(a) == variable_names(b)
    assert len(set(variable_names(a))) == len(a)
    assert restore_checkpoint(path, b) == {"epoch": 1}
    for x, y in zip(_values(a), _values(b)):
        np.testing.assert_array_equal(x, y)


def test_restore_matches_names_not_positions(tmp_path):
    a = _model(seed=1, named=True)
    path = save_checkpoint(tmp_path, 1, a, {"epoch": 1})
    b = _model(seed=2, named=True)
    assert restore_checkpoint(path, b[::-1]) == {"epoch": 1}  # listed in reverse order
    for x, y in zip(_values(a), _values(b)):
        np.testing.assert_array_equal(x, y)


def test_checkpoint_of_another_model_names_the_variables(tmp_path):
    path = save_checkpoint(tmp_path, 1, _model(widths=(5, 3)), {"epoch": 1})
    other = _model(widths=(5, 3, 2))
    before = _values(other)
    with pytest.raises(DataError, match=r"missing from the checkpoint: dense/kernel#2, dense/bias#2"):
        restore_checkpoint(path, other)
    for x, y in zip(before, _values(other)):  # nothing assigned on failure
        np.testing.assert_array_equal(x, y)
    with pytest.raises(DataError, match=r"variable dense/kernel has shape \(4, 5\) in the checkpoint"):
        restore_checkpoint(path, _model(widths=(6, 3)))


def test_old_position_only_checkpoint_still_restores(tmp_path):
    a = _model(seed=1)
    old = tmp_path / "checkpoints" / "ckpt-000001.npz"
    old.parent.mkdir()
    arrays = {f"v{i:05d}": np.asarray(v) for i, v in enumerate(a)}
    arrays["__state__"] = np.frombuffer(json.dumps({"epoch": 1}).encode(), np.uint8)
    arrays["__paths__"] = np.array([v.path for v in a])
    np.savez(old, **arrays)
    b = _model(seed=2)
    assert restore_checkpoint(old, b) == {"epoch": 1}
    for x, y in zip(_values(a), _values(b)):
        np.testing.assert_array_equal(x, y)


def _corrupt_middle(path):
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(255 - b for b in data[mid:mid + 64])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_corrupt_newest_falls_back_to_newest_intact(tmp_path, damage):
    vs = _model(seed=1)
    for epoch in (1, 2, 3):
        for v in vs[:2]:
            v.assign(np.full(v.shape, epoch, v.dtype))
        save_checkpoint(tmp_path, epoch, vs, {"epoch": epoch}, keep=3)
    ck = list_checkpoints(tmp_path)
    newest, middle = ck[-1], ck[-2]
    if damage == "truncate":
        newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    elif damage == "flip":
        _corrupt_middle(newest)
    else:
        newest.write_bytes(b"")
    with pytest.raises(CorruptCheckpointError, match="checkpoint is corrupt"):
        restore_checkpoint(newest, _model())
    messages = []
    target = _model(seed=5)
    path, state = restore_latest(tmp_path, target, warn=messages.append)
    assert path == middle and state == {"epoch": 2}
    assert float(np.asarray(target[0]).flat[0]) == 2.0
    assert len(messages) == 1
    assert messages[0].startswith("checkpoint ckpt-000003 is corrupt: ")
    assert messages[0].endswith("; falling back to ckpt-000002")


def test_every_checkpoint_corrupt_is_one_clear_error(tmp_path):
    vs = _model()
    for epoch in (1, 2):
        save_checkpoint(tmp_path, epoch, vs, {"epoch": epoch})
    for p in list_checkpoints(tmp_path):
        p.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError, match="every checkpoint is corrupt"):
        restore_latest(tmp_path, vs, warn=lambda m: None)


def test_rotation_keeps_unnumbered_files_and_cleans_stale_temporaries(tmp_path):
    vs = _model()
    best = save_checkpoint(tmp_path, 1, vs, {"epoch": 1}, name="best")
    folder = best.parent
    (folder / "notes.txt").write_text("mine")
    stale = folder / ".ckpt-000009.npz.abc123.tmp"  # left by a save killed half-way
    stale.write_bytes(b"partial")
    for epoch in range(1, 6):
        save_checkpoint(tmp_path, epoch, vs, {"epoch": epoch}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-000004.npz", "ckpt-000005.npz"]
    assert best.is_file() and (folder / "notes.txt").is_file() and not stale.exists()


def test_checkpoint_file_and_folder_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    path = save_checkpoint(tmp_path, 1, _model(), {"epoch": 1})
    folder = str(path.parent)
    assert any(s.startswith(folder + "/.ckpt-000001.npz.") for s in synced)  # the file, before the rename
    assert folder in synced  # the directory entry, after it
    assert synced.index(folder) > 0


# --- run-directory lock and refusals ---------------------------------------------------

def test_second_holder_of_a_run_directory_is_refused(tmp_path):
    from keras_mammo.training.lock import RunDirInUseError, run_dir_lock

    with run_dir_lock(tmp_path / "run"):
        with pytest.raises(RunDirInUseError, match=rf"run directory .*run is in use by process {os.getpid()}"):
            with run_dir_lock(tmp_path / "run"):
                pass
    with run_dir_lock(tmp_path / "run"):  # released: taken again without a warning
        pass


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path):
    import subprocess
    import sys

    from keras_mammo.training.lock import run_dir_lock

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    pid = int(dead.stdout)
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(f"{pid} somehost\n")
    seen = []
    with run_dir_lock(run, warn=seen.append):
        assert (run / ".lock").read_text().split()[0] == str(os.getpid())
    assert len(seen) == 1 and f"stale lock of process {pid}" in seen[0]


def test_train_cli_on_a_locked_run_directory_exits_nonzero(tmp_path, mias_prepared):
    from click.testing import CliRunner

    from cli.main import main
    from keras_mammo.training.lock import run_dir_lock

    run = tmp_path / "run"
    with run_dir_lock(run):
        res = CliRunner().invoke(main, ["train", "--run-dir", str(run), "--prepared", str(mias_prepared),
                                        "--set", "train.tensorboard=false"])
    assert res.exit_code != 0
    assert f"is in use by process {os.getpid()}" in res.output
    assert not (run / "checkpoints").exists()


@pytest.mark.parametrize("overrides, message", [
    ({"train.epochs": 0}, r"train.epochs: 0 trains nothing"),
    ({"train.stages": [{"resolution": 16, "epochs": 1}, {"resolution": 32, "epochs": 0}]},
     r"train.stages\[1\].epochs: 0 trains nothing"),
    ({"train.steps_per_epoch": 0}, r"train.steps_per_epoch: 0 trains nothing"),
    ({"train.resolution": 128}, r"train.resolution: 128 px is above the prepared size 64 px"),
    ({"train.stages": [{"resolution": 64, "epochs": 1}, {"resolution": 128, "epochs": 1}]},
     r"train.stages\[1\].resolution: 128 px is above the prepared size 64 px"),
])
def test_train_refuses_settings_that_train_nothing_or_upscale(mias_prepared, tmp_path, overrides, message):
    from keras_mammo.config import load_config
    from keras_mammo.training.run import train

    base = {"data.prepared": str(mias_prepared), "run_dir": str(tmp_path / "r"), "train.resolution": 32,
            "train.epochs": 1, "train.stages": [], "train.tensorboard": False}
    base.update(overrides)
    with pytest.raises(ConfigError, match=message):
        train(load_config(None, base), progress=False)
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_train_refuses_upscaling_before_it_preprocesses(mias_dir, tmp_path):
    """Without a prepared dataset the run will prepare ``data.size``: refused before any work."""
    from keras_mammo.config import load_config
    from keras_mammo.training.run import train

    cfg = load_config(None, {"data.path": str(mias_dir), "data.size": 16, "data.prepared": str(tmp_path / "p"),
                             "run_dir": str(tmp_path / "r"), "train.resolution": 32, "train.epochs": 1})
    with pytest.raises(ConfigError, match=r"train.resolution: 32 px is above the prepared size 16 px"):
        train(cfg, progress=False)
    assert not (tmp_path / "p").exists() and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_training_resumes_from_the_newest_intact_checkpoint(mias_prepared, tmp_path, capsys):
    """A truncated newest checkpoint is reported and the run continues from the previous one."""
    from keras_mammo.config import load_config
    from keras_mammo.training.checkpoint import latest_checkpoint
    from keras_mammo.training.run import train

    def cfg(epochs_32):
        return load_config(None, {
            "data.prepared": str(mias_prepared), "run_dir": str(tmp_path / "run"), "seed": 7,
            "train.stages": [{"resolution": 16, "epochs": 1}, {"resolution": 32, "epochs": epochs_32}],
            "train.batch_size": 4, "train.steps_per_epoch": 1, "train.sample_count": 4, "train.tensorboard": False,
            "model.params": {"g_channels": [16, 16, 8], "d_channels": [32, 16, 8], "base_channels": 32}})

    run = train(cfg(1), progress=False)
    newest = latest_checkpoint(run)
    assert newest.name == "ckpt-000002.npz"
    newest.write_bytes(newest.read_bytes()[:1000])
    capsys.readouterr()
    train(cfg(2), progress=False)
    out = capsys.readouterr().out
    assert "checkpoint ckpt-000002 is corrupt: " in out and "; falling back to ckpt-000001" in out
    assert "resuming" in out and "from ckpt-000001.npz (epoch 1" in out
    assert latest_checkpoint(run).name == "ckpt-000003.npz"
    epochs = (run / "losses_epochs.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in epochs] == [1, 2, 3]
