"""Model-specific evaluation: seg-cdcgan (SSIM to the conditioning film, U-Net Dice) and
pix2pix (the "multistage CNN" accuracy check, per-class appearance)."""
from __future__ import annotations

import numpy as np
import pytest

from keras_mammo.metrics.model_specific import (
    classification_accuracy,
    dice_iou,
    evaluate_pix2pix,
    evaluate_seg_cdcgan,
    per_class_appearance,
    seg_cdcgan_scores,
)


def test_dice_iou_hand_values():
    p = np.zeros((3, 4, 4), np.uint8)
    t = np.zeros((3, 4, 4), np.uint8)
    p[0, :2, :2] = 1          # 4 px
    t[0, :2, :1] = 1          # 2 px inside → Dice 2·2/6, IoU 2/4
    t[1, 0, 0] = 1            # empty prediction of a lesion → 0
    dice, iou = dice_iou(p, t)  # image 2: both empty → 1
    np.testing.assert_allclose(dice, [4 / 6, 0.0, 1.0])
    np.testing.assert_allclose(iou, [0.5, 0.0, 1.0])
    with pytest.raises(ValueError, match="shape"):
        dice_iou(p, t[:, :2])


def test_classification_accuracy_per_class_and_balanced():
    out = classification_accuracy([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], ["a", "b", "c"])
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["per_class"]["a"] == {"n": 2, "accuracy": 0.5}
    assert out["per_class"]["b"]["accuracy"] == 0.5 and out["per_class"]["c"]["accuracy"] == 1.0
    assert out["balanced_accuracy"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert out["confusion"] == [[1, 0, 1], [1, 1, 0], [0, 0, 2]]


@pytest.fixture(scope="module")
def mias32(mias_prepared):
    from keras_mammo.data.pipeline import load_stage_arrays, kept_rows

    stage = load_stage_arrays(mias_prepared, 32, ("breast_mask", "lesion_mask", "label"))
    a = stage.arrays
    images = a["image"].astype(np.float32) / 65535.0
    patients = [r["patient_id"] for r in kept_rows(mias_prepared)]
    return images, a["breast_mask"].astype(np.float32), a["lesion_mask"].astype(np.float32), a["label"], \
        patients, stage.classes


def test_seg_cdcgan_scores_real_films(mias32):
    """A 'generator' that returns the conditioning film itself scores SSIM 1; a perfect
    segmenter scores Dice 1; an empty segmenter scores 0 on the films with lesions."""
    images, _, lesions, *_ = mias32
    assert lesions.reshape(len(lesions), -1).max(1).sum() >= 2  # some of mdb001–016 hold lesions
    perfect = seg_cdcgan_scores(images, images, lesions, lesions, real_segmentation=lesions)
    assert perfect["ssim_to_conditioning_image"]["mean"] == pytest.approx(1.0)
    assert perfect["unet_on_synthetic"]["dice"]["mean"] == 1.0
    empty = seg_cdcgan_scores(np.roll(images, 1, axis=0), images, lesions, np.zeros_like(lesions))
    assert empty["unet_on_synthetic"]["dice_lesion_films"]["mean"] == 0.0
    assert empty["ssim_to_conditioning_image"]["mean"] < 0.9   # another patient's film

    lookup = {m.tobytes(): img for m, img in zip(lesions, images)}
    out = evaluate_seg_cdcgan(lambda m, seed: np.stack([lookup[x.tobytes()] for x in m]),
                              lambda x: (x > 2.0).astype(np.float32), images, lesions, batch_size=5)
    assert out["n"] == len(images) and "unet_on_real" in out


def test_evaluate_pix2pix_on_real_films(mias32):
    """With a 'generator' that returns real films of the requested class the synthetic
    accuracy tracks the held-out real accuracy; the appearance block has every class."""
    images, breast, lesions, labels, patients, classes = mias32
    by_class = {c: images[labels == c][0] for c in np.unique(labels)}

    def generate(b, l_, y):
        return np.stack([by_class.get(int(c), images[0]) for c in y])

    out = evaluate_pix2pix(generate, images, breast, lesions, labels, patients, classes, seed=0, epochs=1)
    assert out["n_train"] + out["n_heldout"] == len(images)
    for key in ("real_heldout", "synthetic_own_class", "synthetic_every_class"):
        assert 0.0 <= out[key]["accuracy"] <= 1.0
    assert out["synthetic_every_class"]["n"] == out["n_heldout"] * len(classes)
    app = per_class_appearance(images, breast, labels, images, breast, labels, classes)
    for name in classes:
        if app[name]["n_real"]:
            assert app[name]["histogram_wasserstein1"] == pytest.approx(0.0, abs=1e-12)
