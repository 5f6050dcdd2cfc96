"""How fast the server refuses a batch over ``--max_batch_size`` (issue 24, item 6).

Writes a one-signature SavedModel (``latent`` ``(N, 128) float32`` → ``(N, 4, 4, 1)``) to
``--work``, then times :class:`keras_mammo.serving.rest.RestHandler` (no HTTP) on a
12.8 MB body of 20,000 latent rows, beside ``json.loads`` of the same body alone: the
rows are counted in the parsed document before any array is built, so the parse is the
cost. Prints one line per repeat, with the load average.

    python bench/bench_serve_refuse.py --work /tmp/refuse --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

LATENT = 128


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="folder for the SavedModel (created)")
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import tensorflow as tf

    from keras_mammo.serving.manager import Limits, ModelManager
    from keras_mammo.serving.rest import RestHandler

    class Tiny(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.ones([LATENT, 16]) / LATENT)

        @tf.function(input_signature=[tf.TensorSpec([None, LATENT], tf.float32, name="latent")])
        def generate(self, latent):
            return {"images": tf.reshape(tf.tanh(latent @ self.w), [-1, 4, 4, 1])}

    root = Path(args.work) / "tiny"
    if not (root / "1" / "saved_model.pb").is_file():
        m = Tiny()
        tf.saved_model.save(m, str(root / "1"), signatures={"serving_default": m.generate})
    manager = ModelManager("tiny", root, Limits(max_batch_size=64), warmup=False)
    manager.refresh()
    handler = RestHandler(manager, 1)
    body = json.dumps({"instances": [[0.5] * LATENT] * args.rows}).encode()
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        status, obj = handler.handle("POST", "/v1/models/tiny:predict", body)
        total = time.perf_counter() - t0
        t0 = time.perf_counter()
        json.loads(body)
        parse = time.perf_counter() - t0
        print(f"{len(body) / 1e6:.1f} MB, {args.rows} rows → {status} in {total:.3f} s "
              f"(json.loads alone {parse:.3f} s); load average {os.getloadavg()[0]:.1f}: {obj.get('error', '')[:70]}")


if __name__ == "__main__":
    main()
