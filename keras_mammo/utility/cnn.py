"""A small CNN trained from scratch on the patches: the second classifier of the utility protocol.

Issue 22, deliverable 3: a frozen-feature linear SVM (Rahali 2025, §3.6) can only use what
ImageNet features already encode; a network trained on the patches can learn the
lesion's own texture, and is the classifier a synthetic-data user would train. On 2 CPU
cores a small network from scratch fits (the backbone is not fine-tuned):

    input (S, S, 1) in [0, 1]  (S = ``CNNOptions.size``, default 64 px)
    4 × [Conv 3×3 (16, 32, 64, 96 filters) → BatchNorm → ReLU → MaxPool 2×2]
    GlobalAveragePooling → Dropout(0.3) → Dense(1)   (logit: > 0 means tumour)

Training: Adam (lr 1e-3), binary cross-entropy on logits, classes weighted inversely to
their frequency, mini-batches of 32. **Early stopping** on the ROC AUC of a validation
split of the *training patients* (:func:`~keras_mammo.utility.crossval.folds.validation_split`;
the test fold is never seen), patience ``patience`` epochs, best weights restored; the
first ``min_epochs`` epochs are never chosen (with BatchNorm statistics still settling,
an early epoch's validation ROC AUC is noise; on MIAS, without this floor, 4 of 5
real-only folds stopped at epoch 1 with constant predictions).
Validation patches are real and un-augmented; augmented or synthetic patches of
validation patients are dropped from the fit part by the caller.
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class CNNOptions:
    """Hyper-parameters of the small CNN.

    Attributes:
        size: input side in pixels (patches are resized to it).
        filters: filters of the conv blocks.
        epochs: maximum epochs.
        patience: early-stopping patience, epochs without a better validation ROC AUC.
        min_epochs: epochs trained before early stopping may pick or stop (Keras
            ``EarlyStopping(start_from_epoch=...)``).
        batch_size: mini-batch size.
        learning_rate: Adam step size.
        val_fraction: share of the training patients held out for early stopping.
    """

    size: int = 64
    filters: tuple = (16, 32, 64, 96)
    epochs: int = 40
    patience: int = 6
    min_epochs: int = 8
    batch_size: int = 32
    learning_rate: float = 1e-3
    val_fraction: float = 0.2


def build_cnn(options: CNNOptions):
    """The uncompiled Keras model, ``(B, S, S, 1) float32 → (B, 1)`` logits."""
    import keras
    from keras import layers

    inp = keras.Input((options.size, options.size, 1))
    x = inp
    for f in options.filters:
        x = layers.Conv2D(int(f), 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    return keras.Model(inp, layers.Dense(1)(x), name="patch_cnn")


def fit_cnn(x_fit: np.ndarray, y_fit: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, options: CNNOptions,
            seed: int = 0) -> tuple[object, dict]:
    """Train the CNN with early stopping on the validation patches.

    Args:
        x_fit: ``(N, S, S) float32`` in ``[0, 1]`` at ``options.size``; y_fit ``(N,)`` 0/1.
        x_val, y_val: validation patches of other (training) patients, both classes.
        options: :class:`CNNOptions`.
        seed: weight initialisation and batch order (``keras.utils.set_random_seed``).

    Returns:
        ``(model, info)``; ``info = {"epochs_run", "best_epoch", "best_val_auc", "n_fit", "n_val"}``.

    Raises:
        ValueError: a class missing from the fit or validation part.
    """
    import keras

    y_fit = np.asarray(y_fit, np.float32)
    y_val = np.asarray(y_val, np.float32)
    for name, y in (("fit", y_fit), ("validation", y_val)):
        if len(set(y.tolist())) < 2:
            raise ValueError(f"fit_cnn: the {name} part holds one class only")
    keras.utils.set_random_seed(int(seed))
    model = build_cnn(options)
    model.compile(optimizer=keras.optimizers.Adam(options.learning_rate),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.AUC(from_logits=True, name="auc")])
    pos = float(y_fit.mean())
    class_weight = {0: 0.5 / (1.0 - pos), 1: 0.5 / pos}
    stop = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=int(options.patience),
                                         restore_best_weights=True, start_from_epoch=int(options.min_epochs))
    hist = model.fit(np.asarray(x_fit, np.float32)[..., None], y_fit, validation_data=(
        np.asarray(x_val, np.float32)[..., None], y_val), epochs=int(options.epochs), batch_size=int(options.batch_size),
        class_weight=class_weight, callbacks=[stop], shuffle=True, verbose=0)
    aucs = hist.history.get("val_auc", [float("nan")])
    best = stop.best_epoch if stop.best_weights is not None else len(aucs) - 1
    return model, {"epochs_run": len(aucs), "best_epoch": best + 1, "best_val_auc": float(aucs[best]),
                   "n_fit": int(len(y_fit)), "n_val": int(len(y_val))}


def cnn_scores(model, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Logits of ``(N, S, S) float32`` patches, ``(N,) float64``; > 0 means tumour."""
    return np.asarray(model.predict(np.asarray(images, np.float32)[..., None], batch_size=batch_size, verbose=0),
                      np.float64).reshape(-1)
