"""An exclusive lock on a run directory, so two ``train`` processes never share one.

``<run>/.lock`` holds the PID of the process training the run. The lock itself is an
``flock(2)`` on that file, which the kernel releases when the process dies (even by
SIGKILL), so a stale lock never blocks a resume; the PID left in the file by a dead
process is reported as a stale lock that is taken over.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import warnings
from pathlib import Path

from keras_mammo.errors import ConfigError

LOCK_NAME = ".lock"


class RunDirInUseError(ConfigError):
    """Another live process is training in this run directory."""


def _owner(text: str) -> tuple[int | None, str]:
    parts = text.split()
    pid = int(parts[0]) if parts and parts[0].isdigit() else None
    return pid, parts[1] if len(parts) > 1 else ""


@contextlib.contextmanager
def run_dir_lock(run_dir: str | Path, warn=None):
    """Hold the run directory's lock for the body of the ``with`` block.

    Args:
        run_dir: the run directory (created if missing).
        warn: called with a one-line message when a stale lock is taken over
            (default: :func:`warnings.warn`).

    Raises:
        RunDirInUseError: another process holds the lock ("run directory ... is in use by
            process PID").
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, host = _owner(os.pread(fd, 256, 0).decode(errors="replace"))
            who = f"process {pid}" if pid else "another process"
            if host and host != socket.gethostname():
                who += f" on {host}"
            raise RunDirInUseError(f"run directory {run_dir} is in use by {who}; wait for it to finish or "
                                   f"choose another run_dir") from None
        pid, host = _owner(os.pread(fd, 256, 0).decode(errors="replace"))
        if pid is not None and pid != os.getpid():
            msg = (f"run directory {run_dir}: taking over the stale lock of process {pid}"
                   f"{' on ' + host if host else ''} (no longer running)")
            (warn or (lambda m: warnings.warn(m, stacklevel=3)))(msg)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        os.fsync(fd)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
