"""The server answers every bad request with 4xx, quickly, and stops work it has given up on
(issue 24, deliverable 6): JSON nested 5,000 deep was a 500 ``RecursionError``; 20,000
latent rows (12.8 MB, under the body limit) were turned into a tensor before the batch
check and answered 504 after 31 s, the work going on after the 504.

The served model is a small SavedModel written here (a latent → image signature like the
exported generators', and a signature that keeps the CPU busy for a given time while
counting its loop iterations in a variable), so the tests need no training run. Requests
go through the FastAPI app in process (no port is opened).
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("fastapi")
pytest.importorskip("httpx")

LATENT = 128


class _Busy(tf.Module):
    def __init__(self):
        super().__init__()
        self.iterations = tf.Variable(0, dtype=tf.int64)
        self.w = tf.Variable(tf.ones([LATENT, 16]) / LATENT)

    @tf.function(input_signature=[tf.TensorSpec([None, LATENT], tf.float32, name="latent")])
    def generate(self, latent):
        return {"images": tf.reshape(tf.tanh(latent @ self.w), [-1, 4, 4, 1])}

    @tf.function(input_signature=[tf.TensorSpec([], tf.float32, name="seconds")])
    def busy(self, seconds):
        """Multiplies small matrices until ``seconds`` have passed, counting the loops."""
        t0 = tf.timestamp()
        m = tf.ones([64, 64]) / 64.0

        def body(m):
            self.iterations.assign_add(1)
            return [tf.matmul(m, m)]

        tf.while_loop(lambda m: tf.timestamp() - t0 < tf.cast(seconds, tf.float64), body, [m])
        return {"iterations": self.iterations.read_value()}

    @tf.function(input_signature=[tf.TensorSpec([], tf.float32, name="x")])
    def read(self, x):
        return {"iterations": self.iterations.read_value()}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("limits") / "busy"
    m = _Busy()
    tf.saved_model.save(m, str(root / "1"), signatures={"serving_default": m.generate, "busy": m.busy,
                                                          "read": m.read})
    return root


def _client(base, **limits):
    from fastapi.testclient import TestClient

    from keras_mammo.serving.manager import Limits, ModelManager
    from keras_mammo.serving.rest import create_app

    manager = ModelManager("busy", base, Limits(**limits), warmup=False)
    manager.refresh()
    return TestClient(create_app(manager, num_threads=2))


@pytest.mark.parametrize("depth", [5000, 40])
def test_json_nested_too_deep_is_a_400_not_a_500(base, depth):
    body = '{"instances": ' + "[" * depth + "0.5" + "]" * depth + "}"
    with _client(base) as http:
        r = http.post("/v1/models/busy:predict", content=body)
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "JSON Parse error: nested deeper than 32 levels"
        ok = http.post("/v1/models/busy:predict", json={"instances": [[0.5] * LATENT]})
        assert ok.status_code == 200 and np.asarray(ok.json()["predictions"]).shape == (1, 4, 4, 1)


@pytest.mark.parametrize("key", ["instances", "inputs"])
def test_a_batch_over_the_limit_is_refused_before_any_tensor_is_built(base, key, monkeypatch):
    """20,000 rows of 128 latents: 12.8 MB, under the 16 MiB body limit."""
    from keras_mammo.serving import json_tensor

    built = []
    real = json_tensor.json_to_array
    monkeypatch.setattr(json_tensor, "json_to_array", lambda *a: built.append(1) or real(*a))
    body = json.dumps({key: [[0.5] * LATENT] * 20000}).encode()
    assert 12_000_000 < len(body) < 16 * 1024 * 1024
    with _client(base, max_batch_size=64) as http:
        t0 = time.perf_counter()
        r = http.post("/v1/models/busy:predict", content=body)
        seconds = time.perf_counter() - t0
    assert r.status_code == 400, r.text
    assert "batch of 20000 exceeds the server's limit of 64 (--max_batch_size)" in r.json()["error"]
    assert built == []                  # refused from the parsed document's list length alone
    print(f"20,000 rows refused in {seconds:.2f} s")
    assert seconds < 15.0               # before: 504 after the 30 s timeout; see docs/serving.md for the idle time


def test_work_past_the_deadline_is_cancelled(base):
    """Before: the 504 was sent but the signature kept running (and slowing other requests)."""
    with _client(base, timeout_s=3.0) as http:
        def busy(seconds):
            return http.post("/v1/models/busy:predict", json={"signature_name": "busy", "inputs": {"seconds": seconds}})

        def iterations():
            a = http.post("/v1/models/busy:predict", json={"signature_name": "read", "inputs": {"x": 0.0}})
            assert a.status_code == 200, a.text
            return a.json()["outputs"]

        for _ in range(3):         # the first call of a signature loads its graph (slow on a loaded machine)
            warm = busy(0.05)
            if warm.status_code == 200:
                break
        assert warm.status_code == 200, warm.text
        for _ in range(3):
            if http.post("/v1/models/busy:predict", json={"signature_name": "read", "inputs": {"x": 0.0}}).is_success:
                break
        t0 = time.perf_counter()
        r = busy(30.0)
        assert r.status_code == 504 and "its work was cancelled" in r.json()["error"]
        assert time.perf_counter() - t0 < 10.0
        time.sleep(0.5)            # the cancelled loop stops between ops
        first = iterations()
        time.sleep(2.0)
        assert iterations() == first >= warm.json()["outputs"]
        ok = busy(0.05)
        assert ok.status_code == 200 and ok.json()["outputs"] > first
