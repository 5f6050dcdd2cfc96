"""keras-mammo: GANs for synthetic mammograms in Keras 3 on TensorFlow.

The few entry points a notebook needs, importable from the package itself::

    import keras_mammo as km

    cfg = km.load_config("quickstart", {"run_dir": "runs/nb"})   # YAML → validated Config
    run = km.train(cfg)                                            # the run directory
    images = km.generate_images(run, n=16, seed=0)                 # (16, H, W, 1) float32 in [0, 1]
    km.write_images(run, 16, "synthetic/nb", seed=0)               # PNGs with provenance
    report = km.evaluate("prepared/quickstart", "synthetic/nb", "reports/nb")   # FID/KID, floor
    model, cfg, state = km.load_run_model(run)                     # the GAN, to call yourself
    km.export_model(run)                                           # TF-Serving SavedModel
    km.available_pretrained()                                      # the shipped generators, with their figures
    images = km.generate_images(km.pretrained_path("mias-64"), n=16, seed=0)   # from a shipped one
    sm = km.load_pretrained("mias-64")                             # its SavedModel (tf.saved_model.load)

Each name is imported on first use, so ``import keras_mammo`` itself does not import
TensorFlow (about 5 s): the command line and the config checks stay quick.

========================  ====================================================================
name                      defined in
========================  ====================================================================
``load_config``           :func:`keras_mammo.config.load_config`
``train``                 :func:`keras_mammo.training.run.train`
``load_run_model``        :func:`keras_mammo.training.run.load_run_model`
``generate_images``       :func:`keras_mammo.generation.generate.generate_images`
``write_images``          :func:`keras_mammo.generation.generate.write_images`
``export_model``          :func:`keras_mammo.generation.export.export_model`
``evaluate``              :func:`keras_mammo.metrics.evaluate.evaluate`
``available_pretrained``  :func:`keras_mammo.pretrained.available_pretrained`
``pretrained_path``       :func:`keras_mammo.pretrained.pretrained_path`
``load_pretrained``       :func:`keras_mammo.pretrained.load_pretrained`
========================  ====================================================================

The package's layers, bottom up (checked by import-linter, ``.importlinter``): ``errors``;
``utils``, ``schema``, ``precision``, ``savedmodel``; ``augment``, ``losses``; ``data``
and ``models`` (networks, the GAN base class :mod:`keras_mammo.models.gan` and its
small-data recipe); ``config``; ``metrics``; ``training``; ``serving``; ``generation`` and
``pretrained``; ``utility`` and ``sweep``; the ``cli`` package on top.
"""
from __future__ import annotations

import importlib

#: public name → the module that defines it (imported on first access)
_API = {
    "load_config": "keras_mammo.config",
    "train": "keras_mammo.training.run",
    "load_run_model": "keras_mammo.training.run",
    "generate_images": "keras_mammo.generation.generate",
    "write_images": "keras_mammo.generation.generate",
    "export_model": "keras_mammo.generation.export",
    "evaluate": "keras_mammo.metrics.evaluate",
    "available_pretrained": "keras_mammo.pretrained",
    "pretrained_path": "keras_mammo.pretrained",
    "load_pretrained": "keras_mammo.pretrained",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    """Import a public entry point on first access (PEP 562); later accesses find it in the module."""
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_mammo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
