"""REST front end: TensorFlow Serving's REST API on FastAPI (served by uvicorn).

Endpoints (TF Serving ``api_rest.md``; paths matched with TF Serving's own regular
expressions from ``model_servers/http_rest_api_util.cc``, case-insensitive):

- ``GET  /v1/models/{name}[/versions/{v}]`` → ``GetModelStatusResponse`` as JSON
  (``{"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": …}]}``);
- ``GET  /v1/models/{name}[/versions/{v}]/metadata`` → ``{"model_spec": …,
  "metadata": {"signature_def": {"signature_def": {…}}}}``;
- ``POST /v1/models/{name}[/versions/{v}]:predict`` → ``{"predictions": …}`` for
  ``instances``, ``{"outputs": …}`` for ``inputs`` (:mod:`.json_tensor`).

Every error is ``{"error": "<message>"}`` with the HTTP status TF Serving gives its code
(400 bad request/argument, 404 unknown model or version, 413 body over
``max_request_bytes``, 501 classify/regress, 504 past the request timeout, 500 internal).
The timeout counts from the start of execution (TF Serving passes it as the run's
deadline), so a request queued behind others is not failed for waiting; at the timeout
the request's work is cancelled (:class:`~.manager.Deadline`), not left running. JSON
nested too deep and batches over ``--max_batch_size`` are refused (400) before any tensor
is built (:mod:`.json_tensor`).
The model runs in a thread pool of ``num_threads`` (TF Serving's ``--rest_api_num_threads``),
so the event loop keeps answering while images are generated.
"""
from __future__ import annotations

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI, Request
from fastapi.responses import Response

from keras_mammo.serving.errors import ServingError, invalid
from keras_mammo.serving.json_tensor import check_batch_sizes, parse_request, request_inputs, response_json
from keras_mammo.serving.manager import Deadline, ModelManager, tensor_info_spec

PREDICT_RE = re.compile(r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
                        r":(classify|regress|predict)")
STATUS_RE = re.compile(r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?")


def _json_proto(message, preserve_names: bool) -> dict:
    from google.protobuf import json_format

    return json.loads(json_format.MessageToJson(message, preserving_proto_field_name=preserve_names,
                                                always_print_fields_with_no_presence=True))


def status_json(resp) -> dict:
    """``GetModelStatusResponse`` as TF Serving writes it (proto3 JSON, fields always printed)."""
    return _json_proto(resp, preserve_names=False)


def metadata_json(resp) -> dict:
    """``GetModelMetadataResponse`` as TF Serving writes it: the ``SignatureDefMap`` unpacked
    under ``metadata.signature_def`` and proto field names kept (``method_name``, ``tensor_shape``)."""
    from tensorflow_serving.apis import get_model_metadata_pb2

    sig_map = get_model_metadata_pb2.SignatureDefMap()
    resp.metadata["signature_def"].Unpack(sig_map)
    return {"model_spec": _json_proto(resp.model_spec, True),
            "metadata": {"signature_def": _json_proto(sig_map, True)}}


class RestHandler:
    """Turns (method, path, body) into (HTTP status, JSON object); no HTTP of its own.

    Args:
        manager: the model manager.
        num_threads: model executions that may run at once.
    """

    def __init__(self, manager: ModelManager, num_threads: int = 4):
        self.manager = manager
        self.pool = ThreadPoolExecutor(max_workers=num_threads, thread_name_prefix="rest")

    def handle(self, method: str, path: str, body: bytes, deadline: Deadline | None = None) -> tuple[int, dict]:
        """``(HTTP status, JSON object)``; ``deadline`` (started by the caller) is checked
        between the phases and cancels the model run (:class:`~.manager.Deadline`)."""
        try:
            return 200, self._dispatch(method, path, body, deadline or Deadline())
        except ServingError as exc:
            return exc.http_status, {"error": exc.message}
        except Exception as exc:  # never take the server down with one request
            return 500, {"error": f"internal error: {type(exc).__name__}: {exc}"}

    def _dispatch(self, method: str, path: str, body: bytes, deadline: Deadline) -> dict:
        m = self.manager
        if method == "POST" and (match := PREDICT_RE.fullmatch(path)):
            name, version, label, verb = match.groups()
            version = int(version) if version else None
            if verb.lower() != "predict":
                raise ServingError("UNIMPLEMENTED", f"{verb} is not supported: the generators' signatures are "
                                                    f"predict signatures (use :predict)")
            doc = parse_request(body)
            lv = m.get(name, version, label)
            sig_name = doc.get("signature_name") or "serving_default"
            _, sd = lv.signature(sig_name)
            specs = {k: tensor_info_spec(v) for k, v in sd.inputs.items()}
            # size first: a batch over --max_batch_size is refused before any of it becomes an array
            check_batch_sizes(doc, {k for k, (_, shape) in specs.items() if shape and shape[0] is None},
                              m.limits.max_batch_size)
            deadline.check()
            inputs, fmt = request_inputs(doc, {k: dtype for k, (dtype, _) in specs.items()})
            _, _, outputs = m.predict(name, lv.version, sig_name, inputs, label, deadline=deadline)
            deadline.check()
            return response_json(outputs, fmt)
        if method == "GET" and (match := STATUS_RE.fullmatch(path)):
            name, version, label, sub = match.groups()
            if not name:
                raise invalid("Missing model name in request.")
            version = int(version) if version else None
            if sub:
                return metadata_json(m.metadata(name, version, label))
            return status_json(m.status(name, version, label))
        raise invalid(f"Malformed request: {method} {path}")


def create_app(manager: ModelManager, num_threads: int = 4):
    """The FastAPI application of the REST API.

    Request bodies over ``manager.limits.max_request_bytes`` are refused with 413 before
    they are read whole; a request still running ``manager.limits.timeout_s`` after its
    execution started is answered 504 and its computation cancelled.
    """
    handler = RestHandler(manager, num_threads)
    limits = manager.limits
    app = FastAPI(title="keras-mammo serve (TensorFlow Serving REST API)", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.handler = handler

    def reply(status: int, obj: dict) -> Response:
        return Response(json.dumps(obj, allow_nan=True), status_code=status, media_type="application/json")

    @app.api_route("/v1/{rest:path}", methods=["GET", "POST"])
    async def v1(request: Request, rest: str):
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_request_bytes:
            return reply(413, {"error": f"request body of {declared} bytes exceeds the server's limit of "
                                        f"{limits.max_request_bytes} bytes (--max_request_bytes)"})
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_request_bytes:
                return reply(413, {"error": f"request body exceeds the server's limit of "
                                            f"{limits.max_request_bytes} bytes (--max_request_bytes)"})
            chunks.append(chunk)
        deadline = Deadline(limits.timeout_s)

        def work(method=request.method, path=request.url.path, body=b"".join(chunks)):
            deadline.start()
            return handler.handle(method, path, body, deadline)

        job = asyncio.get_running_loop().run_in_executor(handler.pool, work)
        while True:  # the deadline runs from the start of execution, not from the queue (as TF Serving)
            left = deadline.left()
            if left is not None and left <= 0:
                deadline.cancel()   # the work stops too: it does not keep slowing the next requests
                return reply(504, {"error": f"Deadline exceeded: the request ran past {limits.timeout_s:g} s "
                                            f"(--rest_api_timeout_in_ms); its work was cancelled"})
            done, _ = await asyncio.wait({job}, timeout=left if left is not None else 0.05)
            if done:
                status, obj = job.result()
                return reply(status, obj)

    @app.on_event("shutdown")
    def _close_pool():
        handler.pool.shutdown(wait=False, cancel_futures=True)

    return app
