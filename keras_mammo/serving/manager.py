"""The model manager: the versions of one served model, loaded from its base path.

Follows TensorFlow Serving's ``--model_base_path`` layout: ``<base>/<version>/`` with
``saved_model.pb`` and ``variables/``, the version a positive integer. Every version
found is loaded with ``tf.saved_model.load``; a request without a version goes to the
highest one (TF Serving's "latest" policy, with every version kept available as its
``all`` policy does). A background thread polls the folder every ``poll_seconds`` (TF
Serving's ``--file_system_poll_wait_seconds``): a new version folder is loaded and takes
over the unversioned requests, a removed one is unloaded. Exports are renamed into place
whole (:func:`keras_mammo.generation.export.export_model`), so a half-written version is never seen;
a folder that fails to load is logged and retried at the next poll.

Requests and answers are TF Serving's own protocol buffers (``tensorflow-serving-api``)
or plain ``{name: numpy array}`` dicts, so the REST and gRPC front ends only translate.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

import numpy as np

from keras_mammo.savedmodel import find_versions
from keras_mammo.serving.errors import ServingError, invalid, not_found

log = logging.getLogger("keras_mammo.serving")

#: Signature inputs whose value is a number of images (checked against ``max_batch_size``).
COUNT_INPUTS = ("count",)


class Deadline:
    """The execution deadline of one request, and the means to cancel its work.

    The front end calls :meth:`start` when execution begins and :meth:`cancel` when it has
    answered ``DEADLINE_EXCEEDED`` (REST 504) or the client went away (gRPC). The worker
    calls :meth:`check` between its phases (parse, convert, run, encode) and runs the
    signature through :meth:`call`, which registers it with a TensorFlow
    ``CancellationManager``: cancelling aborts the running graph between ops (TF's
    executor stops scheduling), so a late request stops using the CPU instead of slowing
    the requests after it.

    Args:
        seconds: the budget from :meth:`start` (``--rest_api_timeout_in_ms`` / 1000), or
            None for none (cancellation only).
    """

    def __init__(self, seconds: float | None = None):
        self.seconds = seconds
        self.started: float | None = None
        self._cancelled = threading.Event()
        self._manager = None

    def start(self) -> None:
        self.started = time.monotonic()

    def left(self) -> float | None:
        """Seconds left (negative once past); None without a budget or before :meth:`start`."""
        if self.seconds is None or self.started is None:
            return None
        return self.seconds - (time.monotonic() - self.started)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Stop the request's work: the next :meth:`check` raises, a running signature is aborted."""
        self._cancelled.set()
        cm = self._manager
        if cm is not None:
            cm.start_cancel()

    def check(self) -> None:
        """Raises:
            ServingError: ``DEADLINE_EXCEEDED`` once cancelled or past the budget."""
        left = self.left()
        if self.cancelled or (left is not None and left <= 0):
            raise ServingError("DEADLINE_EXCEEDED", f"Deadline exceeded: the request ran past {self.seconds:g} s"
                                                    if self.seconds else "Request cancelled")

    def call(self, fn, **feed):
        """``fn(**feed)`` (a concrete function), cancelled by :meth:`cancel`."""
        from tensorflow.python.eager import cancellation   # TF's own mechanism (tf.distribute uses it)

        self._manager = cancellation.CancellationManager()
        if self.cancelled:   # cancelled between check() and here
            self._manager.start_cancel()
        return self._manager.get_cancelable_function(fn)(**feed)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-request limits of the server.

    Attributes:
        max_batch_size: most images one request may ask for: the value of a ``count``
            input, or the 0-th (batch) dimension of any batched input.
        max_request_bytes: largest request body (REST) or message (gRPC), bytes.
        timeout_s: a request still running after this many seconds is answered
            ``DEADLINE_EXCEEDED`` (HTTP 504); TF Serving's ``--rest_api_timeout_in_ms``.
    """

    max_batch_size: int = 64
    max_request_bytes: int = 16 * 1024 * 1024
    timeout_s: float = 30.0

    def __post_init__(self):
        if self.max_batch_size < 1 or self.max_request_bytes < 1024 or self.timeout_s <= 0:
            raise ValueError(f"limits must be positive (max_request_bytes ≥ 1024): {self}")


@dataclasses.dataclass
class LoadedVersion:
    """One loaded version: the SavedModel object and its signature definitions.

    Attributes:
        version: the version number (the folder name).
        path: the version folder.
        model: what ``tf.saved_model.load`` returned.
        signature_defs: ``{name: tensorflow.SignatureDef}`` as stored in ``saved_model.pb``
            (the metadata TF Serving reports, ``__saved_model_init_op`` included).
    """

    version: int
    path: Path
    model: object
    signature_defs: dict

    def signature(self, name: str):
        """``(concrete function, SignatureDef)``; ``INVALID_ARGUMENT`` for an unknown name (as TF Serving)."""
        name = name or "serving_default"
        fn = self.model.signatures.get(name) if name in self.signature_defs else None
        if fn is None:
            known = sorted(k for k in self.signature_defs if not k.startswith("__"))
            raise invalid(f'Serving signature name: "{name}" not found in signature def '
                          f'(this model has: {", ".join(known)})')
        return fn, self.signature_defs[name]


def read_signature_defs(version_dir: Path) -> dict:
    """``{name: SignatureDef}`` of the first MetaGraph in ``version_dir/saved_model.pb``."""
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel.FromString((Path(version_dir) / "saved_model.pb").read_bytes())
    return dict(sm.meta_graphs[0].signature_def)


def tensor_info_spec(info) -> tuple:
    """``(tf.DType, shape)`` of a ``TensorInfo``; unknown dimensions are ``None``, unknown rank ``None``."""
    import tensorflow as tf

    dtype = tf.dtypes.as_dtype(info.dtype)
    if info.tensor_shape.unknown_rank:
        return dtype, None
    return dtype, tuple(None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim)


class ModelManager:
    """Loads, serves and unloads the versions of one model.

    Args:
        name: the model name requests must use (``--model_name``).
        base_path: the folder of numeric version folders (``--model_base_path``).
        limits: per-request limits (:class:`Limits`).
        poll_seconds: seconds between scans of ``base_path`` once :meth:`start` ran.
        warmup: run each ``generate``-style signature once for one image after loading,
            so the first request does not pay for graph optimization.

    Raises:
        FileNotFoundError: ``base_path`` is not a folder (from :meth:`refresh`).
    """

    def __init__(self, name: str, base_path: str | Path, limits: Limits | None = None,
                 poll_seconds: float = 1.0, warmup: bool = True):
        self.name = name
        self.base_path = Path(base_path)
        self.limits = limits or Limits()
        self.poll_seconds = float(poll_seconds)
        self.warmup = warmup
        self._versions: dict[int, LoadedVersion] = {}
        self._failed: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- version lifecycle -----------------------------------------------------------
    def refresh(self) -> tuple[list[int], list[int]]:
        """Scan the base path once: load new versions, unload removed ones.

        Returns:
            ``(loaded, unloaded)`` version numbers.
        """
        import tensorflow as tf

        if not self.base_path.is_dir():
            raise FileNotFoundError(str(self.base_path))
        found = find_versions(self.base_path)
        loaded, unloaded = [], []
        for v in sorted(set(found) - set(self._versions)):
            try:
                lv = LoadedVersion(v, found[v], tf.saved_model.load(str(found[v])), read_signature_defs(found[v]))
                if self.warmup:
                    self._warm(lv)
            except Exception as exc:  # a broken folder must not stop the others
                if v not in self._failed:
                    log.error("model %s version %d at %s failed to load: %s", self.name, v, found[v], exc)
                self._failed[v] = time.time()
                continue
            self._failed.pop(v, None)
            with self._lock:
                self._versions = {**self._versions, v: lv}
            loaded.append(v)
            log.info("model %s: version %d loaded from %s", self.name, v, found[v])
        for v in sorted(set(self._versions) - set(found)):
            with self._lock:
                self._versions = {k: x for k, x in self._versions.items() if k != v}
            unloaded.append(v)
            log.info("model %s: version %d unloaded (folder removed)", self.name, v)
        return loaded, unloaded

    @staticmethod
    def _warm(lv: LoadedVersion) -> None:
        import tensorflow as tf

        for key, sd in lv.signature_defs.items():
            if set(sd.inputs) == {"count", "seed"}:
                lv.model.signatures[key](count=tf.constant(1, tf.int32), seed=tf.constant(0, tf.int64))

    def start(self) -> None:
        """Load what is there now, then keep polling in a daemon thread."""
        self.refresh()
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="model-manager", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception as exc:  # keep serving what is loaded
                log.error("model %s: scanning %s failed: %s", self.name, self.base_path, exc)

    @property
    def versions(self) -> list[int]:
        """Loaded version numbers, ascending."""
        return sorted(self._versions)

    # --- lookups -----------------------------------------------------------------------
    def get(self, name: str, version: int | None = None, label: str | None = None) -> LoadedVersion:
        """The version a request names (newest when ``version`` is None).

        Raises:
            ServingError: ``NOT_FOUND`` for another model name, a version that is not
                loaded, or a version label (none are configured); ``INVALID_ARGUMENT``
                for both a version and a label.
        """
        if version is not None and label is not None:
            raise invalid(f"Both model version ({version}) and model version label ({label}) cannot be supplied.")
        versions = self._versions
        if label is not None:
            raise not_found(f"Unrecognized servable version label: {label}")
        if name != self.name or not versions:
            what = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            raise not_found(f"Servable not found for request: {what}")
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise not_found(f"Servable not found for request: Specific({name}, {version})")
        return versions[version]

    def status(self, name: str, version: int | None = None, label: str | None = None):
        """``tensorflow.serving.GetModelStatusResponse`` (TF Serving's ``GetModelStatus``).

        Raises:
            ServingError: ``NOT_FOUND`` as TF Serving ("Could not find any versions of model …").
        """
        from tensorflow_serving.apis import get_model_status_pb2

        versions = self._versions
        if label is not None:
            raise not_found(f"Unrecognized servable version label: {label}")
        if name != self.name or not versions:
            raise not_found(f"Could not find any versions of model {name}")
        if version is not None and version not in versions:
            raise not_found(f"Could not find version {version} of model {name}")
        resp = get_model_status_pb2.GetModelStatusResponse()
        for v in ([version] if version is not None else sorted(versions, reverse=True)):
            st = resp.model_version_status.add()
            st.version = v
            st.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
            st.status.error_code = 0  # tensorflow.error.OK
            st.status.error_message = ""
        return resp

    def metadata(self, name: str, version: int | None = None, label: str | None = None,
                 fields: tuple[str, ...] = ("signature_def",)):
        """``tensorflow.serving.GetModelMetadataResponse`` with the ``signature_def`` field.

        Raises:
            ServingError: ``NOT_FOUND`` (see :meth:`get`); ``INVALID_ARGUMENT`` for a
                metadata field other than ``signature_def`` (the only one TF Serving has).
        """
        from tensorflow_serving.apis import get_model_metadata_pb2

        if not fields:
            raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
        bad = [f for f in fields if f != "signature_def"]
        if bad:
            raise invalid(f"Metadata field {bad[0]} is not supported")
        lv = self.get(name, version, label)
        resp = get_model_metadata_pb2.GetModelMetadataResponse()
        resp.model_spec.name = self.name
        resp.model_spec.version.value = lv.version
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        for k, sd in lv.signature_defs.items():
            sig_map.signature_def[k].CopyFrom(sd)
        resp.metadata["signature_def"].Pack(sig_map)
        return resp

    # --- prediction --------------------------------------------------------------------
    def check_inputs(self, sd, inputs: dict[str, np.ndarray]) -> None:
        """Names, dtypes, shapes and limits of ``inputs`` against a ``SignatureDef``.

        Raises:
            ServingError: ``INVALID_ARGUMENT`` naming the input and what was expected.
        """
        want, got = set(sd.inputs), set(inputs)
        if want != got:
            raise invalid(f"input size does not match signature: {len(got)}!={len(want)} "
                          f"len({{{', '.join(sorted(got))}}}). Sent extra: {{{', '.join(sorted(got - want))}}}. "
                          f"Missing but required: {{{', '.join(sorted(want - got))}}}.")
        lim = self.limits.max_batch_size
        for key, info in sd.inputs.items():
            dtype, shape = tensor_info_spec(info)
            arr = inputs[key]
            if arr.dtype != np.dtype(dtype.as_numpy_dtype) and not (dtype.name == "string" and arr.dtype == object):
                raise invalid(f"input {key!r}: expects {dtype.name}, got {arr.dtype}")
            if shape is not None:
                if arr.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, arr.shape)):
                    want_s = "[" + ", ".join("?" if s is None else str(s) for s in shape) + "]"
                    raise invalid(f"input {key!r}: expects shape {want_s}, got {list(arr.shape)}")
                if shape and shape[0] is None and arr.shape[0] > lim:
                    raise invalid(f"input {key!r}: batch of {arr.shape[0]} exceeds the server's limit of "
                                  f"{lim} (--max_batch_size)")
                if shape and shape[0] is None and arr.shape[0] == 0:
                    raise invalid(f"input {key!r}: empty batch")
            if key in COUNT_INPUTS and arr.ndim == 0 and dtype.is_integer:
                if not 1 <= int(arr) <= lim:
                    raise invalid(f"input {key!r}: {int(arr)} images requested; allowed 1 to {lim} "
                                  f"(--max_batch_size)")

    def predict(self, name: str, version: int | None, signature_name: str, inputs: dict[str, np.ndarray],
                label: str | None = None, output_filter=(),
                deadline: Deadline | None = None) -> tuple[LoadedVersion, str, dict[str, np.ndarray]]:
        """Run a signature.

        Args:
            inputs: ``{input name: array}`` in the signature's dtypes (strings as ``object``
                arrays of ``bytes``).
            output_filter: output names to return (default all).
            deadline: the request's :class:`Deadline`; the run is aborted when it is cancelled.

        Returns:
            ``(version, signature name, {output name: array})``.

        Raises:
            ServingError: ``NOT_FOUND`` (model/version), ``INVALID_ARGUMENT`` (signature,
                names, dtypes, shapes, limits, or an op's own check), ``INTERNAL``.
        """
        import tensorflow as tf

        lv = self.get(name, version, label)
        sig_name = signature_name or "serving_default"
        fn, sd = lv.signature(sig_name)
        self.check_inputs(sd, inputs)
        unknown = [k for k in output_filter if k not in sd.outputs]
        if unknown:
            raise invalid(f"output tensor alias not found in signature: {unknown[0]} "
                          f"Outputs expected to be in the set {{{','.join(sorted(sd.outputs))}}}.")
        if deadline is not None:
            deadline.check()
        feed = {k: tf.constant(v, dtype=tensor_info_spec(sd.inputs[k])[0]) for k, v in inputs.items()}
        try:
            out = fn(**feed) if deadline is None else deadline.call(fn, **feed)
        except tf.errors.CancelledError:
            raise ServingError("DEADLINE_EXCEEDED", "Deadline exceeded: the request was cancelled while running "
                                                    "(--rest_api_timeout_in_ms)") from None
        except tf.errors.InvalidArgumentError as exc:
            raise invalid(exc.message) from None
        except tf.errors.ResourceExhaustedError as exc:
            raise ServingError("RESOURCE_EXHAUSTED", exc.message) from None
        except (tf.errors.OpError, ValueError, TypeError) as exc:
            raise ServingError("INTERNAL", str(exc)) from None
        keys = list(output_filter) or list(out)
        return lv, sig_name, {k: out[k].numpy() for k in keys}
