"""The utility protocol's patch CNN without training it (the fast lane): the architecture's
shapes, the scores of a forward pass on real MIAS patches, and fit_cnn's one-class refusal.
Its training is ``test_utility_crossval.py::test_cnn_arm_trains_with_early_stopping`` (slow)."""
from __future__ import annotations

import numpy as np
import pytest


def test_patch_cnn_scores_real_patches_one_logit_each(mias_dir):
    import cv2

    from keras_mammo.data.io import read_mammogram
    from keras_mammo.utility.cnn import CNNOptions, build_cnn, cnn_scores

    opts = CNNOptions(size=32, filters=(4, 8))
    model = build_cnn(opts)
    assert model.input_shape == (None, 32, 32, 1) and model.output_shape == (None, 1)
    assert [x.filters for x in model.layers if hasattr(x, "filters")] == [4, 8]
    films = [read_mammogram(mias_dir / f"mdb00{i}.png").pixels for i in range(1, 6)]
    patches = np.stack([cv2.resize(f[400:656, 400:656], (32, 32), interpolation=cv2.INTER_AREA) for f in films])
    scores = cnn_scores(model, patches.astype(np.float32), batch_size=2)
    assert scores.shape == (5,) and scores.dtype == np.float64 and np.isfinite(scores).all()
    assert np.ptp(scores) > 0                                   # one logit per patch, not one for the batch
    np.testing.assert_allclose(scores[2:], cnn_scores(model, patches[2:].astype(np.float32)), rtol=1e-5, atol=1e-6)


def test_fit_cnn_refuses_a_part_with_one_class():
    from keras_mammo.utility.cnn import CNNOptions, fit_cnn

    x = np.zeros((4, 32, 32), np.float32)
    with pytest.raises(ValueError, match="fit_cnn: the validation part holds one class only"):
        fit_cnn(x, np.array([0, 1, 0, 1]), x, np.zeros(4), CNNOptions(size=32, filters=(4,)))
