"""Generating synthetic mammograms from a training run or an exported SavedModel.

The same seed gives the same images from a run's checkpoint and from its SavedModel's
``generate`` signature: both draw ``z = stateless_normal([n, latent_dim], seed=(seed, 0x5EED))``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_mammo.errors import DataError


def is_saved_model(path: str | Path) -> bool:
    return (Path(path) / "saved_model.pb").is_file()


def _latest_version(path: Path) -> Path:
    """``saved_models/<name>`` → its highest numeric version folder; a version folder is returned as is."""
    if is_saved_model(path):
        return path
    versions = sorted((int(p.name), p) for p in path.iterdir() if p.is_dir() and p.name.isdigit()) if path.is_dir() else []
    if versions and is_saved_model(versions[-1][1]):
        return versions[-1][1]
    raise DataError(f"{path}: neither a run directory (config.yaml) nor a SavedModel (saved_model.pb)")


def generate_images(source: str | Path, n: int, seed: int = 0, checkpoint=None, batch_size: int = 64,
                    conditions: dict | None = None) -> np.ndarray:
    """Generate ``n`` images.

    Args:
        source: a run directory (uses its newest checkpoint, or ``checkpoint``) or a
            SavedModel directory (a version folder, or ``saved_models/<name>`` for the
            newest version).
        n: number of images (≥ 1).
        seed: the latent vectors are a function of it.
        checkpoint: run sources only: checkpoint path or epoch number.
        batch_size: images per forward pass.
        conditions: conditional models only: the extra inputs (masks, labels) as arrays;
            default for a run: the run's own prepared films (:func:`run_conditions`).

    Returns:
        ``(n, H, W, 1) float32`` in ``[0, 1]``. SavedModel outputs are 8-bit
        (``uint8 / 255``); run outputs keep float precision.

    Raises:
        DataError: ``source`` is neither a run nor a SavedModel, or has no checkpoint, or
            is a conditional SavedModel (seg-cdcgan, pix2pix, unet) and no ``conditions``
            were given (a conditional *run* uses its prepared films instead).
        ValueError: ``n < 1``.
    """
    import tensorflow as tf

    if n < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    source = Path(source)
    if (source / "config.yaml").is_file():
        from keras_mammo.training.gan import GAN
        from keras_mammo.training.run import load_run_model

        model, cfg, _ = load_run_model(source, checkpoint)
        z = GAN.fixed_latents(n, cfg.model.latent_dim, seed).numpy()
        if conditions is None and model.inputs_needed:
            conditions = run_conditions(cfg, model, n)
        out = []
        for i in range(0, n, batch_size):
            cond = None if conditions is None else {k: v[i:i + batch_size] for k, v in conditions.items()}
            out.append(np.asarray(model.generate(tf.constant(z[i:i + batch_size]), cond)))
        return np.clip((np.concatenate(out) + 1.0) / 2.0, 0.0, 1.0).astype(np.float32)
    path = _latest_version(source)
    loaded = tf.saved_model.load(str(path))
    if conditions is None:
        sig = loaded.signatures.get("generate")
        inputs = set(sig.structured_input_signature[1]) if sig is not None else set()
        if inputs != {"count", "seed"}:
            raise DataError(f"{path}: this SavedModel is conditional (its signatures take "
                            f"{sorted(inputs or set(loaded.signatures['serving_default'].structured_input_signature[1]))}); "
                            f"generate from its run directory, or pass conditions (masks/labels)")
        imgs = loaded.signatures["generate"](count=tf.constant(n, tf.int32), seed=tf.constant(seed, tf.int64))["images"]
    else:
        fn = loaded.signatures["serving_default"]
        imgs = fn(**{k: tf.constant(v) for k, v in conditions.items()})["images"]
    return imgs.numpy().astype(np.float32) / 255.0


def run_conditions(cfg, model, n: int) -> dict:
    """Default conditions of a conditional run: those of its prepared films, in manifest order.

    Image ``i`` is conditioned on film ``i mod N`` of the run's prepared dataset (its
    ``"image"``, masks and label at the model's resolution), so ``n`` may exceed ``N``.

    Returns:
        ``{"image": (n, R, R, 1) float32 in [-1, 1], "lesion_mask"/"breast_mask": float32
        {0, 1}, "label": int32}`` — the keys the model needs plus ``"image"``.

    Raises:
        DataError: the run's prepared dataset is missing.
    """
    from keras_mammo.data.pipeline import fixed_batch, load_stage_arrays

    keys = tuple(k for k in model.inputs_needed if k != "image")
    stage = load_stage_arrays(cfg.data.prepared, int(model.resolution), keys)
    idx = np.arange(n) % stage.size
    stage.arrays = {k: v[idx] for k, v in stage.arrays.items()}
    return {k: np.asarray(v) for k, v in fixed_batch(stage, n).items()}


def save_images(images: np.ndarray, out_dir: str | Path, bits: int = 8, prefix: str = "synthetic") -> list[Path]:
    """Write ``(N, H, W, 1)`` ``[0, 1]`` images as ``<prefix>_00000.png`` … (8- or 16-bit PNG).

    Raises:
        DataError: a file of that name exists already (nothing the user has is overwritten).
    """
    from keras_mammo.data.io import write_png

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{prefix}_{i:05d}.png" for i in range(len(images))]
    clash = [p for p in paths if p.exists()]
    if clash:
        raise DataError(f"{clash[0]}: exists already ({len(clash)} files would be overwritten); "
                        f"choose another --out or --prefix")
    for p, img in zip(paths, images):
        write_png(p, img, bits=bits)
    return paths
