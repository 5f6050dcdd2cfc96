"""Adapters for the large screening datasets: RSNA, VinDr-Mammo, CMMD and INbreast.

Each reads a dataset's own published layout and metadata and yields
:class:`keras_mammo.data.datasets.SourceRecord` objects with pseudonymous patient ids,
laterality, view, label, BI-RADS, density, official split and lesion outlines.
:func:`keras_mammo.data.datasets.open_dataset` dispatches to them by name.
"""
from __future__ import annotations

from keras_mammo.data.adapters.cmmd import CMMDDataset
from keras_mammo.data.adapters.inbreast import INbreastDataset
from keras_mammo.data.adapters.rsna import RSNADataset
from keras_mammo.data.adapters.vindr import VinDrMammoDataset

#: ``--dataset`` name → adapter class.
ADAPTERS = {"rsna": RSNADataset, "vindr": VinDrMammoDataset, "cmmd": CMMDDataset, "inbreast": INbreastDataset}

__all__ = ["ADAPTERS", "CMMDDataset", "INbreastDataset", "RSNADataset", "VinDrMammoDataset"]
