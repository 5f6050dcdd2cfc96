"""Preprocessing on a Ray cluster: the per-film work of ``keras-mammo preprocess`` as Ray tasks.

:func:`ray_process_records` runs :func:`keras_mammo.data.prepare.process_record` for
each film as one Ray task (one CPU each) and hands the manifest rows back to
:func:`keras_mammo.data.prepare.prepare_dataset`, which writes the manifest, the
summary and the preview exactly as for a local run; the prepared images are written
by the tasks themselves (atomically), so the input files and the output folder must be
reachable under the same paths on every node (a shared file system). Resuming is
:func:`~keras_mammo.data.prepare.prepare_dataset`'s: only films not yet prepared are
submitted.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from keras_mammo.data.film import failed_row, process_record
from keras_mammo.data.records import SourceRecord
from keras_mammo.errors import ConfigError
from keras_mammo.utils import ray_init

if TYPE_CHECKING:   # annotations only: the data layer sits below the config
    from keras_mammo.config import DataConfig

#: Tasks in flight per CPU of the cluster: enough to keep workers busy, few enough that
#: the driver never holds more than a few rows' worth of pending results.
IN_FLIGHT_PER_CPU = 4


def ray_process_records(records: list[SourceRecord], cfg: DataConfig, out_dir: str,
                        indices: list[int]) -> Iterator[tuple[int, dict]]:
    """Process ``records`` as Ray tasks; yield ``(indices[k], manifest row)`` as tasks finish.

    Joins the cluster at ``cfg.ray_address`` (``auto``, ``host:port``, ``ray://…``) or
    starts a private local Ray with ``cfg.workers`` CPUs (``local``), unless Ray is
    already initialized in this process (then that cluster is used). A task whose
    worker dies (killed for memory, node lost) yields the film's row as
    ``failed: Ray worker died (...)``, as the local pool does for a dead process; the
    run goes on. Ray's own logging is kept at warnings and the workers' output is not
    forwarded.

    Raises:
        ConfigError: Ray is not installed (``pip install 'keras-mammo[sweep]'``).
    """
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("data.ray_address: preprocessing on Ray needs Ray; install the sweep extra: "
                          "pip install 'keras-mammo[sweep]'") from exc

    logging.getLogger("ray").setLevel(logging.WARNING)
    started = ray_init(cfg.ray_address, num_cpus=max(1, cfg.workers), log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1, max_retries=1)(process_record)
        cfg_ref = ray.put(cfg)
        limit = max(1, int(ray.cluster_resources().get("CPU", 1)) * IN_FLIGHT_PER_CPU)
        pending: dict = {}
        nxt = 0
        while nxt < len(records) or pending:
            while nxt < len(records) and len(pending) < limit:
                pending[task.remote(records[nxt], cfg_ref, out_dir)] = nxt
                nxt += 1
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                k = pending.pop(ref)
                try:
                    row = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    row = failed_row(records[k], cfg, f"failed: Ray worker died ({type(exc).__name__}: {first}); "
                                                       f"out of memory? give the workers more memory")
                yield indices[k], row
    finally:
        if started:
            ray.shutdown()
