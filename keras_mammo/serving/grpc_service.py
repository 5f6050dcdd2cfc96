"""gRPC front end: TensorFlow Serving's ``PredictionService`` and ``ModelService``.

Implemented on the servicer base classes and ``add_*_to_server`` functions that the
``tensorflow-serving-api`` package generates from TF Serving's ``.proto`` files, so any
TF Serving gRPC client (``prediction_service_pb2_grpc.PredictionServiceStub``) talks to
it unchanged:

- ``tensorflow.serving.PredictionService/Predict``: ``PredictRequest`` (``model_spec``
  name, optional version, ``signature_name``; ``inputs`` as ``TensorProto``;
  ``output_filter``) → ``PredictResponse`` (``model_spec`` with the version that ran,
  ``outputs`` as ``TensorProto``);
- ``tensorflow.serving.PredictionService/GetModelMetadata`` (``signature_def``);
- ``tensorflow.serving.ModelService/GetModelStatus``.

Classify, Regress and MultiInference answer ``UNIMPLEMENTED`` (the servicer defaults).
Errors carry the gRPC status code of the same name as TF Serving's error code.
"""
from __future__ import annotations

from concurrent import futures

from keras_mammo.serving.errors import ServingError, invalid
from keras_mammo.serving.manager import Deadline, ModelManager


def _spec(model_spec) -> tuple[str, int | None, str | None]:
    version = model_spec.version.value if model_spec.HasField("version") else None
    label = model_spec.version_label if model_spec.WhichOneof("version_choice") == "version_label" else None
    return model_spec.name, version, label


def _abort(context, exc: ServingError):
    import grpc

    context.abort(getattr(grpc.StatusCode, exc.code), exc.message)


def make_servicers(manager: ModelManager):
    """``(PredictionServiceServicer, ModelServiceServicer)`` instances bound to ``manager``."""
    import tensorflow as tf
    from tensorflow_serving.apis import model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc

    class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            try:
                name, version, label = _spec(request.model_spec)
                deadline = Deadline()
                context.add_callback(deadline.cancel)   # client gone or its deadline passed: stop the work
                inputs = {}
                for key, proto in request.inputs.items():
                    dims = proto.tensor_shape.dim
                    if len(dims) > 1 and dims[0].size > manager.limits.max_batch_size:   # size first
                        raise invalid(f"input {key!r}: batch of {dims[0].size} exceeds the server's limit of "
                                      f"{manager.limits.max_batch_size} (--max_batch_size)")
                    try:
                        inputs[key] = tf.make_ndarray(proto)
                    except Exception as exc:
                        raise invalid(f"input {key!r}: not a valid TensorProto: {exc}") from None
                lv, sig, outputs = manager.predict(name, version, request.model_spec.signature_name, inputs,
                                                   label, tuple(request.output_filter), deadline)
                resp = predict_pb2.PredictResponse()
                resp.model_spec.name = manager.name
                resp.model_spec.version.value = lv.version
                resp.model_spec.signature_name = sig
                for key, arr in outputs.items():
                    resp.outputs[key].CopyFrom(tf.make_tensor_proto(arr))
                return resp
            except ServingError as exc:
                _abort(context, exc)
            except Exception as exc:
                _abort(context, ServingError("INTERNAL", f"{type(exc).__name__}: {exc}"))

        def GetModelMetadata(self, request, context):
            try:
                name, version, label = _spec(request.model_spec)
                return manager.metadata(name, version, label, tuple(request.metadata_field))
            except ServingError as exc:
                _abort(context, exc)

    class ModelService(model_service_pb2_grpc.ModelServiceServicer):
        def GetModelStatus(self, request, context):
            try:
                name, version, label = _spec(request.model_spec)
                return manager.status(name, version, label)
            except ServingError as exc:
                _abort(context, exc)

    return PredictionService(), ModelService()


def create_grpc_server(manager: ModelManager, host: str, port: int, max_workers: int = 4):
    """A (not yet started) ``grpc.Server`` on ``host:port`` with both services.

    Messages up to ``manager.limits.max_request_bytes`` are received; larger ones are
    refused by gRPC with ``RESOURCE_EXHAUSTED``.

    Raises:
        RuntimeError: the port cannot be bound.
    """
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
                         options=[("grpc.max_receive_message_length", manager.limits.max_request_bytes),
                                  ("grpc.max_send_message_length", -1)])
    prediction, model = make_servicers(manager)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(prediction, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(model, server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if server.add_insecure_port(address) == 0:
        raise RuntimeError(f"cannot bind gRPC port {address}")
    return server
