"""Run the model manager with its REST and gRPC front ends (``keras-mammo serve``)."""
from __future__ import annotations

import logging
import os
import signal
import threading

from keras_mammo.serving.manager import Limits, ModelManager

log = logging.getLogger("keras_mammo.serving")


def serve(model_name: str, model_base_path: str, host: str = "127.0.0.1", rest_api_port: int = 8501,
          port: int = 8500, limits: Limits | None = None, poll_seconds: float = 1.0,
          num_threads: int | None = None, ready: threading.Event | None = None) -> None:
    """Serve one model until SIGINT/SIGTERM.

    Args:
        model_name: the name requests use.
        model_base_path: folder of numeric version folders.
        host: address both front ends bind (``127.0.0.1``: this machine only).
        rest_api_port: REST port; 0 disables REST (as ``tensorflow_model_server``).
        port: gRPC port; 0 disables gRPC.
        limits: per-request limits.
        poll_seconds: seconds between scans for new or removed versions.
        num_threads: concurrent model executions per front end (default: CPU count, ≥ 2).
        ready: set once both front ends accept connections.

    Raises:
        FileNotFoundError: ``model_base_path`` is not a folder.
        ValueError: both ports are 0.
    """
    if not rest_api_port and not port:
        raise ValueError("both --rest_api_port and --port are 0: nothing to serve")
    num_threads = num_threads or max(2, os.cpu_count() or 2)
    manager = ModelManager(model_name, model_base_path, limits, poll_seconds)
    manager.start()
    if not manager.versions:
        log.warning("model %s: no servable version under %s yet; waiting for one", model_name, model_base_path)
    grpc_server = None
    if port:
        from keras_mammo.serving.grpc_service import create_grpc_server  # needs grpcio (the serve extra)

        grpc_server = create_grpc_server(manager, host, port, num_threads)
        grpc_server.start()
        log.info("Running gRPC ModelServer at %s:%d", host, port)
    try:
        if rest_api_port:
            import uvicorn

            from keras_mammo.serving.rest import create_app  # needs fastapi (the serve extra)

            config = uvicorn.Config(create_app(manager, num_threads), host=host, port=rest_api_port,
                                    log_level="warning", access_log=False, timeout_keep_alive=30)
            server = uvicorn.Server(config)
            if ready is not None:
                threading.Thread(target=_set_when_started, args=(server, ready), daemon=True).start()
            log.info("Exporting HTTP/REST API at %s:%d", host, rest_api_port)
            server.run()
        else:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            if ready is not None:
                ready.set()
            stop.wait()
    finally:
        if grpc_server is not None:
            grpc_server.stop(grace=2)
        manager.stop()


def _set_when_started(server, ready: threading.Event) -> None:
    import time

    while not server.started and not server.should_exit:
        time.sleep(0.05)
    ready.set()
