"""Evaluation of synthetic mammograms: metrics as functions of features or images.

- :mod:`~keras_mammo.metrics.inception`: the FID Inception network (TF
  inception-2015-12-05, pool_3) ported to Keras; :func:`inception_features`.
- :mod:`~keras_mammo.metrics.fid`, :mod:`~keras_mammo.metrics.kid`: FID (Heusel et al.
  2017) and KID (Bińkowski et al. 2018) of two feature sets.
- :mod:`~keras_mammo.metrics.image_metrics`: PSNR/SSIM to the nearest real image,
  breast histograms, binarized-tissue measures.
- :mod:`~keras_mammo.metrics.memorization`: nearest-training-image distance ratios.
- :mod:`~keras_mammo.metrics.loss_summary`: phases of G/D balance of a loss curve.
- :mod:`~keras_mammo.metrics.evaluate`: :func:`~keras_mammo.metrics.evaluate.evaluate`, the
  library side of ``keras-mammo evaluate``; :mod:`~keras_mammo.metrics.report` writes the report.

TensorFlow is imported only by the modules that need it (the network, the evaluator).

Usage::

    from keras_mammo.metrics.inception import inception_features
    from keras_mammo.metrics.fid import fid
    from keras_mammo.metrics.kid import kid

    fa, fb = inception_features(real_images), inception_features(synthetic_images)
    print(fid(fa, fb), kid(fa, fb, subset_size=len(fa) // 2))

(``fid`` and ``kid`` are not re-exported here so that ``keras_mammo.metrics.fid`` stays
the module.)
"""

__all__ = ["inception_features", "load_fid_inception"]


def __getattr__(name):
    if name in ("inception_features", "load_fid_inception"):
        from keras_mammo.metrics import inception  # on first use: inception builds a TensorFlow network

        return getattr(inception, name)
    raise AttributeError(f"module 'keras_mammo.metrics' has no attribute {name!r}")
