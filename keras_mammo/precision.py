"""Compute precision: ``train.precision: auto`` and the Keras dtype policy around model builds.

``auto`` (the default) trains in ``mixed_bfloat16`` (bfloat16 compute, float32 weights) on
CPUs that have bfloat16 instructions (``avx512_bf16`` or ``amx_bf16`` in ``/proc/cpuinfo``)
and in ``float32`` everywhere else. The choice was measured (issue 10, docs/benchmarks.md):
on such a CPU bfloat16 trains 1.8–2.0× faster than float32 at 64–256 px, and on a fixed short
MIAS run (same seed, data order and images) its FID and KID were no worse (379.3 / 0.508 vs
384.1 / 0.513). GPUs are not chosen automatically: bfloat16 and float16 were not measured
there; set ``train.precision`` yourself.

A resumed run keeps the precision it started with, so an ``auto`` run is not switched half-way
and runs written before ``auto`` existed (all ``float32``) resume unchanged.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

#: what ``auto`` picks on a CPU with bfloat16 instructions / on anything else
AUTO_BF16, AUTO_OTHER = "mixed_bfloat16", "float32"
#: ``/proc/cpuinfo`` flags that give a CPU bfloat16 matrix instructions (AVX512_BF16, AMX)
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
#: ``precision`` of generation (``load_run_model``, ``generate``, ``export``) → Keras dtype policy
INFERENCE_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def cpu_has_bfloat16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """True when ``cpuinfo`` lists one of :data:`BF16_CPU_FLAGS` (False when it cannot be read,
    e.g. on macOS or Windows)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return any(f in flags for f in BF16_CPU_FLAGS)


def auto_precision(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The ``train.precision`` that ``auto`` means on this machine: ``mixed_bfloat16`` on a CPU
    with bfloat16 instructions and no visible GPU, else ``float32``."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return AUTO_OTHER
    return AUTO_BF16 if cpu_has_bfloat16(cpuinfo) else AUTO_OTHER


def resolve_precision(requested: str, previous: str | None = None) -> str:
    """The precision a run trains in.

    Args:
        requested: ``train.precision`` of the config (``auto`` or a Keras policy name).
        previous: ``train.precision`` recorded in the run directory's ``config.yaml`` when
            the run is resumed (None for a new run).

    Returns:
        ``requested`` unless it is ``auto``; then ``previous`` when the run has one, else
        :func:`auto_precision`.
    """
    if requested != "auto":
        return requested
    if previous and previous != "auto":
        return previous
    return auto_precision()


def inference_precision(train_precision: str) -> str:
    """The generation precision (a key of :data:`INFERENCE_POLICIES`) that reproduces a run's
    in-training images: ``bfloat16`` for ``mixed_bfloat16`` runs, ``float32`` otherwise
    (``mixed_float16`` runs are generated in float32: float16 is slow or emulated on CPUs)."""
    return "bfloat16" if train_precision == "mixed_bfloat16" else "float32"


@contextmanager
def dtype_policy(name: str):
    """Set Keras' global dtype policy to ``name`` inside the block and restore the previous one
    on exit, also on an error. Layers take the global policy when they are constructed."""
    import keras

    before = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)
