"""FID and KID on real MIAS films: degraded images score far worse than the held-out real half."""
from __future__ import annotations

import numpy as np
import pytest

from keras_mammo.metrics import inception as inc
from keras_mammo.metrics.fid import fid
from keras_mammo.metrics.imagesets import load_image_set, split_halves
from keras_mammo.metrics.kid import kid

N = 32          # images per side
SIZE = 128      # evaluation resolution (px)


@pytest.fixture(scope="module")
def mias_features(mias_dir):
    """Features of two patient-disjoint halves of MIAS (N each), noise images and blurred films."""
    import cv2

    ok, reason = inc.fid_weights_status()
    if not ok:
        pytest.skip(reason)
    films = load_image_set(mias_dir, size=SIZE, limit=2 * N)          # mdb001 … mdb064, 32 patients
    a, b = split_halves(films.patient_ids, np.random.default_rng(0))
    a, b = a[:N], b[:N]
    assert not {films.patient_ids[i] for i in a} & {films.patient_ids[i] for i in b}
    rng = np.random.default_rng(1)
    noise = rng.random((N, SIZE, SIZE)).astype(np.float32)
    blurred = np.stack([cv2.GaussianBlur(img, (0, 0), SIZE / 32) for img in films.images[a]])
    feats = inc.inception_features(np.concatenate([films.images[a], films.images[b], noise, blurred]),
                                   progress=False)
    return dict(zip(("real_a", "real_b", "noise", "blurred"), np.split(feats, 4)))


def test_degraded_images_score_far_above_the_real_floor(mias_features):
    f = mias_features
    floor = fid(f["real_a"], f["real_b"])
    fid_noise = fid(f["noise"], f["real_b"])
    fid_blur = fid(f["blurred"], f["real_b"])
    print(f"\nFID at N={N}/side, {SIZE} px: real-vs-real floor {floor:.1f}, noise {fid_noise:.1f}, "
          f"blurred {fid_blur:.1f}")
    # The floor of two halves of one real distribution is far from 0 at this N (bias) ...
    assert 20 < floor < 200
    # ... and degraded images are far above it.
    assert fid_noise > 3 * floor
    assert fid_blur > 1.8 * floor
    kid_floor = kid(f["real_a"], f["real_b"], subsets=50, subset_size=N // 2)[0]
    kid_noise = kid(f["noise"], f["real_b"], subsets=50, subset_size=N // 2)[0]
    kid_blur = kid(f["blurred"], f["real_b"], subsets=50, subset_size=N // 2)[0]
    print(f"KID: floor {kid_floor:.4f}, noise {kid_noise:.4f}, blurred {kid_blur:.4f}")
    assert abs(kid_floor) < 0.03                      # unbiased: near 0 for one distribution
    assert kid_noise > 0.3 and kid_blur > 0.1
    assert kid_noise > 10 * abs(kid_floor) and kid_blur > 5 * abs(kid_floor)


def test_real_halves_close_in_both_directions(mias_features):
    f = mias_features
    assert fid(f["real_a"], f["real_b"]) == pytest.approx(fid(f["real_b"], f["real_a"]), rel=1e-9)
    assert abs(fid(f["real_a"], f["real_a"])) < 1e-6
