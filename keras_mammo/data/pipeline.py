"""``tf.data`` input pipeline from a prepared dataset directory.

Steps: decode the 16-bit PNGs in parallel (``tf.io.decode_png``), resize to the stage's
resolution with area interpolation, then for each epoch draw a permutation that depends
only on ``(seed, epoch)``, batch, and prefetch. A stage whose decoded images fit in
``cache_bytes`` is decoded once and held in memory (in a ``tf.Variable``, never as a graph
constant, so its size is not bound by the 2 GB graph limit); a larger one is streamed
from disk: each epoch reads and decodes the permuted files in parallel, so memory stays
flat however many films there are. Both give the same batches.

Because each epoch's order is a pure function of the seed and the epoch number, a run
resumed at epoch ``k`` sees exactly the batches an uninterrupted run sees at epoch ``k``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_mammo.data.prepare import read_manifest
from keras_mammo.errors import ConfigError, DataError

MASK_KEYS = ("breast_mask", "lesion_mask")


@dataclasses.dataclass
class StageArrays:
    """A stage's training set held in memory.

    Attributes:
        arrays: ``"image"`` ``(N, R, R, 1) uint16`` (0..65535 ↔ [0, 1]); masks
            ``(N, R, R, 1) uint8`` in {0, 1}; ``"label"`` ``(N,) int32``.
        classes: class names indexed by ``"label"``.
        resolution: ``R`` in pixels.
    """

    arrays: dict
    classes: list
    resolution: int

    @property
    def size(self) -> int:
        return int(self.arrays["image"].shape[0])


@dataclasses.dataclass
class StageFiles:
    """A stage's training set streamed from disk (too large to cache in memory).

    Attributes:
        prepared_dir: the prepared dataset.
        rows: its kept manifest rows (paths relative to ``prepared_dir``).
        keys: extra batch keys (``"breast_mask"``, ``"lesion_mask"``, ``"label"``).
        classes: class names indexed by ``"label"``.
        resolution: ``R`` in pixels.
    """

    prepared_dir: Path
    rows: list
    keys: tuple
    classes: list
    resolution: int

    @property
    def size(self) -> int:
        return len(self.rows)


def stage_bytes(n: int, resolution: int, keys: tuple[str, ...] = ()) -> int:
    """Memory of ``n`` decoded films at ``resolution`` (uint16 image + uint8 masks)."""
    return n * resolution * resolution * (2 + sum(1 for k in keys if k in MASK_KEYS))


def open_stage(prepared_dir: str | Path, resolution: int, keys: tuple[str, ...] = (),
               cache_bytes: int = 2 << 30) -> StageArrays | StageFiles:
    """The stage's training set: decoded in memory if it fits ``cache_bytes``, else streamed.

    Raises:
        DataError: a listed PNG is missing (the message names it), or none is kept.
    """
    prepared_dir = Path(prepared_dir)
    rows = kept_rows(prepared_dir)
    if stage_bytes(len(rows), resolution, keys) <= cache_bytes:
        return load_stage_arrays(prepared_dir, resolution, keys, rows=rows)
    for r in rows:
        for key in ("image", *[k for k in keys if k in MASK_KEYS]):
            if r.get(key) and not (prepared_dir / r[key]).is_file():
                raise DataError(f"{prepared_dir / r[key]}: listed in the manifest but missing; "
                                f"re-run `keras-mammo preprocess`")
    return StageFiles(prepared_dir, rows, tuple(keys), dataset_classes(rows), resolution)


def kept_rows(prepared_dir: str | Path) -> list[dict]:
    """The manifest rows of the images kept by preprocessing.

    Raises:
        DataError: no kept image.
    """
    rows = [r for r in read_manifest(prepared_dir) if r.get("kept")]
    if not rows:
        raise DataError(f"{prepared_dir}: the prepared dataset holds no kept image")
    return rows


def dataset_classes(rows: list[dict]) -> list[str]:
    """Sorted distinct labels (``None`` shown as ``"unknown"``)."""
    return sorted({r.get("label") or "unknown" for r in rows})


def _decode(path, channels_dtype, resolution):
    raw = tf.io.read_file(path)
    img = tf.io.decode_png(raw, channels=1, dtype=channels_dtype)
    img = tf.image.resize(tf.cast(img, tf.float32), (resolution, resolution), method="area", antialias=True)
    return img


def load_stage_arrays(prepared_dir: str | Path, resolution: int, keys: tuple[str, ...] = (),
                      rows: list[dict] | None = None, parallel: int | None = None) -> StageArrays:
    """Decode and resize every kept image (and the masks/labels in ``keys``) to ``resolution``.

    Args:
        prepared_dir: output of ``keras-mammo preprocess``.
        resolution: side in pixels.
        keys: extra batch keys: ``"breast_mask"``, ``"lesion_mask"``, ``"label"``.
        rows: manifest rows to use (default: all kept rows).

    Raises:
        DataError: a listed PNG is missing or undecodable (the message names it).
    """
    prepared_dir = Path(prepared_dir)
    rows = rows if rows is not None else kept_rows(prepared_dir)
    auto = parallel or tf.data.AUTOTUNE
    paths = [str(prepared_dir / r["image"]) for r in rows]
    for p in paths:
        if not Path(p).is_file():
            raise DataError(f"{p}: listed in the manifest but missing; re-run `keras-mammo preprocess`")
    try:
        imgs = tf.data.Dataset.from_tensor_slices(paths).map(
            lambda p: _decode(p, tf.uint16, resolution), num_parallel_calls=auto, deterministic=True)
        images = np.stack(list(imgs.as_numpy_iterator()))
    except tf.errors.OpError as exc:
        raise DataError(f"{prepared_dir}: cannot decode a prepared image: {exc.message}") from exc
    arrays = {"image": np.clip(np.rint(images), 0, 65535).astype(np.uint16)}
    for key in keys:
        if key in MASK_KEYS:
            mask_paths = [str(prepared_dir / r[key]) if r.get(key) else "" for r in rows]
            out = np.zeros((len(rows), resolution, resolution, 1), np.uint8)
            idx = [i for i, p in enumerate(mask_paths) if p]
            if idx:
                ds = tf.data.Dataset.from_tensor_slices([mask_paths[i] for i in idx]).map(
                    lambda p: _decode(p, tf.uint8, resolution), num_parallel_calls=auto, deterministic=True)
                out[idx] = (np.stack(list(ds.as_numpy_iterator())) > 127.5).astype(np.uint8)
            arrays[key] = out
    classes = dataset_classes(rows)
    if "label" in keys:
        lookup = {c: i for i, c in enumerate(classes)}
        arrays["label"] = np.array([lookup[r.get("label") or "unknown"] for r in rows], np.int32)
    return StageArrays(arrays, classes, resolution)


def _to_float(batch: dict) -> dict:
    out = {"image": tf.cast(batch["image"], tf.float32) / 65535.0 * 2.0 - 1.0}
    for k in MASK_KEYS:
        if k in batch:
            out[k] = tf.cast(batch[k], tf.float32)
    if "label" in batch:
        out["label"] = batch["label"]
    return out


def epoch_permutation(n: int, seed: int, epoch: int):
    """The order of the ``n`` images in ``epoch``: a permutation fixed by ``(seed, epoch)``."""
    u = tf.random.stateless_uniform((n,), seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)]))
    return tf.argsort(u)


def steps_per_epoch(n: int, batch_size: int, configured: int | None = None) -> int:
    """Steps in one epoch (``n // batch_size`` unless configured).

    Raises:
        ConfigError: fewer images than one batch.
    """
    if n < batch_size:
        raise ConfigError(f"train.batch_size: {batch_size} is larger than the {n} training images; "
                          f"use train.batch_size ≤ {n}")
    return int(configured) if configured else n // batch_size


def _file_columns(stage: StageFiles) -> dict:
    """Per-film file paths (``""`` = no mask) and labels of a streamed stage, as small tensors."""
    cols = {"image": [str(stage.prepared_dir / r["image"]) for r in stage.rows]}
    for k in stage.keys:
        if k in MASK_KEYS:
            cols[k] = [str(stage.prepared_dir / r[k]) if r.get(k) else "" for r in stage.rows]
    if "label" in stage.keys:
        lookup = {c: i for i, c in enumerate(stage.classes)}
        cols["label"] = np.array([lookup[r.get("label") or "unknown"] for r in stage.rows], np.int32)
    return cols


def _read_film(cols: dict, i, resolution: int) -> dict:
    """Decode film ``i`` of a streamed stage: the same values :func:`load_stage_arrays` holds."""
    img = _decode(tf.gather(cols["image"], i), tf.uint16, resolution)
    out = {"image": tf.cast(tf.clip_by_value(tf.round(img), 0.0, 65535.0), tf.uint16)}
    for k in MASK_KEYS:
        if k in cols:
            path = tf.gather(cols[k], i)
            out[k] = tf.cond(tf.equal(path, ""),
                             lambda: tf.zeros((resolution, resolution, 1), tf.uint8),
                             lambda p=path: tf.cast(_decode(p, tf.uint8, resolution) > 127.5, tf.uint8))
    if "label" in cols:
        out["label"] = tf.gather(cols["label"], i)
    return out


def make_train_dataset(stage: StageArrays | StageFiles, batch_size: int, seed: int, start_epoch: int,
                       end_epoch: int, steps: int) -> tf.data.Dataset:
    """Batches for epochs ``start_epoch … end_epoch − 1``, ``steps`` per epoch.

    Each epoch walks a fresh seeded permutation (wrapping around when ``steps`` ×
    ``batch_size`` exceeds the images). Yields dicts of ``"image"`` ``(B, R, R, 1)
    float32`` in ``[-1, 1]`` plus the stage's masks (float32 {0, 1}) and labels (int32).
    A :class:`StageArrays` is gathered from memory (held in non-trainable ``tf.Variable`` objects,
    not graph constants); a :class:`StageFiles` is read and decoded in parallel, film by
    film, then batched. Both yield the same batches.
    """
    n = stage.size
    per_epoch = steps * batch_size
    reps = -(-per_epoch // n)

    def epoch_indices(epoch):
        perms = [epoch_permutation(n, seed, epoch * 1000 + r) for r in range(reps)]
        idx = tf.concat(perms, 0)[:per_epoch]
        return tf.data.Dataset.from_tensor_slices(tf.reshape(idx, (steps, batch_size)))

    ds = tf.data.Dataset.range(start_epoch, end_epoch).flat_map(epoch_indices)
    if isinstance(stage, StageArrays):
        with tf.device("CPU:0"):
            data = {k: tf.Variable(v, trainable=False, name=f"stage_{k}") for k, v in stage.arrays.items()}
        ds = ds.map(lambda idx: _to_float({k: tf.gather(v, idx) for k, v in data.items()}),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        cols = {k: tf.constant(v) for k, v in _file_columns(stage).items()}  # paths: ~100 bytes per film
        ds = ds.unbatch().map(lambda i: _read_film(cols, i, stage.resolution),
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(batch_size, drop_remainder=True).map(_to_float)
    options = tf.data.Options()
    options.autotune.enabled = True
    options.experimental_optimization.map_parallelization = True
    ds = ds.with_options(options)
    return ds.prefetch(tf.data.AUTOTUNE)


def fixed_batch(stage: StageArrays | StageFiles, n: int) -> dict:
    """The first ``n`` images (and masks/labels) in manifest order, as float tensors (sample grids)."""
    n = min(n, stage.size)
    if isinstance(stage, StageFiles):
        first = load_stage_arrays(stage.prepared_dir, stage.resolution, stage.keys, rows=stage.rows[:n])
        if "label" in stage.keys:  # class indices of the whole set, not of the first n films
            first.arrays["label"] = _file_columns(stage)["label"][:n]
        stage = first
    return _to_float({k: tf.constant(v[:n]) for k, v in stage.arrays.items()})


def run_conditions(cfg, model, n: int) -> dict:
    """Default conditions of a conditional run: those of its prepared films, in manifest order.

    ``cfg`` is the run's config; ``model`` anything with ``inputs_needed`` and ``resolution``
    (a :class:`~keras_mammo.models.gan.GAN`).

    Image ``i`` is conditioned on film ``i mod N`` of the run's prepared dataset (its
    ``"image"``, masks and label at the model's resolution), so ``n`` may exceed ``N``.

    Returns:
        ``{"image": (n, R, R, 1) float32 in [-1, 1], "lesion_mask"/"breast_mask": float32
        {0, 1}, "label": int32}`` — the keys the model needs plus ``"image"``.

    Raises:
        DataError: the run's prepared dataset is missing.
    """
    keys = tuple(k for k in model.inputs_needed if k != "image")
    stage = load_stage_arrays(cfg.data.prepared, int(model.resolution), keys)
    idx = np.arange(n) % stage.size
    stage.arrays = {k: v[idx] for k, v in stage.arrays.items()}
    return {k: np.asarray(v) for k, v in fixed_batch(stage, n).items()}
