"""Keras callbacks that make a run self-describing and resumable.

- :class:`RunMonitor`: per-step and per-epoch losses to CSV, NaN/Inf guard, atomic
  checkpoints, fixed-latent sample grids, the loss-curve PNG (Rahali 2025, Fig. 4.1),
  TensorBoard scalars and images, and a progress bar.
"""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import keras
import numpy as np

from keras_mammo.errors import TrainingDivergedError
from keras_mammo.training.checkpoint import latest_checkpoint, save_checkpoint
from keras_mammo.viz import image_grid, plot_loss_curve, save_image

STEP_FIELDS = ["step", "epoch", "resolution"]
EPOCH_FIELDS = ["epoch", "resolution", "steps", "seconds", "images_per_second"]


def read_csv_columns(path: Path) -> dict[str, list]:
    """A CSV file as ``{column: [values...]}`` (numbers parsed as float)."""
    cols: dict[str, list] = {}
    if not path.is_file():
        return cols
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            for k, v in row.items():
                try:
                    cols.setdefault(k, []).append(float(v))
                except (TypeError, ValueError):
                    cols.setdefault(k, []).append(v)
    return cols


def truncate_csv(path: Path, max_epoch: int) -> None:
    """Drop rows whose ``epoch`` is beyond ``max_epoch`` (a killed run's partial epoch)."""
    if not path.is_file():
        return
    from keras_mammo.utils import write_text_atomic

    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        rows = [r for r in reader if float(r.get("epoch", 0)) <= max_epoch]
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(path, buf.getvalue())


class RunMonitor(keras.callbacks.Callback):
    """Logs, checkpoints, samples and plots for one stage of a training run.

    Args:
        run_dir: the run directory.
        stage_index: index of the stage in the schedule.
        stage_end_epoch: global epoch count at which this stage ends.
        checkpoint_every: epochs between checkpoints (stage ends always checkpoint).
        sample_every: epochs between sample grids.
        keep_checkpoints: checkpoints kept.
        fixed_latents: ``(S, latent_dim)`` latents for sample grids.
        fixed_batch: real batch for conditional sample grids.
        state_fn: returns the JSON state to store with a checkpoint, given completed epochs.
        tensorboard: write TensorBoard event files.
        progress: show a progress bar.
    """

    def __init__(self, run_dir, stage_index, resolution, stage_end_epoch, steps_per_epoch, global_batch,
                 checkpoint_every, sample_every, keep_checkpoints, fixed_latents, fixed_batch, state_fn,
                 tensorboard=True, progress=True):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.stage_index, self.resolution = stage_index, resolution
        self.stage_end_epoch, self.steps = stage_end_epoch, steps_per_epoch
        self.global_batch = global_batch
        self.checkpoint_every, self.sample_every = max(1, checkpoint_every), max(1, sample_every)
        self.keep = keep_checkpoints
        self.fixed_latents, self.fixed_batch = fixed_latents, fixed_batch
        self.state_fn = state_fn
        self.progress = progress
        self.tb = None
        if tensorboard:
            import tensorflow as tf

            self.tb = tf.summary.create_file_writer(str(self.run_dir / "tensorboard"))
        self._bar = None
        self._rows: list[dict] = []
        self._step_file = self.run_dir / "losses_steps.csv"
        self._epoch_file = self.run_dir / "losses_epochs.csv"

    # --- helpers ------------------------------------------------------------------------
    def _append(self, path: Path, rows: list[dict]) -> None:
        if not rows:
            return
        new = not path.is_file() or path.stat().st_size == 0
        fields = list(rows[0].keys())
        if not new:
            with open(path, newline="") as fh:
                header = next(csv.reader(fh), None)
            if header and header != fields:
                fields = header
        with open(path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerows(rows)
            fh.flush()

    def _write_samples(self, epoch: int) -> None:
        model = self.model
        if hasattr(model, "sync_alpha"):
            model.sync_alpha()
        with model.inference_weights():   # the EMA generator when the run has one
            imgs = np.asarray(model.sample(self.fixed_latents, self.fixed_batch))
        grid = image_grid((imgs + 1.0) / 2.0)
        save_image(self.run_dir / "samples" / f"epoch_{epoch:06d}.png", grid)
        save_image(self.run_dir / "samples" / "latest.png", grid)
        if self.tb is not None:
            import tensorflow as tf

            with self.tb.as_default():
                tf.summary.image("samples", grid[None, :, :, None], step=epoch)

    def _write_curve(self) -> None:
        steps = read_csv_columns(self._step_file)
        epochs = read_csv_columns(self._epoch_file)
        if not steps.get("step"):
            return
        ends = []
        if epochs.get("epoch"):
            last_step = {}
            for e, s in zip(steps["epoch"], steps["step"]):
                last_step[e] = s
            ends = [last_step.get(e, 0) for e in epochs["epoch"]]
        stage_starts, prev = [], None
        for s, r in zip(steps["step"], steps["resolution"]):
            if r != prev:
                stage_starts.append((s, int(r)))
                prev = r
        plot_loss_curve(steps, {**epochs, "step_end": ends}, self.run_dir / "loss_curve.png",
                        title=f"GAN losses ({self.run_dir.name})", stage_starts=stage_starts)

    # --- Keras hooks --------------------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._rows = []
        self._t0 = time.perf_counter()
        if self.progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.steps, desc=f"{self.resolution}px epoch {epoch + 1}/{self.stage_end_epoch}",
                             unit="step", leave=False)

    def on_train_batch_end(self, batch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items() if np.size(v) == 1}
        bad = [k for k, v in logs.items() if k.endswith("loss") and not math.isfinite(v)]
        epoch = self._epoch + 1
        if bad:
            ck = latest_checkpoint(self.run_dir)
            self.model.stop_training = True
            raise TrainingDivergedError(
                f"{', '.join(bad)} became {logs[bad[0]]} at epoch {epoch}, batch {batch + 1}; training stopped. "
                f"Last good checkpoint: {ck or 'none'} (training resumes from it; consider lower learning rates)")
        row = {"step": int(self.model.step.numpy()), "epoch": epoch, "resolution": self.resolution}
        row.update({k: round(v, 6) for k, v in logs.items()})
        self._rows.append(row)
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k.endswith("loss")})

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._t0
        if self._bar is not None:
            self._bar.close()
        done = epoch + 1
        self._append(self._step_file, self._rows)
        means = {}
        for key in self._rows[0] if self._rows else []:
            if key not in STEP_FIELDS:
                means[key] = round(float(np.mean([r[key] for r in self._rows])), 6)
        ep = {"epoch": done, "resolution": self.resolution, "steps": len(self._rows),
              "seconds": round(seconds, 3),
              "images_per_second": round(len(self._rows) * self.global_batch / max(seconds, 1e-9), 2), **means}
        self._append(self._epoch_file, [ep])
        if self.tb is not None:
            import tensorflow as tf

            with self.tb.as_default():
                for k, v in means.items():
                    tf.summary.scalar(k, v, step=done)
                tf.summary.scalar("images_per_second", ep["images_per_second"], step=done)
            self.tb.flush()
        if done % self.sample_every == 0 or done == self.stage_end_epoch:
            self._write_samples(done)
        if done % self.checkpoint_every == 0 or done == self.stage_end_epoch:
            save_checkpoint(self.run_dir, done, self.model.checkpoint_variables(), self.state_fn(done), self.keep)
        self._write_curve()
        from tqdm.auto import tqdm

        tqdm.write(f"epoch {done}/{self.stage_end_epoch} ({self.resolution}px): "
                   + ", ".join(f"{k}={v:.4f}" for k, v in means.items() if k.endswith("loss"))
                   + f", {ep['images_per_second']:.1f} images/s")
