"""Training runs: one directory per run, resumable at any moment.

``train(cfg)`` creates or resumes ``cfg.run_dir``::

    config.yaml            the resolved configuration
    dataset_manifest.jsonl the prepared-dataset rows this run trains on
    data_info.json         classes, image count, prepared resolution
    checkpoints/           ckpt-<epoch>.npz (atomic; the newest `keep_checkpoints`)
    samples/               fixed-latent sample grids per epoch, latest.png
    losses_steps.csv       per-step losses (step, epoch, resolution, alpha, d_loss, g_loss, ...)
    losses_epochs.csv      per-epoch means and images/s
    loss_curve.png         the loss curve (Rahali 2025, Fig. 4.1)
    tensorboard/           TensorBoard scalars and images
    run.json               status, timings

A run killed at any moment (the thesis summary lost its Colab session every 15 minutes)
continues from its newest checkpoint when ``train`` is called again with the same config:
weights, optimizer moments, step counters, dropout seeds, the stage and fade-in progress
are restored, and each epoch's data order and latent vectors are functions of
``(seed, epoch)`` and ``(seed, step)``, so the resumed run reaches the same weights as an
uninterrupted one.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import tensorflow as tf
import yaml

from keras_mammo.config import Config, dump_config, from_dict
from keras_mammo.data.pipeline import (
    fixed_batch,
    kept_rows,
    make_train_dataset,
    open_stage,
    steps_per_epoch,
)
from keras_mammo.errors import ConfigError, DataError
from keras_mammo.models.registry import DataInfo, build_model
from keras_mammo.training.callbacks import RunMonitor, truncate_csv
from keras_mammo.training.checkpoint import latest_checkpoint, restore_checkpoint
from keras_mammo.training.gan import GAN
from keras_mammo.utils import set_global_seed, write_json_atomic, write_text_atomic

#: Keys that may differ when a run is resumed (they extend or observe it, not change it).
RESUMABLE_KEYS = {"train.epochs", "train.checkpoint_every", "train.sample_every", "train.keep_checkpoints",
                  "train.tensorboard", "run_dir", "export", "data.workers", "data.cache_mb"}


def get_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy for ``train.strategy``.

    ``mirrored`` mirrors over all GPUs, or over all logical CPU devices when there is no
    GPU and several were configured (how the code path is tested on CPU);
    ``multi_worker`` reads the cluster from ``TF_CONFIG``.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"train.strategy: {name!r} is not allowed; allowed values: default, mirrored, multi_worker")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and k != "params":
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def _strip_stage_epochs(flat: dict) -> dict:
    out = dict(flat)
    if isinstance(out.get("train.stages"), list):
        out["train.stages"] = [{k: v for k, v in s.items() if k != "epochs"} for s in out["train.stages"]]
    return out


def config_differences(old: Config, new: Config) -> list[str]:
    """Dotted keys whose values differ in a way that a resumed run cannot honour."""
    a = _strip_stage_epochs(_flatten(old.to_dict()))
    b = _strip_stage_epochs(_flatten(new.to_dict()))
    keys = sorted(set(a) | set(b))
    return [k for k in keys if a.get(k) != b.get(k) and not any(k == r or k.startswith(r + ".") for r in RESUMABLE_KEYS)]


def make_optimizers(cfg: Config, model: GAN):
    """Adam optimizers for G and D from the config or the model's published defaults."""
    d = model.default_optimizer
    t = cfg.train

    def pick(value, key):
        return d[key] if value is None else value

    def adam(lr):
        opt = keras.optimizers.Adam(lr, beta_1=pick(t.beta_1, "beta_1"), beta_2=pick(t.beta_2, "beta_2"))
        return keras.optimizers.LossScaleOptimizer(opt) if t.precision == "mixed_float16" else opt

    return adam(pick(t.g_learning_rate, "g_learning_rate")), adam(pick(t.d_learning_rate, "d_learning_rate"))


def build_run_model(cfg: Config, data_info: DataInfo) -> GAN:
    """Build, compile and fully create (variables + optimizer slots) the run's model."""
    model = build_model(cfg, data_info)
    g_opt, d_opt = make_optimizers(cfg, model)
    model.compile(g_optimizer=g_opt, d_optimizer=d_opt, jit_compile=bool(cfg.train.jit_compile))
    model.build_networks()
    model.build_optimizers()
    return model


def load_run_config(run_dir: str | Path) -> Config:
    """The resolved config stored in a run directory.

    Raises:
        DataError: no ``config.yaml`` in ``run_dir``.
    """
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise DataError(f"{run_dir}: not a keras-mammo run directory (no config.yaml)")
    return from_dict(Config, yaml.safe_load(path.read_text()))


def load_data_info(run_dir: str | Path) -> DataInfo:
    path = Path(run_dir) / "data_info.json"
    return DataInfo(**json.loads(path.read_text())) if path.is_file() else DataInfo()


def _prepare_data(cfg: Config, run_dir: Path, progress: bool) -> list[dict]:
    prepared = Path(cfg.data.prepared)
    if not (prepared / "manifest.jsonl").is_file():
        from keras_mammo.data.prepare import prepare_dataset

        print(f"no prepared dataset at {prepared}: preprocessing first", flush=True)
        prepare_dataset(cfg.data, prepared, progress=progress)
    rows = kept_rows(prepared)
    manifest = run_dir / "dataset_manifest.jsonl"
    if manifest.is_file():
        old = [json.loads(x)["image_id"] for x in manifest.read_text().splitlines() if x.strip()]
        if old != [r["image_id"] for r in rows]:
            raise DataError(f"{prepared}: the prepared dataset changed since {run_dir} started "
                            f"({len(old)} → {len(rows)} images); use a new run_dir")
    else:
        write_text_atomic(manifest, "".join(json.dumps(r) + "\n" for r in rows))
    return rows


def train(cfg: Config, progress: bool = True, callbacks: tuple = ()) -> Path:
    """Train (or resume) the run described by ``cfg``; returns the run directory.

    ``callbacks``: extra ``keras.callbacks.Callback`` objects run after the run's own
    monitor in every stage's ``fit`` (e.g. ``bench/bench_train.py``'s timer).

    Raises:
        ConfigError: the run directory was started with an incompatible config.
        DataError: missing/changed data, or a checkpoint that does not fit the model.
        TrainingDivergedError: a loss became NaN/Inf (the last good checkpoint is kept).
    """
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = latest_checkpoint(run_dir)
    if (run_dir / "config.yaml").is_file():
        diffs = config_differences(load_run_config(run_dir), cfg)
        if diffs and ckpt is not None:
            raise ConfigError(f"run_dir: {run_dir} was started with a different configuration ({', '.join(diffs)}); "
                              f"choose a new run_dir to train with these settings")
    write_text_atomic(run_dir / "config.yaml", dump_config(cfg))
    rows = _prepare_data(cfg, run_dir, progress)

    t = cfg.train
    policy = keras.mixed_precision.global_policy().name
    from tensorflow.python.framework import config as tf_config

    was_deterministic = tf_config.is_op_determinism_enabled()
    keras.mixed_precision.set_global_policy(t.precision)
    set_global_seed(cfg.seed, deterministic_ops=t.deterministic)
    strategy = get_strategy(t.strategy)
    schedule = t.schedule()
    try:
        with strategy.scope():
            # classes come from the data; the model decides which batch keys it needs
            from keras_mammo.data.pipeline import dataset_classes

            info = DataInfo(classes=dataset_classes(rows), num_images=len(rows),
                            resolution=int(json.loads((Path(cfg.data.prepared) / "dataset.json").read_text())["size"])
                            if (Path(cfg.data.prepared) / "dataset.json").is_file() else 0)
            write_json_atomic(run_dir / "data_info.json", info.__dict__)
            model = build_run_model(cfg, info)
        model_cls_needs = tuple(model.inputs_needed)
        state = {"epoch": 0, "stage_index": 0, "stage": None}
        if ckpt is not None:
            state = restore_checkpoint(ckpt, model.checkpoint_variables())
            print(f"resuming {run_dir} from {ckpt.name} (epoch {state['epoch']}, step {int(model.step.numpy())})",
                  flush=True)
        completed = int(state["epoch"])
        for name in ("losses_steps.csv", "losses_epochs.csv"):
            truncate_csv(run_dir / name, completed)
        ends, total = [], 0
        for st in schedule:
            total += st.epochs
            ends.append(total)
        fixed_latents = GAN.fixed_latents(t.sample_count, cfg.model.latent_dim, cfg.seed)
        status = {"status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "model": cfg.model.name}
        write_json_atomic(run_dir / "run.json", status)
        for i, st in enumerate(schedule):
            if completed >= ends[i]:
                continue
            start_epoch = max(completed, ends[i] - st.epochs)
            resumed_here = state.get("stage") and state.get("stage_index") == i and completed > ends[i] - st.epochs
            start_step = state["stage"]["stage_start_step"] if resumed_here and "stage_start_step" in state["stage"] \
                else int(model.step.numpy())
            model.set_stage(st.resolution, st.fade_in_images if i > 0 else 0, start_step, t.batch_size)
            stage = open_stage(cfg.data.prepared, st.resolution, model_cls_needs, cfg.data.cache_mb << 20)
            steps = steps_per_epoch(stage.size, t.batch_size, t.steps_per_epoch)
            ds = make_train_dataset(stage, t.batch_size, cfg.seed, start_epoch, ends[i], steps)

            def state_fn(done, i=i):
                return {"epoch": done, "stage_index": i, "stage": model.stage_state(), "step": int(model.step.numpy()),
                        "seed": cfg.seed, "model": cfg.model.name}

            monitor = RunMonitor(run_dir, i, st.resolution, ends[i], steps, t.batch_size, t.checkpoint_every,
                                 t.sample_every, t.keep_checkpoints, fixed_latents,
                                 fixed_batch(stage, t.sample_count), state_fn, t.tensorboard, progress)
            model.fit(ds, epochs=ends[i], initial_epoch=start_epoch, steps_per_epoch=steps,
                      callbacks=[monitor, *callbacks], verbose=0, shuffle=False)
            completed = ends[i]
            state = state_fn(completed)
        status.update(status="finished", finished=time.strftime("%Y-%m-%dT%H:%M:%S"), epochs=completed,
                      step=int(model.step.numpy()))
        write_json_atomic(run_dir / "run.json", status)
    finally:
        keras.mixed_precision.set_global_policy(policy)
        if not was_deterministic:  # leave the process as we found it
            tf_config.disable_op_determinism()
    return run_dir


def load_run_model(run_dir: str | Path, checkpoint: str | Path | int | None = None) -> tuple[GAN, Config, dict]:
    """Rebuild a run's model and restore a checkpoint (default: the newest).

    Args:
        checkpoint: a checkpoint path, an epoch number, or None for the newest.

    Returns:
        ``(model, config, state)``; the model is set to the checkpoint's stage, α synced.

    Raises:
        DataError: not a run directory, or no such checkpoint.
    """
    from keras_mammo.training.checkpoint import list_checkpoints

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if checkpoint is None:
        path = latest_checkpoint(run_dir)
        if path is None:
            raise DataError(f"{run_dir}: the run has no checkpoint yet; train it first")
    elif isinstance(checkpoint, int) or str(checkpoint).isdigit():
        matches = [p for p in list_checkpoints(run_dir) if int(p.stem.split("-")[1]) == int(checkpoint)]
        if not matches:
            raise DataError(f"{run_dir}: no checkpoint for epoch {checkpoint}; have "
                            f"{[int(p.stem.split('-')[1]) for p in list_checkpoints(run_dir)]}")
        path = matches[0]
    else:
        path = Path(checkpoint)
    model = build_run_model(cfg, load_data_info(run_dir))
    state = restore_checkpoint(path, model.checkpoint_variables())
    st = state.get("stage") or {}
    if st.get("resolution"):
        model.set_stage(st["resolution"], st.get("fade_in_images", 0), st.get("stage_start_step", 0),
                        st.get("global_batch", 1))
    if hasattr(model, "sync_alpha"):
        model.sync_alpha()
    return model, cfg, state
