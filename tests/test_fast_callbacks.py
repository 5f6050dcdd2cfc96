"""The training callbacks driven by hand, without ``fit``: the fast-lane checks of
:class:`~keras_mammo.training.callbacks.RunMonitor` (losses CSVs, NaN guard, sample grids,
checkpoints) and :class:`~keras_mammo.training.evaluation.RunControl` (budget stop, best and
patience kept from ``eval.csv``). Runs that train through them are in ``test_training*.py`` (slow)."""
from __future__ import annotations

import csv

import numpy as np
import pytest

LATENT = 16


@pytest.fixture(scope="module")
def cfg_and_model():
    """An untrained 16-px thesis GAN built as a run builds it."""
    from keras_mammo.config import load_config
    from keras_mammo.models.registry import DataInfo
    from keras_mammo.training.run import build_run_model

    cfg = load_config(None, {"seed": 3, "model.latent_dim": LATENT,
                             "model.params": {"g_channels": [8, 8], "d_channels": [16, 8], "base_channels": 16},
                             "train.resolution": 16, "train.epochs": 2, "train.precision": "float32",
                             "train.tensorboard": False})
    model = build_run_model(cfg, DataInfo())
    model.set_stage(16)
    return cfg, model


def _monitor(run_dir, model, **kw):
    from keras_mammo.training.callbacks import RunMonitor
    from keras_mammo.models.gan import GAN

    args = dict(run_dir=run_dir, stage_index=0, resolution=16, stage_end_epoch=2, steps_per_epoch=3, global_batch=4,
                checkpoint_every=1, sample_every=2, keep_checkpoints=5, fixed_latents=GAN.fixed_latents(4, LATENT, 0),
                fixed_batch={"image": np.zeros((4, 16, 16, 1), np.float32)},
                state_fn=lambda done: {"epoch": done, "stage": model.stage_state()}, tensorboard=False,
                progress=False, log_every=2)
    args.update(kw)
    mon = RunMonitor(**args)
    mon.set_model(model)
    return mon


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_run_monitor_logs_every_step_samples_and_checkpoints(cfg_and_model, tmp_path):
    from keras_mammo.training.checkpoint import list_checkpoints, read_state

    _, model = cfg_and_model
    mon = _monitor(tmp_path, model)
    step0 = int(model.step.numpy())
    for epoch in (0, 1):
        mon.on_epoch_begin(epoch)
        for b in range(3):
            mon.on_train_batch_begin(b)
            mon.on_train_batch_end(b, {"d_loss": 0.5 + b, "g_loss": 1.0 + epoch})
        model.step.assign_add(3)                      # the three generator steps these logs stand for
        mon.on_epoch_end(epoch)
    steps = _rows(tmp_path / "losses_steps.csv")
    assert [int(r["step"]) - step0 for r in steps] == [1, 2, 3, 4, 5, 6]
    assert [int(r["epoch"]) for r in steps] == [1, 1, 1, 2, 2, 2]
    epochs = _rows(tmp_path / "losses_epochs.csv")
    assert [float(e["d_loss"]) for e in epochs] == [1.5, 1.5] and [float(e["g_loss"]) for e in epochs] == [1.0, 2.0]
    assert [int(e["steps"]) for e in epochs] == [3, 3] and [int(e["skipped_steps"]) for e in epochs] == [0, 0]
    # sample grid and loss curve every 2 epochs; a checkpoint every epoch
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["epoch_000002.png", "latest.png"]
    assert (tmp_path / "loss_curve.png").stat().st_size > 1000
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-000001.npz", "ckpt-000002.npz"]
    assert read_state(list_checkpoints(tmp_path)[-1])["epoch"] == 2


def test_run_monitor_stops_on_a_non_finite_loss(cfg_and_model, tmp_path):
    from keras_mammo.errors import TrainingDivergedError

    _, model = cfg_and_model
    mon = _monitor(tmp_path, model)
    mon.on_epoch_begin(0)
    mon.on_train_batch_end(0, {"d_loss": 0.7, "g_loss": 1.0})
    mon.on_train_batch_end(1, {"d_loss": 0.7, "g_loss": float("inf")})
    with pytest.raises(TrainingDivergedError, match=r"g_loss became inf at epoch 1, batch 2; training stopped\. "
                                                    r"Last good checkpoint: none"):
        mon.on_train_batch_begin(2)                   # log_every=2: the host reads the stored logs here
    assert model.stop_training
    model.stop_training = False
    assert not (tmp_path / "losses_steps.csv").exists()


def test_run_control_stops_at_the_budget_and_checkpoints_that_epoch(cfg_and_model, tmp_path):
    from keras_mammo.training.checkpoint import list_checkpoints
    from keras_mammo.training.evaluation import Budget, RunControl

    cfg, model = cfg_and_model
    budget = Budget(max_seconds=10, spent_before=12.5)
    assert budget.exhausted() and budget.spent() >= 12.5 and not Budget(None, 1e9).exhausted()
    ctl = RunControl(tmp_path, cfg, 16, stage_end_epoch=3, last_stage=True, global_batch=4, steps_per_epoch=2,
                     budget=budget, state_fn=lambda done: {"epoch": done}, monitor_saves=lambda done: False,
                     progress=False)
    ctl.set_model(model)
    assert not ctl.enabled                            # train.eval_every: 0, so no FID is computed
    ctl.on_epoch_end(0)
    assert ctl.stop_reason == "budget" and model.stop_training
    model.stop_training = False
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-000001.npz"]


def test_run_control_resumes_best_and_patience_from_eval_csv(cfg_and_model, tmp_path):
    from keras_mammo.training.evaluation import EVAL_FIELDS, Budget, RunControl, read_eval_csv, truncate_eval_csv

    cfg, _ = cfg_and_model
    rows = [(1, 16, 90.0), (2, 16, 80.0), (3, 16, 85.0), (4, 32, 120.0), (5, 32, 125.0), (6, 32, 130.0)]
    with open(tmp_path / "eval.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=EVAL_FIELDS)
        w.writeheader()
        for epoch, res, fid in rows:
            w.writerow({"epoch": epoch, "resolution": res, "fid": fid, "eval_seconds": 2.0, "best": ""})
    ctl = RunControl(tmp_path, cfg, 32, 8, True, 4, 2, Budget(None), lambda d: {}, lambda d: True, progress=False)
    # a higher resolution's first evaluation is the best, whatever its FID; two evaluations since
    assert ctl.best == (32.0, 120.0) and ctl.since_best == 2 and ctl.eval_seconds == 12.0
    truncate_eval_csv(tmp_path, 4)                    # the evaluations a killed run did after its checkpoint
    assert [r["epoch"] for r in read_eval_csv(tmp_path / "eval.csv")] == [1.0, 2.0, 3.0, 4.0]
    again = RunControl(tmp_path, cfg, 32, 8, True, 4, 2, Budget(None), lambda d: {}, lambda d: True, progress=False)
    assert again.best == (32.0, 120.0) and again.since_best == 0
