"""Reading DICOM and raster mammograms (keras_mammo.data.io)."""
from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from keras_mammo.data.io import read_mammogram, write_png
from keras_mammo.errors import DataError


def test_mias_png_and_pgm_are_identical(mias_dir, tmp_path):
    import cv2

    png = read_mammogram(mias_dir / "mdb001.png")
    assert png.pixels.shape == (1024, 1024) and png.pixels.dtype == np.float32 and png.bits_stored == 8
    raw = cv2.imread(str(mias_dir / "mdb001.png"), cv2.IMREAD_UNCHANGED)
    pgm_path = tmp_path / "mdb001.pgm"
    cv2.imwrite(str(pgm_path), raw)
    assert pgm_path.read_bytes()[:2] == b"P5"
    pgm = read_mammogram(pgm_path)
    np.testing.assert_array_equal(pgm.pixels, png.pixels)
    np.testing.assert_allclose(png.pixels * 255, raw, atol=1e-3)


def test_16bit_png_keeps_depth(tmp_path):
    img = (np.arange(256 * 256, dtype=np.uint32) % 65536).astype(np.uint16).reshape(256, 256)
    import cv2

    cv2.imwrite(str(tmp_path / "x.png"), img)
    m = read_mammogram(tmp_path / "x.png")
    assert m.bits_stored == 16
    np.testing.assert_allclose(m.pixels * 65535, img, atol=0.02)
    assert len(np.unique(m.pixels)) > 256  # not quantized to 8 bits


def test_dicom_reads_tags_and_range(dicom_paths):
    m = read_mammogram(dicom_paths[0])  # RCC of P_00173, RLE lossless, 16-bit
    assert m.pixels.ndim == 2 and m.pixels.shape[0] > 4000
    assert 0.0 <= m.pixels.min() and m.pixels.max() <= 1.0
    assert m.laterality == "R" and m.view == "CC" and m.bits_stored == 16
    assert len(np.unique(m.pixels[::8, ::8])) > 1000  # 16-bit depth kept


def _small_dicom(src, tmp_path, **changes):
    import pydicom

    ds = pydicom.dcmread(src)
    arr = ds.pixel_array[::16, ::16].copy()
    ds.PixelData = arr.tobytes()
    ds.Rows, ds.Columns = arr.shape
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    for k, v in changes.items():
        setattr(ds, k, v)
    out = tmp_path / f"small_{len(list(tmp_path.iterdir()))}.dcm"
    ds.save_as(out, enforce_file_format=True)
    return out, arr


def test_dicom_monochrome1_is_inverted(dicom_paths, tmp_path):
    p2, arr = _small_dicom(dicom_paths[0], tmp_path)
    p1, _ = _small_dicom(dicom_paths[0], tmp_path, PhotometricInterpretation="MONOCHROME1")
    a, b = read_mammogram(p2).pixels, read_mammogram(p1).pixels
    np.testing.assert_allclose(a, 1.0 - b, atol=1e-6)


def test_dicom_window_is_applied(dicom_paths, tmp_path):
    p, arr = _small_dicom(dicom_paths[0], tmp_path, WindowCenter=20000, WindowWidth=10000)
    px = read_mammogram(p).pixels
    # everything below center - width/2 saturates to 0, above center + width/2 to 1
    assert np.all(px[arr < 14000] == 0.0) and np.all(px[arr > 26000] == 1.0)
    mid = (arr > 16000) & (arr < 24000)
    assert mid.any() and np.all((px[mid] > 0) & (px[mid] < 1))


def test_dicom_truncated_is_a_clear_error(dicom_paths, tmp_path, capfd):
    """A cut file says "truncated" (not "no Pixel Data element"), and no pydicom warning reaches stderr.

    Both layouts: the RLE film (encapsulated: pydicom drops the unfinished element with a
    warning) and a native copy (the element is kept, shorter than Rows × Columns × 2).
    """
    native, _ = _small_dicom(dicom_paths[0], tmp_path)
    for src in (dicom_paths[0], native):
        data = open(src, "rb").read()
        for frac in (3, 1.01):
            bad = tmp_path / f"cut_{Path(src).stem}_{frac}.dcm"
            bad.write_bytes(data[: int(len(data) / frac)])
            capfd.readouterr()
            with warnings.catch_warnings(record=True) as caught, pytest.raises(DataError) as err:
                warnings.simplefilter("always")
                read_mammogram(bad)
            msg = str(err.value)
            assert msg.startswith(f"{bad}: truncated DICOM file") and "no Pixel Data" not in msg, msg
            assert "\n" not in msg and capfd.readouterr().err == "" and not caught, [str(w.message) for w in caught]
    # a complete file without pixel data still says so
    import pydicom

    ds = pydicom.dcmread(native)
    del ds.PixelData
    ds.save_as(tmp_path / "nopixels.dcm", enforce_file_format=True)
    with pytest.raises(DataError, match="nopixels.dcm: DICOM file has no Pixel Data element"):
        read_mammogram(tmp_path / "nopixels.dcm")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    """A 16000² PNG of a few hundred KB is refused from its header; refusing it stays small in memory."""
    import subprocess
    import sys
    import zlib

    from keras_mammo.data import io

    side = 16000
    comp, idat = zlib.compressobj(9), []
    row = b"\0" * (side + 1)  # filter byte + one grey byte per pixel
    for _ in range(side):
        idat.append(comp.compress(row))
    idat.append(comp.flush())

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", b"".join(idat)) + chunk(b"IEND", b""))
    assert bomb.stat().st_size < 400_000
    with pytest.raises(DataError, match=r"bomb.png: declares 16000 × 16000 pixels, more than the pixel budget of 100 "):
        read_mammogram(bomb)
    code = ("import resource, sys; from keras_mammo.data.io import read_mammogram\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "try: read_mammogram(sys.argv[1])\nexcept Exception as e: print(type(e).__name__)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)")
    out = subprocess.run([sys.executable, "-c", code, str(bomb)], capture_output=True, text=True, check=True,
                         cwd=Path(io.__file__).parents[2]).stdout.split()
    # peak growth in KiB over the imports' own peak: decoding it would take 256 MB more
    assert out[0] == "DataError" and int(out[1]) < 64_000, out
    # a DICOM declares its size in Rows/Columns: refused before decoding too
    with pytest.raises(DataError, match="pixel budget"):
        io.check_pixel_budget("big.dcm", 20000, 6000)
    io.check_pixel_budget("real.dcm", 6000, 5000)  # the largest full-field mammograms pass


def test_dangling_link_is_named(mias_dir, tmp_path):
    link = tmp_path / "gone.png"
    link.symlink_to(tmp_path / "moved-away.png")
    with pytest.raises(DataError, match=r"gone.png: dangling link \(the file it points to does not exist\)"):
        read_mammogram(link)


def test_truncated_and_garbage_raster_files(mias_dir, tmp_path):
    import cv2

    raw = cv2.imread(str(mias_dir / "mdb002.png"), cv2.IMREAD_UNCHANGED)
    ok, buf = cv2.imencode(".pgm", raw)
    (tmp_path / "cut.pgm").write_bytes(buf.tobytes()[:500])
    (tmp_path / "garbage.png").write_bytes(b"not an image at all")
    for name in ("cut.pgm", "garbage.png"):
        with pytest.raises(DataError, match=name):
            read_mammogram(tmp_path / name)
    with pytest.raises(DataError, match="not found"):
        read_mammogram(tmp_path / "missing.png")


def test_write_png_roundtrip_16bit(tmp_path):
    img = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    write_png(tmp_path / "a.png", img, bits=16)
    back = read_mammogram(tmp_path / "a.png").pixels
    np.testing.assert_allclose(back, img, atol=1 / 65535)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    """Files written atomically are readable by others per the umask, not 0600 like mkstemp's."""
    import os

    from keras_mammo.utils import write_text_atomic

    umask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
        write_png(tmp_path / "b.png", np.zeros((4, 4), np.float32), bits=8)
    finally:
        os.umask(umask)
    for name in ("a.txt", "b.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644
