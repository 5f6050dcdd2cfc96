"""Generating synthetic mammograms from a training run or an exported SavedModel.

The same seed gives the same images from a run's checkpoint and from its SavedModel's
``generate`` signature: both draw ``z = stateless_normal([n, latent_dim], seed=(seed, 0x5EED))``.

Images are produced in batches (:func:`iter_images`) and :func:`write_images` writes each
batch before the next is generated, so memory stays flat in the number of images; one
call makes at most :data:`MAX_IMAGES`. Generated PNGs carry text chunks saying they are
synthetic (model, run name, seed).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_mammo.config import load_run_config
from keras_mammo.data.io import write_png
from keras_mammo.data.preprocess import from_model_range
from keras_mammo.data.viz import image_grid
from keras_mammo.errors import DataError, OptionError
from keras_mammo.generation.dicom import SeriesWriter, source_provenance
from keras_mammo.precision import inference_precision
from keras_mammo.savedmodel import latest_version, png16_signature, read_metadata
from keras_mammo.serving.client import iter_from_server
from keras_mammo.serving.signatures import PNG_OUTPUT, decode_png, png_to_unit
from keras_mammo.utils import refuse_overwrite


#: Most images one ``generate`` call produces (a typo such as ``-n 1000000000`` is refused).
MAX_IMAGES = 100_000


def _check_count(n: int, limit: int | None = MAX_IMAGES) -> None:
    if n < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    if limit is not None and n > limit:
        raise DataError(f"-n {n}: at most {limit:,} images per call; generate in several calls "
                        f"with different seeds")


def check_precision_source(precision: str | None, source: str | Path, server: str | None = None) -> None:
    """Refuse a ``precision`` for a source that cannot honour it: only a run directory is
    rebuilt at generation time; a SavedModel or a served model keeps the precision it was
    exported with.

    The one owner of this rule: ``keras-mammo generate --precision`` calls it too.

    Raises:
        OptionError: (a ``ValueError``) ``precision`` is given (not None) and ``source`` is
            a SavedModel or ``server`` is set.
    """
    if precision is not None and (server is not None or not (Path(source) / "config.yaml").is_file()):
        raise OptionError(f"precision {precision!r} applies to runs only: a SavedModel or server keeps the precision "
                          f"it was exported with (keras-mammo export --precision)")


def iter_images(source: str | Path, n: int, seed: int = 0, checkpoint=None, batch_size: int = 64,
                conditions: dict | None = None, limit: int | None = MAX_IMAGES, bits: int = 8,
                precision: str | None = None):
    """Generate ``n`` images in batches, so memory stays flat in ``n``.

    Image ``i`` is the same whatever ``batch_size``: the latent vectors are
    ``stateless_normal([n, latent_dim], seed=(seed, 0x5EED))`` (as in the SavedModel's
    ``generate`` signature; 4·latent_dim bytes per image held), and each batch goes
    through the generator (run) or the ``serving_default`` signature (SavedModel) alone.

    Args: as :func:`generate_images`; ``limit`` is the most images allowed (None: no limit).

    Yields:
        ``(start, images)``: the index of the batch's first image and ``(b, H, W, 1)
        float32`` in ``[0, 1]``.

    Raises:
        DataError: as :func:`generate_images`, or ``n`` above ``limit``.
        ValueError: ``n < 1``, or ``precision`` unknown or given for a SavedModel.
    """
    import tensorflow as tf

    from keras_mammo.models.gan import GAN  # imports TensorFlow: on first use only

    _check_count(n, limit)
    check_precision_source(precision, source)
    batch_size = max(1, int(batch_size))
    source = Path(source)
    if (source / "config.yaml").is_file():
        from keras_mammo.data.pipeline import run_conditions  # imports TensorFlow: on first use only
        from keras_mammo.training.run import load_run_model  # imports TensorFlow: on first use only

        model, cfg, _ = load_run_model(source, checkpoint, precision=precision)
        z = GAN.fixed_latents(n, cfg.model.latent_dim, seed).numpy()
        if conditions is None and model.inputs_needed:
            conditions = run_conditions(cfg, model, n)
        for i in range(0, n, batch_size):
            cond = None if conditions is None else {k: tf.constant(v[i:i + batch_size]) for k, v in conditions.items()}
            yield i, from_model_range(model.generate_traced(tf.constant(z[i:i + batch_size]), cond))
        return
    path = latest_version(source)
    loaded = tf.saved_model.load(str(path))
    fn = loaded.signatures["serving_default"]
    inputs = fn.structured_input_signature[1]
    if conditions is None:
        sig = loaded.signatures.get("generate")
        gen_inputs = set(sig.structured_input_signature[1]) if sig is not None else set()
        if gen_inputs != {"count", "seed"} or set(inputs) != {"latent"}:
            raise DataError(f"{path}: this SavedModel is conditional (its signatures take "
                            f"{sorted(gen_inputs or set(inputs))}); "
                            f"generate from its run directory, or pass conditions (masks/labels)")
        latent_dim = int(inputs["latent"].shape[-1])
        z = GAN.fixed_latents(n, latent_dim, seed).numpy()
        png16 = png16_signature(loaded, path) if bits == 16 else None
        for i in range(0, n, batch_size):
            if png16 is not None:
                pngs = png16(latent=tf.constant(z[i:i + batch_size]))[PNG_OUTPUT].numpy()
                yield i, png_to_unit(np.stack([decode_png(b) for b in pngs]))
            else:
                imgs = fn(latent=tf.constant(z[i:i + batch_size]))["images"]
                yield i, imgs.numpy().astype(np.float32) / 255.0
        return
    for i in range(0, n, batch_size):
        imgs = fn(**{k: tf.constant(v[i:i + batch_size]) for k, v in conditions.items()})["images"]
        yield i, imgs.numpy().astype(np.float32) / 255.0


def generate_images(source: str | Path, n: int, seed: int = 0, checkpoint=None, batch_size: int = 64,
                    conditions: dict | None = None, bits: int = 8, precision: str | None = None) -> np.ndarray:
    """Generate ``n`` images (all held in memory; :func:`write_images` streams them to files).

    Args:
        source: a run directory (uses its newest intact checkpoint, or ``checkpoint``) or
            a SavedModel directory (a version folder, or ``saved_models/<name>`` for the
            newest version).
        n: number of images (1 … :data:`MAX_IMAGES`).
        seed: the latent vectors are a function of it.
        checkpoint: run sources only: checkpoint path or epoch number.
        batch_size: images per forward pass.
        conditions: conditional models only: the extra inputs (masks, labels) as arrays;
            default for a run: the run's own prepared films (:func:`keras_mammo.data.pipeline.run_conditions`).
        bits: unconditional SavedModels only: 8 → the uint8 ``serving_default`` images;
            16 → the 16-bit PNGs of ``latent_png16`` (an export without that signature
            gives 8-bit images and a warning). Runs always keep float precision.
        precision: runs only: None (default: the precision the run trained in, so the
            images are those of its in-training evaluation), ``"float32"`` or
            ``"bfloat16"`` compute (:func:`keras_mammo.training.run.load_run_model`: about
            2.5× faster on CPUs with AVX512_BF16/AMX; pixels differ from float32 by about
            0.1/255 on average and at most about 6/255).

    Returns:
        ``(n, H, W, 1) float32`` in ``[0, 1]``. SavedModel outputs are ``uint8 / 255``
        (``bits=8``) or ``uint16 / 65535`` (``bits=16``); run outputs keep float precision.

    Raises:
        DataError: ``source`` is neither a run nor a SavedModel, or has no checkpoint, or
            is a conditional SavedModel (seg-cdcgan, pix2pix, unet) and no ``conditions``
            were given (a conditional *run* uses its prepared films instead), or ``n`` is
            above :data:`MAX_IMAGES`.
        ValueError: ``n < 1``, or ``precision`` given for a SavedModel.
    """
    return np.concatenate([b for _, b in iter_images(source, n, seed, checkpoint, batch_size, conditions, bits=bits,
                                                     precision=precision)])


def provenance(source: str | Path, seed: int, server: str | None = None, version: int | None = None) -> dict:
    """PNG text chunks that mark generated images as synthetic: model, run name, seed.

    Only the run's *name* (its folder name) is given, never a path. With ``server``,
    ``source`` is the served model's name and ``version`` the version that answered;
    they stand for the run.
    """
    source = Path(source)
    model, run = "unknown", source.name
    if server is not None:
        model, run = str(source), f"served version {version}"
    elif (source / "config.yaml").is_file():
        import yaml

        model = (yaml.safe_load((source / "config.yaml").read_text()).get("model") or {}).get("name", model)
    else:
        try:
            meta = read_metadata(latest_version(source))
            model, run = meta.get("model", model), meta.get("run") or Path(str(meta.get("run_dir", run))).name
        except (OSError, ValueError, DataError):
            pass
    return {"Synthetic": "true",
            "Description": "Synthetic mammogram generated by a GAN (keras-mammo); not an image of a real patient",
            "Software": "keras-mammo", "Model": str(model), "Run": str(run), "Seed": str(int(seed))}


def write_images(source: str | Path, n: int, out_dir: str | Path, seed: int = 0, checkpoint=None,
                 batch_size: int | None = None, bits: int = 8, prefix: str = "synthetic", overwrite: bool = False,
                 grid: bool = True, conditions: dict | None = None, fmt: str = "png", server: str | None = None,
                 version: int | None = None, precision: str | None = None) -> dict:
    """Generate ``n`` images straight to files, batch by batch (memory flat in ``n``).

    Each batch is written before the next is generated (or requested from ``server``);
    only the first 64 images are kept, for ``<prefix>_grid.png``.

    - ``fmt="png"``: ``<prefix>_00000.png`` …, 8- or 16-bit (``bits``), with text chunks
      saying they are synthetic (:func:`provenance`) plus the image index.
    - ``fmt="dicom"``: ``<prefix>_00000.dcm`` …, synthetic Secondary Capture files with
      16-bit pixels (:mod:`keras_mammo.generation.dicom`; one study and one series per call). The
      images are asked for at 16 bits whatever ``bits`` says.

    SavedModels and servers give 16-bit images through their ``latent_png16`` signature
    (``bits=16`` or DICOM) and 8-bit ones otherwise; runs keep float precision. Nothing
    existing is overwritten unless ``overwrite``: the check (:func:`keras_mammo.utils.refuse_overwrite`)
    runs before anything is generated or requested.

    Args:
        source: a run directory or a SavedModel directory (:func:`generate_images`), or
            with ``server`` the served model's name.
        batch_size: images per forward pass (default 64) or per request to a server
            (default 16; at most the server's ``--max_batch_size``).
        server, version: a TF Serving REST URL (:func:`keras_mammo.serving.client.iter_from_server`)
            and optionally the version to use (default: the newest).
        precision: runs only (:func:`generate_images`); a precision other than float32
            (given, or the run's own) is written into each PNG's text chunks
            (``Precision``).
        others: as :func:`generate_images`.

    Returns:
        ``{"count", "first", "last", "grid", "shape", "format", "bits"}``: paths of the
        first/last file and of the grid (or None), the image shape ``(H, W, 1)`` and the
        bit depth of the pixels written (16 for DICOM).

    Raises:
        DataError: as :func:`iter_images` / ``iter_from_server``, or an output file exists
            and not ``overwrite``.
        ValueError: ``fmt`` is not png or dicom, ``bits`` not 8 or 16, or ``precision`` is
            given for a SavedModel or server.
    """

    if fmt not in ("png", "dicom"):
        raise ValueError(f"fmt must be png or dicom, got {fmt!r}")
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    _check_count(n)
    check_precision_source(precision, source, server)
    if server is None and precision is None and (Path(source) / "config.yaml").is_file():
        precision = inference_precision(load_run_config(source).train.precision)
    want_bits = 16 if fmt == "dicom" else bits
    out = Path(out_dir)
    ext = "dcm" if fmt == "dicom" else "png"
    names = [f"{prefix}_{i:05d}.{ext}" for i in range(n)]
    grid_path = out / f"{prefix}_grid.png" if grid else None
    refuse_overwrite(out, names + ([grid_path.name] if grid_path else []), overwrite)
    served = {}
    if server is not None:
        served, batches = iter_from_server(server, str(source), n, seed, batch_size or 16, version, bits=want_bits)
    else:
        batches = iter_images(source, n, seed, checkpoint, batch_size or 64, conditions, bits=want_bits,
                              precision=precision)
    out.mkdir(parents=True, exist_ok=True)
    text = provenance(source, seed, server, served.get("version"))
    if precision not in (None, "float32"):
        text["Precision"] = precision
    if fmt == "dicom":
        series = SeriesWriter(source_provenance(source, seed, checkpoint, server, served.get("version")))
    first_batch, shape = [], None
    for start, batch in batches:
        shape = batch.shape[1:]
        for j, img in enumerate(batch):
            if fmt == "dicom":
                series.write(out / names[start + j], img, start + j)
            else:
                write_png(out / names[start + j], img, bits=bits, text={**text, "Image index": str(start + j)})
        if grid and sum(len(b) for b in first_batch) < 64:
            first_batch.append(batch[: 64 - sum(len(b) for b in first_batch)])
    if grid:
        write_png(grid_path, image_grid(np.concatenate(first_batch)), bits=8, text=text)
    return {"count": n, "first": out / names[0], "last": out / names[-1], "grid": grid_path,
            "shape": tuple(int(x) for x in shape), "format": fmt, "bits": 16 if fmt == "dicom" else bits}


def save_images(images: np.ndarray, out_dir: str | Path, bits: int = 8, prefix: str = "synthetic",
                text: dict | None = None) -> list[Path]:
    """Write ``(N, H, W, 1)`` ``[0, 1]`` images as ``<prefix>_00000.png`` … (8- or 16-bit PNG).

    ``text``: PNG text chunks for every file (e.g. :func:`provenance`).

    Raises:
        DataError: a file of that name exists already (nothing the user has is overwritten).
    """

    out = Path(out_dir)
    paths = [out / f"{prefix}_{i:05d}.png" for i in range(len(images))]
    refuse_overwrite(out, [p.name for p in paths])
    out.mkdir(parents=True, exist_ok=True)
    for p, img in zip(paths, images):
        write_png(p, img, bits=bits, text=text)
    return paths
