"""``keras-mammo evaluate``: every metric of a synthetic set against a real set, with its N
and its real-vs-real floor, written to a report directory.

Real-vs-real floor (:mod:`keras_mammo.metrics.floor`): the real set is cut into two
disjoint random halves A and B (never splitting a patient). At ``n = min(|A|, |B|, N_synthetic)`` images per side, the
synthetic set is compared with B and A is compared with B, with the same metric and the
same N; this is repeated over ``splits`` random cuts. A synthetic set can at best reach
the floor: the floor is what two samples of the *same* distribution score at that N,
which for FID at a few hundred images is far above 0.

Output (``out_dir``)::

    metrics.json            every number, its N, the floors, settings and warnings
    report.md | report.html the numbers in tables and the figures
    figures/*.png           sample grids, histograms, tissue measures,
                            nearest-neighbour pairs, metric vs floor, loss curve
"""
from __future__ import annotations

import datetime
import warnings
from pathlib import Path

import numpy as np

from keras_mammo.errors import DataError
from keras_mammo.metrics import figures, inception
from keras_mammo.metrics.fid import FID_RELIABLE_N, fid
from keras_mammo.metrics.floor import floor_scores, kid_subset_size, matched_n, real_halves
from keras_mammo.metrics.image_metrics import (
    HIST_BINS,
    compare_distributions,
    histogram_wasserstein,
    masked_histogram,
    nearest_neighbours,
    psnr_ssim,
    summarize,
    tissue_measures,
)
from keras_mammo.metrics.imagesets import ImageSet, breast_masks, load_image_set, peek_size
from keras_mammo.metrics.kid import kid
from keras_mammo.metrics.memorization import COPY_RATIO, MEMORIZATION_SIZE, downsample, memorization_summary, \
    nearest_training
from keras_mammo.metrics.features import set_features
from keras_mammo.metrics.loss_summary import read_loss_csv, summarize_losses
from keras_mammo.metrics.report import write_report
from keras_mammo.utils import write_json_atomic


def _mean_std(values) -> dict:
    v = np.asarray(values, float)
    return {"mean": float(v.mean()), "std": float(v.std()), "values": [float(x) for x in v]}


def _psnr_ssim_block(query: np.ndarray, reference: np.ndarray, q_feats, r_feats) -> dict:
    out = {}
    for space, (qv, rv) in (("nearest_in_feature_space", (q_feats, r_feats)),
                            ("nearest_in_pixel_space", (query.reshape(len(query), -1),
                                                        reference.reshape(len(reference), -1)))):
        idx, _ = nearest_neighbours(qv, rv)
        p, s = psnr_ssim(query, reference[idx])
        out[space] = {"psnr_db": summarize(p), "ssim": summarize(s)}
    return out


def _tissue(images: np.ndarray, masks: np.ndarray) -> dict:
    vals = np.array([tissue_measures(img, m)[:2] for img, m in zip(images, masks)], float).reshape(-1, 2)
    return {"area": vals[:, 0], "dense": vals[:, 1]}


def evaluate(
    real: ImageSet | str | Path,
    synthetic: ImageSet | str | Path,
    out_dir: str | Path,
    size: int | None = None,
    splits: int = 3,
    seed: int = 0,
    kid_subsets: int = 100,
    copy_threshold: float = COPY_RATIO,
    cache_dir: str | Path | None | bool = None,
    run_dir: str | Path | None = None,
    batch_size: int = 32,
    progress: bool = True,
    report_format: str = "md",
    extra: dict | None = None,
    fid_precision: str = "float32",
) -> dict:
    """Evaluate a synthetic image set against a real one and write the report.

    Args:
        real: the real (training) set: an :class:`ImageSet` or a directory (prepared
            dataset, MIAS folder, or folder of images; see :func:`load_image_set`).
        synthetic: the synthetic set, same forms.
        out_dir: report directory (created; existing files of the same names replaced).
        size: evaluation side in pixels; default: the synthetic images' side (the
            generator's resolution). Both sets are resized to it (area filter).
        splits: number of random real halves for the real-vs-real floors (≥ 1).
        seed: seed of the halves, the subsets and KID's sampler.
        kid_subsets: KID subsets per comparison.
        copy_threshold: memorization ratio below which a synthetic image is flagged.
        cache_dir: feature cache root (default: the user cache); ``False`` disables it.
        run_dir: a training run; its ``losses_steps.csv`` (or ``losses_epochs.csv``)
            is summarized and plotted.
        batch_size: Inception batch size.
        progress: progress bars.
        report_format: ``"md"`` or ``"html"``.
        extra: JSON-able entries added to ``metrics.json`` (e.g. how the images were made).
        fid_precision: the Inception network's compute dtype: ``"float32"`` (default, the
            reference) or ``"bfloat16"`` (about 3× faster on CPUs with AVX512_BF16/AMX; FID
            within 0.1 % of float32 at 161 MIAS films per side, but 2 % apart at 10 images,
            docs/benchmarks.md). Recorded in ``metrics.json``
            (``feature_network.precision``); compare FIDs of one precision only.

    Returns:
        the ``metrics.json`` content (dict).

    Raises:
        DataError: a set is missing, unreadable, or has fewer than 2 images.
        ValueError: bad ``splits``, ``report_format`` or ``fid_precision``.
        FIDWeightsError: the FID network is unavailable.
    """

    if splits < 1:
        raise ValueError(f"splits must be ≥ 1, got {splits}")
    if report_format not in ("md", "html"):
        raise ValueError(f"report_format must be 'md' or 'html', got {report_format!r}")
    out = Path(out_dir)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    if not isinstance(synthetic, ImageSet):
        synthetic = load_image_set(synthetic, size=size, name="synthetic", progress=progress)
    size = size or synthetic.size
    if not isinstance(real, ImageSet):
        real = load_image_set(real, size=size, name="real", progress=progress)
    for s in (real, synthetic):
        if s.size != size:
            raise DataError(f"{s.name} images are {s.size} px, expected {size} px; pass size= or resize the set")
        if len(s) < 2:
            raise DataError(f"{s.name} set ({s.source}) has {len(s)} image(s); FID/KID compare distributions "
                            "and need at least 2 images per side (there is no per-image FID)")
    notes: list[str] = []

    def warn(msg: str) -> None:
        notes.append(msg)
        warnings.warn(msg, stacklevel=3)

    n_r, n_s = len(real), len(synthetic)
    if min(n_r, n_s) < FID_RELIABLE_N:
        warn(f"FID is biased upwards below about {FID_RELIABLE_N} images per side (here {n_r} real, "
             f"{n_s} synthetic): compare it only with the real-vs-real floor at the same N, and prefer KID")
    rng = np.random.default_rng(seed)

    # ---- features
    f_real, hit_r = set_features(real, cache_dir, batch_size, progress, precision=fid_precision)
    f_syn, hit_s = set_features(synthetic, cache_dir, batch_size, progress, precision=fid_precision)
    info = inception.weights_info() or {}
    result: dict = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "real": {"source": real.source, "n": n_r, "n_patients": len(set(real.patient_ids)),
                 "masks": "files" if real.masks is not None else "breast_mask()"},
        "synthetic": {"source": synthetic.source, "n": n_s,
                      "masks": "files" if synthetic.masks is not None else "breast_mask()"},
        "evaluation_size_px": size,
        "seed": seed,
        "feature_network": {
            "name": "TF inception-2015-12-05 pool_3 (2048-d), Keras port",
            "weights_sha256": info.get("sha256"), "port_max_abs_diff": info.get("max_abs_diff"),
            "input": f"{inception.INPUT_SIZE}x{inception.INPUT_SIZE}, grey replicated to 3 channels, x/128-1",
            "resize_filter": inception.RESIZE_FILTER,
            "precision": fid_precision,
            "features_from_cache": {"real": hit_r, "synthetic": hit_s},
        },
    }
    if extra:
        result.update(extra)

    # ---- halves for the floors
    halves = real_halves(real.patient_ids, splits, rng)
    floor_ok = all(min(len(a), len(b)) >= 2 for a, b in halves)
    if not floor_ok:
        warn(f"real set too small for real-vs-real floors ({n_r} images; need ≥ 2 per half)")

    # ---- FID and KID
    ks_full = kid_subset_size(min(n_r, n_s))
    km, ksd = kid(f_syn, f_real, subsets=kid_subsets, subset_size=ks_full, seed=seed)
    result["fid"] = {"full": {"value": fid(f_syn, f_real), "n_real": n_r, "n_synthetic": n_s}}
    result["kid"] = {"full": {"mean": km, "std": ksd, "n_real": n_r, "n_synthetic": n_s,
                              "subset_size": ks_full, "subsets": kid_subsets}}
    if floor_ok:
        n = matched_n(halves, n_s)
        fl = floor_scores(f_syn, f_real, halves, n, rng, kid_subsets, seed)
        result["fid"]["matched"] = {"n_per_side": int(n), "splits": splits,
                                    "synthetic_vs_real_half": _mean_std(fl["fid_synthetic"]),
                                    "real_vs_real_floor": _mean_std(fl["fid_floor"])}
        result["kid"]["matched"] = {"n_per_side": int(n), "splits": splits, "subset_size": kid_subset_size(n),
                                    "synthetic_vs_real_half": _mean_std(fl["kid_synthetic"]),
                                    "real_vs_real_floor": _mean_std(fl["kid_floor"])}

    # ---- PSNR / SSIM to the nearest real image
    a0, b0 = halves[0]
    result["psnr_ssim"] = {"n_synthetic": n_s, "n_real": n_r,
                           "synthetic_vs_nearest_real": _psnr_ssim_block(synthetic.images, real.images, f_syn, f_real)}
    if floor_ok:
        result["psnr_ssim"]["real_vs_real_floor"] = {
            "n_query": int(len(b0)), "n_reference": int(len(a0)),
            **_psnr_ssim_block(real.images[b0], real.images[a0], f_real[b0], f_real[a0])}

    # ---- histograms and tissue measures inside the breast
    m_real, m_syn = breast_masks(real), breast_masks(synthetic)
    h_real = masked_histogram(real.images, m_real)
    h_syn = masked_histogram(synthetic.images, m_syn)
    w1 = histogram_wasserstein(h_real, h_syn)
    centers = (np.arange(HIST_BINS) + 0.5) / HIST_BINS
    result["histogram"] = {"bins": HIST_BINS, "range": [0.0, 1.0], "n_real": n_r, "n_synthetic": n_s,
                           "wasserstein1": w1, "real_mean_grey": float(h_real @ centers),
                           "synthetic_mean_grey": float(h_syn @ centers)}
    t_real, t_syn = _tissue(real.images, m_real), _tissue(synthetic.images, m_syn)
    result["tissue"] = {"method": "breast mask; Otsu threshold of the breast pixels (dense = above it)",
                        "breast_area_fraction": compare_distributions(t_real["area"], t_syn["area"]),
                        "dense_fraction": compare_distributions(t_real["dense"], t_syn["dense"])}
    if floor_ok:
        result["histogram"]["real_vs_real_floor_wasserstein1"] = histogram_wasserstein(
            masked_histogram(real.images[a0], m_real[a0]), masked_histogram(real.images[b0], m_real[b0]))
        for key, name in (("area", "breast_area_fraction"), ("dense", "dense_fraction")):
            fl = compare_distributions(t_real[key][a0], t_real[key][b0])
            result["tissue"][name]["real_vs_real_floor"] = {k: fl[k] for k in ("wasserstein1", "ks_statistic")}

    # ---- memorization
    d_real, d_syn = downsample(real.images), downsample(synthetic.images)
    mem = nearest_training(d_syn, d_real, copy_threshold)
    result["memorization"] = {"space": f"pixels, area-downsampled to {MEMORIZATION_SIZE}x{MEMORIZATION_SIZE}",
                              **memorization_summary(mem, copy_threshold)}
    feat_mem = nearest_training(f_syn, f_real, copy_threshold)
    result["memorization"]["feature_space_ratio"] = summarize(feat_mem["ratio"])
    if floor_ok:
        fl = nearest_training(d_real[b0], d_real[a0], copy_threshold)
        result["memorization"]["real_vs_real_floor"] = {
            "n_query": int(len(b0)), "n_training": int(len(a0)), "n_flagged": int(fl["flagged"].sum()),
            "ratio": summarize(fl["ratio"])}
    order = np.argsort(mem["ratio"])
    result["memorization"]["closest"] = [
        {"synthetic": synthetic.ids[i], "nearest_real": real.ids[mem["nearest"][i]], "ratio": float(mem["ratio"][i])}
        for i in order[:8]]

    # ---- figures
    figs = {}
    pick_r = rng.permutation(n_r)[:16]
    pick_s = rng.permutation(n_s)[:16]
    figs["samples"] = figures.sample_grids(real.images[pick_r], synthetic.images[pick_s], fig_dir / "samples.png")
    figs["histograms"] = figures.histograms(h_real, h_syn, fig_dir / "histograms.png", w1)
    figs["tissue"] = figures.tissue(t_real, t_syn, fig_dir / "tissue.png")
    figs["nearest_pairs"] = figures.nearest_pairs(synthetic.images, real.images, order, mem["nearest"], mem["ratio"],
                                                  fig_dir / "nearest_pairs.png", synthetic_ids=synthetic.ids,
                                                  real_ids=real.ids)
    if floor_ok:
        figs["floors"] = figures.metric_vs_floor(
            [(f"FID (N={result['fid']['matched']['n_per_side']}/side)",
              result["fid"]["matched"]["synthetic_vs_real_half"]["mean"],
              result["fid"]["matched"]["real_vs_real_floor"]["mean"]),
             ("KID", result["kid"]["matched"]["synthetic_vs_real_half"]["mean"],
              result["kid"]["matched"]["real_vs_real_floor"]["mean"]),
             ("histogram W1", w1, result["histogram"]["real_vs_real_floor_wasserstein1"])],
            fig_dir / "floors.png")

    # ---- losses of the run
    result["losses"] = None
    if run_dir is not None:
        run = Path(run_dir)
        csv_path = next((p for p in (run / "losses_steps.csv", run / "losses_epochs.csv") if p.is_file()), None)
        if csv_path is None:
            warn(f"{run}: no losses_steps.csv or losses_epochs.csv; loss summary skipped")
        else:
            cols = read_loss_csv(csv_path)
            summary = summarize_losses(cols)
            result["losses"] = {"file": str(csv_path), **summary}
            figs["losses"] = figures.loss_curve(cols, summary["phases"], fig_dir / "losses.png")

    result["figures"] = {k: str(Path(v).relative_to(out)) for k, v in figs.items()}
    result["warnings"] = notes
    write_json_atomic(out / "metrics.json", _jsonable(result))
    result["report"] = str(write_report(result, out, report_format))
    return result


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None if np.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def evaluate_paths(real: str | Path, synthetic: str | Path, out_dir: str | Path, size: int | None = None,
                   **kwargs) -> dict:
    """:func:`evaluate` on two directories, resolving the evaluation size first.

    The size defaults to the synthetic set's first image; see :func:`evaluate`.
    """
    size = size or peek_size(synthetic)
    return evaluate(real, synthetic, out_dir, size=size, **kwargs)
