"""Keras callbacks that make a run self-describing and resumable.

- :class:`RunMonitor`: per-step and per-epoch losses to CSV, NaN/Inf guard, atomic
  checkpoints, fixed-latent sample grids, the loss-curve PNG (Rahali 2025, Fig. 4.1),
  TensorBoard scalars and images, and a progress bar, without host work in the hot
  loop (step logs are read once per ``log_every`` steps).
"""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import keras
import numpy as np

from keras_mammo.data.viz import image_grid, plot_loss_curve, save_image
from keras_mammo.errors import TrainingDivergedError
from keras_mammo.training.checkpoint import latest_checkpoint, save_checkpoint
from keras_mammo.utils import write_text_atomic

STEP_FIELDS = ["step", "epoch", "resolution"]
EPOCH_FIELDS = ["epoch", "resolution", "steps", "skipped_steps", "seconds", "images_per_second"]


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

    Nothing in the hot loop waits for the host: the monitor is ``async_safe``, so Keras
    hands each step's logs to a worker thread, which only stores them; the main thread
    reads them (NaN/Inf guard, progress bar) every ``log_every`` steps and at epoch end.
    The per-step CSV is appended once per epoch, and the loss-curve PNG is redrawn only
    with the sample grids (from rows kept in memory, not by re-reading the CSV files).

    Args:
        run_dir: the run directory.
        stage_index: index of the stage in the schedule.
        stage_end_epoch: global epoch count at which this stage ends.
        checkpoint_every: epochs between checkpoints (stage ends always checkpoint).
        sample_every: epochs between sample grids and loss-curve redraws.
        keep_checkpoints: checkpoints kept.
        fixed_latents: ``(S, latent_dim)`` latents for sample grids.
        fixed_batch: real batch for conditional sample grids.
        state_fn: returns the JSON state to store with a checkpoint, given completed epochs.
        tensorboard: write TensorBoard event files.
        progress: show a progress bar.
        log_every: steps between host-side reads of the logged losses.
    """

    async_safe = True  # on_train_batch_end only stores the logs (Keras runs it in a worker thread)

    def __init__(self, run_dir, stage_index, resolution, stage_end_epoch, steps_per_epoch, global_batch,
                 checkpoint_every, sample_every, keep_checkpoints, fixed_latents, fixed_batch, state_fn,
                 tensorboard=True, progress=True, log_every=50):
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
        self.log_every = max(1, int(log_every))
        self.tb = None
        if tensorboard:
            import tensorflow as tf

            self.tb = tf.summary.create_file_writer(str(self.run_dir / "tensorboard"))
        self._bar = None
        self._sampled: int | None = None   # the epoch of the newest sample grid
        self._pending: list[tuple[int, dict]] = []  # (batch, logs) from the worker thread
        self._rows: list[dict] = []
        self._curve: dict | None = None  # loss-curve columns, loaded from the CSVs once
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
        self._sampled = epoch
        if self.tb is not None:
            import tensorflow as tf

            with self.tb.as_default():
                tf.summary.image("samples", grid[None, :, :, None], step=epoch)

    def _load_curve(self) -> None:
        steps = read_csv_columns(self._step_file)
        epochs = read_csv_columns(self._epoch_file)
        last_step: dict = {}
        for e, s in zip(steps.get("epoch", []), steps.get("step", [])):
            last_step[e] = s
        epochs["step_end"] = [last_step.get(e, 0) for e in epochs.get("epoch", [])]
        self._curve = {"steps": steps, "epochs": epochs}

    def _extend_curve(self, rows: list[dict], epoch_row: dict) -> None:
        """Add one epoch to the in-memory loss-curve columns (read from the CSVs the first time)."""
        if self._curve is None:
            self._load_curve()
            return  # the CSVs already hold this epoch
        steps, epochs = self._curve["steps"], self._curve["epochs"]
        for row in rows:
            for k, v in row.items():
                steps.setdefault(k, []).append(v)
        for k, v in epoch_row.items():
            epochs.setdefault(k, []).append(v)
        epochs.setdefault("step_end", []).append(rows[-1]["step"] if rows else 0)

    def _write_curve(self) -> None:
        steps, epochs = self._curve["steps"], self._curve["epochs"]
        if not steps.get("step"):
            return
        stage_starts, prev = [], None
        for s, r in zip(steps["step"], steps["resolution"]):
            if r != prev:
                stage_starts.append((s, int(r)))
                prev = r
        plot_loss_curve(steps, epochs, self.run_dir / "loss_curve.png",
                        title=f"GAN losses ({self.run_dir.name})", stage_starts=stage_starts)

    def _drain(self) -> None:
        """Turn the stored step logs into rows; stop with a clear error on a NaN/Inf loss."""
        pending, self._pending = self._pending, []
        epoch = self._epoch + 1
        for batch, logs in sorted(pending, key=lambda p: p[0]):
            logs = {k: float(v) for k, v in (logs or {}).items() if np.size(v) == 1}
            bad = [k for k, v in logs.items() if k.endswith("loss") and not math.isfinite(v)]
            if bad:
                ck = latest_checkpoint(self.run_dir)
                self.model.stop_training = True
                raise TrainingDivergedError(
                    f"{', '.join(bad)} became {logs[bad[0]]} at epoch {epoch}, batch {batch + 1}; training stopped. "
                    f"Last good checkpoint: {ck or 'none'} (training resumes from it; consider lower learning rates)")
            row = {"step": self._step0 + batch + 1, "epoch": epoch, "resolution": self.resolution}
            row.update({k: round(v, 6) for k, v in logs.items()})
            self._rows.append(row)
        if self._bar is not None and pending:
            self._bar.update(len(pending))
            last = self._rows[-1]
            self._bar.set_postfix({k: f"{v:.3f}" for k, v in last.items() if k.endswith("loss")})

    def write_final(self, done: int) -> None:
        """At the end of a run (finished, ``train.max_seconds``, a signal, early stop): the
        sample grid and loss curve of epoch ``done`` unless already written, so
        ``samples/latest.png`` and ``loss_curve.png`` exist whatever ``sample_every`` is."""
        if done < 1 or self._sampled == done or self.model is None:
            return
        if self._curve is None:
            self._load_curve()
        self._write_samples(done)
        self._write_curve()

    # --- Keras hooks --------------------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._rows, self._pending = [], []
        self._step0 = int(self.model.step.numpy())  # one host read per epoch
        self._t0 = time.perf_counter()
        if self.progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.steps, desc=f"{self.resolution}px epoch {epoch + 1}/{self.stage_end_epoch}",
                             unit="step", leave=False)

    def on_train_batch_begin(self, batch, logs=None):
        if batch and batch % self.log_every == 0:
            self._drain()

    def on_train_batch_end(self, batch, logs=None):
        # runs in Keras's callback thread: store only (no host sync on the training thread)
        self._pending.append((batch, logs))

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._t0
        self._drain()
        if self._bar is not None:
            self._bar.close()
        done = epoch + 1
        applied = int(self.model.step.numpy()) - self._step0
        self._append(self._step_file, self._rows)
        means = {}
        for key in self._rows[0] if self._rows else []:
            if key not in STEP_FIELDS:
                means[key] = round(float(np.mean([r[key] for r in self._rows])), 6)
        # skipped_steps: mixed_float16 updates the LossScaleOptimizer skipped (non-finite
        # gradients); they are not counted in the generator step
        ep = {"epoch": done, "resolution": self.resolution, "steps": len(self._rows),
              "skipped_steps": len(self._rows) - applied, "seconds": round(seconds, 3),
              "images_per_second": round(len(self._rows) * self.global_batch / max(seconds, 1e-9), 2), **means}
        self._append(self._epoch_file, [ep])
        self._extend_curve(self._rows, ep)
        if self.tb is not None:
            import tensorflow as tf

            with self.tb.as_default():
                for k, v in means.items():
                    tf.summary.scalar(k, v, step=done)
                tf.summary.scalar("images_per_second", ep["images_per_second"], step=done)
            self.tb.flush()
        if done % self.sample_every == 0 or done == self.stage_end_epoch:
            self._write_samples(done)
            self._write_curve()
        if done % self.checkpoint_every == 0 or done == self.stage_end_epoch:
            save_checkpoint(self.run_dir, done, self.model.checkpoint_variables(), self.state_fn(done), self.keep)
        from tqdm.auto import tqdm

        tqdm.write(f"epoch {done}/{self.stage_end_epoch} ({self.resolution}px): "
                   + ", ".join(f"{k}={v:.4f}" for k, v in means.items() if k.endswith("loss"))
                   + f", {ep['images_per_second']:.1f} images/s")
