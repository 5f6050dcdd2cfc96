"""A client of TensorFlow Serving's documented REST API (``api_rest.md``).

Plain JSON over HTTP with the standard library, nothing specific to ``keras-mammo serve``:
the same calls work against ``tensorflow_model_server --rest_api_port=8501``.

:func:`iter_from_server` reproduces ``keras-mammo generate --run … --seed S`` over
the network: it draws the latent vectors itself (``GAN.fixed_latents``, the same
``stateless_normal`` as the run and the ``generate`` signature) and sends them in
batches to ``latent_png`` (8-bit PNG bytes, ``{"b64": …}`` in JSON), ``latent_png16``
(16-bit) or, for exports without them, ``serving_default`` (uint8 numbers), so any
``count`` comes back as the same images whatever the batch size.
"""
from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import numpy as np

from keras_mammo.errors import DataError
from keras_mammo.serving.signatures import PNG_SIGNATURES, decode_png, png_to_unit


class ServingClient:
    """One model on a TF Serving REST endpoint.

    Args:
        url: server root, e.g. ``http://127.0.0.1:8501``.
        model: model name.
        version: a version number, or None for the server's newest.
        timeout: seconds per HTTP request.
    """

    def __init__(self, url: str, model: str, version: int | None = None, timeout: float = 120.0):
        self.url = url.rstrip("/")
        self.model = model
        self.version = version
        self.timeout = timeout

    def _path(self, suffix: str = "") -> str:
        v = f"/versions/{self.version}" if self.version is not None else ""
        return f"{self.url}/v1/models/{self.model}{v}{suffix}"

    def _call(self, url: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"},
                                     method="GET" if body is None else "POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                msg = json.loads(exc.read()).get("error", "")
            except ValueError:
                msg = ""
            raise DataError(f"{url}: HTTP {exc.code}: {msg or exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise DataError(f"{url}: cannot reach the server ({getattr(exc, 'reason', exc)})") from None

    def status(self) -> dict:
        """``GET /v1/models/{model}[/versions/{v}]``: ``{"model_version_status": [...]}``."""
        return self._call(self._path())

    def metadata(self) -> dict:
        """``GET …/metadata``: ``{"model_spec": …, "metadata": {"signature_def": …}}``."""
        return self._call(self._path("/metadata"))

    def signature_defs(self) -> dict:
        """``{signature name: SignatureDef as JSON}`` from :meth:`metadata`."""
        return self.metadata()["metadata"]["signature_def"]["signature_def"]

    def predict(self, signature_name: str | None = None, *, instances=None, inputs=None) -> dict:
        """``POST …:predict`` with ``instances`` (row) or ``inputs`` (columnar); the answer's JSON."""
        if (instances is None) == (inputs is None):
            raise ValueError("give exactly one of instances or inputs")
        body = {"instances": instances} if instances is not None else {"inputs": inputs}
        if signature_name:
            body["signature_name"] = signature_name
        return self._call(self._path(":predict"), body)


def iter_from_server(url: str, model: str, n: int, seed: int = 0, batch_size: int = 16,
                     version: int | None = None, timeout: float = 120.0, bits: int = 8):
    """Generate ``n`` images from a served unconditional generator, one request per batch.

    The model's metadata is read at once (so a wrong URL, model or a conditional model
    fails before anything is written); the images are fetched lazily, batch by batch,
    so memory stays flat in ``n``. Every batch comes from the version that answered the
    metadata request, even if a newer one appears meanwhile.

    Args:
        url, model, version: the server, model name and (optional) version.
        n: number of images (≥ 1).
        seed: latent seed; same seed → the images of ``generate --run`` (at ``bits`` depth).
        batch_size: images per request (≤ the server's ``--max_batch_size``).
        bits: 8 → ``latent_png``; 16 → ``latent_png16`` (16-bit PNGs of the float output).
            A model without the asked signature falls back to ``latent_png`` (then
            ``serving_default``, uint8 numbers), with a warning when 16 bits were asked.

    Returns:
        ``(info, batches)``: ``info = {"url", "model", "version": served version,
        "signature": signature used, "bits": bit depth of the images}`` and an iterator
        of ``(start, (b, H, W, 1) float32 in [0, 1])`` (``uint8 / 255`` or ``uint16 / 65535``).

    Raises:
        DataError: the server cannot be reached or answers an error (its message is
            included), or the model is conditional (no single ``latent`` input).
        ValueError: ``n < 1``, ``batch_size < 1`` or ``bits`` not 8 or 16.
    """
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be ≥ 1, got {n}, {batch_size}")
    if bits not in PNG_SIGNATURES:
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    client = ServingClient(url, model, version, timeout)
    meta = client.metadata()
    served_version = int(meta["model_spec"]["version"])
    client.version = served_version  # every batch from the same version, even if a new one appears
    sigs = meta["metadata"]["signature_def"]["signature_def"]
    sig = next((s for s in (PNG_SIGNATURES[bits][1], PNG_SIGNATURES[8][1], "serving_default") if s in sigs),
               "serving_default")
    inputs = sigs.get(sig, {}).get("inputs", {})
    if set(inputs) != {"latent"}:
        raise DataError(f"{url}: model {model!r} is conditional (serving_default takes {sorted(inputs)}); "
                        f"generate from its run directory instead")
    got_bits = 16 if sig == PNG_SIGNATURES[16][1] else 8
    if got_bits != bits:
        import warnings

        warnings.warn(f"{url}: model {model!r} version {served_version} has no {PNG_SIGNATURES[bits][1]} "
                      f"signature; the images are {got_bits}-bit. Export the run again for 16-bit output",
                      stacklevel=2)
    latent_dim = int(inputs["latent"]["tensor_shape"]["dim"][1]["size"])
    info = {"url": url, "model": model, "version": served_version, "signature": sig, "bits": got_bits}

    def batches():
        from keras_mammo.models.gan import GAN  # imports TensorFlow: on first use only

        z = GAN.fixed_latents(n, latent_dim, seed).numpy()
        for i in range(0, n, batch_size):
            pred = client.predict(sig, instances=z[i:i + batch_size].tolist())["predictions"]
            if sig == "serving_default":
                yield i, np.asarray(pred, dtype=np.uint8).astype(np.float32) / 255.0
            else:
                yield i, png_to_unit(np.stack([decode_png(base64.b64decode(p["b64"])) for p in pred]))

    return info, batches()


def generate_from_server(url: str, model: str, n: int, seed: int = 0, batch_size: int = 16,
                         version: int | None = None, timeout: float = 120.0, bits: int = 8) -> tuple[np.ndarray, dict]:
    """All ``n`` images of :func:`iter_from_server` in memory.

    Returns:
        ``((n, H, W, 1) float32 in [0, 1], info)``, ``info`` as :func:`iter_from_server`.

    Raises:
        as :func:`iter_from_server`.
    """
    info, batches = iter_from_server(url, model, n, seed, batch_size, version, timeout, bits)
    return np.concatenate([b for _, b in batches]), info
