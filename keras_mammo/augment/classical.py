"""Classical augmentation of classifier training patches: the baseline a synthetic arm must beat.

A user who asks "do synthetic tumours help my classifier?" already flips, rotates and
jitters the intensity of their training patches; a synthetic arm is judged against that,
not against un-augmented data (issue 22). The policy is the usual one for mammography
patch classifiers (e.g. Shen et al. 2019, "Deep learning to improve breast cancer detection
on screening mammography", Sci. Rep. 9:12495, Methods: flips, rotations, small affine and
intensity changes):

1. **Flips and 90° rotations** (the dihedral group of the square): left–right flip with
   probability ``p_flip``, up–down flip with probability ``p_flip``, then ``k × 90°``
   rotation, ``k`` uniform in {0, 1, 2, 3}. A patch has no preferred orientation.
2. **Small affine**: rotation by ``θ ~ U[−max_rotate_deg, +max_rotate_deg]`` degrees,
   isotropic scale ``s ~ U[1 − max_scale, 1 + max_scale]`` and a shift of
   ``U[−max_shift, +max_shift] × side`` pixels in each axis, about the patch centre.
   Steps 1 and 2 are composed into one 2 × 3 matrix and applied in a **single** bilinear
   resampling (``cv2.warpAffine``, reflected border, so no black corners appear), as
   stylegan2-ada's ``AugmentPipe`` composes its geometric transforms.
3. **Intensity**, in this order, on pixel values in ``[0, 1]``: brightness
   ``x + b``, ``b ~ U[−max_brightness, +max_brightness]`` (fraction of full scale);
   contrast ``(x − μ) · c + μ``, ``c ~ U[1 − max_contrast, 1 + max_contrast]``, μ the
   patch mean; gamma ``x^γ``, ``log γ ~ U[−log max_gamma, +log max_gamma]``; clipped to
   ``[0, 1]``.

Randomness: the draws for one patch depend only on ``(seed, copy, patch id)``
(:func:`augment_copies`), never on which other patches are augmented with it. The copy of
a patch is therefore the same in every cross-validation fold that trains on it, which
lets its backbone features be computed once and cached; a fold uses only the copies of
its **training** patches (:mod:`keras_mammo.utility.crossval.arms`).
"""
from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence

import numpy as np

from keras_mammo.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ClassicalPolicy:
    """Parameters of the classical augmentation policy (defaults: issue 22's policy).

    Attributes:
        p_flip: probability of each flip (left–right, up–down), in ``[0, 1]``.
        rot90: draw a rotation by a multiple of 90°.
        max_rotate_deg: small-rotation half-range, degrees (default ±10°).
        max_scale: isotropic scale half-range, fraction (default ±5 %).
        max_shift: shift half-range per axis, fraction of the patch side (default ±5 %).
        max_brightness: additive brightness half-range, fraction of full scale (±0.05).
        max_contrast: contrast factor half-range around 1 (±0.1).
        max_gamma: gamma drawn log-uniformly in ``[1 / max_gamma, max_gamma]`` (1.2).
    """

    p_flip: float = 0.5
    rot90: bool = True
    max_rotate_deg: float = 10.0
    max_scale: float = 0.05
    max_shift: float = 0.05
    max_brightness: float = 0.05
    max_contrast: float = 0.1
    max_gamma: float = 1.2

    def validate(self) -> None:
        """Raises ConfigError naming the bad parameter."""
        checks = {
            "p_flip": 0.0 <= self.p_flip <= 1.0,
            "max_rotate_deg": 0.0 <= self.max_rotate_deg <= 45.0,
            "max_scale": 0.0 <= self.max_scale < 0.5,
            "max_shift": 0.0 <= self.max_shift < 0.5,
            "max_brightness": 0.0 <= self.max_brightness <= 0.5,
            "max_contrast": 0.0 <= self.max_contrast < 1.0,
            "max_gamma": 1.0 <= self.max_gamma <= 3.0,
        }
        allowed = {"p_flip": "[0, 1]", "max_rotate_deg": "[0, 45] degrees", "max_scale": "[0, 0.5)",
                   "max_shift": "[0, 0.5)", "max_brightness": "[0, 0.5]", "max_contrast": "[0, 1)",
                   "max_gamma": "[1, 3]"}
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"augment.{key}: {getattr(self, key)!r} is outside {allowed[key]}")


def patch_rng(seed: int, copy: int, patch_id: str) -> np.random.Generator:
    """The generator of one augmented copy: a function of ``(seed, copy, patch id)`` only."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(copy), zlib.crc32(str(patch_id).encode())])


def augment_patch(image: np.ndarray, policy: ClassicalPolicy, rng: np.random.Generator) -> np.ndarray:
    """One augmented copy of one patch.

    Args:
        image: ``(S, S) float32`` in ``[0, 1]``.
        policy: :class:`ClassicalPolicy`.
        rng: source of the draws (see :func:`patch_rng`).

    Returns:
        ``(S, S) float32`` in ``[0, 1]``.

    Raises:
        ValueError: ``image`` is not a square 2-D array.
    """
    import cv2

    img = np.asarray(image, np.float32)
    if img.ndim != 2 or img.shape[0] != img.shape[1]:
        raise ValueError(f"augment_patch: expected a square (S, S) patch, got shape {img.shape}")
    side = img.shape[0]
    c = (side - 1) / 2.0
    # dihedral part as a 3x3 matrix about the centre: flips, then k quarter turns
    fx = -1.0 if rng.random() < policy.p_flip else 1.0
    fy = -1.0 if rng.random() < policy.p_flip else 1.0
    k = int(rng.integers(0, 4)) if policy.rot90 else 0
    quarter = np.array([[0.0, -1.0], [1.0, 0.0]])
    lin = np.linalg.matrix_power(quarter, k) @ np.diag([fx, fy])
    # small affine part: rotation, scale, shift
    theta = np.deg2rad(rng.uniform(-policy.max_rotate_deg, policy.max_rotate_deg))
    s = rng.uniform(1.0 - policy.max_scale, 1.0 + policy.max_scale)
    rot = s * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    shift = rng.uniform(-policy.max_shift, policy.max_shift, size=2) * side
    a = rot @ lin  # (x, y) column vectors
    t = np.array([c, c]) + shift - a @ np.array([c, c])
    m = np.hstack([a, t[:, None]]).astype(np.float64)
    out = cv2.warpAffine(img, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    # intensity
    out = out + rng.uniform(-policy.max_brightness, policy.max_brightness)
    mu = float(out.mean())
    out = (out - mu) * rng.uniform(1.0 - policy.max_contrast, 1.0 + policy.max_contrast) + mu
    gamma = float(np.exp(rng.uniform(-np.log(policy.max_gamma), np.log(policy.max_gamma))))
    out = np.clip(out, 0.0, 1.0) ** gamma
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def augment_copies(images: np.ndarray, ids: Sequence[str], copies: int, policy: ClassicalPolicy | None = None,
                   seed: int = 0) -> np.ndarray:
    """``copies`` augmented copies of every patch, copy-major.

    Args:
        images: ``(N, S, S) float32`` in ``[0, 1]``.
        ids: ``(N,)`` patch ids (they key each copy's draws).
        copies: copies per patch, ≥ 0.
        policy: default :class:`ClassicalPolicy`.
        seed: augmentation seed.

    Returns:
        ``(copies × N, S, S) float32`` in ``[0, 1]``; row ``c × N + i`` is copy ``c`` of patch ``i``.

    Raises:
        ConfigError: bad policy or ``copies < 0``. ValueError: ``len(ids) != N``.
    """
    policy = policy or ClassicalPolicy()
    policy.validate()
    if copies < 0:
        raise ConfigError(f"augment.copies: must be ≥ 0, got {copies}")
    images = np.asarray(images, np.float32)
    if len(ids) != len(images):
        raise ValueError(f"{len(images)} patches but {len(ids)} ids")
    out = [augment_patch(images[i], policy, patch_rng(seed, c, ids[i]))
           for c in range(int(copies)) for i in range(len(images))]
    if not out:
        return np.zeros((0, *images.shape[1:]), np.float32)
    return np.stack(out)
