"""Shared CLI plumbing: user errors become one clear message and a non-zero exit."""
from __future__ import annotations

import functools
import importlib.machinery
import os
import re
import sys
import tempfile

import click

from keras_mammo.errors import KerasMammoError
from keras_mammo.precision import INFERENCE_POLICIES

#: Start-up lines TensorFlow's native libraries print that say nothing is wrong. They are
#: written before absl logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` cannot hide them.
_NOISE = re.compile("|".join([
    r"All log messages before absl::InitializeLog\(\) is called",
    r"oneDNN custom operations are on",
    r"This TensorFlow binary is optimized to use available CPU instructions",
    r"To enable the following instructions: .* rebuild TensorFlow",
    r"Unable to register (cuDNN|cuFFT|cuBLAS) factory",
    r"computation_placer\.cc.*already registered",
    r"TF-TRT Warning: Could not find TensorRT",
]))
#: Printed on a machine without any CUDA driver; the cuInit failure that follows is then expected.
_NO_DRIVER = re.compile(r"Could not find cuda drivers on your machine|cuda_dso_loader.*libcuda\.so")
_CUINIT = re.compile(r"failed call to cuInit")
#: Grappler's remapper gives up on a graph it cannot fuse and logs it as an error; the graph
#: simply runs unfused (TensorFlow 2.21, LeakyReLU gradients), nothing is wrong. tf.data's
#: graph rewrite turns a ParallelMapDatasetV2 into a MapDataset and logs, as an error, that
#: the attribute it no longer needs "will be ignored" (once per run, on the first batch).
#: oneDNN says, as an error, that an int32 op falls back to Eigen (the fade-in's arithmetic).
_RUNTIME_NOISE = re.compile(r"meta_optimizer\.cc:\d+\] remapper failed|"
                            r"NodeDef mentions attribute \w+ which is not in the op definition.*"
                            r"Unknown attributes will be ignored|"
                            r"oneDNN supports DT_INT32 only on platforms with AVX-512\. Falling back to the default")
#: What Ray puts before a line its workers print (``(_ray_trainable pid=26476) ``, coloured):
#: a line that is nothing else once its record is dropped goes too.
_RAY_PREFIX = re.compile(rb"(?:\s*(?:\x1b\[[\d;]*m)?\([^()\s]+ pid=\d+(?:, ip=[\w.:-]+)?\)(?:\x1b\[0m)?)*\s*")
#: Start of a TensorFlow/absl C++ log record: ``E0000 00:00:1795924318.234778    6766 file.cc:52] ...``.
_RECORD = re.compile(rb"[IWEF]\d{4} \d\d:\d\d:[\d.]+ +\d+ [^ \]]+:\d+\] |WARNING: All log messages before absl")


class StartupLineFilter:
    """Decides, line by line, which of TensorFlow's C++ log lines are shown.

    Drops the known informational lines (:data:`_NOISE`), Grappler's benign "remapper
    failed" (:data:`_RUNTIME_NOISE`), and the "no CUDA driver" line together with the
    ``failed call to cuInit`` error it causes — but keeps a cuInit failure on a machine that
    has a driver (a real GPU problem), and every other line.
    """

    def __init__(self):
        self.no_driver = False

    def keep(self, line: str) -> bool:
        if _NO_DRIVER.search(line):
            self.no_driver = True
            return False
        if _NOISE.search(line) or _RUNTIME_NOISE.search(line):
            return False
        return not (self.no_driver and _CUINIT.search(line))


def filter_startup_lines(text: str) -> str:
    """The lines of ``text`` (what TensorFlow wrote to stderr) that :class:`StartupLineFilter` keeps.

    Returns:
        The kept, non-blank lines, newline-terminated, or ``""``.
    """
    f = StartupLineFilter()
    lines = text.splitlines()
    if any(_NO_DRIVER.search(x) for x in lines):
        f.no_driver = True
    return "".join(x + "\n" for x in lines if x.strip() and f.keep(x))


def _filter_chunk(line: bytes, f: StartupLineFilter) -> bytes:
    """One stderr line (maybe a progress bar followed by a log record): the record dropped if
    noise, with the whole line when what is left is only Ray's worker prefix."""
    m = _RECORD.search(line)
    if m is None or f.keep(line[m.start():].decode("utf-8", "replace")):
        return line
    head = line[:m.start()]
    return b"" if _RAY_PREFIX.fullmatch(head) else head


def _filter_loop(read_fd: int, write_fd: int) -> None:
    """Copy ``read_fd`` to ``write_fd`` until EOF, dropping the log records the filter rejects.

    Text without a log record is passed on at once (progress bars update in place); a
    record is held until its line is complete.
    """
    f = StartupLineFilter()
    buf = b""
    while True:
        try:
            chunk = os.read(read_fd, 65536)
        except InterruptedError:
            continue
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        out = b""
        for x in lines:
            y = _filter_chunk(x, f)
            out += x + b"\n" if y == x else y   # a dropped record takes its newline with it
        if buf and not _RECORD.search(buf):
            out, buf = out + buf, b""
        if out:
            os.write(write_fd, out)
    if buf:
        os.write(write_fd, _filter_chunk(buf, f))


def filter_stderr() -> None:
    """Route this process's stderr (fd 2) through a small forked filter process.

    TensorFlow's C++ runtime writes straight to fd 2, so its benign start-up and Grappler
    lines cannot be silenced from Python; the filter (:class:`StartupLineFilter`) drops
    those and passes everything else, Python tracebacks and C++ errors included. Being a
    separate process, it still writes out a fatal message when this process aborts.
    Call it once, early, with no threads running (before TensorFlow is imported); POSIX
    only. ``KERAS_MAMMO_RAW_STDERR=1`` turns it off.
    """
    if os.name != "posix" or os.environ.get("KERAS_MAMMO_RAW_STDERR") or "tensorflow" in sys.modules:
        return
    import atexit
    import signal

    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:   # the filter: ignores Ctrl-C (the parent handles it), ends when the parent's stderr closes
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            os.close(write_fd)
            for fd in (0, 1):
                os.close(fd)
            _filter_loop(read_fd, 2)
        finally:
            os._exit(0)
    os.close(read_fd)
    saved = os.dup(2)
    os.dup2(write_fd, 2)
    os.close(write_fd)

    def restore():
        import time

        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)   # closes the pipe's last write end here: the filter drains and exits
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
            time.sleep(0.01)

    atexit.register(restore)


class _QuietLoader:
    """Wraps TensorFlow's package loader: stderr (fd 2) goes to a file while it runs, and
    only the lines :func:`filter_startup_lines` keeps are written back afterwards."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        sys.stderr.flush()
        with tempfile.TemporaryFile() as tmp:
            saved = os.dup(2)
            os.dup2(tmp.fileno(), 2)
            ok = False
            try:
                self._loader.exec_module(module)
                # CUDA platform start-up (the cuInit call) happens on first device use; do it here.
                module.config.list_physical_devices()
                ok = True
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                text = tmp.read().decode("utf-8", errors="replace")
                sys.stderr.write(filter_startup_lines(text) if ok else text)
                sys.stderr.flush()

    def __getattr__(self, name):   # is_package, get_code, get_resource_reader, ...
        return getattr(self._loader, name)


class _QuietTensorFlowFinder:
    """A ``sys.meta_path`` finder that wraps the first import of ``tensorflow`` in :class:`_QuietLoader`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path[:] = [f for f in sys.meta_path if f is not self]
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow() -> None:
    """Silence TensorFlow's start-up chatter; call before TensorFlow is imported.

    Sets ``TF_CPP_MIN_LOG_LEVEL=2`` (C++ INFO and WARNING lines off, errors kept) unless the
    user set it, and filters the lines printed during the import itself, which no setting
    reaches (see :func:`filter_startup_lines`). GPUs are never hidden. Does nothing to the
    import if TensorFlow is already imported.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GLOG_minloglevel", "2")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())


def user_errors(fn):
    """Turn :class:`KerasMammoError` (and missing files) into ``click.ClickException``."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KerasMammoError as exc:
            raise click.ClickException(str(exc)) from None
        except FileNotFoundError as exc:
            raise click.ClickException(f"{exc.filename}: file not found") from None

    return wrapper


def parse_sets(values: tuple[str, ...]) -> dict:
    """Parse repeated ``--set key=value`` options into ``{dotted_key: yaml_value}``."""
    import yaml

    out = {}
    for item in values:
        if "=" not in item:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE, e.g. train.batch_size=16", param_hint="--set")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def quiet_option(fn):
    """``--quiet/-q``: no progress bars or notes; results, warnings and errors only."""
    return click.option("--quiet", "-q", is_flag=True,
                        help="No progress bars or notes; only results, warnings and errors.")(fn)


def precision_option(what: str):
    """``--precision float32|bfloat16`` (default None: the precision the run trained in).

    The one definition behind ``generate`` and ``export``; ``what`` starts the help text.
    The library checks the value (:func:`keras_mammo.generation.generate.check_precision_source`,
    :func:`keras_mammo.precision.inference_precision`).
    """
    return click.option("--precision", type=click.Choice(list(INFERENCE_POLICIES)), default=None,
                        help=f"{what} (default: the one the run trained in, train.precision); bfloat16 is about "
                             f"2.5x faster on CPUs with AVX512_BF16/AMX (pixels differ from float32 by 0.1/255 on "
                             f"average, at most about 6/255).")


def note(message: str, quiet: bool = False) -> None:
    """An informational line on stderr (kept off stdout, which carries results); none with --quiet."""
    if not quiet:
        click.echo(message, err=True)


def renamed_option(old: str, new: str, dest: str, **kwargs):
    """A hidden option spelled the old way: it still works and says which spelling to use.

    Args:
        old: the old spelling, e.g. ``"--model"``.
        new: the spelling to use instead, e.g. ``"--saved-model"``.
        dest: the parameter name the value is stored under (``<dest>_old``; merge it with
            :func:`merge_renamed`).
    """

    def callback(ctx, param, value):
        if value is not None:
            click.echo(f"note: {old} is now {new}; using {new} {value}", err=True)
        return value

    return click.option(old, f"{dest}_old", hidden=True, default=None, expose_value=True, callback=callback,
                        **kwargs)


def merge_renamed(new_value, old_value, new: str):
    """The value of an option given either way; both spellings at once is a usage error."""
    if new_value is not None and old_value is not None:
        raise click.UsageError(f"give {new} once (its old spelling was given too)")
    return new_value if new_value is not None else old_value
