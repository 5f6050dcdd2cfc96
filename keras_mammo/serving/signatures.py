"""PNG export signatures for unconditional generators.

TensorFlow Serving's REST API writes a ``DT_STRING`` output whose name ends in ``_bytes``
as ``{"b64": "<base64>"}`` (api_rest.md, "Output of binary values"), so a PNG-encoded
image costs ~1.4× its compressed size in JSON instead of one decimal number per pixel
(16,384 numbers for a 128² image).

- ``generate_png``: ``count`` int32 ``[]``, ``seed`` int64 ``[]`` → ``images_png_bytes``
  string ``[count]``: 8-bit greyscale PNGs with the very pixels of the ``generate``
  signature (same latent vectors, same rounding).
- ``latent_png``: ``latent`` float32 ``[N, latent_dim]`` → ``images_png_bytes`` string
  ``[N]``: 8-bit PNGs with the pixels of ``serving_default``. A client draws the latent
  vectors itself (``GAN.fixed_latents``) and can then ask for any slice of them, so a
  large ``count`` can be fetched in batches with the same images as one call.
- ``generate_png16`` / ``latent_png16``: the same inputs, 16-bit PNGs of the same
  generator output: ``round(x · 65535)`` with ``x = clip((g + 1) / 2, 0, 1)`` the float
  image (``g`` in ``[-1, 1]``), exactly as ``generate --run --bits 16`` writes it.

The 16-bit variants are separate signatures rather than a ``bits`` input because TF
Serving requires every input of a signature in each request: a new input would break
every existing ``generate_png`` client, while a new signature name breaks none.
"""
from __future__ import annotations

import numpy as np

from keras_mammo.errors import DataError

PNG_OUTPUT = "images_png_bytes"
#: ``{bits: (count/seed signature, latent signature)}`` of the PNG signatures.
PNG_SIGNATURES = {8: ("generate_png", "latent_png"), 16: ("generate_png16", "latent_png16")}


def encode_png_batch(images):
    """``(N, H, W, 1)`` uint8 or uint16 → ``(N,)`` string tensor of PNG files (tf.io.encode_png)."""
    import tensorflow as tf

    return tf.map_fn(lambda im: tf.io.encode_png(im), images, fn_output_signature=tf.TensorSpec([], tf.string))


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes → ``(H, W, 1)`` uint8 or uint16 array (the file's own bit depth).

    Raises:
        DataError: the bytes are not a PNG image.
    """
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError("got bytes that are not a PNG image")
    return img[..., None] if img.ndim == 2 else img[..., :1]


def png_to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 or uint16 pixels → ``float32`` in ``[0, 1]`` (``/ 255`` or ``/ 65535``).

    ``round(result · 255)`` (or ``· 65535``) gives the pixels back exactly, so writing the
    result as a PNG or DICOM of the same depth reproduces the served pixels.
    """
    scale = 65535.0 if images.dtype == np.uint16 else 255.0
    return images.astype(np.float32) / np.float32(scale)


def images_to_uint16(images):
    """``[-1, 1]`` float generator output → ``uint16``: ``round(x · 65535)``, ``x = clip((g + 1) / 2, 0, 1)``.

    ``x`` is computed in float32 as :func:`keras_mammo.data.preprocess.from_model_range`
    does and scaled in float64 as :func:`keras_mammo.data.io.write_png` does, so the
    pixels equal those of a run's 16-bit PNG of the same generator output.
    """
    import tensorflow as tf

    x = tf.clip_by_value((tf.cast(images, tf.float32) + 1.0) / 2.0, 0.0, 1.0)
    return tf.cast(tf.round(tf.cast(x, tf.float64) * 65535.0), tf.uint16)


def _input_names(fn) -> set[str]:
    return {spec.name for spec in fn.input_signature}


def add_png_signatures(signatures: dict, model=None, guard=None) -> dict:
    """Return ``signatures`` plus the PNG signatures where they apply.

    Only unconditional generators get them: ``generate`` must take exactly ``count`` and
    ``seed``, and ``serving_default`` exactly ``latent``. Conditional models (seg-cdcgan,
    pix2pix) and the U-Net segmenter are returned unchanged.

    Args:
        signatures: ``{name: tf.function with an input_signature}`` from
            :meth:`~keras_mammo.models.gan.GAN.export_signatures`.
        model: the model whose ``generate`` (``[N, latent_dim]`` → ``[N, H, W, 1]`` float in
            ``[-1, 1]``) the 8-bit signatures use; given, ``generate_png16`` and
            ``latent_png16`` are added (they need the float output, not the uint8 one).
        guard: wraps each new 16-bit signature (e.g. :func:`keras_mammo.generation.export.guard_signature`);
            the 8-bit ones are built on ``signatures`` and inherit their checks.
    """
    import tensorflow as tf

    out = dict(signatures)
    gen, default = signatures.get("generate"), signatures.get("serving_default")
    if gen is None or default is None or _input_names(gen) != {"count", "seed"} or _input_names(default) != {"latent"}:
        return out
    count_spec, seed_spec = tf.TensorSpec([], tf.int32, name="count"), tf.TensorSpec([], tf.int64, name="seed")
    spec = default.input_signature[0]
    latent_spec = tf.TensorSpec(spec.shape, spec.dtype, name="latent")

    @tf.function(input_signature=[count_spec, seed_spec])
    def generate_png(count, seed):
        return {PNG_OUTPUT: encode_png_batch(gen(count=count, seed=seed)["images"])}

    @tf.function(input_signature=[latent_spec])
    def latent_png(latent):
        return {PNG_OUTPUT: encode_png_batch(default(latent=latent)["images"])}

    out["generate_png"], out["latent_png"] = generate_png, latent_png
    if model is None:
        return out
    latent_dim = int(spec.shape[-1])
    guard = guard or (lambda fn: fn)

    @tf.function(input_signature=[latent_spec])
    def latent_png16(latent):
        return {PNG_OUTPUT: encode_png_batch(images_to_uint16(model.generate(latent)))}

    @tf.function(input_signature=[count_spec, seed_spec])
    def generate_png16(count, seed):
        # the latent vectors of GAN.export_signatures' ``generate`` (and GAN.fixed_latents)
        z = tf.random.stateless_normal(tf.stack([count, latent_dim]),
                                       seed=tf.stack([seed, tf.constant(0x5EED, tf.int64)]))
        return {PNG_OUTPUT: encode_png_batch(images_to_uint16(model.generate(z)))}

    out["generate_png16"], out["latent_png16"] = guard(generate_png16), guard(latent_png16)
    return out
