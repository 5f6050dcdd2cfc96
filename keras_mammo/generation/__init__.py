"""From a trained generator to shareable images and models.

- :mod:`~keras_mammo.generation.generate`: synthetic mammograms from a run directory, a
  SavedModel or a TF-Serving server (``keras-mammo generate``), written as PNGs with
  provenance text chunks;
- :mod:`~keras_mammo.generation.dicom`: the same images as a synthetic DICOM series
  (``--format dicom``), with no patient data;
- :mod:`~keras_mammo.generation.export`: a run's generator as a versioned SavedModel with
  TF-Serving signatures (``keras-mammo export``);
- :mod:`~keras_mammo.generation.run_metrics`: model-specific metrics of a conditional
  run (seg-cdcgan, pix2pix, unet), the run side of ``keras-mammo evaluate --run``.

This package sits above :mod:`keras_mammo.training` (it rebuilds runs' models) and
:mod:`keras_mammo.serving` (it can generate from a server); nothing below imports it.
"""
