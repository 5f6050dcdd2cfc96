"""Taguchi sweeps: every row of an orthogonal design is a real training run, scored by FID.

One module per job, so each can be read and tested alone (Ray Tune's split of design,
trials and analysis):

- :mod:`~keras_mammo.sweep.design`: the orthogonal arrays (Taguchi L4/L8/L9/L18, full
  factorial, the thesis's rows) and their orthogonality check;
- :mod:`~keras_mammo.sweep.trials`: the ``sweep:`` section and each trial's validated config;
- :mod:`~keras_mammo.sweep.scoring`: one trial: train (or resume), then FID/KID with the
  real-vs-real floor (:mod:`keras_mammo.metrics.floor`);
- :mod:`~keras_mammo.sweep.backends`: Ray Tune, or one trial after another in this process;
- :mod:`~keras_mammo.sweep.analysis`: S/N ratios, main effects, ANOVA, the predicted optimum;
- :mod:`~keras_mammo.sweep.outputs`: ``trials.csv``, main-effects table and plot, ``report.md``;
- :mod:`~keras_mammo.sweep.runner`: :func:`~keras_mammo.sweep.runner.run_sweep`, which
  ties them together (``keras-mammo sweep``).
"""
