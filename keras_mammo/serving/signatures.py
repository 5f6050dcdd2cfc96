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
"""
from __future__ import annotations

PNG_OUTPUT = "images_png_bytes"


def encode_png_batch(images):
    """``(N, H, W, 1)`` uint8 or uint16 → ``(N,)`` string tensor of PNG files (tf.io.encode_png)."""
    import tensorflow as tf

    return tf.map_fn(lambda im: tf.io.encode_png(im), images, fn_output_signature=tf.TensorSpec([], tf.string))


def _input_names(fn) -> set[str]:
    return {spec.name for spec in fn.input_signature}


def add_png_signatures(signatures: dict) -> dict:
    """Return ``signatures`` plus ``generate_png`` and ``latent_png`` where they apply.

    Only unconditional generators get them: ``generate`` must take exactly ``count`` and
    ``seed``, and ``serving_default`` exactly ``latent``. Conditional models (seg-cdcgan,
    pix2pix) and the U-Net segmenter are returned unchanged.

    Args:
        signatures: ``{name: tf.function with an input_signature}`` from
            :meth:`~keras_mammo.training.gan.GAN.export_signatures`.
    """
    import tensorflow as tf

    out = dict(signatures)
    gen, default = signatures.get("generate"), signatures.get("serving_default")
    if gen is not None and _input_names(gen) == {"count", "seed"}:
        @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="count"),
                                      tf.TensorSpec([], tf.int64, name="seed")])
        def generate_png(count, seed):
            return {PNG_OUTPUT: encode_png_batch(gen(count=count, seed=seed)["images"])}

        out["generate_png"] = generate_png
    if default is not None and _input_names(default) == {"latent"}:
        spec = default.input_signature[0]

        @tf.function(input_signature=[tf.TensorSpec(spec.shape, spec.dtype, name="latent")])
        def latent_png(latent):
            return {PNG_OUTPUT: encode_png_batch(default(latent=latent)["images"])}

        out["latent_png"] = latent_png
    return out
