"""Serving exported generators with TensorFlow Serving's REST and gRPC APIs.

The layout follows TensorFlow Serving: a model manager (:mod:`.manager`) owns the
versions of one model (loading, unloading, the version policy) and front ends that only
translate requests: REST (:mod:`.rest`, FastAPI + uvicorn, TF Serving's JSON mapping in
:mod:`.json_tensor`) and gRPC (:mod:`.grpc_service`, the ``tensorflow-serving-api``
package's own service definitions). :mod:`.client` is a client of the documented REST
API that works the same against ``tensorflow_model_server``; :mod:`.launch` starts
``keras-mammo serve`` on free loopback ports (tests, benchmarks); :mod:`.signatures` adds the
8- and 16-bit PNG signatures to an export.

Needs the ``serve`` extra: ``pip install keras-mammo[serve]``.
"""
