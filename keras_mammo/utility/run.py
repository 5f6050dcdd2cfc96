"""``run_utility``: patch set (+ generated patches) → features → experiments → report.

This is the library function behind ``keras-mammo utility``; a notebook calls it the same
way::

    from keras_mammo.utility.run import run_utility
    result = run_utility("prepared/mias-patches", "reports/utility",
                         generated_source="runs/mias-tumour-gan", n_generated=200)

``utility.json`` layout (every number carries its N and seeds)::

    {"protocol": {...}, "patch_set": {path, dataset, size, seed, counts}, "backbone": {...},
     "analysis_size": px, "features": {"real": {n, key, cached}, "generated": {...}},
     "generated": {source, path, n, size, seed}, "generator_provenance": {verified, note, ...},
     "seeds": [...], "bootstrap": {"n_boot", "seed", "unit": "patient"},
     "test": {ids, patients, y, n, n_tumour, n_non_tumour, n_patients, seed},
     "experiments": {name: {"spec": {n_real_tumour, n_generated_tumour, n_non_tumour, ...},
                            "runs": [{seed, C, metrics{accuracy, ..., confusion, n}, scores, ...}],
                            "summary": {metric: {mean, std, ci95, n_seeds, seeds, n_test, ...},
                                        delta_<metric>: {...}, confusion_mean, confusion_sum}}}}
"""
from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import keras_mammo
from keras_mammo.errors import ConfigError
from keras_mammo.utility.classifier import DEFAULT_C_GRID
from keras_mammo.utility.experiments import (
    DEFAULT_AUGMENT,
    THESIS_REPLACE_FRACTION,
    UtilityData,
    design_experiments,
    run_experiments,
    summarize,
)
from keras_mammo.utility.backbones import Backbone, get_backbone
from keras_mammo.utility.features import cached_features
from keras_mammo.utility.generated import generate_patches, generator_provenance
from keras_mammo.utility.patchset import NON_TUMOUR, PatchSet, TRAIN, TUMOUR, counts
from keras_mammo.utility.report import plot_examples, write_report

PROTOCOL = {
    "source": "Rahali 2025, §3.6 (Experiments 1–2, Tables 4.4–4.5), extended with augmentation and TSTR",
    "classifier": "StandardScaler + LinearSVC(class_weight='balanced'); C by StratifiedGroupKFold inner CV "
                  "(groups = patients) on the training set only, scored by balanced accuracy",
    "split": "by patient; test set real, balanced, identical across experiments and seeds",
    "counts": "thesis ratios (train:test 4:1 per class, 25 % replacement) scaled to the available lesions",
    "normals": "non-tumour patches from the same dataset as the tumour patches",
    "generator": "trained on the training split's tumour patches only",
}


def resize_patches(images: np.ndarray, size: int) -> np.ndarray:
    """``(N, H, W)`` → ``(N, size, size) float32`` in ``[0, 1]`` (area filter when shrinking)."""
    import cv2

    images = np.asarray(images, np.float32)
    if images.ndim == 4:
        images = images[..., 0]
    if images.shape[1:] == (size, size):
        return images
    interp = cv2.INTER_AREA if images.shape[1] > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(im, (size, size), interpolation=interp) for im in images]).clip(0, 1)


def run_utility(patch_dir: str | Path, out_dir: str | Path | None = None, backbone="inception",
                weights: str | Path | None = None, generated: np.ndarray | None = None,
                generated_info: dict | None = None, generated_source: str | Path | None = None,
                n_generated: int | None = None, generator_seed: int = 0, checkpoint=None,
                seeds: Sequence[int] = (0, 1, 2, 3, 4), cache_dir: str | Path | None = "auto",
                replace_fraction: float = THESIS_REPLACE_FRACTION, augment: Sequence[float] = DEFAULT_AUGMENT,
                tstr: bool = True, n_boot: int = 1000, boot_seed: int = 0,
                c_grid: Sequence[float] = DEFAULT_C_GRID, inner_folds: int = 5, analysis_size: int | None = None,
                batch_size: int = 32, progress: bool = True, figures: bool = True) -> dict:
    """Run the four utility experiments on a patch set and write the report.

    Args:
        patch_dir: from ``keras-mammo patches``.
        out_dir: report folder (``utility.json``, ``report.md``, figures); None writes nothing.
        backbone: ``"inception"`` (offline FID Inception), ``"resnet50"`` (thesis; ImageNet
            download or ``weights``), or a :class:`~keras_mammo.utility.backbones.Backbone`.
        weights: ResNet50 weights file.
        generated: ``(G, H, W) float32`` generated tumour patches in ``[0, 1]`` (e.g. from
            :func:`~keras_mammo.utility.generated.load_generated_dir`); or use
            ``generated_source``.
        generated_info: description of ``generated`` for the report.
        generated_source: a run directory or SavedModel to generate ``n_generated``
            patches from (seed ``generator_seed``, ``checkpoint``), or the run/SavedModel
            that produced ``generated`` (used only for the provenance check).
        n_generated: patches to generate; default ``2 × T`` (T = real training tumours).
        seeds: repeat seeds.
        cache_dir: feature cache folder; ``"auto"`` = ``<patch_dir>/feature_cache``; None: off.
        replace_fraction, augment, tstr: experiment design (:func:`design_experiments`).
        n_boot, boot_seed: patient bootstrap.
        c_grid, inner_folds: SVM model selection.
        analysis_size: side all patches are resized to before the backbone; default the
            smaller of the real and generated patch sizes.
        batch_size: backbone batch.
        progress: progress bars.
        figures: write the PNG figures.

    Returns:
        the ``utility.json`` dictionary.

    Raises:
        DataError: bad patch set or generated images; too few generated patches.
        DataLeakageError: the generator's training data holds a test-split patient.
        ConfigError: unknown backbone or bad option.
    """

    if not seeds:
        raise ConfigError("--seeds: at least one seed is needed")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: seeds must be distinct, got {list(seeds)}")
    ps = PatchSet(patch_dir)
    n_train_tumour = len(ps.select(TRAIN, TUMOUR))
    provenance = None
    if generated is None and generated_source is not None:
        provenance = generator_provenance(generated_source, ps)  # before any image is generated
        generated, generated_info = generate_patches(generated_source, n_generated or 2 * n_train_tumour,
                                                     seed=generator_seed, checkpoint=checkpoint)
    elif generated is not None:
        provenance = generator_provenance(generated_source, ps)
    if generated is not None:
        generated = np.asarray(generated, np.float32)
        if generated.ndim == 4:
            generated = generated[..., 0]
        if n_generated is not None:
            generated = generated[: int(n_generated)]
        generated_info = dict(generated_info or {"source": "array"}, n=int(len(generated)),
                              size=int(generated.shape[1]))

    real = ps.load_images()
    size = int(real.shape[1])
    if analysis_size is None:
        analysis_size = size if generated is None else min(size, int(generated.shape[1]))
    real_a = resize_patches(real, analysis_size)
    bb = backbone if isinstance(backbone, Backbone) else get_backbone(backbone, weights)
    if cache_dir == "auto":
        cache_dir = Path(patch_dir) / "feature_cache"
    real_f, real_fi = cached_features(real_a, bb, cache_dir, f"real-{analysis_size}px", batch_size, progress)
    gen_f = gen_fi = None
    if generated is not None:
        gen_a = resize_patches(generated, analysis_size)
        gen_f, gen_fi = cached_features(gen_a, bb, cache_dir, f"generated-{analysis_size}px", batch_size, progress)

    data = UtilityData.from_rows(ps.rows, real_f, gen_f)
    specs = design_experiments(n_train_tumour, len(ps.select(TRAIN, NON_TUMOUR)), generated is not None,
                               replace_fraction, augment, tstr)
    patch_seed = int((ps.info.get("options") or {}).get("seed", 0))
    results = run_experiments(data, specs, seeds, test_seed=patch_seed, c_grid=c_grid, inner_folds=inner_folds,
                              progress=progress)
    summarize(results, n_boot=n_boot, boot_seed=boot_seed)

    opts = ps.info.get("options") or {}
    result = {
        "keras_mammo_version": getattr(keras_mammo, "__version__", None) or _package_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "protocol": dict(PROTOCOL, replace_fraction=replace_fraction, augment=list(augment), tstr=bool(tstr),
                         c_grid=list(c_grid), inner_folds=int(inner_folds)),
        "patch_set": {"path": str(Path(patch_dir).resolve()), "dataset": (ps.rows[0].get("dataset") if ps.rows else None),
                      "size": size, "seed": patch_seed, "options": opts, "counts": _counts(ps)},
        "backbone": bb.identity(),
        "analysis_size": int(analysis_size),
        "features": {"real": real_fi, "generated": gen_fi},
        "generated": generated_info,
        "generator_provenance": provenance,
        "seeds": [int(s) for s in seeds],
        "bootstrap": {"n_boot": int(n_boot), "seed": int(boot_seed), "unit": "patient", "interval": "percentile 95 %"},
        "test": results["test"],
        "experiments": results["experiments"],
    }
    if out_dir is not None:
        write_report(result, out_dir, figures=figures)
        if figures:
            examples = {"real tumour (train)": real_a[data.index(TRAIN, TUMOUR)],
                        "non-tumour (train)": real_a[data.index(TRAIN, NON_TUMOUR)]}
            if generated is not None:
                examples = {"real tumour (train)": examples["real tumour (train)"], "generated tumour": gen_a,
                            "non-tumour (train)": examples["non-tumour (train)"]}
            plot_examples(examples, Path(out_dir) / "examples.png")
    return result


def _counts(ps: PatchSet) -> dict:

    return counts(ps.rows)


def _package_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("keras-mammo")
    except Exception:
        return None
