"""Downstream utility of synthetic mammograms (Rahali 2025, §3.6; Tables 4.4–4.5).

Does training a tumour / non-tumour classifier on generated patches help? The pipeline:

1. :mod:`~keras_mammo.utility.patches`: tumour and non-tumour patches from one labelled
   dataset, split by patient (crop geometry in :mod:`~keras_mammo.utility.patch_geometry`);
   :mod:`~keras_mammo.utility.patchset` reads and writes the patch-set directory, whose
   training split's tumour patches are the only data a generator may be trained on.
2. :mod:`~keras_mammo.utility.generated`: generated tumour patches (a folder, or a run /
   SavedModel to generate from; or train the generator here) and the check that the
   generator never saw a test-split patient.
3. :mod:`~keras_mammo.utility.backbones` and :mod:`~keras_mammo.utility.features`: frozen
   ImageNet features (ResNet50 as in the thesis, or the offline FID Inception), cached per
   image set.
4. :mod:`~keras_mammo.utility.classifier`: linear SVM with C chosen by inner CV on the
   training set; metrics and patient-bootstrap intervals.
5. :mod:`~keras_mammo.utility.experiments`: real only, replacement, augmentation, TSTR,
   repeated over seeds.
6. :mod:`~keras_mammo.utility.report`: ``utility.json``, ``report.md``, figures.

7. :mod:`~keras_mammo.utility.crossval` and :mod:`~keras_mammo.utility.cnn`: the
   cross-validated protocol of issue 22 (patient-grouped k folds over all patches; real
   only, real + classical augmentation and generator arms; linear SVM and a small CNN;
   corrected resampled t and patient-bootstrap intervals; minimum detectable effect),
   resumable per fold.

:func:`keras_mammo.utility.run.run_utility` runs 2–6 and
:func:`keras_mammo.utility.crossval.run.run_crossval` runs 7; ``keras-mammo patches`` and
``keras-mammo utility [--folds K]`` are their command-line faces.
"""
