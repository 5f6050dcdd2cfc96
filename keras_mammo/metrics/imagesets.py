"""Image sets to evaluate: a prepared dataset, a folder of images, or an array.

An :class:`ImageSet` holds every image of a set at one common square size (the
evaluation resolution), with ids, patient ids (for splitting real data into disjoint
halves without putting one patient's two films on both sides) and breast masks when the
set provides them.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from keras_mammo.data.datasets import open_dataset
from keras_mammo.data.io import read_mammogram
from keras_mammo.data.prepare import read_manifest
from keras_mammo.data.preprocess import breast_mask
from keras_mammo.errors import DataError


@dataclasses.dataclass
class ImageSet:
    """Images of one set at the evaluation resolution.

    Attributes:
        name: short label (``"real"``, ``"synthetic"``).
        images: ``(N, S, S) float32`` in [0, 1].
        ids: ``N`` image ids.
        patient_ids: ``N`` patient ids (the image id when unknown).
        masks: ``(N, S, S) bool`` breast masks from mask files, or ``None``.
        source: where the set came from (path or description).
    """

    name: str
    images: np.ndarray
    ids: list[str]
    patient_ids: list[str]
    masks: np.ndarray | None = None
    source: str = ""

    def __len__(self) -> int:
        return len(self.images)

    @property
    def size(self) -> int:
        """Side of the images in pixels."""
        return int(self.images.shape[1])

    def subset(self, index) -> ImageSet:
        """The images at ``index`` (an integer array), as a new set."""
        index = np.asarray(index, dtype=np.int64)
        return ImageSet(self.name, self.images[index], [self.ids[i] for i in index],
                        [self.patient_ids[i] for i in index],
                        None if self.masks is None else self.masks[index], self.source)

    def content_key(self) -> str:
        """sha256 of the pixel data (float32 bytes) and shape: identifies the set's content."""
        h = hashlib.sha256()
        h.update(repr(self.images.shape).encode())
        h.update(np.ascontiguousarray(self.images, np.float32).tobytes())
        return h.hexdigest()


def resize_square(image: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    """Resize ``(H, W)`` to ``(size, size)``: area filter when shrinking, bicubic when enlarging
    (clipped to [0, 1]), nearest-neighbour for masks."""
    import cv2

    if image.shape == (size, size):
        return image
    if nearest:
        return cv2.resize(image.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST).astype(bool)
    shrink = max(image.shape) >= size
    out = cv2.resize(image.astype(np.float32), (size, size),
                     interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0)


def _read_mask(path: Path) -> np.ndarray:
    import cv2

    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise DataError(f"{path}: cannot read breast mask")
    return m > 127


def peek_size(path: str | Path) -> int:
    """Side (max of height, width) of the first image of a set directory, in pixels.

    Raises:
        DataError: the directory holds no readable image.
    """

    entries = _entries(Path(path))
    return int(max(read_mammogram(entries[0][0]).pixels.shape))


def count_images(path: str | Path) -> int:
    """Number of images :func:`load_image_set` would read from ``path`` (without reading them)."""
    return len(_entries(Path(path)))


def _entries(path: Path) -> list[tuple[Path, str, str, Path | None]]:
    """``(image path, image id, patient id, mask path or None)`` of every image of a set."""

    if not path.exists():
        raise DataError(f"{path}: image set not found")
    if (path / "manifest.jsonl").is_file():
        out = []
        for row in read_manifest(path):
            if not row.get("kept") or not row.get("image"):
                continue
            mask = row.get("breast_mask")
            out.append((path / row["image"], str(row.get("image_id", row["image"])),
                        str(row.get("patient_id") or row.get("image_id", row["image"])),
                        path / mask if mask else None))
        if not out:
            raise DataError(f"{path}: prepared dataset has no kept images")
        return out
    if not path.is_dir():
        raise DataError(f"{path}: expected a directory of images or a prepared dataset")
    records = [r for r in open_dataset("auto", path).records() if not _is_auxiliary(r.path)]
    if not records:
        raise DataError(f"{path}: no image files found")
    return [(r.path, r.image_id, r.patient_id, None) for r in records]


def _is_auxiliary(path: Path) -> bool:
    """Sample grids and previews written beside images (``*grid.png``, ``preview.png``)."""
    stem = path.stem.lower()
    return stem.endswith("grid") or stem == "preview"


def load_image_set(path: str | Path, size: int | None = None, name: str | None = None,
                   limit: int | None = None, progress: bool = False) -> ImageSet:
    """Read an image set from disk.

    Accepted layouts: a prepared dataset (``manifest.jsonl``: kept images, their breast
    masks and patient ids), a MIAS folder (``Info.txt``: patient ids from the left/right
    pairs), or any folder of DICOM/PNG/PGM/TIFF/JPEG files (e.g. ``keras-mammo generate``
    output; each file its own patient). Sample grids and previews (``*grid.png``,
    ``preview.png``) are skipped.

    Args:
        path: the directory.
        size: evaluation side in pixels; default: the first image's larger side. Images
            are resized with :func:`resize_square` (non-square images are stretched).
        name: label; default: the directory name.
        limit: read only the first ``limit`` images (sorted by id).
        progress: show a progress bar.

    Returns:
        :class:`ImageSet` with ``images (N, size, size) float32`` in [0, 1].

    Raises:
        DataError: missing directory, no images, or an unreadable file.
    """
    from tqdm.auto import tqdm

    path = Path(path)
    entries = _entries(path)
    if limit is not None:
        entries = entries[:limit]
    images, masks, ids, pids = [], [], [], []
    has_masks = all(e[3] is not None for e in entries)
    for img_path, image_id, patient_id, mask_path in tqdm(entries, desc=f"reading {path.name}", unit="img",
                                                          disable=not progress, leave=False):
        px = read_mammogram(img_path).pixels
        side = size or int(max(px.shape))
        size = side
        images.append(resize_square(px, side))
        if has_masks:
            masks.append(resize_square(_read_mask(mask_path), side, nearest=True))
        ids.append(image_id)
        pids.append(patient_id)
    return ImageSet(name or path.name, np.stack(images).astype(np.float32), ids, pids,
                    np.stack(masks) if has_masks else None, str(path))


def image_set_from_array(images, name: str, ids: list[str] | None = None,
                         patient_ids: list[str] | None = None, masks=None, size: int | None = None,
                         source: str = "array") -> ImageSet:
    """Wrap ``(N, H, W)`` / ``(N, H, W, 1)`` float images in [0, 1] as an :class:`ImageSet`.

    Raises:
        ValueError: bad shape or values outside [0, 1].
    """
    arr = np.asarray(images)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise ValueError(f"images must be (N, H, W) or (N, H, W, 1); got shape {arr.shape}")
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    arr = arr.astype(np.float32)
    if arr.size and (arr.min() < -1e-3 or arr.max() > 1 + 1e-3):
        raise ValueError(f"images must be in [0, 1]; got [{arr.min():.3g}, {arr.max():.3g}]")
    arr = np.clip(arr, 0.0, 1.0)
    side = size or int(max(arr.shape[1:]))
    if arr.shape[1:] != (side, side):
        arr = np.stack([resize_square(a, side) for a in arr])
    m = None
    if masks is not None:
        m = np.asarray(masks).astype(bool)
        if m.ndim == 4:
            m = m[..., 0]
        if m.shape[1:] != (side, side):
            m = np.stack([resize_square(x, side, nearest=True) for x in m])
    ids = list(ids) if ids is not None else [f"{name}_{i:05d}" for i in range(len(arr))]
    pids = list(patient_ids) if patient_ids is not None else list(ids)
    return ImageSet(name, arr, ids, pids, m, source)


def breast_masks(image_set: ImageSet) -> np.ndarray:
    """The set's breast masks: from its mask files, else :func:`keras_mammo.data.preprocess.breast_mask`.

    Returns:
        ``(N, S, S) bool``.
    """

    if image_set.masks is not None:
        return image_set.masks
    return np.stack([breast_mask(img).mask for img in image_set.images])


def split_halves(patient_ids: list[str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random halves of a set, never splitting a patient across them.

    Patients are shuffled and each is assigned to the currently smaller half.

    Returns:
        ``(index_a, index_b)`` int64 arrays.
    """
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(patient_ids):
        groups.setdefault(p, []).append(i)
    keys = list(groups)
    order = rng.permutation(len(keys))
    a: list[int] = []
    b: list[int] = []
    for k in order:
        (a if len(a) <= len(b) else b).extend(groups[keys[k]])
    return np.array(sorted(a), np.int64), np.array(sorted(b), np.int64)
