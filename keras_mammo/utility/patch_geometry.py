"""Square crops and tissue sampling on a film, the geometry of the patch sets (Rahali 2025, §3.6).

Pure NumPy/OpenCV functions of pixel arrays and masks, used by
:func:`keras_mammo.utility.patches.film_patches`: crop a square around a lesion
(:func:`crop_square`), turn a CBIS-DDSM ROI mask into a centre and radius
(:func:`roi_center_radius`), and sample non-overlapping squares of breast tissue away from
lesions (:func:`sample_tissue_centres`).
"""
from __future__ import annotations

import zlib

import numpy as np


def crop_square(pixels: np.ndarray, center: tuple[float, float], side: int, out_size: int
                ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Crop a ``side`` × ``side`` square centred on ``center`` and resize it to ``out_size``.

    The box is shifted to lie inside the film when the film is large enough (a lesion at
    the edge is then off-centre but whole); otherwise the outside is zero-padded.
    Shrinking uses area interpolation, enlarging bilinear.

    Args:
        pixels: ``(H, W) float32`` in ``[0, 1]``.
        center: ``(row, col)`` in pixels.
        side: crop side in pixels, ≥ 1.
        out_size: output side in pixels.

    Returns:
        ``((out_size, out_size) float32 in [0, 1], (row0, col0, row1, col1))``, the box
        in ``pixels``' coordinates, end-exclusive.
    """
    import cv2

    h, w = pixels.shape
    side = int(max(1, round(side)))
    r0 = int(round(center[0] - side / 2))
    c0 = int(round(center[1] - side / 2))
    if side <= h:
        r0 = min(max(r0, 0), h - side)
    if side <= w:
        c0 = min(max(c0, 0), w - side)
    out = np.zeros((side, side), np.float32)
    sr0, sc0 = max(r0, 0), max(c0, 0)
    sr1, sc1 = min(r0 + side, h), min(c0 + side, w)
    out[sr0 - r0:sr1 - r0, sc0 - c0:sc1 - c0] = pixels[sr0:sr1, sc0:sc1]
    if side != out_size:
        interp = cv2.INTER_AREA if side > out_size else cv2.INTER_LINEAR
        out = cv2.resize(out, (out_size, out_size), interpolation=interp)
    return np.clip(out, 0.0, 1.0).astype(np.float32), (r0, c0, r0 + side, c0 + side)


def roi_center_radius(roi_mask: np.ndarray, film_shape: tuple[int, int]) -> tuple[tuple[float, float], float] | None:
    """Centre ``(row, col)`` and radius (half the longer side) of an ROI mask's bounding box.

    CBIS-DDSM ROI masks are sometimes stored at a different size than their film; the box
    is then scaled to ``film_shape``.

    Args:
        roi_mask: ``(h, w)`` array, non-zero (> 0.5 of its maximum) inside the lesion.
        film_shape: ``(H, W)`` of the film the mask belongs to.

    Returns:
        ``((row, col), radius)`` in film pixels, or ``None`` for an empty mask.
    """
    m = np.asarray(roi_mask, np.float32)
    if m.max() <= 0:
        return None
    inside = m > 0.5 * float(m.max())
    rows = np.flatnonzero(inside.any(axis=1))
    cols = np.flatnonzero(inside.any(axis=0))
    sy, sx = film_shape[0] / m.shape[0], film_shape[1] / m.shape[1]
    r0, r1 = rows[0] * sy, (rows[-1] + 1) * sy
    c0, c1 = cols[0] * sx, (cols[-1] + 1) * sx
    return ((r0 + r1) / 2.0, (c0 + c1) / 2.0), max(r1 - r0, c1 - c0) / 2.0


def film_rng(seed: int, image_id: str) -> np.random.Generator:
    """A generator that depends only on the seed and the film (not on the film order)."""
    return np.random.default_rng([int(seed), zlib.crc32(image_id.encode())])


def sample_tissue_centres(mask: np.ndarray, side: int, k: int, rng: np.random.Generator,
                          min_tissue: float = 0.95, exclude: np.ndarray | None = None
                          ) -> list[tuple[int, int, float]]:
    """Sample up to ``k`` non-overlapping ``side``-pixel squares of breast tissue.

    A square is eligible when it lies inside the film, at least ``min_tissue`` of its
    pixels are inside ``mask``, and it does not touch ``exclude`` (lesion discs).
    Candidate squares are found with a box filter of the mask (one pass, O(H·W)).

    Args:
        mask: ``(H, W) bool`` breast mask.
        side: square side in pixels.
        k: number of squares wanted.
        rng: NumPy generator (the result depends only on it and the inputs).
        min_tissue: minimum inside fraction, ``[0, 1]``.
        exclude: optional ``(H, W) bool``; squares touching it are not eligible.

    Returns:
        ``[(row_centre, col_centre, tissue_fraction), ...]`` (fewer than ``k`` when the
        breast is too small); the square is rows ``row_centre - side//2`` … ``+ side``.
    """
    import cv2

    h, w = mask.shape
    if side > h or side > w or k <= 0:
        return []
    frac = cv2.blur(mask.astype(np.float32), (side, side), borderType=cv2.BORDER_CONSTANT)
    ok = frac >= min_tissue - 1e-6
    half = side // 2
    valid = np.zeros_like(ok)
    valid[half:h - side + half + 1, half:w - side + half + 1] = True
    ok &= valid
    if exclude is not None and exclude.any():
        touch = cv2.blur(exclude.astype(np.float32), (side, side), borderType=cv2.BORDER_CONSTANT)
        ok &= touch <= 0
    cand = np.flatnonzero(ok.ravel())
    chosen: list[tuple[int, int, float]] = []
    if cand.size == 0:
        return chosen
    order = rng.permutation(cand.size)
    for idx in order[: 200 * k]:
        r, c = divmod(int(cand[idx]), w)
        if all(abs(r - r2) >= side or abs(c - c2) >= side for r2, c2, _ in chosen):
            chosen.append((r, c, float(frac[r, c])))
            if len(chosen) == k:
                break
    return chosen
