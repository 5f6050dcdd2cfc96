"""Cross-validated utility protocol: does synthetic data add anything beyond classical augmentation? (issue 22)

- :mod:`~keras_mammo.utility.crossval.folds`: patient-grouped stratified k-fold; every
  patient tested once.
- :mod:`~keras_mammo.utility.crossval.arms`: real only, real + classical augmentation,
  and generator arms (a generator arm is a function of one fold's training patches).
- :mod:`~keras_mammo.utility.crossval.stats`: corrected resampled t (Nadeau & Bengio 2003)
  and the minimum detectable effect (Bloom 1995).
- :mod:`~keras_mammo.utility.crossval.run`: :func:`run_crossval`, resumable per fold.
- :mod:`~keras_mammo.utility.crossval.report`: ``crossval.json``, ``report.md``, figures.
"""
