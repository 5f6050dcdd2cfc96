"""Export, generation and serving in the fast lane, without a training step.

The run directory is what ``train`` leaves (``config.yaml`` and a checkpoint) for a freshly
built, untrained 16-px thesis GAN, so it costs seconds instead of a training run. It is
exported through ``keras-mammo export`` and served in this process by ``keras-mammo serve``
on loopback ports; the SavedModel, the REST client (:mod:`keras_mammo.serving.client`) and a
gRPC stub must give the run's own images. The same checks on trained models, with more
cases, are in ``test_generate_reliability.py`` and ``test_serving.py`` (marked slow).
"""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner

LATENT = 16
RES = 16


@pytest.fixture(scope="module")
def untrained_run(make_untrained_run, tmp_path_factory):
    """``runs/untrained-run``: config.yaml + ckpt-000001.npz of an untrained thesis GAN at 16 px."""
    return make_untrained_run(tmp_path_factory.mktemp("fast") / "runs" / "untrained-run", {
        "model.latent_dim": LATENT, "train.resolution": RES,
        "model.params": {"g_channels": [8, 8], "d_channels": [16, 8], "base_channels": 16}})


@pytest.fixture(scope="module")
def exported(untrained_run):
    """``keras-mammo export --run … --name tiny --version 1``: the model base path."""
    from cli.export import export

    base = untrained_run.parent.parent / "saved"
    res = CliRunner().invoke(export, ["--run", str(untrained_run), "--out", str(base), "--name", "tiny",
                                      "--version", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    assert f"SavedModel: {base / 'tiny' / '1'}" in res.output
    return base / "tiny"


def test_savedmodel_gives_the_runs_images_and_holds_no_path(untrained_run, exported):
    from keras_mammo.generation.generate import generate_images

    run_images = generate_images(untrained_run, 5, seed=4, batch_size=2)
    assert run_images.shape == (5, RES, RES, 1) and run_images.dtype == np.float32
    assert 0.0 <= run_images.min() and run_images.max() <= 1.0 and run_images.std() > 1e-3
    np.testing.assert_array_equal(run_images, generate_images(untrained_run, 5, seed=4, batch_size=5))
    saved = generate_images(exported, 5, seed=4)
    assert np.abs(saved - run_images).max() <= 0.5 / 255 + 1e-6          # the run's images, rounded to uint8
    assert np.abs(generate_images(exported, 5, seed=5) - saved).max() > 1e-3
    meta = json.loads((exported / "1" / "assets.extra" / "keras_mammo.json").read_text())
    assert (meta["model"], meta["run"], meta["resolution"], meta["latent_dim"]) == ("thesis", "untrained-run", RES,
                                                                                    LATENT)
    assert not any(isinstance(v, str) and v.startswith("/") for v in meta.values())


def test_export_refuses_an_existing_version(untrained_run, exported):
    from cli.export import export

    before = sorted(p.name for p in exported.iterdir())
    res = CliRunner().invoke(export, ["--run", str(untrained_run), "--out", str(exported.parent), "--name", "tiny",
                                      "--version", "1"])
    assert res.exit_code != 0 and "exists already" in res.output and "next free: 2" in res.output
    assert sorted(p.name for p in exported.iterdir()) == before


@pytest.fixture(scope="module")
def served(exported):
    """``keras-mammo serve`` run in a thread of this process on two free loopback ports."""
    pytest.importorskip("uvicorn")
    pytest.importorskip("fastapi")
    import uvicorn

    from cli.serve import serve
    from keras_mammo.serving.launch import free_port

    servers = []

    class Recorded(uvicorn.Server):        # to stop the thread's server at the end
        def __init__(self, config):
            super().__init__(config)
            servers.append(self)

    mp = pytest.MonkeyPatch()
    mp.setattr(uvicorn, "Server", Recorded)
    rest, grpc_port = free_port(), free_port()
    args = ["--model_name", "tiny", "--model_base_path", str(exported), "--rest_api_port", str(rest),
            "--port", str(grpc_port), "--max_batch_size", "8", "--quiet"]
    thread = threading.Thread(target=serve.main, args=(args,), kwargs={"standalone_mode": False}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{rest}"
    deadline = time.monotonic() + 120
    while not (servers and servers[0].started):
        assert thread.is_alive() and time.monotonic() < deadline, "keras-mammo serve did not start"
        time.sleep(0.1)
    try:
        yield {"url": url, "grpc": f"127.0.0.1:{grpc_port}"}
    finally:
        servers[0].should_exit = True
        thread.join(30)
        mp.undo()


def test_rest_client_gives_the_savedmodels_images(exported, served):
    from keras_mammo.errors import DataError
    from keras_mammo.generation.generate import generate_images
    from keras_mammo.serving.client import ServingClient, generate_from_server

    client = ServingClient(served["url"], "tiny")
    status = client.status()["model_version_status"]
    assert [(s["version"], s["state"]) for s in status] == [("1", "AVAILABLE")]
    assert set(client.signature_defs()) >= {"serving_default", "generate", "latent_png", "latent_png16"}
    images, info = generate_from_server(served["url"], "tiny", 5, seed=4, batch_size=2)
    assert info["version"] == 1 and info["signature"] == "latent_png" and info["bits"] == 8
    np.testing.assert_array_equal(images, generate_images(exported, 5, seed=4))
    out = client.predict("generate", inputs={"count": 2, "seed": 4})["outputs"]
    assert np.asarray(out).shape == (2, RES, RES, 1)
    np.testing.assert_array_equal(np.asarray(out, np.float32) / 255.0,
                                  generate_images(exported, 2, seed=4))   # `generate` draws the same latents
    with pytest.raises(DataError, match=r"HTTP 400: .*max_batch_size"):
        client.predict("generate", inputs={"count": 9, "seed": 1})
    with pytest.raises(DataError, match=r"HTTP 400: .*\"nope\" not found"):
        client.predict("nope", instances=[[0.0] * LATENT])
    with pytest.raises(DataError, match="HTTP 404"):
        ServingClient(served["url"], "other").status()


def test_grpc_predict_and_errors(exported, served):
    grpc = pytest.importorskip("grpc")
    pytest.importorskip("tensorflow_serving.apis.prediction_service_pb2_grpc")
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from keras_mammo.generation.generate import generate_images

    with grpc.insecure_channel(served["grpc"]) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        req = predict_pb2.PredictRequest()
        req.model_spec.name, req.model_spec.signature_name = "tiny", "generate"
        req.inputs["count"].CopyFrom(tf.make_tensor_proto(3, tf.int32))
        req.inputs["seed"].CopyFrom(tf.make_tensor_proto(4, tf.int64))
        resp = stub.Predict(req, timeout=60)
        images = tf.make_ndarray(resp.outputs["images"])
        assert resp.model_spec.version.value == 1 and images.dtype == np.uint8 and images.shape == (3, RES, RES, 1)
        np.testing.assert_array_equal(images.astype(np.float32) / 255.0, generate_images(exported, 3, seed=4))
        req.model_spec.name = "other"
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(req, timeout=60)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_serve_refuses_to_serve_nothing(exported):
    from cli.serve import serve

    res = CliRunner().invoke(serve, ["--model_name", "tiny", "--model_base_path", str(exported),
                                     "--rest_api_port", "0", "--port", "0"])
    assert res.exit_code != 0 and "both --rest_api_port and --port are 0: nothing to serve" in res.output
