"""Start ``keras-mammo serve`` in a child process on free loopback ports (tests, benchmarks).

:func:`running_server` is a context manager: it picks two free ``127.0.0.1`` ports,
starts ``python -m cli.main serve`` with them, waits until the REST API answers
``GET /v1/models/<name>`` with 200 (a version is loaded; the gRPC server is started
before the REST one), yields a :class:`LaunchedServer`, and stops the process on exit
(SIGTERM, then SIGKILL after ``stop_timeout`` seconds). The child imports the same
``keras_mammo`` as the caller (its folder is put first on ``PYTHONPATH``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now (the OS picks it; another process may still take it later)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class LaunchedServer:
    """A running ``keras-mammo serve``: ``url`` (REST root), ``grpc_target`` (``host:port``), ports, process, log file."""

    url: str
    grpc_target: str
    rest_port: int
    grpc_port: int
    proc: subprocess.Popen
    log_path: Path

    def log_tail(self, chars: int = 2000) -> str:
        """The last ``chars`` characters of the server's stdout/stderr."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


@contextlib.contextmanager
def running_server(model_name: str, model_base_path: str | Path, args=(), *, host: str = "127.0.0.1",
                   start_timeout: float = 180.0, stop_timeout: float = 20.0, log_path: str | Path | None = None):
    """Run ``keras-mammo serve`` for one model on two free ports while the ``with`` block runs.

    Args:
        model_name, model_base_path: ``--model_name`` and ``--model_base_path``.
        args: further ``serve`` flags, e.g. ``["--max_batch_size", "8"]``.
        host: the address both front ends bind and the URL uses (loopback by default).
        start_timeout: seconds to wait for the first 200 answer.
        stop_timeout: seconds between SIGTERM and SIGKILL on exit.
        log_path: file for the server's stdout/stderr (default: a temporary file, removed on exit).

    Yields:
        a :class:`LaunchedServer`.

    Raises:
        RuntimeError: the server exited or did not answer within ``start_timeout``
            (the message ends with the tail of its log).
    """
    rest, grpc_port = free_port(host), free_port(host)
    pkg_root = str(Path(__file__).resolve().parents[2])   # the folder holding keras_mammo/ and cli/
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
           "PYTHONPATH": os.pathsep.join(p for p in (pkg_root, os.environ.get("PYTHONPATH")) if p)}
    own_log = log_path is None
    if own_log:
        fd, log_path = tempfile.mkstemp(prefix="keras-mammo-serve.", suffix=".log")
        os.close(fd)
    log_path = Path(log_path)
    cmd = [sys.executable, "-m", "cli.main", "serve", "--model_name", model_name,
           "--model_base_path", str(model_base_path), "--rest_api_port", str(rest), "--port", str(grpc_port),
           "--host", host, *map(str, args)]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = LaunchedServer(f"http://{host}:{rest}", f"{host}:{grpc_port}", rest, grpc_port, proc, log_path)
    try:
        deadline = time.monotonic() + start_timeout
        while not _ready(f"{server.url}/v1/models/{model_name}"):
            if proc.poll() is not None:
                raise RuntimeError(f"keras-mammo serve exited with {proc.returncode}: {server.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"keras-mammo serve did not answer within {start_timeout:.0f} s: "
                                   f"{server.log_tail()}")
            time.sleep(0.3)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if own_log:
            log_path.unlink(missing_ok=True)
