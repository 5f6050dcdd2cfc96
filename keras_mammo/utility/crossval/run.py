"""``run_crossval``: the cross-validated utility protocol, resumable per fold.

For every fold ``f`` of :func:`~keras_mammo.utility.crossval.folds.patient_folds`:

1. the fold's training patients' patches are handed to each generator arm (never a test
   patient), which returns synthetic tumour patches;
2. every classifier (``svm``: Rahali 2025 §3.6's linear SVM on frozen backbone features;
   ``cnn``: :mod:`keras_mammo.utility.cnn`) is trained on every arm
   (:mod:`~keras_mammo.utility.crossval.arms`) for every seed and scores the fold's real,
   un-augmented test patches;
3. the fold's scores are written atomically to ``<out>/folds/fold-<f>.json``.

A killed run started again with the same options reads the finished folds and continues
with the first missing one; a fold file written with other options is refused
(:class:`~keras_mammo.errors.ConfigError`), so results of two settings are never mixed.
:func:`summarize_crossval` then pools the out-of-fold scores (every patch scored once per
seed) into the report's figures.

``crossval.json`` layout::

    {"protocol": {...}, "options": {...}, "patch_set": {...}, "n": N, "n_patients": P,
     "counts": {"tumour", "non_tumour"}, "fold_sizes": [{"fold", "n_train", "n_test", ...}],
     "generators": {name: [{"fold", "n", "seconds", "budget_s"}]},
     "classifiers": {clf: {"arms": {arm: {"spec": {...}, "pooled": {metric: {mean, std, ci95}},
                                          "per_fold": {metric: [k values]},
                                          "delta": {metric: {"reference", "corrected_t": {...},
                                                    "bootstrap": {mean, ci95, se, p_le_0},
                                                    "mde_80": {...}}}}},
                          "mde": {...}, "seconds": s}}}
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from keras_mammo.augment.classical import ClassicalPolicy, augment_copies
from keras_mammo.errors import ConfigError, DataError
from keras_mammo.utility.classifier import DEFAULT_C_GRID, METRICS, classification_metrics, fit_linear_svm
from keras_mammo.utility.cnn import CNNOptions
from keras_mammo.utility.crossval.arms import (
    CLASSICAL,
    REAL_ONLY,
    ArmSpec,
    Patches,
    check_training_rows,
    design_arms,
    training_rows,
)
from keras_mammo.utility.crossval.folds import check_fold_disjoint, patient_folds, validation_split
from keras_mammo.utility.patchset import TUMOUR, DataLeakageError, PatchSet

CLASSIFIERS = ("svm", "cnn")
FOLD_FORMAT = "keras-mammo utility fold v1"

PROTOCOL = {
    "design": "patient-grouped, class-stratified k-fold cross-validation over all patches "
              "(scikit-learn StratifiedGroupKFold); every patient tested once",
    "reference": "real + classical augmentation (synthetic arms); real only (classical arm, TSTR)",
    "test": "real, un-augmented out-of-fold patches",
    "generators": "trained once per fold on that fold's training patients only",
    "intervals": "per-fold paired differences: corrected resampled t (Nadeau & Bengio 2003, "
                 "variance × (1/k + n_test/n_train), t with k−1 df); pooled out-of-fold scores: "
                 "patient bootstrap, percentile 95 %",
    "mde": "(z_0.975 + z_0.8) × SE (Bloom 1995), SE of the paired difference",
    "svm": "Rahali 2025 §3.6: StandardScaler + LinearSVC(class_weight='balanced'), C by grouped inner CV",
    "cnn": "small CNN from scratch, early stopping on the ROC AUC of a patient-grouped validation split "
           "of the training patients",
}


@dataclasses.dataclass
class CrossvalOptions:
    """Options of the cross-validated protocol.

    Attributes:
        folds: k of the patient-grouped k-fold CV.
        fold_seed: seed of the fold assignment.
        seeds: classifier seeds, repeated within every fold.
        classifiers: subset of ``("svm", "cnn")``.
        copies: classical copies per real training patch.
        policy: :class:`~keras_mammo.augment.classical.ClassicalPolicy`.
        augment_seed: seed of the classical copies.
        synthetic_fraction: synthetic tumours per real training tumour (generator arms).
        generator_budget_s: CPU budget handed to each generator arm per fold, seconds.
        tstr: add a TSTR arm per generator.
        c_grid, inner_folds: the SVM's C search.
        cnn: :class:`~keras_mammo.utility.cnn.CNNOptions`.
        n_boot, boot_seed: patient bootstrap of the pooled scores.
    """

    folds: int = 5
    fold_seed: int = 0
    seeds: tuple = (0, 1, 2)
    classifiers: tuple = ("svm",)
    copies: int = 2
    policy: ClassicalPolicy = dataclasses.field(default_factory=ClassicalPolicy)
    augment_seed: int = 0
    synthetic_fraction: float = 1.0
    generator_budget_s: float = 600.0
    tstr: bool = True
    c_grid: tuple = DEFAULT_C_GRID
    inner_folds: int = 5
    cnn: CNNOptions = dataclasses.field(default_factory=CNNOptions)
    n_boot: int = 1000
    boot_seed: int = 0

    def validate(self) -> None:
        """Raises ConfigError naming the bad option."""
        bad = [c for c in self.classifiers if c not in CLASSIFIERS]
        if bad or not self.classifiers:
            raise ConfigError(f"classifiers: {list(self.classifiers)} not allowed; allowed values: {', '.join(CLASSIFIERS)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds: need distinct seeds, got {list(self.seeds)}")
        if self.copies < 1:
            raise ConfigError(f"copies: the classical arm needs ≥ 1 copy per patch, got {self.copies}")
        if self.synthetic_fraction <= 0:
            raise ConfigError(f"synthetic_fraction: must be > 0, got {self.synthetic_fraction}")
        self.policy.validate()

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["seeds"], d["classifiers"], d["c_grid"] = list(self.seeds), list(self.classifiers), list(self.c_grid)
        d["cnn"]["filters"] = list(self.cnn.filters)
        return d


def _load(ps: PatchSet) -> Patches:
    images = ps.load_images()
    side = images.shape[1]
    labels = np.array([int(r["class"] == TUMOUR) for r in ps.rows])
    centres = np.full((len(ps.rows), 2), np.nan)
    radii = np.full(len(ps.rows), np.nan)
    for i, r in enumerate(ps.rows):
        box = r.get("box")
        if labels[i] and box and r.get("center"):
            scale = side / max(1, box[2] - box[0])
            centres[i] = [(r["center"][0] - box[0]) * scale, (r["center"][1] - box[1]) * scale]
            radii[i] = float(r["radius"]) * scale if r.get("radius") is not None else np.nan
    return Patches(images, labels, np.array([str(r["patient_id"]) for r in ps.rows]),
                 np.array([str(r["image_id"]) for r in ps.rows]), centres, radii)


def _fingerprint(data: Patches, fold: np.ndarray, options: CrossvalOptions, arms: Sequence[ArmSpec],
                 backbone_id: dict | None) -> str:
    """sha256 of everything that decides a fold's scores (not of how the report compares arms)."""
    h = hashlib.sha256()
    h.update(json.dumps({"ids": data.ids.tolist(), "labels": data.labels.tolist(), "patients": data.patients.tolist(),
                         "fold": fold.tolist(), "options": options.as_dict(),
                         "arms": [[a.name, a.classical, a.real_tumours, a.generator] for a in arms],
                         "backbone": backbone_id},
                        sort_keys=True, default=str).encode())
    return h.hexdigest()


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    from keras_mammo.utility.run import resize_patches

    return resize_patches(images, size) if len(images) else np.zeros((0, size, size), np.float32)


def _check_synthetic(name: str, arr, side: int) -> np.ndarray:
    arr = np.asarray(arr, np.float32)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2] or len(arr) == 0:
        raise DataError(f"generator arm {name!r}: expected (G, S, S) synthetic patches, got shape {arr.shape}")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise DataError(f"generator arm {name!r}: synthetic patches must be finite and in [0, 1]")
    return _resize(arr, side)


def run_fold(f: int, data: Patches, fold: np.ndarray, arms: Sequence[ArmSpec], options: CrossvalOptions,
             generators: dict[str, Callable], feats: dict | None, backbone=None, cache_dir=None,
             bar=None) -> tuple[dict, dict[str, np.ndarray]]:
    """Train every (classifier, arm, seed) of fold ``f`` and score its test patches.

    Returns:
        ``(result, synthetic)``: the fold's result (scores in test-index order) and
        ``{generator: (G, S, S) synthetic tumours}``.

    Raises:
        DataLeakageError: a training set would hold a test-fold patient.
    """
    from keras_mammo.utility.features import cached_features

    test_idx = np.flatnonzero(fold == f)
    train_idx = np.flatnonzero(fold != f)
    test_patients = set(data.patients[test_idx])
    if test_patients & set(data.patients[train_idx]):
        raise DataLeakageError(f"fold {f}: a patient is in both the training and the test fold")
    side = data.images.shape[1]
    n_real = len(data.labels)
    y_test = data.labels[test_idx]
    out: dict = {"format": FOLD_FORMAT, "fold": int(f), "test_ids": data.ids[test_idx].tolist(),
                 "n_train": int(len(train_idx)), "n_test": int(len(test_idx)),
                 "n_train_tumour": int(data.labels[train_idx].sum()), "n_test_tumour": int(y_test.sum()),
                 "n_test_patients": len(test_patients), "generators": {}, "classifiers": {}}
    # ---- generator arms: trained on this fold's training patients only
    synthetic: dict[str, np.ndarray] = {}
    t_real = int(data.labels[train_idx].sum())
    for name, gen in generators.items():
        patches = data.take(train_idx)
        if set(patches.patients) & test_patients:  # belt and braces: never reached by construction
            raise DataLeakageError(f"generator arm {name!r}, fold {f}: its training patches hold a test patient")
        t0 = time.process_time()
        w0 = time.perf_counter()
        arr = _check_synthetic(name, gen(patches, int(f), float(options.generator_budget_s),
                                         int(options.augment_seed + 1000 * f)), side)
        want = max(1, int(round(options.synthetic_fraction * t_real)))
        if len(arr) < want:
            raise DataError(f"generator arm {name!r}, fold {f}: returned {len(arr)} synthetic tumours, "
                            f"{want} needed ({options.synthetic_fraction} × {t_real} real training tumours)")
        synthetic[name] = arr[:want]
        out["generators"][name] = {"n": want, "cpu_seconds": time.process_time() - t0,
                                   "wall_seconds": time.perf_counter() - w0, "budget_s": options.generator_budget_s}
    syn_feats = {}
    if feats is not None:
        for name, arr in synthetic.items():
            syn_feats[name], _ = cached_features(arr, backbone, cache_dir, f"fold{f}-{name}-{side}px", progress=False)
    for clf in options.classifiers:
        res: dict = {}
        for arm in arms:
            syn = synthetic.get(arm.generator, np.zeros((0, side, side), np.float32))
            rows = training_rows(arm, train_idx, data.labels, n_real, options.copies if arm.classical else 0, len(syn))
            check_training_rows(rows, data.patients, test_idx, arm.name)
            runs = []
            for seed in options.seeds:
                t0 = time.perf_counter()
                if clf == "svm":
                    scores, info = _svm_arm(rows, data, feats, syn_feats.get(arm.generator), test_idx, options, seed)
                else:
                    scores, info = _cnn_arm(rows, data, syn, arm, train_idx, test_idx, options, seed)
                runs.append({"seed": int(seed), "scores": [float(s) for s in scores],
                             "metrics": {m: v for m, v in classification_metrics(y_test, scores).items()
                                         if m in METRICS},
                             "n_train": {"real": int(len(rows["real"])), "classical_copies": int(len(rows["copies"])),
                                         "synthetic": int(len(rows["synthetic"]))},
                             "seconds": time.perf_counter() - t0, **info})
                if bar is not None:
                    bar.update(1)
            res[arm.name] = runs
        out["classifiers"][clf] = res
    return out, synthetic


def _svm_arm(rows, data: Patches, feats: dict, syn_feats, test_idx, options: CrossvalOptions, seed: int):
    X = [feats["real"][rows["real"]], feats["copies"][rows["copies"]]]
    y = [data.labels[rows["real"]], data.labels[rows["real_of_copies"]]]
    g = [data.patients[rows["real"]], data.patients[rows["real_of_copies"]]]
    if len(rows["synthetic"]):
        X.append(syn_feats[rows["synthetic"]])
        y.append(np.ones(len(rows["synthetic"]), int))
        g.append(np.array([f"synthetic-{i}" for i in rows["synthetic"]]))
    svm = fit_linear_svm(np.concatenate(X), np.concatenate(y), np.concatenate(g), seed=int(seed),
                         c_grid=options.c_grid, inner_folds=options.inner_folds)
    return svm.decision_function(feats["real"][test_idx]), {"C": svm.C, "inner_cv_balanced_accuracy": svm.inner_cv_score}


def _cnn_arm(rows, data: Patches, syn: np.ndarray, arm: ArmSpec, train_idx, test_idx, options: CrossvalOptions,
             seed: int):
    from keras_mammo.utility.cnn import cnn_scores, fit_cnn

    size = options.cnn.size
    fit_i, val_i = validation_split(data.labels[train_idx], data.patients[train_idx], options.cnn.val_fraction,
                                    seed=int(seed))
    val_patients = set(data.patients[train_idx[val_i]])
    keep = lambda idx: np.asarray([i for i in idx if data.patients[i] not in val_patients], int)  # noqa: E731
    real_fit = keep(rows["real"])
    x_fit = [data.images[real_fit]]
    y_fit = [data.labels[real_fit]]
    if len(rows["copies"]):
        copy_rows = np.asarray([r for r in rows["copies"] if data.patients[r % len(data.labels)] not in val_patients],
                               int)
        x_fit.append(_copies_images(data, copy_rows, options))
        y_fit.append(data.labels[copy_rows % len(data.labels)])
    val_idx = train_idx[val_i]
    x_val, y_val = data.images[val_idx], data.labels[val_idx]
    if len(rows["synthetic"]):
        s = syn[rows["synthetic"]]
        if not arm.real_tumours:  # TSTR: real tumours reach neither fit nor validation
            n_val = max(1, int(round(options.cnn.val_fraction * len(s))))
            x_val = np.concatenate([x_val[y_val == 0], s[:n_val]])
            y_val = np.concatenate([np.zeros(int((y_val == 0).sum()), int), np.ones(n_val, int)])
            s = s[n_val:]
        x_fit.append(s)
        y_fit.append(np.ones(len(s), int))
    model, info = fit_cnn(_resize(np.concatenate(x_fit), size), np.concatenate(y_fit), _resize(x_val, size), y_val,
                          options.cnn, seed=int(seed))
    scores = cnn_scores(model, _resize(data.images[test_idx], size))
    import keras

    keras.backend.clear_session()
    return scores, info


def _copies_images(data: Patches, copy_rows: np.ndarray, options: CrossvalOptions) -> np.ndarray:
    """The classical copies addressed by ``copy_rows`` (copy ``c`` of patch ``i`` = ``c·N + i``)."""
    n = len(data.labels)
    out = []
    from keras_mammo.augment.classical import augment_patch, patch_rng

    for r in copy_rows:
        c, i = divmod(int(r), n)
        out.append(augment_patch(data.images[i], options.policy, patch_rng(options.augment_seed, c, data.ids[i])))
    return np.stack(out) if out else np.zeros((0, *data.images.shape[1:]), np.float32)


def run_crossval(patch_dir: str | Path, out_dir: str | Path, options: CrossvalOptions | None = None,
                 generators: dict[str, Callable] | None = None, backbone="inception", weights=None,
                 cache_dir: str | Path | None = "auto", batch_size: int = 32, progress: bool = True,
                 figures: bool = True, log: Callable[[str], None] | None = None) -> dict:
    """Run (or resume) the cross-validated utility protocol and write its report.

    Args:
        patch_dir: a patch set from ``keras-mammo patches`` (its train/test split is
            ignored: all patches enter the folds).
        out_dir: report folder; ``folds/fold-<f>.json`` are the resumable per-fold results.
        options: :class:`CrossvalOptions`.
        generators: ``{name: GeneratorArm}`` (:class:`~keras_mammo.utility.crossval.arms.GeneratorArm`).
        backbone: ``"inception"``, ``"resnet50"`` or a Backbone (SVM features).
        weights: ResNet50 weights file.
        cache_dir: feature cache; ``"auto"`` = ``<patch_dir>/feature_cache``; None: off.
        batch_size: backbone batch.
        progress: tqdm bar over fits.
        figures: write the ROC curves and example grid.
        log: called with one line per finished or resumed fold.

    Returns:
        the ``crossval.json`` dictionary (see the module docstring).

    Raises:
        ConfigError: bad options, or ``out_dir`` holds fold results of other options.
        DataError: bad patch set or synthetic patches. DataLeakageError: a test patient
            would reach a training set or a generator.
    """
    from tqdm.auto import tqdm

    from keras_mammo.utils import write_json_atomic

    options = options or CrossvalOptions()
    options.validate()
    generators = dict(generators or {})
    log = log or (lambda s: None)
    ps = PatchSet(patch_dir)
    data = _load(ps)
    fold = patient_folds(data.labels, data.patients, options.folds, options.fold_seed)
    check_fold_disjoint(fold, data.patients)
    arms = design_arms(generators, options.tstr)
    side = int(data.images.shape[1])
    feats = bb = None
    if cache_dir == "auto":
        cache_dir = Path(patch_dir) / "feature_cache"
    if "svm" in options.classifiers:
        from keras_mammo.utility.backbones import Backbone, get_backbone
        from keras_mammo.utility.features import cached_features

        bb = backbone if isinstance(backbone, Backbone) else get_backbone(backbone, weights)
        real_f, _ = cached_features(data.images, bb, cache_dir, f"real-{side}px", batch_size, progress)
        cp = augment_copies(data.images, data.ids.tolist(), options.copies, options.policy, options.augment_seed)
        cp_f, _ = cached_features(cp, bb, cache_dir, f"classical-{side}px-c{options.copies}-s{options.augment_seed}",
                                  batch_size, progress)
        feats = {"real": real_f, "copies": cp_f}
    fp = _fingerprint(data, fold, options, arms, None if bb is None else bb.identity())
    out = Path(out_dir)
    (out / "folds").mkdir(parents=True, exist_ok=True)
    n_fits = options.folds * len(options.classifiers) * len(arms) * len(options.seeds)
    bar = tqdm(total=n_fits, desc="utility fits", unit="fit", disable=not progress)
    folds_out = []
    for f in range(options.folds):
        path = out / "folds" / f"fold-{f}.json"
        if path.is_file():
            try:
                done = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: unreadable fold result ({exc}); delete it to recompute the fold") from exc
            if done.get("fingerprint") != fp:
                raise ConfigError(f"{path}: written with other options, patches or arms; use another --out "
                                  "(results of two settings are never mixed)")
            folds_out.append(done)
            bar.update(len(options.classifiers) * len(arms) * len(options.seeds))
            log(f"fold {f + 1}/{options.folds}: resumed from {path.name}")
            continue
        t0 = time.perf_counter()
        res, synthetic = run_fold(f, data, fold, arms, options, generators, feats, bb, cache_dir, bar)
        res["fingerprint"] = fp
        res["seconds"] = time.perf_counter() - t0
        for name, arr in synthetic.items():  # a few samples per generator, for the example grid
            from keras_mammo.utils import atomic_path

            with atomic_path(out / "folds" / f"fold-{f}-{name}-samples.npz") as tmp, open(tmp, "wb") as fh:
                np.savez_compressed(fh, images=arr[:16])
        write_json_atomic(path, res)
        folds_out.append(res)
        log(f"fold {f + 1}/{options.folds}: done in {res['seconds']:.0f} s ({path.name})")
    bar.close()
    result = summarize_crossval(data, fold, folds_out, arms, options)
    result.update({"protocol": PROTOCOL, "options": options.as_dict(), "fingerprint": fp,
                   "patch_set": {"name": Path(patch_dir).name, "size": side,
                                 "dataset": ps.rows[0].get("dataset") if ps.rows else None},
                   "backbone": None if bb is None else bb.identity()})
    from keras_mammo.utility.crossval.report import write_crossval_report

    write_crossval_report(result, out, figures=figures, data=data)
    return result


def summarize_crossval(data: Patches, fold: np.ndarray, folds_out: Sequence[dict], arms: Sequence[ArmSpec],
                       options: CrossvalOptions) -> dict:
    """Pool the per-fold scores: out-of-fold metrics, paired Δ with intervals, MDE.

    For each classifier and arm: the per-fold metric (mean over seeds); the pooled
    out-of-fold metric per seed (mean, std over seeds, patient-bootstrap 95 % interval);
    against the arm's reference, the corrected resampled t interval of the per-fold
    differences, the patient bootstrap of the pooled difference and the minimum
    detectable effect at 80 % power of both.
    """
    from keras_mammo.utility.classifier import patient_bootstrap
    from keras_mammo.utility.crossval.stats import corrected_resampled_t, minimum_detectable_effect

    y = data.labels
    n = len(y)
    pos = {i: k for k, i in enumerate(data.ids)}
    n_train = float(np.mean([r["n_train"] for r in folds_out]))
    n_test = float(np.mean([r["n_test"] for r in folds_out]))
    result: dict = {"n": int(n), "n_patients": int(len(set(data.patients))),
                    "counts": {"tumour": int(y.sum()), "non_tumour": int(n - y.sum())},
                    "folds": int(options.folds), "seeds": list(options.seeds),
                    "fold_sizes": [{k: r[k] for k in ("fold", "n_train", "n_test", "n_train_tumour", "n_test_tumour",
                                                      "n_test_patients")} for r in folds_out],
                    "generators": {g: [dict(r["generators"][g], fold=r["fold"]) for r in folds_out]
                                   for g in (folds_out[0]["generators"] if folds_out else {})},
                    "y": y.tolist(), "patients": data.patients.tolist(), "fold": fold.tolist(),
                    "classifiers": {}}
    for clf in options.classifiers:
        oof = {a.name: [np.full(n, np.nan) for _ in options.seeds] for a in arms}
        per_fold = {a.name: {m: [] for m in METRICS} for a in arms}
        seconds = 0.0
        for r in folds_out:
            idx = np.array([pos[i] for i in r["test_ids"]])
            for a in arms:
                runs = r["classifiers"][clf][a.name]
                for s, run in enumerate(runs):
                    oof[a.name][s][idx] = run["scores"]
                    seconds += run["seconds"]
                for m in METRICS:
                    per_fold[a.name][m].append(float(np.mean([run["metrics"][m] for run in runs])))
        refs = {a.reference for a in arms}
        boots = {ref: patient_bootstrap(y, oof, data.patients, n_boot=options.n_boot, seed=options.boot_seed,
                                        reference=ref) for ref in refs}
        arms_out = {}
        for a in arms:
            pooled = {}
            for m in METRICS:
                vals = [classification_metrics(y, s)[m] for s in oof[a.name]]
                pooled[m] = {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                             "per_seed": [float(v) for v in vals],
                             "ci95": boots[a.reference][a.name][m]["ci95"]}
            entry = {"spec": dataclasses.asdict(a), "pooled": pooled, "per_fold": per_fold[a.name], "delta": {},
                     "oof": [s.tolist() for s in oof[a.name]]}
            if a.name != a.reference:
                for m in METRICS:
                    diffs = np.array(per_fold[a.name][m]) - np.array(per_fold[a.reference][m])
                    ct = corrected_resampled_t(diffs, n_train, n_test)
                    bs = boots[a.reference][a.name][f"delta_{m}"]
                    entry["delta"][m] = {
                        "reference": a.reference, "corrected_t": ct, "bootstrap": bs,
                        "mde_80": {"corrected_t": minimum_detectable_effect(ct["se"], df=ct["df"]),
                                   "bootstrap": minimum_detectable_effect(bs["se"])}}
            arms_out[a.name] = entry
        cls = arms_out.get(CLASSICAL, {}).get("delta", {})
        result["classifiers"][clf] = {
            "arms": arms_out, "seconds": seconds,
            "mde": {m: dict(cls[m]["mde_80"], comparison=f"{CLASSICAL} vs {REAL_ONLY}") for m in cls},
        }
    return result
