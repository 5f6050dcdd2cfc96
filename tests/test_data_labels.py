"""Burned-in labels, markers and film-edge strips do not survive preprocessing (issue 13, item 2).

A synthetic film (no real film with burned-in markers is available offline): a breast
against the left edge, the text "L MLO" and a marker block at full brightness beside it,
and a bright strip along a film edge, on a dark, slightly noisy background.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _film(edge_strip: str | None = None):
    import cv2

    rng = np.random.default_rng(0)
    r, c = np.mgrid[0:512, 0:400]
    film = np.abs(rng.normal(0, 0.01, r.shape)).astype(np.float32)
    breast = ((r - 256) / 220.0) ** 2 + (c / 250.0) ** 2 <= 1
    film[breast] = 0.45 + 0.25 * np.exp(-c[breast] / 150.0) + rng.normal(0, 0.03, int(breast.sum()))
    label = np.zeros(r.shape, np.uint8)
    cv2.putText(label, "L MLO", (270, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 1, 4)
    cv2.rectangle(label, (300, 430), (380, 470), 1, -1)
    if edge_strip == "top":
        label[:10, :] = 1
    elif edge_strip == "right":
        label[:, 390:] = 1
    film[label > 0] = 1.0
    return np.clip(film, 0, 1), breast, label > 0


@pytest.mark.parametrize("edge_strip", [None, "top", "right"])
def test_labels_and_markers_are_removed_and_the_breast_fills_the_frame(edge_strip):
    from keras_mammo.data.io import Mammogram
    from keras_mammo.data.preprocess import breast_mask, preprocess_mammogram

    film, breast, label = _film(edge_strip)
    mask = breast_mask(film).mask
    assert not (mask & label).any()                       # no label, marker or strip pixel kept
    assert (mask & breast).sum() >= 0.99 * breast.sum()   # the whole breast kept
    res = preprocess_mammogram(Mammogram(film, Path("synthetic"), 12), size=64, min_shape_score=0.75)
    assert res.image is not None and res.image.shape == (64, 64)
    # cropped to the breast's box and padded to a square (aspect kept): the breast's share of
    # the frame is its share of that square (0.45 here; the whole film would give 0.33)
    rows, cols = np.flatnonzero(breast.any(1)), np.flatnonzero(breast.any(0))
    side = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    assert (res.image > 0.05).mean() == pytest.approx(breast.sum() / side ** 2, abs=0.03)
