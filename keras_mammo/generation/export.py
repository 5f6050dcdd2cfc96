"""Export a trained generator as a SavedModel in TensorFlow Serving's layout.

``saved_models/<name>/<version>/`` with ``saved_model.pb``, ``variables/`` and
``assets.extra/keras_mammo.json`` (model, resolution, latent size, seed, source run).
Signatures come from the model's :meth:`~keras_mammo.models.gan.GAN.export_signatures`;
for unconditional models:

- ``serving_default``: ``latent`` float32 ``[N, latent_dim]`` → ``images`` uint8 ``[N, H, W, 1]``
- ``generate``: ``count`` int32 ``[]``, ``seed`` int64 ``[]`` → ``images`` uint8 ``[count, H, W, 1]``
- ``generate_png`` / ``latent_png``: the same images as 8-bit PNG bytes (:mod:`keras_mammo.serving.signatures`)
- ``generate_png16`` / ``latent_png16``: the same generator output as 16-bit PNG bytes

Every signature rejects non-finite float inputs (a NaN/Inf latent vector fails with
``InvalidArgumentError: latent: ... NaN or Inf`` instead of returning black images) and
a ``count`` outside ``1 … MAX_IMAGES`` (:data:`keras_mammo.generation.generate.MAX_IMAGES`).

A new version number is chosen when none is given; an existing version is never
overwritten. The export is written to a temporary folder and renamed into place. The
metadata names the source run by its folder name and its :func:`~keras_mammo.savedmodel.run_fingerprint` (a hash
of the run's training-data manifest), never by a path, absolute or relative: no machine
path leaves with a shared SavedModel, wherever it was exported to. Tools that need the run
back (provenance checks) look for a run of that name beside the export and compare fingerprints.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from keras_mammo.config import load_run_config
from keras_mammo.errors import ConfigError
from keras_mammo.generation.generate import MAX_IMAGES
from keras_mammo.savedmodel import METADATA, next_version, run_fingerprint
from keras_mammo.serving.signatures import add_png_signatures


def guard_signature(fn):
    """Wrap a signature ``tf.function`` so that its inputs are checked before it runs.

    Float inputs must be finite (``tf.debugging.assert_all_finite``); an int ``count``
    must lie in ``1 … MAX_IMAGES``. A failed check raises ``InvalidArgumentError`` naming
    the input. The wrapper has the same input signature and outputs.
    """
    import tensorflow as tf

    specs = list(fn.input_signature)
    names = [sp.name for sp in specs]

    def check(name, value):
        if value.dtype.is_floating:
            return tf.debugging.assert_all_finite(value, f"{name}: contains NaN or Inf values; inputs must be finite")
        if name == "count":
            with tf.control_dependencies([
                tf.debugging.assert_positive(value, message="count: must be ≥ 1"),
                tf.debugging.assert_less_equal(value, tf.constant(MAX_IMAGES, value.dtype),
                                               message=f"count: at most {MAX_IMAGES} images per call")]):
                return tf.identity(value)
        return value

    import inspect

    params = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])

    def guarded(*args, **kwargs):
        bound = params.bind(*args, **kwargs)
        return fn(**{n: check(n, bound.arguments[n]) for n in names})

    guarded.__signature__ = params   # callable by input name, like the signature it wraps
    return tf.function(guarded, input_signature=specs)


def export_model(run_dir: str | Path, out_dir: str | Path | None = None, name: str | None = None,
                 version: int | None = None, checkpoint=None, precision: str | None = None) -> Path:
    """Export a run's generator (newest or chosen checkpoint) as a TF-Serving SavedModel.

    Args:
        run_dir: the training run.
        out_dir: the model base path (default: the run's ``export.dir``, ``saved_models``).
        name: model name (default: the run's ``export.name``).
        version: version number (default: next free one).
        checkpoint: checkpoint path or epoch number (default: newest).
        precision: the exported graph's compute dtype: None (default: the one the run
            trained in, see :func:`~keras_mammo.training.run.load_run_model`), ``"float32"``
            or ``"bfloat16"`` (float32 weights and inputs/outputs, bfloat16 convolutions:
            about 2.5× faster on CPUs with AVX512_BF16/AMX, and on GPUs with bfloat16 units; slow
            elsewhere, where bfloat16 is emulated; pixels as in
            :func:`~keras_mammo.training.run.load_run_model`, so 16-bit PNG signatures
            carry about 8 bits). Recorded in
            ``assets.extra/keras_mammo.json``.

    Returns:
        the version directory.

    Raises:
        ConfigError: the version exists already.
        DataError: not a run, or no checkpoint.
        ValueError: unknown ``precision``.
    """

    cfg = load_run_config(run_dir)
    name = name or cfg.export.name
    model_dir = Path(out_dir or cfg.export.dir) / name
    version = version if version is not None else (cfg.export.version or next_version(model_dir))
    target = model_dir / str(version)

    def refuse_existing():
        if target.exists():
            raise ConfigError(f"export.version: {target} exists already; choose another version (next free: "
                              f"{next_version(model_dir)})")

    refuse_existing()  # before TensorFlow and the model are loaded (seconds)
    import tensorflow as tf

    from keras_mammo.training.run import load_run_model  # imports TensorFlow: on first use only

    model, cfg, state = load_run_model(run_dir, checkpoint, precision=precision)
    refuse_existing()

    # PNG signatures are built on the guarded ones (16-bit: guarded themselves), so every signature checks its inputs
    signatures = add_png_signatures({k: guard_signature(fn) for k, fn in model.export_signatures().items()},
                                    model=model, guard=guard_signature)
    module = tf.Module()
    for key, obj in model.export_trackables().items():
        setattr(module, key, obj)
    for key, fn in signatures.items():
        setattr(module, f"sig_{key}", fn)
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=model_dir))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)   # mkdtemp makes it 0700; TF Serving may run as another user
    try:
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        meta = {"model": cfg.model.name, "resolution": state.get("stage", {}).get("resolution"),
                "latent_dim": cfg.model.latent_dim, "seed": cfg.seed, "run": Path(run_dir).resolve().name,
                "run_fingerprint": run_fingerprint(run_dir),
                "epoch": state.get("epoch"), "step": state.get("step"), "precision": state["precision"],
                "signatures": sorted(signatures)}
        (tmp / METADATA).parent.mkdir(exist_ok=True)
        (tmp / METADATA).write_text(json.dumps(meta, indent=2))
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
