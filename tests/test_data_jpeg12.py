"""12-bit JPEG Extended DICOMs (transfer syntax 1.2.840.10008.1.2.4.51, SOF1) decode (issue 13, item 2).

No such film ships with the test data, so one is made here: a synthetic 12-bit image is
JPEG-encoded with 12-bit precision (imagecodecs' libjpeg-turbo; nothing else installed
writes 12-bit JPEG) and wrapped in a DICOM with pydicom.
"""
from __future__ import annotations

import numpy as np
import pytest

imagecodecs = pytest.importorskip("imagecodecs")


def _jpeg12_dicom(path, pixels, patch=None):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGExtended12Bit, SecondaryCaptureImageStorage, generate_uid

    stream = imagecodecs.jpeg8_encode(pixels, level=95, bitspersample=12)
    sof1 = stream.find(b"\xff\xc1")  # extended sequential DCT, the frame header holds the precision
    assert sof1 > 0 and stream[sof1 + 4] == 12 and b"\xff\xc0" not in stream[:sof1]
    if patch is not None:
        stream = patch(stream)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = JPEGExtended12Bit
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.Modality = "MG"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = encapsulate([stream])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_12_bit_jpeg_extended_dicom_decodes(tmp_path):
    from keras_mammo.data.io import read_mammogram

    rows, cols = np.mgrid[0:96, 0:80]
    film = np.clip(200 + 3600 * np.exp(-((rows - 48) ** 2 + cols ** 2) / (2 * 40.0 ** 2)), 0, 4095).astype(np.uint16)
    film[40:44, 30:34] = 4095  # a bright calcification-like spot: values above 8 bits must survive
    m = read_mammogram(_jpeg12_dicom(tmp_path / "jpeg12.dcm", film))
    assert m.bits_stored == 12 and m.pixels.shape == film.shape
    # read_mammogram maps the film's own range to [0, 1]; undo it and compare with the 12-bit source
    lo, hi = float(film.min()), float(film.max())
    back = m.pixels.astype(np.float64) * (hi - lo) + lo
    assert np.abs(back - film).max() <= 16  # JPEG at quality 95: a few of 4095 levels
    assert len(np.unique(np.round(back))) > 256  # more than 8 bits of grey levels came through


def _scan_stop_zero(stream: bytes) -> bytes:
    """Set the start-of-scan header's spectral selection end (Se) to 0, as older encoders write it.

    SOS (ITU-T T.81 B.2.3): FFDA, Ls (2 bytes), Ns, Ns × (Cs, Td/Ta), Ss, Se, Ah/Al.
    """
    out = bytearray(stream)
    sos = out.find(b"\xff\xda")
    ns = out[sos + 4]
    se = sos + 5 + 2 * ns + 1
    assert out[se - 1] == 0 and out[se] == 63  # a clean sequential stream: Ss = 0, Se = 63
    out[se] = 0
    return bytes(out)


def test_12_bit_jpeg_extended_with_scan_stop_zero_decodes_through_gdcm(dicom_paths, tmp_path, capfd):
    """A real mammogram as 12-bit JPEG Extended whose SOS says Se = 0 (issue 24, item 1).

    libjpeg (pylibjpeg) rejects it ("scan stop must be 63"), pydicom's GDCM plugin refuses
    12-bit JPEG Extended; GDCM reading the file decodes it.
    """
    import cv2
    import pydicom

    from keras_mammo.data.io import read_mammogram

    src = pydicom.dcmread(dicom_paths[0]).pixel_array.astype(np.float64)
    small = cv2.resize(src, (192, 320), interpolation=cv2.INTER_AREA)
    film = np.rint((small - small.min()) / (small.max() - small.min()) * 4095).astype(np.uint16)
    path = _jpeg12_dicom(tmp_path / "se0.dcm", film, patch=_scan_stop_zero)
    ds = pydicom.dcmread(path)
    with pytest.raises(Exception, match="scan stop must be 63"):
        pydicom.pixels.pixel_array(ds, decoding_plugin="pylibjpeg")  # the failure the issue reported
    capfd.readouterr()
    m = read_mammogram(path)
    assert m.bits_stored == 12 and m.pixels.shape == film.shape
    lo, hi = float(film.min()), float(film.max())
    back = m.pixels.astype(np.float64) * (hi - lo) + lo
    assert np.abs(back - film).max() <= 24 and np.abs(back - film).mean() < 2
    assert len(np.unique(np.round(back))) > 256
    assert capfd.readouterr().err == ""  # neither pydicom's warnings nor GDCM's codec chatter
