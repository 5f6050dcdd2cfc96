"""Reading mammograms from DICOM and common raster formats.

All readers return a :class:`Mammogram`: a single-channel ``(H, W) float32`` array in
``[0, 1]`` (0 = no attenuation / background, 1 = the brightest value the file can hold)
together with the DICOM tags that matter for mammography. Bit depth is kept until the
final resize: a 16-bit DICOM or PNG is scaled, not quantized, to float32.

DICOM handling follows PS3.3 C.11 (Modality LUT, VOI LUT) and C.7.6.3.1.2
(Photometric Interpretation): Rescale Slope/Intercept, then the VOI LUT or window, then
inversion of MONOCHROME1 so that dense tissue is always bright.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from pathlib import Path

import numpy as np

from keras_mammo.errors import DataError
from keras_mammo.utils import atomic_path

DICOM_SUFFIXES = {".dcm", ".dicom", ".dic", ""}
RASTER_SUFFIXES = {".png", ".pgm", ".pnm", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp"}
IMAGE_SUFFIXES = RASTER_SUFFIXES | {".dcm", ".dicom", ".dic"}
#: Mammography view codes (DICOM CID 4014 abbreviations).
MAMMO_VIEWS = {"CC", "MLO", "ML", "LM", "LMO", "XCCL", "XCCM", "FB", "SIO", "AT", "CV"}
#: Pixel budget of one decoded input (rows × columns × frames), checked from the file's
#: header before any pixel is decoded. A full-field digital mammogram has 13–30
#: megapixels (3328 × 4096 to 5000 × 6000); 100 megapixels refuses decompression bombs
#: (a 300 KB PNG that declares 16000 × 16000) without refusing any real film.
MAX_PIXELS = 100_000_000


@dataclasses.dataclass
class Mammogram:
    """One decoded mammogram.

    Attributes:
        pixels: ``(H, W) float32`` in ``[0, 1]``; bright = dense tissue.
        path: the file it was read from.
        bits_stored: bit depth of the stored pixels (8, 12, 16, ...).
        laterality: ``"L"``, ``"R"`` or ``None`` (DICOM 0020,0062 Image Laterality,
            else 0020,0060 Laterality).
        view: ``"CC"``, ``"MLO"``, ... or ``None`` (DICOM 0018,5101 View Position).
        patient_orientation: DICOM 0020,0020 Patient Orientation (row, column
            directions), e.g. ``("A", "R")``, or ``None``.
    """

    pixels: np.ndarray
    path: Path
    bits_stored: int
    laterality: str | None = None
    view: str | None = None
    patient_orientation: tuple[str, ...] | None = None


def is_dicom(path: Path) -> bool:
    """True if ``path`` has a DICOM suffix or the ``DICM`` magic at byte 128."""
    path = Path(path)
    if path.suffix.lower() in {".dcm", ".dicom", ".dic"}:
        return True
    if path.suffix.lower() in RASTER_SUFFIXES:
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _clean_code(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip().upper()
    return text or None


def read_dicom(path: str | Path) -> Mammogram:
    """Read a DICOM mammogram with pydicom.

    Applies the Modality LUT (Rescale Slope/Intercept), the VOI LUT or window
    (Window Center/Width), and inverts MONOCHROME1. Compressed transfer syntaxes
    (JPEG, JPEG-LS, JPEG 2000, RLE) decode through :func:`decode_pixels`: pydicom's
    decoding plugins (pylibjpeg, GDCM, Pillow), then GDCM directly. The image size is
    checked against :data:`MAX_PIXELS` before decoding.

    Returns:
        :class:`Mammogram` with ``pixels`` ``(H, W) float32`` in ``[0, 1]``.

    Raises:
        DataError: the file is missing, not DICOM, truncated, holds no pixel data,
            is multi-frame/colour, larger than :data:`MAX_PIXELS`, or its transfer
            syntax cannot be decoded.
    """
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    path = Path(path)
    try:
        with warnings.catch_warnings(record=True) as caught:  # pydicom warns about damaged files on stderr
            warnings.simplefilter("always")
            ds = pydicom.dcmread(path)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except Exception as exc:  # pydicom raises several types for bad files
        raise DataError(f"{path}: not a readable DICOM file ({exc})") from exc
    ended_early = [str(w.message) for w in caught if "end of file" in str(w.message).lower()]
    if "PixelData" not in ds:
        if ended_early or _mentions_pixel_data(path):
            raise DataError(f"{path}: truncated DICOM file: it ends inside the Pixel Data element (7FE0,0010)")
        raise DataError(f"{path}: DICOM file has no Pixel Data element (7FE0,0010)")
    check_pixel_budget(path, int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0),
                       int(ds.get("NumberOfFrames", 1) or 1))
    if _native_bytes_missing(ds):
        raise DataError(f"{path}: truncated DICOM file: the Pixel Data element holds {len(ds.PixelData)} bytes, "
                        f"{_native_bytes_expected(ds)} expected from Rows × Columns × Bits Allocated")
    raw = decode_pixels(ds, path)
    if raw.ndim != 2:
        raise DataError(f"{path}: expected a single-frame greyscale image, got pixel array shape {raw.shape}")
    arr = apply_modality_lut(raw, ds)
    has_voi = "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds)
    if has_voi:
        arr = apply_voi_lut(arr, ds, index=0)
    arr = np.asarray(arr, dtype=np.float64)
    bits = int(ds.get("BitsStored", 16))
    lo, hi = float(np.min(arr)), float(np.max(arr))
    if hi <= lo:
        raise DataError(f"{path}: image is constant (all pixels {lo}); nothing to read")
    arr = (arr - lo) / (hi - lo)
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1":
        arr = 1.0 - arr
    laterality = _clean_code(ds.get("ImageLaterality")) or _clean_code(ds.get("Laterality"))
    if laterality not in {"L", "R"}:
        laterality = None
    view = _clean_code(ds.get("ViewPosition"))
    orientation = ds.get("PatientOrientation")
    if isinstance(orientation, str):
        orientation = orientation.split("\\")
    orientation = tuple(str(o).strip().upper() for o in orientation) if orientation else None
    if view is None and orientation and len(orientation) == 1 and orientation[0] in MAMMO_VIEWS:
        # some archives (CBIS-DDSM) put the view code in Patient Orientation
        view, orientation = orientation[0], None
    return Mammogram(
        pixels=arr.astype(np.float32),
        path=path,
        bits_stored=bits,
        laterality=laterality,
        view=view,
        patient_orientation=orientation,
    )


def check_pixel_budget(path: str | Path, rows: int, columns: int, frames: int = 1) -> None:
    """Refuse an image whose header declares more than :data:`MAX_PIXELS` pixels.

    Raises:
        DataError: ``rows × columns × frames > MAX_PIXELS`` (names the file and the size).
    """
    if rows * columns * max(1, frames) > MAX_PIXELS:
        frames_text = f" × {frames} frames" if frames > 1 else ""
        raise DataError(f"{path}: declares {columns} × {rows} pixels{frames_text}, more than the pixel budget of "
                        f"{MAX_PIXELS / 1e6:g} megapixels (keras_mammo.data.io.MAX_PIXELS); refused before "
                        f"decoding (a decompression bomb, or not a mammogram)")


def raster_header_size(path: str | Path) -> tuple[int, int] | None:
    """``(rows, columns)`` declared by a raster file's header, read without decoding pixels.

    PNG: the IHDR chunk (PNG spec §11.2.2); other formats: Pillow's lazy ``Image.open``
    (header only). Returns ``None`` when neither identifies the file (OpenCV then reports it).

    Raises:
        DataError: the header declares more pixels than Pillow's own bomb limit
            (2 × ``PIL.Image.MAX_IMAGE_PIXELS``, above :data:`MAX_PIXELS`).
    """
    import struct

    from PIL import Image

    with open(path, "rb") as fh:
        head = fh.read(24)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        columns, rows = struct.unpack(">II", head[16:24])
        return rows, columns
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning: the budget is checked here
            with Image.open(path) as im:
                columns, rows = im.size
                return rows, columns
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: declares more than {2 * Image.MAX_IMAGE_PIXELS} pixels, more than the pixel "
                        f"budget of {MAX_PIXELS / 1e6:g} megapixels (keras_mammo.data.io.MAX_PIXELS); refused "
                        f"before decoding (a decompression bomb, or not a mammogram)") from exc
    except Exception:  # not identifiable by Pillow: OpenCV decides
        return None


def _mentions_pixel_data(path: Path) -> bool:
    """Whether the file holds the Pixel Data tag (7FE0,0010), little endian, anywhere."""
    tag, tail = b"\xe0\x7f\x10\x00", b""
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                if tag in tail + chunk:
                    return True
                tail = chunk[-3:]
    except OSError:
        return False
    return False


def _native_bytes_expected(ds) -> int:
    bits = int(ds.get("BitsAllocated", 16) or 16)
    n = int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0) * int(ds.get("SamplesPerPixel", 1) or 1)
    return (n * int(ds.get("NumberOfFrames", 1) or 1) * bits + 7) // 8


def _native_bytes_missing(ds) -> bool:
    """An uncompressed Pixel Data element shorter than its image size (the file was cut)."""
    ts = ds.file_meta.get("TransferSyntaxUID")
    if ts is None or getattr(ts, "is_compressed", True):
        return False
    return len(ds.PixelData) < _native_bytes_expected(ds)


def decode_pixels(ds, path: str | Path) -> np.ndarray:
    """The stored pixel values of a DICOM dataset, trying every decoder installed.

    Order: pydicom's pixel-data decoding plugins (pylibjpeg's libjpeg/openjpeg/RLE, GDCM,
    Pillow, as pydicom 3 tries them), then GDCM reading the file itself. GDCM decodes
    streams the others reject, e.g. 12-bit JPEG Extended (1.2.840.10008.1.2.4.51) whose
    start-of-scan header has scan stop 0 instead of 63, as older encoders write it
    (libjpeg: "scan start must be zero and scan stop must be 63"; pydicom's GDCM plugin
    refuses 12-bit JPEG Extended altogether).

    Returns:
        the stored values before any LUT, e.g. ``(H, W) uint16``.

    Raises:
        DataError: no decoder could decode it (one line naming the file, the transfer
            syntax and each decoder's error).
    """
    import re

    errors = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ds.pixel_array
    except Exception as exc:
        errors.append(f"pydicom: {exc}")
    try:
        return _gdcm_pixels(Path(path))
    except ImportError:
        errors.append("GDCM: not installed (pip install python-gdcm)")
    except Exception as exc:
        errors.append(f"GDCM: {exc}")
    ts = ds.file_meta.get("TransferSyntaxUID", "unknown")
    detail = re.sub(r"\s+", " ", "; ".join(errors))
    raise DataError(f"{path}: cannot decode pixel data (transfer syntax {ts}): {detail}")


@contextlib.contextmanager
def _quiet_stderr():
    """Silence what C libraries write to file descriptor 2 for the duration of the block."""
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr (embedded interpreter): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _gdcm_pixels(path: Path) -> np.ndarray:
    """Decode a DICOM file's pixels with GDCM (``python-gdcm``) directly: ``(H, W[, S])`` or ``(F, H, W[, S])``."""
    import gdcm

    gdcm.Trace.WarningOff()
    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    with _quiet_stderr():  # GDCM's JPEG codecs print their retries ("Unsupported JPEG data precision 12")
        if not reader.Read():
            raise ValueError("GDCM cannot read the image")
        image = reader.GetImage()
        buffer = image.GetBuffer()
    fmt = image.GetPixelFormat()
    types = {gdcm.PixelFormat.UINT8: np.uint8, gdcm.PixelFormat.INT8: np.int8, gdcm.PixelFormat.UINT16: np.uint16,
             gdcm.PixelFormat.INT16: np.int16, gdcm.PixelFormat.UINT32: np.uint32,
             gdcm.PixelFormat.INT32: np.int32}
    dtype = types.get(fmt.GetScalarType())
    if dtype is None:
        raise ValueError(f"unsupported pixel format {fmt.GetScalarTypeAsString()}")
    columns, rows = image.GetDimension(0), image.GetDimension(1)
    frames = image.GetDimension(2) if image.GetNumberOfDimensions() == 3 else 1
    samples = fmt.GetSamplesPerPixel()
    # SWIG hands the buffer over as str; surrogateescape gives back its bytes (as pydicom 2's GDCM handler did)
    data = np.frombuffer(buffer.encode("utf-8", "surrogateescape"), dtype=np.dtype(dtype).newbyteorder("<"))
    if data.size != rows * columns * frames * samples:
        raise ValueError(f"GDCM returned {data.size} values, {rows * columns * frames * samples} expected")
    shape = ((frames,) if frames > 1 else ()) + (rows, columns) + ((samples,) if samples > 1 else ())
    return data.reshape(shape).astype(dtype)


#: Largest channel spread (fraction of full scale, 99.9th percentile) of grey stored as RGB.
GREY_TOLERANCE = 0.03


def colour_spread(img: np.ndarray) -> float:
    """How far an ``(H, W, 3)`` image is from grey: 99.9th percentile of max − min over channels, in [0, 1]."""
    full = 65535.0 if img.dtype == np.uint16 else 255.0 if img.dtype == np.uint8 else max(float(img.max()), 1e-12)
    f = img.astype(np.float32)
    spread = f.max(axis=2) - f.min(axis=2)
    return float(np.percentile(spread, 99.9)) / full


def read_raster(path: str | Path) -> Mammogram:
    """Read a PGM/PNG/TIFF/JPEG/BMP mammogram (8- or 16-bit) with OpenCV.

    Grey stored as RGB(A) (all colour channels equal within :data:`GREY_TOLERANCE` of
    full scale, which allows for JPEG chroma noise) is read as grey; true colour images
    (photographs, annotated screenshots) are rejected. Integer images are scaled by
    their dtype's maximum (255 or 65535); float images are min-max scaled.

    The size declared by the header is checked against :data:`MAX_PIXELS` before
    decoding (:func:`raster_header_size`).

    Raises:
        DataError: missing, truncated or undecodable file, a colour image, or more
            pixels than :data:`MAX_PIXELS`.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    size = raster_header_size(path)
    if size is not None:
        check_pixel_budget(path, *size)
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise DataError(f"{path}: cannot decode image (corrupt, truncated or unsupported format)")
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = img[:, :, :3]
        if img.shape[2] == 3:
            spread = colour_spread(img)
            if spread > GREY_TOLERANCE:
                raise DataError(f"{path}: colour image (colour channels differ by {spread:.1%} of full scale at "
                                f"the 99.9th percentile); mammograms are greyscale")
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        else:
            img = img[:, :, 0]
    if img.dtype == np.uint8:
        arr, bits = img.astype(np.float32) / 255.0, 8
    elif img.dtype == np.uint16:
        arr, bits = img.astype(np.float32) / 65535.0, 16
    else:
        f = img.astype(np.float64)
        lo, hi = float(f.min()), float(f.max())
        if hi <= lo:
            raise DataError(f"{path}: image is constant; nothing to read")
        arr, bits = ((f - lo) / (hi - lo)).astype(np.float32), 32
    return Mammogram(pixels=arr, path=path, bits_stored=bits)


def read_mammogram(path: str | Path) -> Mammogram:
    """Read any supported mammogram file (DICOM or raster), chosen by suffix/magic.

    Raises:
        DataError: the file is missing, a dangling link, corrupt, of an unsupported
            format, or larger than :data:`MAX_PIXELS`.
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise DataError(f"{path}: dangling link (the file it points to does not exist)")
    if is_dicom(path):
        return read_dicom(path)
    if path.suffix.lower() not in RASTER_SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type {path.suffix!r}; expected DICOM or one of "
            f"{sorted(RASTER_SUFFIXES)}"
        )
    return read_raster(path)


def png_text_chunks(png: bytes, text: dict[str, str]) -> bytes:
    """Insert ``tEXt`` chunks (PNG spec §11.3.4.3; Latin-1, keywords of 1–79 characters) after IHDR."""
    import struct
    import zlib

    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG stream")
    end_ihdr = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4
    chunks = b""
    for key, value in text.items():
        if not 1 <= len(key) <= 79:
            raise ValueError(f"PNG text keyword {key!r}: 1–79 characters")
        data = key.encode("latin-1") + b"\0" + str(value).encode("latin-1", errors="replace")
        chunks += struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    return png[:end_ihdr] + chunks + png[end_ihdr:]


def read_png_text(path: str | Path) -> dict[str, str]:
    """The ``tEXt`` chunks of a PNG file as ``{keyword: text}``."""
    import struct

    data = Path(path).read_bytes()
    out, pos = {}, 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"tEXt":
            key, _, value = data[pos + 8:pos + 8 + length].partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        if kind == b"IEND":
            break
        pos += 12 + length
    return out


def write_png(path: str | Path, image: np.ndarray, bits: int = 16, text: dict[str, str] | None = None) -> None:
    """Write a ``(H, W)`` or ``(H, W, 1)`` image in ``[0, 1]`` (float) as an 8- or 16-bit PNG, atomically.

    The file is written under a temporary name and renamed, so a killed process
    never leaves a half-written PNG. ``text`` adds PNG ``tEXt`` chunks (e.g. that the
    image is synthetic).

    Raises:
        ValueError: ``bits`` is not 8 or 16.
    """
    import cv2

    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3:
        img = img[..., 0]
    scale = 255 if bits == 8 else 65535
    out = np.clip(np.rint(np.clip(img, 0.0, 1.0) * scale), 0, scale).astype(np.uint8 if bits == 8 else np.uint16)
    ok, buf = cv2.imencode(".png", out)
    if not ok:
        raise DataError(f"{path}: PNG encoding failed")
    data = buf.tobytes()
    if text:
        data = png_text_chunks(data, text)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
