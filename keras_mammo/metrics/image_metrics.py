"""Per-image measures: nearest neighbours, PSNR/SSIM to the nearest real film, grey-level
histograms inside the breast, and binarized-tissue measures.

- PSNR and SSIM (Wang et al. 2004, "Image Quality Assessment: From Error Visibility to
  Structural Similarity", eq. 13; scikit-image's implementation with its defaults: a
  7 × 7 uniform window, K1 = 0.01, K2 = 0.03, ``data_range=1``) of every synthetic
  image against its nearest real image, reported as distributions. Rahali (2025, Table
  4.3) reports them for three chosen images; a distribution over all images says more.
- Grey-level histograms of the pixels inside the breast (Calzada-Jasso et al. 2025
  compare real and synthetic histograms), pooled over a set, and the Wasserstein-1
  distance between the two pooled distributions (grey-level units in [0, 1]).
- Binarized-tissue measures (Calzada-Jasso et al. 2025 measure brain mass on binarized
  images; here breast tissue): breast-area fraction (breast pixels / image pixels) and
  dense-tissue fraction (breast pixels above Otsu's threshold computed inside the
  breast (Otsu 1979) / breast pixels), per image, compared as distributions.
"""
from __future__ import annotations

import numpy as np

#: Number of grey-level bins of the histograms (over [0, 1]).
HIST_BINS = 256
#: PSNR of identical images (infinite) is reported as this many dB.
PSNR_CAP_DB = 100.0


def summarize(values) -> dict:
    """Distribution summary of a 1-D array, ignoring NaNs.

    Returns:
        ``{"n", "mean", "std", "median", "p5", "p95", "min", "max"}`` (floats; NaN when empty).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        nan = float("nan")
        return {"n": 0, "mean": nan, "std": nan, "median": nan, "p5": nan, "p95": nan, "min": nan, "max": nan}
    return {
        "n": int(v.size), "mean": float(v.mean()), "std": float(v.std()), "median": float(np.median(v)),
        "p5": float(np.percentile(v, 5)), "p95": float(np.percentile(v, 95)),
        "min": float(v.min()), "max": float(v.max()),
    }


def pairwise_distances(query: np.ndarray, reference: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Euclidean distances between rows.

    Args:
        query: ``(n, D)``; reference: ``(m, D)`` (any float dtype).

    Returns:
        ``(n, m) float64``, ≥ 0.
    """
    q = np.asarray(query, np.float64).reshape(len(query), -1)
    r = np.asarray(reference, np.float64).reshape(len(reference), -1)
    rr = np.einsum("ij,ij->i", r, r)
    out = np.empty((len(q), len(r)))
    for s in range(0, len(q), chunk):
        qs = q[s:s + chunk]
        d2 = np.einsum("ij,ij->i", qs, qs)[:, None] + rr[None, :] - 2.0 * (qs @ r.T)
        out[s:s + chunk] = np.sqrt(np.clip(d2, 0.0, None))
    return out


def nearest_neighbours(query: np.ndarray, reference: np.ndarray, exclude_self: bool = False
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Index and Euclidean distance of each query row's nearest reference row.

    Args:
        query: ``(n, D)``; reference: ``(m, D)``.
        exclude_self: ``query`` *is* ``reference``: skip the diagonal (needs ``m ≥ 2``).

    Returns:
        ``(index (n,) int64, distance (n,) float64)``.
    """
    d = pairwise_distances(query, reference)
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    idx = np.argmin(d, axis=1)
    return idx.astype(np.int64), d[np.arange(len(d)), idx]


def psnr_ssim(images: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PSNR (dB) and SSIM of each image against its paired reference (scikit-image).

    Args:
        images, references: ``(N, H, W) float`` in [0, 1], paired by index.

    Returns:
        ``(psnr (N,) float64 in dB, capped at :data:`PSNR_CAP_DB` (identical images),
        ssim (N,) float64 in [-1, 1])``.
    """
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    psnr = np.empty(len(images))
    ssim = np.empty(len(images))
    for i, (a, b) in enumerate(zip(images, references)):
        a = np.asarray(a, np.float64)
        b = np.asarray(b, np.float64)
        with np.errstate(divide="ignore"):
            psnr[i] = min(PSNR_CAP_DB, peak_signal_noise_ratio(b, a, data_range=1.0))
        ssim[i] = structural_similarity(b, a, data_range=1.0)
    return psnr, ssim


def masked_histogram(images: np.ndarray, masks: np.ndarray, bins: int = HIST_BINS) -> np.ndarray:
    """Grey-level histogram of the breast pixels of a set, pooled over its images.

    Args:
        images: ``(N, H, W) float`` in [0, 1].
        masks: ``(N, H, W) bool``, True inside the breast.
        bins: equal-width bins over [0, 1].

    Returns:
        ``(bins,) float64`` probability mass (sums to 1; zeros when no breast pixel).
    """
    counts = np.zeros(bins)
    for img, m in zip(images, masks):
        h, _ = np.histogram(np.asarray(img)[np.asarray(m, bool)], bins=bins, range=(0.0, 1.0))
        counts += h
    total = counts.sum()
    return counts / total if total > 0 else counts


def histogram_wasserstein(p: np.ndarray, q: np.ndarray) -> float:
    """Wasserstein-1 (earth mover's) distance between two histograms on [0, 1].

    ``W1 = ∫ |F_p − F_q|`` with the CDFs evaluated at the bin edges: grey-level units
    (0.01 = a shift of all breast pixels by 1 % of the intensity range).

    Args:
        p, q: ``(bins,)`` non-negative masses over equal-width bins of [0, 1].
    """
    p = np.asarray(p, np.float64)
    q = np.asarray(q, np.float64)
    p = p / p.sum() if p.sum() > 0 else p
    q = q / q.sum() if q.sum() > 0 else q
    width = 1.0 / len(p)
    return float(np.sum(np.abs(np.cumsum(p) - np.cumsum(q))) * width)


def tissue_measures(image: np.ndarray, mask: np.ndarray) -> tuple[float, float, float]:
    """Binarized-tissue measures of one image.

    Args:
        image: ``(H, W) float`` in [0, 1].
        mask: ``(H, W) bool`` breast mask.

    Returns:
        ``(breast_fraction, dense_fraction, otsu_threshold)``: breast pixels / all
        pixels; breast pixels brighter than Otsu's threshold of the breast pixels /
        breast pixels; the threshold in [0, 1]. Dense fraction and threshold are NaN
        when the breast has fewer than 2 distinct grey levels.
    """
    from skimage.filters import threshold_otsu

    img = np.asarray(image, np.float64)
    m = np.asarray(mask, bool)
    breast = img[m]
    area = float(m.mean()) if m.size else float("nan")
    if breast.size < 2 or np.ptp(breast) == 0:
        return area, float("nan"), float("nan")
    t = float(threshold_otsu(breast, nbins=HIST_BINS))
    return area, float(np.mean(breast > t)), t


def compare_distributions(real, synthetic) -> dict:
    """Compare two 1-D samples: summaries, Wasserstein-1 and the two-sample KS test.

    Returns:
        ``{"real": summarize(real), "synthetic": summarize(synthetic),
        "wasserstein1": float, "ks_statistic": float, "ks_pvalue": float}``
        (NaN distances when a side has no finite value).
    """
    from scipy import stats

    a = np.asarray(real, np.float64)
    b = np.asarray(synthetic, np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    out = {"real": summarize(a), "synthetic": summarize(b)}
    if a.size and b.size:
        ks = stats.ks_2samp(a, b)
        out.update(wasserstein1=float(stats.wasserstein_distance(a, b)),
                   ks_statistic=float(ks.statistic), ks_pvalue=float(ks.pvalue))
    else:
        out.update(wasserstein1=float("nan"), ks_statistic=float("nan"), ks_pvalue=float("nan"))
    return out
