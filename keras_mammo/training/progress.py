"""Run-wide progress (elapsed time and ETA across all stages) and the end state in run.json.

The per-epoch bar of :class:`~keras_mammo.training.callbacks.RunMonitor` covers one
epoch of one stage; :class:`RunProgress` adds one line per epoch for the whole run::

    run: 12/40 epochs (stage 2/2, 64 px) · elapsed 0:01:23 · ETA 0:02:10

The ETA sums, over the epochs left in every stage, the measured seconds per epoch of
that stage (median, leaving out its first epoch, which includes graph tracing, once a
later one is known). A stage not reached yet is estimated from the nearest measured one
scaled by its pixel count, ``(r_new / r_measured)²``, and the ETA is then marked
``(estimated)``.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import keras

from keras_mammo.utils import write_json_atomic


def format_seconds(seconds: float) -> str:
    """``83.2`` → ``"0:01:23"``."""
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class RunProgress:
    """Elapsed time and ETA over a whole progressive schedule.

    Args:
        schedule: the run's stages (objects with ``resolution`` and ``epochs``).
        completed: epochs already trained (a resumed run), counted over all stages.
        write: where lines go (default: ``tqdm.write``, so they do not break progress bars).
        clock: seconds, monotonic (``time.perf_counter``; tests pass a fake clock).
        budget_left: optional callable giving the seconds left of a wall-clock budget
            (``train.max_seconds``, counting earlier sessions); the ETA is then the
            smaller of the schedule's and the budget's, and the line says which.
    """

    def __init__(self, schedule, completed: int = 0, write=None, clock=time.perf_counter, budget_left=None):
        self.resolutions = [int(s.resolution) for s in schedule]
        self.epochs = [int(s.epochs) for s in schedule]
        self.ends = [sum(self.epochs[:i + 1]) for i in range(len(self.epochs))]
        self.total = self.ends[-1] if self.ends else 0
        self.done = int(completed)
        self.clock = clock
        self.start = clock()
        self.seconds: dict[int, list[float]] = {}
        self.stage = 0
        self.budget_left = budget_left
        if write is None:
            from tqdm.auto import tqdm

            write = tqdm.write
        self.write = write

    def for_stage(self, stage_index: int, steps_per_epoch: int | None = None) -> keras.callbacks.Callback:
        """The Keras callback for one stage's ``fit`` (``steps_per_epoch`` is informational)."""
        self.stage = stage_index
        return _RunProgressCallback(self, stage_index)

    def seconds_per_epoch(self, stage_index: int) -> tuple[float | None, bool]:
        """``(seconds, estimated)`` for one epoch of a stage; ``(None, True)`` before any epoch."""
        measured = self.seconds.get(stage_index)
        if measured:
            return statistics.median(measured[1:] if len(measured) > 1 else measured), False
        known = [j for j in self.seconds if self.seconds[j]]
        if not known:
            return None, True
        j = min(known, key=lambda k: (abs(k - stage_index), -k))
        sec, _ = self.seconds_per_epoch(j)
        return sec * (self.resolutions[stage_index] / self.resolutions[j]) ** 2, True

    def schedule_eta(self) -> tuple[float | None, bool]:
        """``(seconds left, estimated)`` for the epochs left in the schedule."""
        left, estimated = 0.0, False
        for i, end in enumerate(self.ends):
            remaining = min(self.epochs[i], max(0, end - max(self.done, end - self.epochs[i])))
            if remaining == 0:
                continue
            sec, est = self.seconds_per_epoch(i)
            if sec is None:
                return None, True
            left += remaining * sec
            estimated = estimated or est
        return left, estimated

    def eta(self) -> tuple[float | None, bool]:
        """``(seconds left, estimated)`` for the rest of the run: the schedule's, or the
        wall-clock budget's when that ends first."""
        left, estimated = self.schedule_eta()
        if self.budget_left is not None:
            budget = max(0.0, float(self.budget_left()))
            if left is None or budget < left:
                return budget, False
        return left, estimated

    def line(self) -> str:
        """The progress line (see the module docstring)."""
        eta, est = self.eta()
        eta_text = "unknown" if eta is None else format_seconds(eta) + (" (estimated)" if est and eta > 0 else "")
        if self.budget_left is not None and eta is not None and eta <= max(0.0, float(self.budget_left())):
            sched, _ = self.schedule_eta()
            if sched is None or eta < sched:
                eta_text += " (budget)"
        return (f"run: {self.done}/{self.total} epochs (stage {self.stage + 1}/{len(self.epochs)}, "
                f"{self.resolutions[self.stage]} px) · elapsed {format_seconds(self.clock() - self.start)} · "
                f"ETA {eta_text}")

    def epoch_done(self, stage_index: int, seconds: float) -> None:
        """Record one finished epoch of ``stage_index`` that took ``seconds`` and print the line."""
        self.stage = stage_index
        self.seconds.setdefault(stage_index, []).append(float(seconds))
        self.done += 1
        self.write(self.line())


class _RunProgressCallback(keras.callbacks.Callback):
    def __init__(self, progress: RunProgress, stage_index: int):
        super().__init__()
        self.progress, self.stage_index = progress, stage_index
        self._t0 = None

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = self.progress.clock()

    def on_epoch_end(self, epoch, logs=None):
        self.progress.epoch_done(self.stage_index, self.progress.clock() - self._t0)


def record_run_end(path: str | Path, exc: BaseException) -> dict:
    """Mark ``run.json`` as ``interrupted`` (Ctrl-C, SIGTERM) or ``failed`` (any other exception).

    Keeps the keys already there (start time, model) and adds ``ended`` and ``reason``
    (``"KeyboardInterrupt (Ctrl-C)"`` or ``"<ExceptionType>: <message>"``). Never raises:
    the exception being recorded is the one the caller re-raises.

    Returns:
        the status written (``{}`` if it could not be written).
    """
    path = Path(path)
    try:
        status = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        status = {}
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        status.update(status="interrupted", reason=str(exc) or f"{type(exc).__name__} (Ctrl-C)"
                      if isinstance(exc, KeyboardInterrupt) else f"SystemExit: {exc.code}")
    else:
        status.update(status="failed", reason=f"{type(exc).__name__}: {exc}"[:2000])
    status["ended"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    try:
        write_json_atomic(path, status)
    except OSError:
        return {}
    return status
