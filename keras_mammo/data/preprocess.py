"""Mammogram preprocessing (Rahali 2025, §3.2.1).

The pipeline for one film, in order:

1. **Breast-region extraction** (:func:`breast_mask`): separate breast tissue from the
   background, film labels, tape and scanner artefacts.
2. **Shape-based filtering** (:func:`shape_score`): a confidence in ``[0, 1]`` that the
   mask is one well-defined, closed breast contour; films below a threshold (0.75 in
   the thesis) are rejected.
3. **Orientation standardization** (:func:`chest_wall_side`): flip so that the chest
   wall is on one chosen side, from DICOM tags when present, else from image content.
4. **Crop, pad and resize** (:func:`crop_pad_resize`): crop to the breast, zero the
   pixels outside the mask, pad to a square on the side away from the chest wall,
   resize with area interpolation.
5. **Normalization**: the prepared PNG holds ``[0, 1]``; :func:`to_model_range` maps it
   to the generator's ``[-1, 1]``.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from keras_mammo.data.io import Mammogram

#: Side length, in pixels, of the working copy on which the breast mask is computed.
MASK_WORK_SIZE = 512


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(pixels, np.float32) * 255.0), 0, 255).astype(np.uint8)


def _work_copy(pixels: np.ndarray) -> tuple[np.ndarray, float]:
    import cv2

    h, w = pixels.shape
    scale = MASK_WORK_SIZE / max(h, w)
    if scale < 1.0:
        small = cv2.resize(pixels.astype(np.float32), (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
    else:
        small, scale = pixels.astype(np.float32), 1.0
    return small, scale


@dataclasses.dataclass
class MaskResult:
    """Breast mask and the quantities the shape score is built from.

    Attributes:
        mask: ``(H, W) bool``, True inside the breast, at the input's resolution.
        threshold: the grey level in ``[0, 1]`` separating breast from background.
        area_fraction: breast area / image area.
        solidity: breast area / area of its convex hull, in ``[0, 1]``.
        dominance: breast area / area of all foreground after opening, in ``[0, 1]``.
        wall_contact: number of rows in which the mask reaches the chest-wall edge of
            its bounding box (outer 2 % of columns) divided by half the box height,
            clipped to ``[0, 1]``. The bounding box, not the image edge, is used
            because digitized films (MIAS) are padded.
        chest_wall: ``"left"`` or ``"right"``, the side the breast is attached to: the
            half of the bounding box holding more breast pixels (a breast is widest at
            the chest wall).
    """

    mask: np.ndarray
    threshold: float
    area_fraction: float
    solidity: float
    dominance: float
    wall_contact: float
    chest_wall: str


#: Radius of the disk that separates the breast from thin structures, as a fraction of the
#: working copy's longer side (13 px at 512): lines, frame edges and text strokes thinner
#: than twice this are not breast.
THIN_RADIUS = 0.025
#: A component touching an image edge along at least this fraction of that edge ...
BAND_MIN_LENGTH = 0.5
#: ... while reaching at most this fraction of the image into it is a film frame, scanner
#: strip or collimator edge, not breast (a breast reaches far from its chest wall).
BAND_MAX_DEPTH = 0.15


#: A row or column within :data:`BAND_MAX_DEPTH` of an edge whose foreground covers at
#: least this fraction of the image's width or height is a candidate frame line.
FRAME_LINE_FILL = 0.85


def _clear_frame_lines(fg: np.ndarray) -> np.ndarray:
    """Zero the straight frame lines along the image edges (and the thin margin outside them).

    Per edge, the rows (or columns) within :data:`BAND_MAX_DEPTH` whose foreground fills
    at least :data:`FRAME_LINE_FILL` of the line form a frame line when the run of them
    is thin (at most 5 % of the image) and the fill drops below 0.6 within 3 % of the
    image inside it (a frame line has background or a breast of partial height inside
    it; a breast filling the whole edge does not drop). Up to three nested lines per edge.
    """
    out = fg.copy()
    h, w = out.shape
    for _ in range(3):
        changed = False
        for view in (out, out[::-1], out.T, out.T[::-1]):  # top, bottom, left, right (views write through)
            depth = view.shape[0]
            fill = view[: int(BAND_MAX_DEPTH * depth) + 1].mean(axis=1)
            hits = np.flatnonzero(fill >= FRAME_LINE_FILL)
            if hits.size == 0:
                continue
            i0 = i1 = int(hits[0])
            while i1 + 1 < fill.size and fill[i1 + 1] >= FRAME_LINE_FILL:
                i1 += 1
            inside = view[i1 + 1: i1 + 2 + int(0.03 * depth)].mean(axis=1)
            if i1 - i0 + 1 <= max(2, 0.05 * depth) and inside.size and inside.min() < 0.6:
                view[: i1 + 1] = 0
                changed = True
        if not changed:
            break
    return out


def _border_bands(labels: np.ndarray, stats: np.ndarray) -> set[int]:
    """Labels of components lying along an image edge: long along it, shallow into the image."""
    import cv2

    h, w = labels.shape
    bands = set()
    for i in range(1, len(stats)):
        x, y, bw, bh = (int(stats[i, k]) for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH,
                                                   cv2.CC_STAT_HEIGHT))
        touches = {"left": x == 0, "right": x + bw == w, "top": y == 0, "bottom": y + bh == h}
        vertical = (touches["left"] or touches["right"]) and bh >= BAND_MIN_LENGTH * h and bw <= BAND_MAX_DEPTH * w
        horizontal = (touches["top"] or touches["bottom"]) and bw >= BAND_MIN_LENGTH * w and bh <= BAND_MAX_DEPTH * h
        if vertical or horizontal:
            bands.add(i)
    return bands


def breast_mask(pixels: np.ndarray, threshold_scale: float = 0.5) -> MaskResult:
    """Segment the breast from background, film frames, burned-in markers, labels and tape.

    Method, on a copy resized to at most 512 px:

    1. median-filter (5 px) and threshold at ``threshold_scale`` × Otsu's threshold (a
       low threshold keeps the faint skin line of fatty breasts); open with a disk of
       1 % of the image size (detaches labels and tape touching the breast);
    2. *thin structures out*: open again with a disk of radius :data:`THIN_RADIUS`
       (2.5 % of the size). Frame lines, scanner edges and the strokes of burned-in text
       ("L MLO") are thinner than that disk and vanish, and with them the thin bridges
       through which a frame joins the breast and a marker joins the frame;
    3. *border bands out*: of the remaining components, those lying along an image
       edge — at least :data:`BAND_MIN_LENGTH` of its length, at most
       :data:`BAND_MAX_DEPTH` deep — are thick film frames or scanner strips;
    4. the largest component left is the breast's core (markers and labels, separate
       from it, are left out); the mask is the step-1 foreground within that disk radius
       of the core (restoring the skin line, the nipple and the chest-wall edge the wide
       opening rounded off), its largest 8-connected component, holes filled, closed
       with the 1 % disk;
    5. resize the mask back with nearest-neighbour.

    Dominance (see :func:`shape_score`) compares the breast's core with the other
    components of step 3 (labels, tape, bright artefacts), border bands excluded.

    Args:
        pixels: ``(H, W) float32`` in ``[0, 1]``.
        threshold_scale: multiplier of Otsu's threshold, ``(0, 1]``.

    Returns:
        :class:`MaskResult`.

    Raises:
        ValueError: ``pixels`` is not 2-D.
    """
    import cv2
    from scipy import ndimage

    if pixels.ndim != 2:
        raise ValueError(f"pixels must be (H, W), got shape {pixels.shape}")
    small, _ = _work_copy(pixels)
    s8 = cv2.medianBlur(_to_uint8(small), 5)
    otsu, _ = cv2.threshold(s8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    thr = max(1.0, otsu * threshold_scale)
    fg = _clear_frame_lines((s8 > thr).astype(np.uint8))
    h, w = s8.shape
    k = max(3, int(round(0.01 * max(s8.shape))) | 1)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    opened = cv2.morphologyEx(fg, cv2.MORPH_OPEN, disk)
    r = max(2, int(round(THIN_RADIUS * max(h, w))))
    wide = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    core = cv2.morphologyEx(opened, cv2.MORPH_OPEN, wide)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
    candidates = [i for i in range(1, n) if i not in _border_bands(labels, stats)]
    if not candidates:
        return MaskResult(np.zeros(pixels.shape, bool), thr / 255.0, 0.0, 0.0, 0.0, 0.0, "left")
    areas = stats[candidates, cv2.CC_STAT_AREA]
    best = candidates[int(np.argmax(areas))]
    dominance = float(areas.max() / max(1, areas.sum()))
    near = cv2.dilate((labels == best).astype(np.uint8), wide)
    n2, labels2, stats2, _ = cv2.connectedComponentsWithStats(opened & near, connectivity=8)
    comp = labels2 == 1 + int(np.argmax(stats2[1:, cv2.CC_STAT_AREA]))
    comp = ndimage.binary_fill_holes(comp)
    comp = cv2.morphologyEx(comp.astype(np.uint8), cv2.MORPH_CLOSE, disk).astype(bool)
    comp = ndimage.binary_fill_holes(comp)
    area = float(comp.sum())
    contours, _ = cv2.findContours(comp.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull_area = float(cv2.contourArea(cv2.convexHull(np.concatenate(contours)))) if contours else 0.0
    solidity = float(min(1.0, area / hull_area)) if hull_area > 0 else 0.0
    rows = np.flatnonzero(comp.any(axis=1))
    cols = np.flatnonzero(comp.any(axis=0))
    box = comp[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    bw = box.shape[1]
    side = "left" if box[:, : bw // 2].sum() >= box[:, bw - bw // 2:].sum() else "right"
    band = max(1, int(round(0.02 * bw)))
    edge = box[:, :band].any(axis=1) if side == "left" else box[:, bw - band:].any(axis=1)
    wall_contact = float(min(1.0, edge.sum() / (0.5 * box.shape[0])))
    full = cv2.resize(comp.astype(np.uint8), (pixels.shape[1], pixels.shape[0]), interpolation=cv2.INTER_NEAREST)
    return MaskResult(full.astype(bool), thr / 255.0, area / (h * w), solidity, dominance, wall_contact, side)


def shape_score(result: MaskResult, min_area_fraction: float = 0.05, max_area_fraction: float = 0.95) -> float:
    """Shape confidence in ``[0, 1]`` that a mask is one well-defined, closed breast contour.

    Definition::

        score = solidity × dominance × wall_contact   if min_area_fraction ≤ area_fraction ≤ max_area_fraction
        score = 0                                     otherwise

    - *solidity* (area / convex-hull area): a breast seen in CC or MLO is close to
      convex (0.85–0.99); a mask that leaked into labels or scanner borders is not.
    - *dominance* (breast area / all foreground area): near 1 when the breast is cleanly
      separated from artefacts; low when large bright regions compete with it.
    - *wall_contact* (contact with the chest-wall edge of the bounding box / half the
      breast's height): a
      complete breast is attached to the chest wall along much of its height; a
      fragment floating in the image is not.

    - the area bounds reject empty films and masks that fill the whole image (no
      breast/background boundary was found, e.g. a noise or blank-exposure image).

    The thesis (Rahali 2025, §3.2.1) keeps images with a shape confidence ≥ 0.75 but does
    not define the score; this is keras-mammo's definition.
    """
    if not min_area_fraction <= result.area_fraction <= max_area_fraction:
        return 0.0
    return float(np.clip(result.solidity * result.dominance * result.wall_contact, 0.0, 1.0))


def chest_wall_side(mammogram: Mammogram, mask_result: MaskResult) -> tuple[str, str]:
    """Which image edge the chest wall is on, and how that was decided.

    Order of evidence:
      1. DICOM Patient Orientation (0020,0020): the first value is the direction of
         increasing column index; ``"A"`` (anterior, towards the nipple) means the chest
         wall is on the left, ``"P"`` on the right.
      2. Laterality (0020,0062 / 0020,0060, or the dataset's own field) with the
         standard mammography display used by MIAS, CBIS-DDSM and DICOM hanging
         protocols: a left breast has its chest wall on the image's left edge, a right
         breast on the right edge.
      3. Image content: the side with more breast pixels near the edge (:func:`breast_mask`).

    Returns:
        ``(side, source)`` with side ``"left"``/``"right"`` and source
        ``"patient_orientation"``, ``"laterality"`` or ``"content"``.
    """
    po = mammogram.patient_orientation
    if po and len(po) >= 1 and po[0][:1] in ("A", "P"):
        return ("left" if po[0][:1] == "A" else "right"), "patient_orientation"
    if mammogram.laterality in ("L", "R"):
        return ("left" if mammogram.laterality == "L" else "right"), "laterality"
    return mask_result.chest_wall, "content"


def crop_pad_resize(pixels: np.ndarray, mask: np.ndarray, size: int, chest_wall: str = "left") -> np.ndarray:
    """Crop to the breast, zero the background, pad to a square and resize.

    The crop is the mask's bounding box; pixels outside the mask are set to 0 (labels,
    tape). The square pad is added on the side opposite the chest wall and equally above
    and below, so the chest wall stays on the image edge and the aspect ratio is kept.
    Resizing uses area interpolation (``cv2.INTER_AREA``), the filter that averages
    source pixels when shrinking and so does not alias fine calcifications.

    Args:
        pixels: ``(H, W) float32`` in ``[0, 1]``.
        mask: ``(H, W) bool``.
        size: output side in pixels (e.g. 64, 128, 256, 512).
        chest_wall: ``"left"`` or ``"right"``: where the chest wall is in ``pixels``.

    Returns:
        ``(size, size) float32`` in ``[0, 1]``.
    """
    import cv2

    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("empty breast mask")
    crop = np.where(mask, pixels, 0.0)[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32)
    h, w = crop.shape
    side = max(h, w)
    top = (side - h) // 2
    out = np.zeros((side, side), np.float32)
    left = 0 if chest_wall == "left" else side - w
    out[top:top + h, left:left + w] = crop
    interp = cv2.INTER_AREA if side >= size else cv2.INTER_LINEAR
    return cv2.resize(out, (size, size), interpolation=interp)


def normalize_intensity(pixels: np.ndarray, mask: np.ndarray, mode: str = "percentile") -> np.ndarray:
    """Scale breast intensities so that films of different bit depth and exposure agree.

    Modes:
        ``"percentile"``: divide by the 99.9th percentile inside the breast and clip to
        ``[0, 1]``; background stays 0. Makes 12-bit-in-16-bit files and dark scans
        comparable without moving the background.
        ``"none"``: unchanged.

    Raises:
        ValueError: unknown ``mode``.
    """
    if mode == "none":
        return pixels
    if mode != "percentile":
        raise ValueError(f"intensity mode must be 'percentile' or 'none', got {mode!r}")
    inside = pixels[mask]
    top = float(np.percentile(inside, 99.9)) if inside.size else 1.0
    if top <= 0:
        return pixels
    return np.clip(pixels / top, 0.0, 1.0).astype(np.float32)


@dataclasses.dataclass
class PreprocessResult:
    """Outcome of :func:`preprocess_mammogram` for one film.

    Attributes:
        image: ``(size, size) float32`` in ``[0, 1]``, chest wall on ``target_side``;
            ``None`` when rejected.
        shape_score: see :func:`shape_score`.
        chest_wall: side of the chest wall in the *input* film.
        orientation_source: ``"patient_orientation"``, ``"laterality"`` or ``"content"``.
        flipped: whether the film was mirrored left-right.
        orientation_agrees: whether the tag-based side matches the content-based side.
        reject_reason: ``None`` when kept, else a short reason.
        mask: the breast mask of the *input* film, ``(H, W) bool`` (see :func:`breast_mask`).
    """

    image: np.ndarray | None
    shape_score: float
    chest_wall: str
    orientation_source: str
    flipped: bool
    orientation_agrees: bool
    reject_reason: str | None
    mask: np.ndarray | None = None


def preprocess_mammogram(
    mammogram: Mammogram,
    size: int = 256,
    min_shape_score: float = 0.75,
    target_side: str = "left",
    intensity: str = "percentile",
) -> PreprocessResult:
    """Run the full §3.2.1 pipeline on one decoded film.

    Args:
        mammogram: from :func:`keras_mammo.data.io.read_mammogram`.
        size: output side in pixels.
        min_shape_score: keep threshold for :func:`shape_score` (thesis: 0.75).
        target_side: ``"left"`` or ``"right"``: where every chest wall ends up.
        intensity: see :func:`normalize_intensity`.

    Returns:
        :class:`PreprocessResult`; a rejected film has ``image=None`` and a reason.
    """
    if target_side not in ("left", "right"):
        raise ValueError(f"target_side must be 'left' or 'right', got {target_side!r}")
    res = breast_mask(mammogram.pixels)
    score = shape_score(res)
    side, source = chest_wall_side(mammogram, res)
    agrees = side == res.chest_wall
    flipped = side != target_side
    if res.area_fraction <= 0:
        return PreprocessResult(None, 0.0, side, source, flipped, agrees, "no breast region found", res.mask)
    if score < min_shape_score:
        return PreprocessResult(None, score, side, source, flipped, agrees,
                                f"shape score {score:.3f} < {min_shape_score}", res.mask)
    img = normalize_intensity(mammogram.pixels, res.mask, intensity)
    out = crop_pad_resize(img, res.mask, size, chest_wall=side)
    if flipped:
        out = out[:, ::-1].copy()
    return PreprocessResult(out, score, side, source, flipped, agrees, None, res.mask)


def to_model_range(images01):
    """Map ``[0, 1]`` images to the generator's ``[-1, 1]`` range (``x * 2 - 1``)."""
    return images01 * 2.0 - 1.0


def from_model_range(images):
    """Map ``[-1, 1]`` generator output to ``[0, 1]`` (``(x + 1) / 2``, clipped)."""
    return np.clip((np.asarray(images, np.float32) + 1.0) / 2.0, 0.0, 1.0)
