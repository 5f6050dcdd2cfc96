"""The deployment recipes parse and point TensorFlow Serving at the export layout.

No Docker engine or Kubernetes cluster is available here: these checks cover the files'
syntax and the settings that tie them to ``saved_models/<name>/<version>/``, not a run.
"""
from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_docker_compose_serves_saved_models_with_the_official_image():
    svc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["tf-serving"]
    assert svc["image"].startswith("tensorflow/serving:")
    assert svc["volumes"] == ["./saved_models/${MODEL_NAME:-mias}:/models/${MODEL_NAME:-mias}:ro"]
    assert svc["environment"] == {"MODEL_NAME": "${MODEL_NAME:-mias}"}
    assert sorted(svc["ports"]) == ["127.0.0.1:8500:8500", "127.0.0.1:8501:8501"]
    assert all(flag.startswith("--") and "=" in flag for flag in svc["command"])


def test_kserve_inferenceservice_uses_the_tensorflow_runtime():
    isvc = yaml.safe_load((ROOT / "deploy" / "kserve-inferenceservice.yaml").read_text())
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    pred = isvc["spec"]["predictor"]
    assert pred["model"]["modelFormat"] == {"name": "tensorflow"}
    assert pred["model"]["storageUri"].startswith(("pvc://", "s3://", "gs://"))
    assert 1 <= pred["minReplicas"] <= pred["maxReplicas"] and pred["scaleMetric"] == "concurrency"
