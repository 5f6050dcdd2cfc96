"""Arms of the cross-validated utility protocol: what each classifier is trained on in a fold.

An **arm** is a recipe for one fold's training set; every arm is tested on the same real,
un-augmented test fold. The arms (issue 22, deliverable 2):

- ``real-only``: the fold's real training patches (TRTR, train real test real).
- ``real+classical``: plus ``copies`` classically augmented copies of every real training
  patch (:mod:`keras_mammo.augment.classical`) — the **reference** every synthetic arm is
  compared with, because it is what a user already does.
- ``classical+<generator>``: ``real+classical`` plus synthetic tumour patches from a
  generator trained on the fold's training patients only.
- ``tstr-<generator>``: synthetic tumour patches + the fold's real non-tumour training
  patches (train synthetic, test real), compared with ``real-only`` (TRTR).

A **generator arm** is any callable ``generator(patches, fold, budget_s, seed) → (G, S, S)
float32 in [0, 1]`` synthetic tumour patches (:class:`GeneratorArm`), where ``patches``
is a :class:`Patches` holding **only the fold's training patients** (the test
fold's patients are removed before the generator is called, and checked again with
:func:`~keras_mammo.utility.patchset.check_no_test_leakage`-style refusal). A class-conditional
generator uses the non-tumour patches too; a lesion-insertion generator uses the
non-tumour patches as backgrounds and the tumour rows' ``centres``/``radii`` as masks.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

import numpy as np

from keras_mammo.utility.patchset import DataLeakageError

REAL_ONLY = "real-only"
CLASSICAL = "real+classical"


@dataclasses.dataclass
class Patches:
    """Real patches with their labels and lesion geometry (a generator arm gets one fold's training patients).

    Attributes:
        images: ``(N, S, S) float32`` in ``[0, 1]``.
        labels: ``(N,) int``, 1 = tumour.
        patients, ids: ``(N,)`` strings.
        centres: ``(N, 2) float`` lesion centre ``(row, col)`` in patch pixels (nan for
            non-tumour patches); radii: ``(N,) float`` lesion radius in patch pixels (nan
            if unknown). MIAS gives centre and radius of an enclosing circle.
    """

    images: np.ndarray
    labels: np.ndarray
    patients: np.ndarray
    ids: np.ndarray
    centres: np.ndarray
    radii: np.ndarray

    def tumours(self) -> np.ndarray:
        """``(T, S, S)`` the tumour patches."""
        return self.images[self.labels == 1]

    def take(self, idx: np.ndarray) -> Patches:
        """The patches at ``idx`` (integer indices)."""
        idx = np.asarray(idx, int)
        return Patches(self.images[idx], self.labels[idx], self.patients[idx], self.ids[idx], self.centres[idx],
                       self.radii[idx])


class GeneratorArm(Protocol):
    """A generator arm: trains on one fold's training patches and returns synthetic tumours."""

    def __call__(self, patches: Patches, fold: int, budget_s: float, seed: int) -> np.ndarray:
        """Returns ``(G, S, S) float32`` synthetic tumour patches in ``[0, 1]`` (S = the real side)."""


@dataclasses.dataclass(frozen=True)
class ArmSpec:
    """One arm.

    Attributes:
        name: id in files and tables.
        title: human-readable name.
        classical: add the classical copies of the real training patches.
        real_tumours: use the real training tumours (False for TSTR).
        generator: name of the generator whose synthetic tumours are added, or None.
        reference: the arm its Δ is taken against (itself for ``real-only``: no Δ).
    """

    name: str
    title: str
    classical: bool
    real_tumours: bool = True
    generator: str | None = None
    reference: str = CLASSICAL


def design_arms(generators: dict[str, Callable] | None = None, tstr: bool = True) -> list[ArmSpec]:
    """The arms: ``real-only``, ``real+classical``, then per generator ``classical+<g>`` (and ``tstr-<g>``)."""
    arms = [ArmSpec(REAL_ONLY, "Real only (TRTR)", classical=False, reference=REAL_ONLY),
            ArmSpec(CLASSICAL, "Real + classical augmentation", classical=True, reference=REAL_ONLY)]
    for g in generators or {}:
        arms.append(ArmSpec(f"classical+{g}", f"Real + classical + synthetic ({g})", classical=True, generator=g))
        if tstr:
            arms.append(ArmSpec(f"tstr-{g}", f"Synthetic tumours only, TSTR ({g})", classical=False,
                                real_tumours=False, generator=g, reference=REAL_ONLY))
    return arms


def training_rows(arm: ArmSpec, train_idx: np.ndarray, labels: np.ndarray, n_real: int, copies: int,
                  n_synthetic: int) -> dict[str, np.ndarray]:
    """Which rows make up an arm's training set.

    Rows are addressed in three pools: real patches (indices into all ``n_real`` patches),
    classical copies (copy ``c`` of patch ``i`` is row ``c × n_real + i`` of the copy pool),
    synthetic tumours of this fold (``0 … n_synthetic − 1``).

    Args:
        arm: the arm.
        train_idx: indices of the fold's real training patches.
        labels: ``(n_real,)`` labels of all patches.
        n_real: number of real patches.
        copies: classical copies per patch.
        n_synthetic: synthetic tumours available.

    Returns:
        ``{"real": idx, "copies": idx, "synthetic": idx, "real_of_copies": patch index of each copy}``.
    """
    train_idx = np.asarray(train_idx, int)
    real = train_idx if arm.real_tumours else train_idx[labels[train_idx] == 0]
    cp = (np.concatenate([c * n_real + real for c in range(copies)]) if arm.classical and copies
          else np.zeros(0, int))
    syn = np.arange(n_synthetic) if arm.generator is not None else np.zeros(0, int)
    return {"real": real, "copies": cp, "synthetic": syn, "real_of_copies": cp % max(n_real, 1)}


def check_training_rows(rows: dict[str, np.ndarray], patients: np.ndarray, test_idx: np.ndarray, arm: str) -> None:
    """Refuse a training set holding a real patch (or its copy) of a test-fold patient.

    Raises:
        DataLeakageError: naming the arm, patch index and patient.
    """
    test_patients = set(np.asarray(patients)[np.asarray(test_idx, int)])
    for i in np.concatenate([rows["real"], rows["real_of_copies"]]).astype(int):
        if patients[i] in test_patients:
            raise DataLeakageError(f"arm {arm}: training patch {i} (patient {patients[i]}) belongs to the test fold")
