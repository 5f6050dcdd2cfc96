"""Model-specific evaluation of the conditional generators.

**seg-cdcgan** (Tripathi et al., MIAS 64×64): a synthetic film is drawn for the lesion
mask of a real film, so it can be compared with that film and with that mask:

- SSIM (Wang et al. 2004; scikit-image defaults, ``data_range = 1``) between each
  synthetic image and the real image whose mask conditioned it;
- Dice (and IoU) between the U-Net's segmentation of the synthetic image and the
  conditioning mask. The U-Net's Dice on the real films themselves is reported beside it:
  a synthetic set cannot be expected to do better than the real films.

Dice and IoU are also reported on the films whose conditioning mask holds a lesion:
most MIAS films are normal (empty masks), where an empty prediction scores a perfect 1.

**pix2pix** (class-conditioned, as Calzada-Jasso et al. 2025 did per Alzheimer's stage):

- the "multistage CNN" check: a small CNN classifier is trained on real films of each
  class; its accuracy on held-out real films is reported beside its accuracy on
  synthetic films of each requested class (the classification accuracy score of the
  synthetic set). Synthetic films are drawn from the held-out films' condition maps
  with their own class and, separately, with every class (does the class input steer
  the image?);
- per-class grey-level histograms inside the breast (Wasserstein-1 real vs synthetic)
  and binarized-tissue measures, using :mod:`keras_mammo.metrics.image_metrics`.

Everything here is a pure function of arrays, except :func:`train_stage_classifier`
(which fits a Keras model) and the two ``evaluate_*`` drivers that take the generator
and segmenter as callables; :func:`keras_mammo.generation.run_metrics.evaluate_run_model_specific`
runs them on a trained run. Images are ``(N, H, W)`` or ``(N, H, W, 1)`` float in
``[0, 1]`` unless stated otherwise; masks are ``{0, 1}`` (or bool) of the same shape.
"""
from __future__ import annotations

import numpy as np

from keras_mammo.metrics.image_metrics import (
    compare_distributions,
    histogram_wasserstein,
    masked_histogram,
    psnr_ssim,
    summarize,
    tissue_measures,
)


def squeeze_channel(x) -> np.ndarray:
    a = np.asarray(x)
    return a[..., 0] if a.ndim == 4 else a


# --- segmentation overlap ------------------------------------------------------------------

def dice_iou(predicted, target) -> tuple[np.ndarray, np.ndarray]:
    """Dice ``2|P∩T| / (|P| + |T|)`` and IoU ``|P∩T| / |P∪T|`` per image.

    Args:
        predicted, target: ``(N, H, W[, 1])`` binary masks (non-zero = lesion).

    Returns:
        ``(dice (N,), iou (N,))`` float64 in ``[0, 1]``; a pair of empty masks scores 1.

    Raises:
        ValueError: shapes differ.
    """
    p = squeeze_channel(predicted) > 0
    t = squeeze_channel(target) > 0
    if p.shape != t.shape:
        raise ValueError(f"predicted {p.shape} and target {t.shape} masks differ in shape")
    p = p.reshape(len(p), -1)
    t = t.reshape(len(t), -1)
    inter = (p & t).sum(1).astype(np.float64)
    total = p.sum(1) + t.sum(1)
    union = (p | t).sum(1)
    dice = np.where(total > 0, 2.0 * inter / np.maximum(total, 1), 1.0)
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return dice, iou


def _overlap_block(predicted, target) -> dict:
    dice, iou = dice_iou(predicted, target)
    has = (squeeze_channel(target) > 0).reshape(len(dice), -1).any(1)
    return {"dice": summarize(dice), "iou": summarize(iou),
            "dice_lesion_films": summarize(dice[has]), "iou_lesion_films": summarize(iou[has]),
            "n_lesion_films": int(has.sum())}


def seg_cdcgan_scores(synthetic, conditioning_real, conditioning_masks, synthetic_segmentation,
                      real_segmentation=None) -> dict:
    """Tripathi et al.'s evaluation of a mask-conditioned generator.

    Args:
        synthetic: ``(N, H, W[, 1])`` in ``[0, 1]``: image ``i`` generated from mask ``i``.
        conditioning_real: ``(N, H, W[, 1])`` in ``[0, 1]``: the real film whose mask is mask ``i``.
        conditioning_masks: ``(N, H, W[, 1])`` binary conditioning masks.
        synthetic_segmentation: the U-Net's binary masks of the synthetic images.
        real_segmentation: the U-Net's binary masks of the real films (the reference), or None.

    Returns:
        ``{"n", "ssim_to_conditioning_image": summarize, "psnr_to_conditioning_image":
        summarize, "unet_on_synthetic": {dice, iou, …_lesion_films}, "unet_on_real": … }``.
    """
    syn = squeeze_channel(synthetic).astype(np.float64)
    real = squeeze_channel(conditioning_real).astype(np.float64)
    psnr, ssim = psnr_ssim(syn, real)
    out = {"n": int(len(syn)), "ssim_to_conditioning_image": summarize(ssim),
           "psnr_to_conditioning_image": summarize(psnr),
           "unet_on_synthetic": _overlap_block(synthetic_segmentation, conditioning_masks)}
    if real_segmentation is not None:
        out["unet_on_real"] = _overlap_block(real_segmentation, conditioning_masks)
    return out


def evaluate_seg_cdcgan(generate_fn, segment_fn, real_images, masks, seed: int = 0, batch_size: int = 32) -> dict:
    """Generate one film per real film's mask and score it with :func:`seg_cdcgan_scores`.

    Args:
        generate_fn: ``(masks (n, H, W, 1) float32 {0, 1}, seed int) → (n, H, W, 1)`` in
            ``[0, 1]`` (e.g. wrapping ``SegCDCGAN.generate`` or the SavedModel's
            ``generate`` signature).
        segment_fn: ``images (n, H, W, 1) float32 in [0, 1] → (n, H, W, 1)`` binary masks
            (e.g. wrapping ``UNetSegmenter.segment`` with a 0.5 threshold).
        real_images: ``(N, H, W, 1)`` in ``[0, 1]``; masks: ``(N, H, W, 1)`` binary.
        seed: latent seed of batch ``b`` is ``seed + b``.
    """
    real_images = np.asarray(real_images, np.float32).reshape(len(real_images), *squeeze_channel(real_images).shape[1:], 1)
    masks = np.asarray(masks, np.float32).reshape(real_images.shape)
    syn, syn_seg, real_seg = [], [], []
    for b, i in enumerate(range(0, len(masks), batch_size)):
        m = masks[i:i + batch_size]
        s = np.asarray(generate_fn(m, seed + b), np.float32).reshape(m.shape)
        syn.append(s)
        syn_seg.append(np.asarray(segment_fn(s)).reshape(m.shape))
        real_seg.append(np.asarray(segment_fn(real_images[i:i + batch_size])).reshape(m.shape))
    syn = np.concatenate(syn)
    return seg_cdcgan_scores(syn, real_images, masks, np.concatenate(syn_seg), np.concatenate(real_seg))


# --- the "multistage CNN" classification check (pix2pix) ----------------------------------

def build_stage_classifier(resolution: int, num_classes: int, width: int = 16, seed: int = 0):
    """A small CNN classifier: ``(N, R, R, 1)`` in ``[-1, 1]`` → ``(N, num_classes)`` logits.

    Four ``Conv2D 3×3 → BatchNormalization → ReLU → MaxPool 2×2`` blocks (``width``,
    2·, 4·, 4·``width`` filters), global average pooling, dropout 0.3, a linear layer.
    Calzada-Jasso et al. 2025 do not publish their CNN; this one is small enough to
    train on a few hundred films on a CPU.
    """
    import keras
    from keras import layers

    init = keras.initializers.HeNormal(seed=seed)
    x = inp = keras.Input((resolution, resolution, 1))
    for i, f in enumerate((width, 2 * width, 4 * width, 4 * width)):
        if resolution >> i < 2:
            break
        x = layers.Conv2D(f, 3, padding="same", use_bias=False, kernel_initializer=init)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.3, seed=seed)(layers.GlobalAveragePooling2D()(x))
    out = layers.Dense(num_classes, kernel_initializer=keras.initializers.GlorotUniform(seed=seed))(x)
    return keras.Model(inp, out, name="stage_classifier")


def train_stage_classifier(images, labels, num_classes: int, epochs: int = 30, batch_size: int = 16,
                           seed: int = 0, width: int = 16):
    """Train :func:`build_stage_classifier` on real films, classes balanced by weight, flips as augmentation.

    Args:
        images: ``(N, R, R[, 1])`` in ``[0, 1]``; labels: ``(N,)`` int in ``[0, num_classes)``.

    Returns:
        the trained ``keras.Model`` (logits).

    Raises:
        ValueError: fewer than 2 images or labels out of range.
    """
    import keras
    import tensorflow as tf

    x = squeeze_channel(images).astype(np.float32)[..., None] * 2.0 - 1.0
    y = np.asarray(labels, np.int32)
    if len(x) < 2 or y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"need ≥ 2 images with labels in [0, {num_classes}); got {len(x)} images, "
                         f"labels {sorted(set(y.tolist()))}")
    keras.utils.set_random_seed(seed)
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    weights = {c: float(len(y) / (num_classes * counts[c])) if counts[c] else 0.0 for c in range(num_classes)}
    model = build_stage_classifier(x.shape[1], num_classes, width=width, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda a, b: (tf.image.random_flip_up_down(a, seed=seed), b)).batch(batch_size)
    model.fit(ds, epochs=epochs, class_weight=weights, verbose=0)
    return model


def classification_accuracy(predicted, labels, classes: list[str]) -> dict:
    """Overall, balanced and per-class accuracy of predicted class indices.

    Args:
        predicted, labels: ``(N,)`` int class indices.
        classes: class names by index.

    Returns:
        ``{"n", "accuracy", "balanced_accuracy", "per_class": {name: {"n", "accuracy"}},
        "confusion": K×K list (rows: true class, columns: predicted)}``; a class with no
        image has accuracy NaN and is left out of the balanced accuracy.
    """
    p = np.asarray(predicted, np.int64)
    t = np.asarray(labels, np.int64)
    k = len(classes)
    conf = np.zeros((k, k), np.int64)
    np.add.at(conf, (t, p), 1)
    per = {}
    for c, name in enumerate(classes):
        n = int(conf[c].sum())
        per[name] = {"n": n, "accuracy": float(conf[c, c] / n) if n else float("nan")}
    accs = [v["accuracy"] for v in per.values() if v["n"]]
    return {"n": int(len(t)), "accuracy": float((p == t).mean()) if len(t) else float("nan"),
            "balanced_accuracy": float(np.mean(accs)) if accs else float("nan"),
            "per_class": per, "confusion": conf.tolist()}


def classify(classifier, images, batch_size: int = 64) -> np.ndarray:
    """Class indices predicted by a :func:`build_stage_classifier` model for ``[0, 1]`` images."""
    x = squeeze_channel(images).astype(np.float32)[..., None] * 2.0 - 1.0
    logits = classifier.predict(x, batch_size=batch_size, verbose=0)
    return np.argmax(logits, axis=1)


def per_class_appearance(real, real_masks, real_labels, synthetic, synthetic_masks, synthetic_labels,
                         classes: list[str]) -> dict:
    """Per-class grey-level histograms and binarized-tissue measures, real vs synthetic.

    Args:
        real, synthetic: ``(N, H, W[, 1])`` in ``[0, 1]``.
        real_masks, synthetic_masks: breast masks (for synthetic images, the conditioning
            breast masks).
        real_labels, synthetic_labels: ``(N,)`` class indices.

    Returns:
        ``{class: {"histogram_wasserstein1", "dense_fraction": compare_distributions,
        "breast_fraction": compare_distributions, "n_real", "n_synthetic"}}``.
    """
    real, syn = squeeze_channel(real), squeeze_channel(synthetic)
    rm, sm = squeeze_channel(real_masks) > 0, squeeze_channel(synthetic_masks) > 0
    rl, sl = np.asarray(real_labels), np.asarray(synthetic_labels)
    out = {}
    for c, name in enumerate(classes):
        ri, si = np.flatnonzero(rl == c), np.flatnonzero(sl == c)
        if not len(ri) or not len(si):
            out[name] = {"n_real": int(len(ri)), "n_synthetic": int(len(si))}
            continue
        hr, hs = masked_histogram(real[ri], rm[ri]), masked_histogram(syn[si], sm[si])
        tr = np.array([tissue_measures(real[i], rm[i]) for i in ri])
        ts = np.array([tissue_measures(syn[i], sm[i]) for i in si])
        out[name] = {"n_real": int(len(ri)), "n_synthetic": int(len(si)),
                     "histogram_wasserstein1": histogram_wasserstein(hr, hs),
                     "breast_fraction": compare_distributions(tr[:, 0], ts[:, 0]),
                     "dense_fraction": compare_distributions(tr[:, 1], ts[:, 1])}
    return out


def evaluate_pix2pix(generate_fn, real_images, breast_masks, lesion_masks, labels, patient_ids,
                     classes: list[str], seed: int = 0, epochs: int = 30, holdout: float = 0.5,
                     heldout_patients=None) -> dict:
    """The "multistage CNN" check and per-class appearance of a class-conditioned generator.

    Real films are split by patient (``holdout`` of the patients held out). A classifier
    (:func:`train_stage_classifier`) is trained on the others and scored on the held-out
    real films and on synthetic films drawn from the held-out condition maps, (a) with
    each film's own class and (b) with every class.

    Args:
        generate_fn: ``(breast (n, R, R, 1), lesion (n, R, R, 1), label (n,) int32) →
            (n, R, R, 1)`` in ``[0, 1]``.
        real_images: ``(N, R, R[, 1])`` in ``[0, 1]``; breast_masks, lesion_masks: binary.
        labels: ``(N,)`` class indices; patient_ids: ``N`` ids (films of one patient stay together).
        classes: class names by index.
        holdout: fraction of patients held out (drawn with ``seed``) ...
        heldout_patients: ... or exactly these patients (e.g. those the generator never saw).

    Returns:
        ``{"n_train", "n_heldout", "real_heldout": classification_accuracy,
        "synthetic_own_class": …, "synthetic_every_class": …, "appearance": per_class_appearance}``.

    Raises:
        ValueError: fewer than 2 patients.
    """
    real = squeeze_channel(real_images).astype(np.float32)
    bm = squeeze_channel(breast_masks).astype(np.float32)[..., None]
    lm = squeeze_channel(lesion_masks).astype(np.float32)[..., None]
    y = np.asarray(labels, np.int32)
    patients = sorted(set(patient_ids))
    if len(patients) < 2:
        raise ValueError("evaluate_pix2pix needs films of at least 2 patients")
    if heldout_patients is None:
        rng = np.random.default_rng(seed)
        held = set(rng.permutation(patients)[: max(1, int(round(holdout * len(patients))))].tolist())
    else:
        held = set(heldout_patients)
    test = np.array([p in held for p in patient_ids])
    if test.all() or not test.any():
        raise ValueError("evaluate_pix2pix: the held-out patients must be a proper, non-empty subset")
    clf = train_stage_classifier(real[~test], y[~test], len(classes), epochs=epochs, seed=seed)
    out = {"n_train": int((~test).sum()), "n_heldout": int(test.sum()),
           "real_heldout": classification_accuracy(classify(clf, real[test]), y[test], classes)}
    b, l_, yt = bm[test], lm[test], y[test]
    own = np.asarray(generate_fn(b, l_, yt), np.float32)
    out["synthetic_own_class"] = classification_accuracy(classify(clf, own), yt, classes)
    every, every_y = [], []
    for c in range(len(classes)):
        every.append(np.asarray(generate_fn(b, l_, np.full(len(yt), c, np.int32)), np.float32))
        every_y.append(np.full(len(yt), c, np.int32))
    every, every_y = np.concatenate(every), np.concatenate(every_y)
    out["synthetic_every_class"] = classification_accuracy(classify(clf, every), every_y, classes)
    out["appearance"] = per_class_appearance(real[test], bm[test], yt, own, b, yt, classes)
    return out


# --- run-level driver used by `keras-mammo evaluate --run` -------------------------------

def remap_labels(labels, from_classes, to_classes) -> np.ndarray:
    """Class indices of ``from_classes`` → indices of the same names in ``to_classes`` (0 if absent).

    Returns:
        ``(N,) int32``.
    """
    lookup = {i: to_classes.index(c) if c in to_classes else 0 for i, c in enumerate(from_classes)}
    return np.array([lookup[int(v)] for v in labels], np.int32)
