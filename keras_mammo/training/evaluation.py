"""In-training evaluation, the ``best`` checkpoint, early stopping and the wall-clock budget.

:class:`RunControl` is a Keras callback placed after :class:`~keras_mammo.training.callbacks.RunMonitor`.
At the end of an epoch it

1. evaluates (every ``train.eval_every`` epochs, at the end of every stage, and when the
   budget or early stopping ends the run): ``train.eval_n`` images from the EMA generator
   (the latent vectors of ``keras-mammo generate --seed 0``: :meth:`GAN.fixed_latents`
   with seed 0; conditional models use the run's prepared films as conditions), their
   Fréchet Inception Distance and Kernel Inception Distance against **all** training
   films at the stage resolution (the numbers ``keras-mammo evaluate --run R -n eval_n``
   reports as "FID, all images" for the same checkpoint), plus, as in
   :func:`keras_mammo.metrics.evaluate.evaluate`, FID at a matched N against one half of
   the films and the real-vs-real floor at that N (half A vs half B, computed once).
   The training films' Inception features are cached on disk by content
   (:func:`keras_mammo.metrics.features.set_features`), so each prepared dataset and
   resolution is embedded once. Rows go to ``<run>/eval.csv`` and TensorBoard
   (``eval/*``); the share of wall time spent evaluating is logged (``eval_share``);
2. keeps ``checkpoints/best.npz``: the checkpoint with the lowest FID at the highest
   resolution reached so far (a higher stage's first evaluation replaces a lower stage's
   best; FIDs at different resolutions are not comparable). Rotation never deletes it;
   ``generate``, ``evaluate --run`` and ``export`` use it when it exists;
3. stops training after ``train.early_stop_evals`` evaluations without a lower FID, or
   when the wall-clock budget ``train.max_seconds`` is spent; the last epoch is then
   checkpointed (and evaluated).

Sources: the "evaluate during training and keep the best snapshot" loop of
StyleGAN2-ADA (``training_loop.py``, ``metrics/metric_main.py``) and FID/KID as in
:mod:`keras_mammo.metrics`.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path

import keras
import numpy as np

from keras_mammo.data.pipeline import run_conditions
from keras_mammo.metrics import inception
from keras_mammo.metrics.features import set_features
from keras_mammo.metrics.fid import fid
from keras_mammo.metrics.floor import draw_matched, kid_subset_size, real_halves
from keras_mammo.metrics.imagesets import image_set_from_array, load_image_set
from keras_mammo.metrics.kid import kid
from keras_mammo.models.gan import GAN
from keras_mammo.training.callbacks import truncate_csv
from keras_mammo.training.checkpoint import list_checkpoints, save_checkpoint
from keras_mammo.utils import grappler_remapping

EVAL_FIELDS = ["epoch", "images_seen", "seconds", "resolution", "n", "fid", "kid", "kid_std", "n_real",
               "n_matched", "fid_matched", "floor_fid", "fid_over_floor", "eval_seconds", "eval_share", "ada_p",
               "best"]
#: Seed of the generated evaluation images (as ``keras-mammo generate/evaluate --seed 0``).
EVAL_SEED = 0


class Budget:
    """Wall-clock budget of a run: seconds spent in earlier sessions plus this one.

    Args:
        max_seconds: the budget (None: unlimited).
        spent_before: seconds spent by the run before this session (from its checkpoint).
    """

    def __init__(self, max_seconds: float | None, spent_before: float = 0.0):
        self.max_seconds = max_seconds
        self.before = float(spent_before)
        self.start = time.perf_counter()

    def spent(self) -> float:
        """Seconds spent by the run so far (all sessions)."""
        return self.before + time.perf_counter() - self.start

    def exhausted(self) -> bool:
        return self.max_seconds is not None and self.spent() >= self.max_seconds


def read_eval_csv(path: Path) -> list[dict]:
    """Rows of an ``eval.csv`` (numbers as float), oldest first."""
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for r in rows:
        out.append({k: (float(v) if v not in ("", None) and k != "best" else v) for k, v in r.items()})
    return out


class RealReference:
    """Inception features of a prepared dataset's films at one resolution, with the floor.

    One cut into halves and one matched draw (:mod:`keras_mammo.metrics.floor`), fixed for
    the whole run so that evaluations along it compare with the same real films.

    Args:
        prepared: prepared-dataset directory.
        resolution: evaluation side in pixels.
        n: per-side N for the matched FID and the floor (capped by the halves).
        seed: seed of the halves (as ``keras-mammo evaluate --seed``).
        cache_dir: feature cache (None: user cache; False: none).
    """

    def __init__(self, prepared, resolution: int, n: int, seed: int = 0, cache_dir=None, progress: bool = False):
        self.images = load_image_set(prepared, size=resolution, name="real")
        self.features, _ = set_features(self.images, cache_dir, 32, progress)
        rng = np.random.default_rng(seed)
        [(a, b)] = real_halves(self.images.patient_ids, 1, rng)
        self.n_matched = int(min(n, len(a), len(b)))
        self.a, self.b = draw_matched(a, b, self.n_matched, rng)
        self.floor_fid = fid(self.features[self.a], self.features[self.b]) if self.n_matched >= 2 else float("nan")


def generated_images(model, cfg, n: int, seed: int = EVAL_SEED, batch_size: int = 64) -> np.ndarray:
    """``n`` images of the model's current (inference) generator: ``(n, R, R, 1) float32`` in ``[0, 1]``.

    The same latent vectors and conditions as :func:`keras_mammo.generation.generate.generate_images`
    with ``seed``, so a checkpoint gives the same images here and there.
    """
    import tensorflow as tf

    if hasattr(model, "sync_alpha"):
        model.sync_alpha()
    z = GAN.fixed_latents(n, cfg.model.latent_dim, seed).numpy()
    conditions = run_conditions(cfg, model, n) if model.inputs_needed else None
    out = []
    # the traced path of `generate`/`evaluate --run`, optimized as there (remapper on): eager and graph kernels,
    # fused and unfused ones, round apart in bfloat16
    with grappler_remapping(True):
        for i in range(0, n, batch_size):
            cond = None if conditions is None else {k: tf.constant(v[i:i + batch_size]) for k, v in conditions.items()}
            out.append(np.asarray(model.generate_traced(tf.constant(z[i:i + batch_size]), cond)))
    return np.clip((np.concatenate(out) + 1.0) / 2.0, 0.0, 1.0).astype(np.float32)


def evaluate_images(images: np.ndarray, ref: RealReference, kid_subsets: int = 100, seed: int = EVAL_SEED) -> dict:
    """FID/KID of generated images against a :class:`RealReference` (numbers as in ``evaluate``).

    Args:
        images: ``(N, R, R, 1)`` float32 in ``[0, 1]``.

    Returns:
        ``{"fid", "kid", "kid_std", "n", "n_real", "fid_matched", "n_matched", "floor_fid"}``.
    """

    syn = image_set_from_array(images, "synthetic", size=ref.images.size)
    f_syn = inception.inception_features(syn.images, 32, False, model=inception.load_fid_inception())
    n_s, n_r = len(syn), len(ref.images)
    km, ksd = kid(f_syn, ref.features, subsets=kid_subsets, subset_size=kid_subset_size(min(n_r, n_s)), seed=seed)
    out = {"fid": fid(f_syn, ref.features), "kid": km, "kid_std": ksd, "n": n_s, "n_real": n_r,
           "n_matched": ref.n_matched, "floor_fid": ref.floor_fid, "fid_matched": float("nan")}
    m = min(ref.n_matched, n_s)
    if m >= 2:
        out["fid_matched"] = fid(f_syn[:m], ref.features[ref.b[:m]])
    return out


class RunControl(keras.callbacks.Callback):
    """Evaluation, ``best`` checkpoint, early stopping and budget for one stage (module docstring).

    Args:
        run_dir: the run directory.
        cfg: the run's :class:`~keras_mammo.config.Config`.
        resolution: the stage's resolution.
        stage_end_epoch: global epoch at which this stage ends.
        last_stage: whether this is the schedule's last stage.
        global_batch: images per step.
        steps_per_epoch: steps per epoch.
        budget: the run's :class:`Budget`.
        state_fn: checkpoint state for a number of completed epochs.
        monitor_saves: ``epoch → bool``: whether RunMonitor checkpoints that epoch.
        progress: print a line per evaluation.
        stop_request: a :class:`~keras_mammo.training.progress.StopRequest`; once it has
            seen a signal, the stage stops at the end of the epoch (``stop_reason``
            ``"signal"``) with that epoch checkpointed.
    """

    def __init__(self, run_dir, cfg, resolution: int, stage_end_epoch: int, last_stage: bool, global_batch: int,
                 steps_per_epoch: int, budget: Budget, state_fn, monitor_saves, progress: bool = True,
                 stop_request=None):
        super().__init__()
        self.stop_request = stop_request
        self.run_dir, self.cfg = Path(run_dir), cfg
        self.t = cfg.train
        self.resolution, self.stage_end_epoch, self.last_stage = resolution, stage_end_epoch, last_stage
        self.global_batch, self.steps = global_batch, steps_per_epoch
        self.budget, self.state_fn, self.monitor_saves = budget, state_fn, monitor_saves
        self.progress = progress
        self.stop_reason: str | None = None
        self.eval_file = self.run_dir / "eval.csv"
        self._ref = None
        self._writer = None
        rows = read_eval_csv(self.eval_file)
        self.eval_seconds = sum(r.get("eval_seconds", 0.0) or 0.0 for r in rows)
        self.best = self._best_of(rows)
        self.since_best = self._since_best(rows)

    # --- bookkeeping from eval.csv (so a resumed run keeps its best and its patience) --------
    @staticmethod
    def _best_of(rows):
        best = None
        for r in rows:
            if best is None or r["resolution"] > best[0] or (r["resolution"] == best[0] and r["fid"] < best[1]):
                best = (r["resolution"], r["fid"])
        return best

    @staticmethod
    def _since_best(rows) -> int:
        count, best = 0, None
        for r in rows:
            if best is None or r["resolution"] > best[0] or (r["resolution"] == best[0] and r["fid"] < best[1]):
                best, count = (r["resolution"], r["fid"]), 0
            else:
                count += 1
        return count

    @property
    def enabled(self) -> bool:
        return self.t.eval_every > 0

    def reference(self) -> RealReference:
        if self._ref is None or self._ref.images.size != self.resolution:
            self._ref = RealReference(self.cfg.data.prepared, self.resolution, self.t.eval_n, EVAL_SEED,
                                      progress=False)
        return self._ref

    def evaluate(self, done: int) -> dict:
        """Evaluate the current generator (EMA weights when the run has them) and log the row."""
        t0 = time.perf_counter()
        model = self.model
        with model.inference_weights():
            images = generated_images(model, self.cfg, self.t.eval_n)
        ref = self.reference()
        m = evaluate_images(images, ref)
        seconds = time.perf_counter() - t0
        self.eval_seconds += seconds
        spent = self.budget.spent()
        improved = self.best is None or self.resolution > self.best[0] or m["fid"] < self.best[1]
        row = {"epoch": done, "images_seen": int(model.step.numpy()) * self.global_batch, "seconds": round(spent, 3),
               "resolution": self.resolution, **{k: m[k] for k in ("n", "fid", "kid", "kid_std", "n_real",
                                                                    "n_matched", "fid_matched", "floor_fid")},
               "fid_over_floor": m["fid_matched"] / m["floor_fid"] if m["floor_fid"] > 0 else float("nan"),
               "eval_seconds": round(seconds, 3), "eval_share": round(self.eval_seconds / max(spent, 1e-9), 4),
               "ada_p": float(model.ada.p.numpy()) if model.ada is not None else "", "best": int(improved)}
        self._append(row)
        if improved:
            self.best = (self.resolution, m["fid"])
            self.since_best = 0
            state = {**self.state_fn(done), "eval": {k: row[k] for k in ("fid", "kid", "n", "images_seen")}}
            save_checkpoint(self.run_dir, done, model.checkpoint_variables(), state, name="best")
        else:
            self.since_best += 1
        self._tensorboard(done, row)
        if self.progress:
            from tqdm.auto import tqdm

            tqdm.write(f"eval epoch {done} ({self.resolution}px): FID {m['fid']:.2f} (N={m['n']} vs {m['n_real']} "
                       f"films; matched N={m['n_matched']}: {m['fid_matched']:.2f}, floor {m['floor_fid']:.2f}), "
                       f"KID {m['kid']:.5f}{' best' if improved else ''}; {seconds:.1f} s, "
                       f"{100 * row['eval_share']:.1f} % of wall time evaluating")
        return row

    def _append(self, row: dict) -> None:
        new = not self.eval_file.is_file() or self.eval_file.stat().st_size == 0
        with open(self.eval_file, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=EVAL_FIELDS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})

    def _tensorboard(self, done: int, row: dict) -> None:
        if not self.t.tensorboard:
            return
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.run_dir / "tensorboard" / "eval"))
        with self._writer.as_default():
            for k in ("fid", "kid", "fid_matched", "floor_fid", "eval_share"):
                if isinstance(row[k], float) and np.isfinite(row[k]):
                    tf.summary.scalar(f"eval/{k}", row[k], step=done)
        self._writer.flush()

    # --- Keras hook -----------------------------------------------------------------------
    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        stage_end = done == self.stage_end_epoch
        if self.budget.exhausted():
            self.stop_reason = "budget"
        if self.stop_request is not None and self.stop_request.signal_name:
            self.stop_reason = "signal"
        due = self.enabled and (done % self.t.eval_every == 0 or stage_end or self.stop_reason is not None)
        if due:
            self.evaluate(done)
            if self.t.early_stop_evals and self.since_best >= self.t.early_stop_evals and self.stop_reason is None:
                self.stop_reason = "early_stop"
        if self.stop_reason is not None:
            self.model.stop_training = True
            if not self.monitor_saves(done) and not any(p.name == f"ckpt-{done:06d}.npz"
                                                        for p in list_checkpoints(self.run_dir)):
                save_checkpoint(self.run_dir, done, self.model.checkpoint_variables(), self.state_fn(done),
                                self.t.keep_checkpoints)


def truncate_eval_csv(run_dir: str | Path, max_epoch: int) -> None:
    """Drop ``eval.csv`` rows beyond ``max_epoch`` (evaluations a killed run did after its checkpoint)."""

    truncate_csv(Path(run_dir) / "eval.csv", max_epoch)
