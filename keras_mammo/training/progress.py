"""Run-wide progress (elapsed time and ETA across all stages) and the end state in run.json.

The per-epoch bar of :class:`~keras_mammo.training.callbacks.RunMonitor` covers one
epoch of one stage; :class:`RunProgress` adds one line per epoch for the whole run::

    run: 12/40 epochs (stage 2/2, 64 px) · elapsed 0:01:23 · ETA 0:02:10

The ETA sums, over the epochs left in every stage, the measured seconds per epoch of
that stage (median of its epochs in this session after the first, which includes graph
tracing). Until every stage with epochs left has such a measured epoch it says
``estimating`` (a first epoch or a stage's time scaled from another resolution misleads:
a 5-minute quickstart's first epoch once predicted 1:16:48); with ``train.max_seconds``
it then says ``≤ <budget left> (budget; estimating)``.

:class:`StopRequest` turns the first SIGINT/SIGTERM into "stop when this epoch ends"
(the epoch is checkpointed and the run can be resumed exactly), the second into an
immediate :class:`KeyboardInterrupt`.
"""
from __future__ import annotations

import json
import os
import signal
import statistics
import threading
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

    def seconds_per_epoch(self, stage_index: int) -> float | None:
        """Measured seconds of one epoch of a stage: the median of this session's epochs
        after its first (which includes graph tracing); None until there is one."""
        measured = self.seconds.get(stage_index) or []
        return statistics.median(measured[1:]) if len(measured) > 1 else None

    def schedule_eta(self) -> float | None:
        """Seconds left for the epochs left in the schedule; None while a stage with
        epochs left has no measured epoch ("estimating")."""
        left = 0.0
        for i, end in enumerate(self.ends):
            remaining = min(self.epochs[i], max(0, end - max(self.done, end - self.epochs[i])))
            if remaining == 0:
                continue
            sec = self.seconds_per_epoch(i)
            if sec is None:
                return None
            left += remaining * sec
        return left

    def eta(self) -> tuple[float | None, str]:
        """``(seconds left, how)`` for the rest of the run; ``how`` is ``"schedule"``,
        ``"budget"`` (``train.max_seconds`` ends first) or ``"estimating"`` (seconds is
        then None, or the budget left as an upper bound)."""
        left = self.schedule_eta()
        budget = max(0.0, float(self.budget_left())) if self.budget_left is not None else None
        if left is None:
            return budget, "estimating"
        if budget is not None and budget < left:
            return budget, "budget"
        return left, "schedule"

    def line(self) -> str:
        """The progress line (see the module docstring)."""
        eta, how = self.eta()
        if how == "estimating":
            eta_text = "estimating" if eta is None else f"≤ {format_seconds(eta)} (budget; estimating)"
        else:
            eta_text = format_seconds(eta) + (" (budget)" if how == "budget" else "")
        return (f"run: {self.done}/{self.total} epochs (stage {self.stage + 1}/{len(self.epochs)}, "
                f"{self.resolutions[self.stage]} px) · elapsed {format_seconds(self.clock() - self.start)} · "
                f"ETA {eta_text}")

    def epoch_done(self, stage_index: int, seconds: float) -> None:
        """Record one finished epoch of ``stage_index`` that took ``seconds`` and print the line."""
        self.stage = stage_index
        self.seconds.setdefault(stage_index, []).append(float(seconds))
        self.done += 1
        self.write(self.line())


class StopRequest:
    """SIGINT (Ctrl-C) and SIGTERM (``kill``, a job scheduler) during a run, as a context manager.

    The first signal only sets :attr:`signal_name` and says so on stderr; the run's
    :class:`~keras_mammo.training.evaluation.RunControl` then stops when the current epoch
    ends and checkpoints it, so nothing trained is lost (``train.checkpoint_every`` no
    longer matters) and the run resumes exactly. A second signal raises
    :class:`KeyboardInterrupt` at once (that epoch is lost). Handlers are installed only in
    the main thread and the previous ones are restored on exit.
    """

    def __init__(self):
        self.signal_name: str | None = None
        self._previous: dict = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is not None:
            raise KeyboardInterrupt(f"{name} after {self.signal_name}: stopped at once")
        self.signal_name = name
        # os.write: safe inside a signal handler (print may be holding stdout's lock)
        os.write(2, f"\n{name}: stopping when this epoch ends (it is checkpointed; rerun the same command to "
                    f"resume); send it again to stop at once, losing this epoch\n".encode())


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
