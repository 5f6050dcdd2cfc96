"""Small helpers shared across the package: atomic writes, refusing to overwrite, seeding, JSON."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from keras_mammo.errors import DataError, EngineStartError


def fsync_path(path: str | Path) -> None:
    """Flush a file's (or a directory's) data and metadata to the storage device.

    After ``os.replace`` the new directory entry only survives a power cut once the
    directory itself is fsynced (POSIX leaves rename durability to the caller).
    Filesystems that cannot fsync a directory (some network mounts) are tolerated.
    """
    flags = os.O_RDONLY | (os.O_DIRECTORY if Path(path).is_dir() else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # EINVAL: the filesystem does not support fsync on this object
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, durable: bool = True):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    The rename is atomic on POSIX, so readers see either the old file or the complete
    new one, never a partial write. With ``durable`` (default) the temporary file is
    fsynced before the rename and the directory after it, so a power cut or a killed
    machine leaves either the old or the complete new file on disk. On error the
    temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates 0600 files; give the result the mode an ordinary open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        if durable:
            fsync_path(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_path(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file + rename)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def write_json_atomic(path: str | Path, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def set_global_seed(seed: int, deterministic_ops: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow (``keras.utils.set_random_seed``).

    With ``deterministic_ops`` TensorFlow's op determinism is enabled, so the same seed
    on the same machine gives the same weights and images, and Grappler's *remapper*
    (which fuses Conv2D + BiasAdd + activation into one oneDNN kernel) is turned off: in
    TF 2.21 it sometimes fails on a freshly traced train step ("remapper failed: ...
    Mutation::Apply error") and then leaves that graph unfused, so two processes of the
    same run computed with different rounding — a resumed run diverged from the
    uninterrupted one in 1 of 20 kills (``bench/bench_resume.py``) until it was off.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()
        tf.config.optimizer.set_experimental_options({"remapping": False})


@contextlib.contextmanager
def grappler_remapping(enabled: bool = True):
    """Set Grappler's remapper (Conv2D + BiasAdd + activation fusion) inside the block and
    restore the previous setting on exit.

    A ``tf.function`` is optimized when it first runs, under the setting of that moment.
    Training turns the remapper off (:func:`set_global_seed`); ``generate`` and ``evaluate``
    run with TensorFlow's default (on). In float32 the fused and unfused kernels give the
    same images; in bfloat16 they round differently (by up to about 2/1000 of the range),
    so in-training evaluation traces its generator with the remapper on, as those commands
    do, and its FID stays equal to ``keras-mammo evaluate``'s.
    """
    import tensorflow as tf

    before = tf.config.optimizer.get_experimental_options().get("remapping", True)
    tf.config.optimizer.set_experimental_options({"remapping": bool(enabled)})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"remapping": before})


def refuse_overwrite(out_dir: str | Path, names: list[str], overwrite: bool = False) -> None:
    """Refuse to replace files: the one check behind every writer of generated images.

    Args:
        out_dir: the output folder (it need not exist).
        names: file names that are about to be written in it.
        overwrite: allow replacing them (``--overwrite``); then nothing is checked.

    Raises:
        DataError: naming the first existing file and how many would be overwritten.
    """
    out = Path(out_dir)
    if overwrite or not out.is_dir():
        return
    present = set(os.listdir(out))
    clash = [nm for nm in names if nm in present]
    if clash:
        raise DataError(f"{out / clash[0]}: exists already ({len(clash)} file(s) would be overwritten); "
                        f"choose another --out or --prefix, or pass --overwrite")


def ray_init(address: str | None = None, num_cpus: int | None = None, log_to_driver: bool = True) -> bool:
    """Start (or join, with ``address``) Ray unless it is running: no dashboard, no usage
    statistics, nothing downloaded, and quiet: no colour codes in forwarded worker lines
    (``RAY_COLOR_PREFIX=0``), no Tune tables (``RAY_AIR_NEW_OUTPUT=0``; Tune 2.60's new
    output prints its "Configuration for experiment" box even at ``verbose=0``), Ctrl-C
    raising at once rather than Tune's graceful stop (``TUNE_DISABLE_SIGINT_HANDLER=1``);
    each a default the environment can override. Returns whether this call started it.

    Args:
        address: a cluster address (``host:port``, ``ray://host:port``) or ``"auto"``
            (``RAY_ADDRESS`` or the running local cluster); ``None`` or ``"local"``
            starts a private local Ray bound to 127.0.0.1.
        num_cpus: CPUs of a local Ray (default: all of this machine's).
        log_to_driver: forward the workers' stdout/stderr to this process.

    Raises:
        ImportError: Ray is not installed (it comes with the ``sweep`` extra).
        EngineStartError: Ray did not start (on a loaded machine its node can time out
            during start-up); one line with Ray's reason and the ``--engine local`` hint.
    """
    import logging

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    if ray.is_initialized():
        return False
    # the notice that token authentication is on (Ray ≥ 2.5x) is not a problem to report;
    # the warning that it is off stays
    logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(
        lambda rec: not str(rec.msg).startswith("Token authentication is enabled for this Ray cluster"))
    kwargs = dict(include_dashboard=False, log_to_driver=log_to_driver, configure_logging=False)
    try:
        if address and address != "local":
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus or os.cpu_count(), _node_ip_address="127.0.0.1", **kwargs)
    except Exception as exc:   # Ray raises plain Exception for a node start-up timeout
        try:
            ray.shutdown()   # whatever part of the node did start
        except Exception:
            pass
        reason = next((x.strip() for x in str(exc).splitlines() if x.strip()), type(exc).__name__)
        where = f" at {address}" if address and address != "local" else ""
        raise EngineStartError(f"Ray did not start{where}: {reason}; on a loaded machine run the trials without "
                               f"Ray: --engine local") from None
    return True


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Inside the block, SIGTERM (``kill``, a job scheduler) raises :class:`KeyboardInterrupt`
    like Ctrl-C, so ``finally`` clauses run (Ray is shut down, ``run.json`` says why) instead
    of the process dying at once. Main thread only (elsewhere it does nothing); the previous
    handler is restored on exit."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt("terminated by SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
