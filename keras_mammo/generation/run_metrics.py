"""Model-specific metrics of a trained conditional run (seg-cdcgan, pix2pix, unet).

The run side of ``keras-mammo evaluate --run``: rebuilds the run's generator (and a
U-Net segmenter run), draws synthetic films for the run's own prepared films and scores
them with the array functions of :mod:`keras_mammo.metrics.model_specific` (sources:
Tripathi et al. for seg-cdcgan; Calzada-Jasso et al. 2025 for pix2pix; see there).
"""
from __future__ import annotations

import json

import numpy as np

from keras_mammo.config import load_run_config
from keras_mammo.data.pipeline import kept_rows, load_stage_arrays
from keras_mammo.metrics.image_metrics import psnr_ssim, summarize
from keras_mammo.metrics.model_specific import (
    squeeze_channel,
    dice_iou,
    evaluate_pix2pix,
    evaluate_seg_cdcgan,
    remap_labels,
)
from keras_mammo.models.gan import GAN
from keras_mammo.training.run import load_run_model


def evaluate_run_model_specific(run_dir, segmenter_run=None, seed: int = 0, classifier_epochs: int = 30,
                                prepared=None, heldout_patients=None) -> dict | None:
    """The paper-specific metrics of a conditional run, on the run's own prepared films.

    - ``seg-cdcgan`` (Tripathi et al.): one synthetic film per prepared film's lesion mask;
      SSIM to the real film whose mask conditioned it, and — when ``segmenter_run`` (a
      ``unet`` run) is given — Dice/IoU of the U-Net's segmentation of the synthetic film
      against the conditioning mask (:func:`~keras_mammo.metrics.model_specific.evaluate_seg_cdcgan`).
    - ``pix2pix`` (Calzada-Jasso et al. 2025): the "multistage CNN" check and per-class
      appearance (:func:`~keras_mammo.metrics.model_specific.evaluate_pix2pix`), patients split in halves.
    - ``unet``: Dice/IoU of its segmentation of the prepared films (all, and films with a
      lesion). These films include the training films: an optimistic ceiling, not a
      held-out score unless ``heldout_patients`` is given.

    Args:
        run_dir: the run.
        segmenter_run: a ``unet`` run (seg-cdcgan only).
        seed: latents and the pix2pix classifier's seed.
        classifier_epochs: epochs of the pix2pix check's classifier.
        prepared: score on the films of this prepared dataset instead of the run's own
            (e.g. one that includes patients the run never saw).
        heldout_patients: patient ids the run never saw: ``unet`` is scored separately on
            ``heldout_patients`` and ``training_patients``; ``seg-cdcgan`` on the held-out
            films only; ``pix2pix``'s classifier is tested on them.

    Returns:
        a JSON-serializable dict with ``"model"`` and the metrics, or None for models
        without specific metrics (thesis, dcgan, stylegan).

    Raises:
        DataError: the run (or ``segmenter_run``) has no checkpoint or its prepared data is missing.
    """
    import tensorflow as tf  # on first use: importing this module stays light

    name = load_run_config(run_dir).model.name
    if name not in ("seg-cdcgan", "pix2pix", "unet"):
        return None
    model, cfg, _ = load_run_model(run_dir)
    res = int(model.resolution)
    keys = ("breast_mask", "lesion_mask", "label")
    prepared = cfg.data.prepared if prepared is None else prepared
    rows = kept_rows(prepared)
    stage = load_stage_arrays(prepared, res, keys, rows=rows)
    a = stage.arrays
    images01 = a["image"].astype(np.float32) / 65535.0
    lesion = a["lesion_mask"].astype(np.float32)
    patients = [r.get("patient_id") or r["image_id"] for r in rows]
    held = None if heldout_patients is None else np.isin(patients, list(heldout_patients))
    out: dict = {"model": name, "n_films": int(stage.size), "resolution_px": res, "prepared": str(prepared)}

    def segmenter(run):
        unet, _, _ = load_run_model(run)

        def seg(x):
            return (np.asarray(unet.segment(tf.constant(np.asarray(x, np.float32) * 2.0 - 1.0))) > 0.5).astype(np.float32)

        return seg

    if name == "unet":
        seg = segmenter(run_dir)
        pred = np.concatenate([seg(images01[i:i + 64]) for i in range(0, stage.size, 64)])

        def scores(m):
            dice, iou = dice_iou(pred[m], lesion[m])
            has = lesion[m].reshape(int(m.sum()), -1).any(1)
            return dict(n=int(m.sum()), dice=summarize(dice), iou=summarize(iou), n_lesion_films=int(has.sum()),
                        dice_lesion_films=summarize(dice[has]) if has.any() else None,
                        iou_lesion_films=summarize(iou[has]) if has.any() else None)

        if held is None:
            out.update(note="films include the U-Net's training films (optimistic)",
                       **scores(np.ones(stage.size, bool)))
        else:
            out.update(heldout_patients=scores(held), training_patients=scores(~held))
        return out
    if name == "seg-cdcgan":
        def gen(m, s):
            z = GAN.fixed_latents(len(m), cfg.model.latent_dim, seed * 1000 + s)
            return (np.asarray(model.generate(z, {"lesion_mask": tf.constant(m)})) + 1.0) / 2.0

        if segmenter_run is None:
            syn = np.concatenate([gen(lesion[i:i + 32], b) for b, i in enumerate(range(0, stage.size, 32))])
            psnr, ssim = psnr_ssim(squeeze_channel(syn).astype(np.float64), squeeze_channel(images01).astype(np.float64))
            out.update(n=int(len(syn)), ssim_to_conditioning_image=summarize(ssim),
                       psnr_to_conditioning_image=summarize(psnr))
            out["note"] = "pass --segmenter RUN (a unet run) for the Dice of the U-Net on synthetic films"
            return out
        films = slice(None) if held is None else held
        out.update(evaluate_seg_cdcgan(gen, segmenter(segmenter_run), images01[films], lesion[films], seed=seed))
        return out
    classes = list(getattr(model, "classes", stage.classes))
    labels = remap_labels(a["label"], stage.classes, classes)

    def gen(b, l_, y):
        o = model.generate(None, {"breast_mask": tf.constant(b, tf.float32), "lesion_mask": tf.constant(l_, tf.float32),
                                  "label": tf.constant(y, tf.int32)})
        return (np.asarray(o) + 1.0) / 2.0

    out.update(evaluate_pix2pix(gen, images01, a["breast_mask"].astype(np.float32), lesion, labels, patients,
                                classes, seed=seed, epochs=classifier_epochs, heldout_patients=heldout_patients))
    return json.loads(json.dumps(out, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
