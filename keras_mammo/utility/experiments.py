"""The downstream-utility experiments: does training on synthetic tumour patches help?

Rahali 2025, §3.6 (results in Tables 4.4–4.5) trains a linear SVM on ResNet50 features:

- Experiment 1 (real only): 400 tumour + 400 non-tumour training patches, tested on
  100 + 100.
- Experiment 2 (replacement): 300 real + 100 generated tumour + 400 non-tumour, same
  test set.

keras-mammo adds the two questions users ask next:

- Augmentation: all real training patches plus generated tumour patches (+25 %, +50 %,
  +100 % of the real tumour count).
- Train on synthetic, test on real (TSTR): generated tumour patches vs real non-tumour
  patches for training, the real test set for testing.

Counts are the thesis's *ratios* applied to the data at hand (MIAS has 119 located
lesions, not 500): with ``T`` real training tumour patches, every experiment uses ``T``
real non-tumour training patches; replacement swaps ``round(0.25 T)`` real tumours for
generated ones; augmentation adds ``round(f T)``; TSTR uses ``T`` generated tumours.

The test set is real, held out by patient (:func:`~keras_mammo.utility.patches.split_by_patient`),
balanced (all test tumour patches and as many test non-tumour patches, drawn once with the
patch set's seed) and **identical across experiments and repeats**. A repeat (one seed)
draws, once for all experiments, the non-tumour training subset, the order in which real
tumours are replaced and the order in which generated patches are used; the experiments
of one seed are therefore paired (augmentation +25 % ⊂ +50 % ⊂ +100 %), and their
differences reflect the generated images, not different draws.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from keras_mammo.errors import DataError
from keras_mammo.utility.classifier import DEFAULT_C_GRID, METRICS, classification_metrics, fit_linear_svm, patient_bootstrap
from keras_mammo.utility.patchset import NON_TUMOUR, TEST, TRAIN, TUMOUR, DataLeakageError

#: Thesis Experiment 2: 100 of 400 tumour training images replaced by generated ones.
THESIS_REPLACE_FRACTION = 0.25
DEFAULT_AUGMENT = (0.25, 0.5, 1.0)


@dataclasses.dataclass
class ExperimentSpec:
    """One training-set recipe.

    Attributes:
        name: id used in files (``real-only``, ``replace-25``, ``augment+50``, ``tstr``).
        title: human-readable name.
        thesis: the thesis experiment it reproduces, or None for keras-mammo's additions.
        n_real_tumour, n_generated_tumour, n_non_tumour: training counts.
    """

    name: str
    title: str
    thesis: str | None
    n_real_tumour: int
    n_generated_tumour: int
    n_non_tumour: int

    @property
    def n_train(self) -> int:
        return self.n_real_tumour + self.n_generated_tumour + self.n_non_tumour


def design_experiments(n_real_tumour: int, n_non_tumour_pool: int, have_generated: bool = True,
                       replace_fraction: float = THESIS_REPLACE_FRACTION,
                       augment: Sequence[float] = DEFAULT_AUGMENT, tstr: bool = True) -> list[ExperimentSpec]:
    """The experiments, with the thesis's ratios scaled to the available training data.

    Args:
        n_real_tumour: real tumour patches in the training split (``T``).
        n_non_tumour_pool: real non-tumour patches in the training split.
        have_generated: without generated patches only ``real-only`` is designed.
        replace_fraction: share of real tumours replaced (thesis: 100/400 = 0.25).
        augment: generated tumours added, as fractions of ``T``.
        tstr: include train-on-synthetic-test-on-real.

    Returns:
        specs, ``real-only`` first.

    Raises:
        DataError: ``T < 4`` or fewer than 4 non-tumour patches.
    """
    if n_real_tumour < 4 or n_non_tumour_pool < 4:
        raise DataError(f"the training split holds {n_real_tumour} tumour and {n_non_tumour_pool} non-tumour "
                        "patches; at least 4 of each are needed")
    t = int(n_real_tumour)
    n = min(t, int(n_non_tumour_pool))
    specs = [ExperimentSpec("real-only", "Real only", "Experiment 1", t, 0, n)]
    if not have_generated:
        return specs
    k = int(round(replace_fraction * t))
    specs.append(ExperimentSpec(f"replace-{round(100 * replace_fraction)}",
                                f"Replacement ({round(100 * replace_fraction)} % of real tumours → generated)",
                                "Experiment 2", t - k, k, n))
    for f in augment:
        specs.append(ExperimentSpec(f"augment+{round(100 * f)}", f"Augmentation (+{round(100 * f)} % generated tumours)",
                                    None, t, int(round(f * t)), n))
    if tstr:
        specs.append(ExperimentSpec("tstr", "Train on synthetic, test on real", None, 0, t, n))
    return specs


@dataclasses.dataclass
class UtilityData:
    """Features and bookkeeping of the real and generated patches.

    Attributes:
        features: ``(N, D) float64`` features of the real patches.
        ids, patients, classes, splits: ``(N,)`` string arrays from the patch manifest.
        generated: ``(G, D) float64`` features of generated tumour patches, or None.
    """

    features: np.ndarray
    ids: np.ndarray
    patients: np.ndarray
    classes: np.ndarray
    splits: np.ndarray
    generated: np.ndarray | None = None

    @classmethod
    def from_rows(cls, rows: Sequence[dict], features: np.ndarray, generated: np.ndarray | None = None
                  ) -> UtilityData:
        if len(rows) != len(features):
            raise ValueError(f"{len(rows)} manifest rows but {len(features)} feature vectors")
        col = lambda k: np.array([str(r[k]) for r in rows])  # noqa: E731
        return cls(np.asarray(features, np.float64), col("image_id"), col("patient_id"), col("class"),
                   col("split"), None if generated is None else np.asarray(generated, np.float64))

    def index(self, split: str, cls: str) -> np.ndarray:
        return np.flatnonzero((self.splits == split) & (self.classes == cls))


def fixed_test_set(data: UtilityData, seed: int) -> np.ndarray:
    """Indices of the balanced real test set: all test tumours and as many test non-tumours.

    The non-tumour subset (or, if non-tumours are fewer, the tumour subset) is drawn with
    ``seed`` (the patch set's seed), so it is the same for every experiment and repeat.

    Raises:
        DataError: the test split lacks a class.
    """
    tum, non = data.index(TEST, TUMOUR), data.index(TEST, NON_TUMOUR)
    if len(tum) == 0 or len(non) == 0:
        raise DataError(f"the test split holds {len(tum)} tumour and {len(non)} non-tumour patches; need both")
    k = min(len(tum), len(non))
    rng = np.random.default_rng([int(seed), 7919])
    tum = np.sort(rng.permutation(tum)[:k]) if len(tum) > k else tum
    non = np.sort(rng.permutation(non)[:k]) if len(non) > k else non
    return np.concatenate([tum, non])


@dataclasses.dataclass
class TrainingSet:
    """The training set of one experiment and seed.

    Attributes:
        X: ``(n, D)`` features; y: ``(n,)`` labels (1 = tumour); groups: ``(n,)`` patient
            ids (generated images: ``"generated-<i>"``); real_ids: ids of real patches used;
            generated_idx: indices into the generated pool.
    """

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    real_ids: list[str]
    generated_idx: list[int]


def seed_draws(data: UtilityData, seed: int) -> dict:
    """The random choices of one repeat, shared by all its experiments.

    Returns:
        ``{"tumour": permutation of real training tumour indices, "non_tumour": permutation
        of real training non-tumour indices, "generated": permutation of generated indices}``.
    """
    rng = np.random.default_rng([int(seed), 104729])
    gen_n = 0 if data.generated is None else len(data.generated)
    return {"tumour": rng.permutation(data.index(TRAIN, TUMOUR)),
            "non_tumour": rng.permutation(data.index(TRAIN, NON_TUMOUR)),
            "generated": rng.permutation(gen_n)}


def build_training_set(data: UtilityData, spec: ExperimentSpec, draws: dict, test_idx: np.ndarray) -> TrainingSet:
    """Assemble an experiment's training set from one seed's draws.

    Real tumours are the first ``n_real_tumour`` of the seed's tumour order (the replaced
    ones are its last ``T − n_real_tumour``); generated ones the first
    ``n_generated_tumour`` of its generated order; non-tumours the first ``n_non_tumour``.

    Raises:
        DataError: too few generated patches.
        DataLeakageError: a training patch or patient is in the test set.
    """
    tum = draws["tumour"][: spec.n_real_tumour]
    non = draws["non_tumour"][: spec.n_non_tumour]
    gen = draws["generated"][: spec.n_generated_tumour]
    if len(gen) < spec.n_generated_tumour:
        raise DataError(f"experiment {spec.name} needs {spec.n_generated_tumour} generated tumour patches; "
                        f"only {len(gen)} given (generate more with --n-generated)")
    real = np.concatenate([tum, non]).astype(int)
    test_patients = set(data.patients[test_idx])
    leaked = [i for i in real if data.splits[i] != TRAIN or data.patients[i] in test_patients]
    if leaked:
        i = leaked[0]
        raise DataLeakageError(f"{spec.name}: training patch {data.ids[i]} (patient {data.patients[i]}) is in "
                               "the held-out test split")
    parts_X = [data.features[real]]
    parts_y = [(data.classes[real] == TUMOUR).astype(int)]
    parts_g = [data.patients[real]]
    if len(gen):
        parts_X.append(data.generated[gen])
        parts_y.append(np.ones(len(gen), int))
        parts_g.append(np.array([f"generated-{int(i)}" for i in gen]))
    return TrainingSet(np.concatenate(parts_X), np.concatenate(parts_y), np.concatenate(parts_g),
                       [str(x) for x in data.ids[real]], [int(i) for i in gen])


def run_experiments(data: UtilityData, specs: Sequence[ExperimentSpec], seeds: Sequence[int], test_seed: int = 0,
                    c_grid: Sequence[float] = DEFAULT_C_GRID, inner_folds: int = 5, progress: bool = True) -> dict:
    """Train and test every experiment for every seed.

    Args:
        data: features of real (and generated) patches.
        specs: from :func:`design_experiments`.
        seeds: repeat seeds (each: draws + inner-CV shuffling + LinearSVC order).
        test_seed: seed of the fixed balanced test subset (the patch set's seed).
        c_grid, inner_folds: see :func:`~keras_mammo.utility.classifier.fit_linear_svm`.
        progress: tqdm bar over (seed, experiment) fits.

    Returns:
        ``{"test": {"ids", "patients", "y", "n", "n_tumour", "n_non_tumour", "n_patients",
        "seed"}, "experiments": {name: {"spec": {...}, "runs": [{"seed", "C",
        "inner_cv_balanced_accuracy", "inner_folds", "n_train", "metrics", "scores",
        "train_ids", "generated_idx"}]}}}``; ``scores`` are the test decision values in
        test order.
    """
    from tqdm.auto import tqdm

    test_idx = fixed_test_set(data, test_seed)
    y_test = (data.classes[test_idx] == TUMOUR).astype(int)
    out = {
        "test": {"ids": [str(x) for x in data.ids[test_idx]], "patients": [str(x) for x in data.patients[test_idx]],
                 "y": y_test.tolist(), "n": int(len(test_idx)), "n_tumour": int(y_test.sum()),
                 "n_non_tumour": int((1 - y_test).sum()), "n_patients": int(len(set(data.patients[test_idx]))),
                 "seed": int(test_seed)},
        "experiments": {s.name: {"spec": dataclasses.asdict(s), "runs": []} for s in specs},
    }
    X_test = data.features[test_idx]
    bar = tqdm(total=len(seeds) * len(specs), desc="SVM fits", unit="fit", disable=not progress, leave=False)
    for seed in seeds:
        draws = seed_draws(data, seed)
        for spec in specs:
            ts = build_training_set(data, spec, draws, test_idx)
            svm = fit_linear_svm(ts.X, ts.y, ts.groups, seed=int(seed), c_grid=c_grid, inner_folds=inner_folds)
            scores = svm.decision_function(X_test)
            out["experiments"][spec.name]["runs"].append({
                "seed": int(seed), "C": svm.C, "inner_cv_balanced_accuracy": svm.inner_cv_score,
                "inner_folds": svm.inner_folds,
                "n_train": {"tumour_real": spec.n_real_tumour, "tumour_generated": spec.n_generated_tumour,
                            "non_tumour": spec.n_non_tumour, "total": int(len(ts.y)),
                            "patients": int(len({g for g in ts.groups if not g.startswith("generated-")}))},
                "metrics": classification_metrics(y_test, scores),
                "scores": [float(s) for s in scores],
                "train_ids": ts.real_ids, "generated_idx": ts.generated_idx,
            })
            bar.update(1)
    bar.close()
    return out


def summarize(results: dict, n_boot: int = 1000, boot_seed: int = 0, reference: str = "real-only") -> dict:
    """Mean ± std over seeds and patient-bootstrap 95 % intervals of every metric.

    Adds ``"summary"`` to each experiment of ``results`` (in place) and returns ``results``::
        summary[metric] = {"mean", "std" (ddof=1; 0 for one seed), "min", "max",
                           "n_seeds", "seeds", "n_test", "ci95", "n_boot", "boot_seed"}
        summary["delta_<metric>"] = {"mean", "ci95", "p_le_0", ...}   (vs ``reference``)
        summary["confusion_mean"] = mean ``[[TN, FP], [FN, TP]]`` over seeds
    """

    y = np.asarray(results["test"]["y"])
    scores = {name: [np.asarray(r["scores"]) for r in e["runs"]] for name, e in results["experiments"].items()}
    boot = patient_bootstrap(y, scores, results["test"]["patients"], n_boot=n_boot, seed=boot_seed,
                             reference=reference if reference in scores else None)
    for name, e in results["experiments"].items():
        runs = e["runs"]
        seeds = [r["seed"] for r in runs]
        summ = {}
        for m in METRICS:
            vals = np.array([r["metrics"][m] for r in runs], np.float64)
            summ[m] = {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                       "min": float(np.min(vals)), "max": float(np.max(vals)), "n_seeds": len(vals), "seeds": seeds,
                       "n_test": int(len(y)), "ci95": boot[name][m]["ci95"], "n_boot": int(n_boot),
                       "boot_seed": int(boot_seed)}
            if f"delta_{m}" in boot[name]:
                summ[f"delta_{m}"] = dict(boot[name][f"delta_{m}"], reference=reference, n_seeds=len(vals),
                                          seeds=seeds, n_test=int(len(y)), boot_seed=int(boot_seed))
        summ["confusion_mean"] = np.mean([r["metrics"]["confusion"] for r in runs], axis=0).tolist()
        summ["confusion_sum"] = np.sum([r["metrics"]["confusion"] for r in runs], axis=0).astype(int).tolist()
        e["summary"] = summ
    return results
