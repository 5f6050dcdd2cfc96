"""Training runs: one directory per run, resumable at any moment.

``train(cfg)`` creates or resumes ``cfg.run_dir``::

    config.yaml            the resolved configuration
    dataset_manifest.jsonl the prepared-dataset rows this run trains on
    data_info.json         classes, image count, prepared resolution
    checkpoints/           ckpt-<epoch>.npz (atomic; the newest `keep_checkpoints`), best.npz
                           (lowest in-training FID, never rotated; with train.eval_every)
    eval.csv               in-training FID/KID, floor, evaluation share (train.eval_every)
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
from contextlib import nullcontext
from pathlib import Path

import keras
import tensorflow as tf
import yaml

from keras_mammo.config import Config, dump_config, load_run_config, resolve_run_config  # noqa: F401 - load_run_config re-exported
from keras_mammo.data.pipeline import (
    dataset_classes,
    fixed_batch,
    kept_rows,
    make_train_dataset,
    open_stage,
    steps_per_epoch,
)
from keras_mammo.data.prepare import prepare_dataset
from keras_mammo.errors import ConfigError, DataError
from keras_mammo.models.gan import GAN
from keras_mammo.models.registry import DataInfo, build_model
from keras_mammo.precision import (  # noqa: F401 - INFERENCE_POLICIES re-exported
    INFERENCE_POLICIES, dtype_policy, inference_precision)
from keras_mammo.training.callbacks import RunMonitor, truncate_csv
from keras_mammo.training.checkpoint import best_checkpoint, latest_checkpoint, list_checkpoints, restore_checkpoint, restore_latest
from keras_mammo.training.evaluation import Budget, RunControl, truncate_eval_csv
from keras_mammo.training.lock import run_dir_lock
from keras_mammo.training.progress import RunProgress, StopRequest, record_run_end
from keras_mammo.training.schedule import check_resolution, prepared_size
from keras_mammo.utils import set_global_seed, write_json_atomic, write_text_atomic

#: Keys that may differ when a run is resumed (they extend or observe it, not change it).
RESUMABLE_KEYS = {"train.epochs", "train.checkpoint_every", "train.sample_every", "train.keep_checkpoints",
                  "train.tensorboard", "run_dir", "export", "data.workers", "train.max_seconds", "train.eval_every",
                  "train.early_stop_evals", "train.use_ema", "data.cache_mb"}


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
    model.configure_training(cfg.train)
    return model


def load_data_info(run_dir: str | Path) -> DataInfo:
    path = Path(run_dir) / "data_info.json"
    return DataInfo(**json.loads(path.read_text())) if path.is_file() else DataInfo()


def _prepare_data(cfg: Config, run_dir: Path, progress: bool) -> list[dict]:
    prepared = Path(cfg.data.prepared)
    if not (prepared / "manifest.jsonl").is_file():
        print(f"no prepared dataset at {prepared}: preprocessing first", flush=True)
        summary = prepare_dataset(cfg.data, prepared, progress=progress)
        print(f"kept {summary['kept']} of {summary['files']} films → {prepared}"
              + "".join(f"\n  rejected {n}: {reason}" for reason, n in summary["rejected_by_reason"].items())
              + f"\nmanifest: {prepared}/manifest.jsonl", flush=True)
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


def _check_stage_progress(run_dir: Path, schedule, completed: int, stage_index: int,
                          previous_config: str | None = None) -> None:
    """Refuse a schedule that would send a resumed run back to a stage it has already left.

    Happens when a run shortened with ``--epochs`` (say 1 + 1 epochs, now at 128 px) is
    continued with longer stages (200 + 400): epoch 3 would fall in the 64-px stage again.
    On refusal the run's previous ``config.yaml`` text is put back.

    Raises:
        ConfigError: naming the run directory and the ``--epochs`` that would continue it.
    """
    total = 0
    for i, st in enumerate(schedule):
        total += st.epochs
        if completed < total:
            break
    else:
        return   # nothing left to train
    if i >= stage_index:
        return
    hint = ""
    if previous_config is not None:
        write_text_atomic(run_dir / "config.yaml", previous_config)
        old = yaml.safe_load(previous_config).get("train", {}).get("stages") or []
        if len(old) == len(schedule) and stage_index < len(old):
            kept = [str(s.get("epochs", 0)) for s in old[:stage_index]]
            hint = f" (here --epochs {','.join(kept + ['N'] * (len(old) - stage_index))})"
    raise ConfigError(f"run_dir: {run_dir} has finished {completed} epochs and reached stage {stage_index + 1} "
                      f"({schedule[stage_index].resolution} px); with these stages' epochs epoch {completed + 1} "
                      f"would fall back into stage {i + 1} ({schedule[i].resolution} px). Continue it by keeping "
                      f"the finished stages' epochs{hint}, or train into a new --run")


def check_trainable(cfg: Config, prepared_size: int | None = None) -> None:
    """Refuse settings that would train nothing or train on upscaled films.

    Args:
        prepared_size: the prepared dataset's image size in pixels (``dataset.json``),
            or None when not known yet.

    Raises:
        ConfigError: ``epochs`` (or a stage's) is 0, ``steps_per_epoch`` is < 1, or a
            stage's resolution is above ``prepared_size``
            (:func:`~keras_mammo.training.schedule.check_resolution`; one line naming the key).
    """
    t = cfg.train
    for i, st in enumerate(t.schedule()):
        key = f"train.stages[{i}]" if t.stages else "train"
        if st.epochs < 1:
            raise ConfigError(f"{key}.epochs: {st.epochs} trains nothing; give ≥ 1 epoch")
        check_resolution(st.resolution, [], prepared_size, cfg.data.prepared, option=f"{key}.resolution")
    if t.steps_per_epoch is not None and t.steps_per_epoch < 1:
        raise ConfigError(f"train.steps_per_epoch: {t.steps_per_epoch} trains nothing; give ≥ 1, or null for "
                          f"images // batch_size")


def train(cfg: Config, progress: bool = True, callbacks: tuple = (), stop_on_signal: bool = True) -> Path:
    """Train (or resume) the run described by ``cfg``; returns the run directory.

    ``callbacks``: extra ``keras.callbacks.Callback`` objects run after the run's own
    monitor in every stage's ``fit`` (e.g. ``bench/bench_train.py``'s timer).

    The run directory is locked for the whole run (:func:`~keras_mammo.training.lock.run_dir_lock`).
    With ``stop_on_signal`` (the default), in the main thread, a first SIGINT/SIGTERM
    stops the run when the current epoch ends, with that epoch checkpointed (``run.json``:
    ``stopped``, the signal in ``stop_reason``); a second raises :class:`KeyboardInterrupt`
    at once (:class:`~keras_mammo.training.progress.StopRequest`).
    Every run end that trained an epoch writes ``samples/latest.png`` and ``loss_curve.png``.
    A sweep trial passes ``stop_on_signal=False``: a signal must end it at once, not look
    like a trial that finished its budget.

    Raises:
        ConfigError: the run directory was started with an incompatible config, is in
            use by another process, or the settings train nothing (:func:`check_trainable`).
        DataError: missing/changed data, or a checkpoint that does not fit the model.
        TrainingDivergedError: a loss became NaN/Inf (the last good checkpoint is kept).
    """
    check_trainable(cfg, prepared_size(cfg))
    stop = StopRequest() if stop_on_signal else None
    with run_dir_lock(cfg.run_dir, warn=lambda m: print(f"warning: {m}", flush=True)), (stop or nullcontext()):
        return _train(cfg, progress, callbacks, stop)


def _train(cfg: Config, progress: bool, callbacks: tuple = (), stop_request: StopRequest | None = None) -> Path:
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = latest_checkpoint(run_dir)
    # train.precision: auto → this machine's choice for a new run, the recorded one for a resumed run
    cfg, previous, previous_config = resolve_run_config(cfg, run_dir)
    if previous is not None:
        diffs = config_differences(previous, cfg)
        if diffs and ckpt is not None:
            raise ConfigError(f"run_dir: {run_dir} was started with a different configuration ({', '.join(diffs)}); "
                              f"choose a new run_dir to train with these settings")
    write_text_atomic(run_dir / "config.yaml", dump_config(cfg))
    rows = _prepare_data(cfg, run_dir, progress)

    t = cfg.train
    policy = keras.mixed_precision.global_policy().name
    from tensorflow.python.framework import config as tf_config

    was_deterministic = tf_config.is_op_determinism_enabled()
    was_remapping = tf.config.optimizer.get_experimental_options().get("remapping", True)
    keras.mixed_precision.set_global_policy(t.precision)
    set_global_seed(cfg.seed, deterministic_ops=t.deterministic)
    strategy = get_strategy(t.strategy)
    schedule = t.schedule()
    try:
        with strategy.scope():
            # classes come from the data; the model decides which batch keys it needs
            info = DataInfo(classes=dataset_classes(rows), num_images=len(rows),
                            resolution=int(json.loads((Path(cfg.data.prepared) / "dataset.json").read_text())["size"])
                            if (Path(cfg.data.prepared) / "dataset.json").is_file() else 0)
            write_json_atomic(run_dir / "data_info.json", info.__dict__)
            model = build_run_model(cfg, info)
        model_cls_needs = tuple(model.inputs_needed)
        state = {"epoch": 0, "stage_index": 0, "stage": None}
        if ckpt is not None:
            ckpt, state = restore_latest(run_dir, model.checkpoint_variables(),
                                         warn=lambda m: print(f"warning: {m}", flush=True))
            print(f"resuming {run_dir} from {ckpt.name} (epoch {state['epoch']}, step {int(model.step.numpy())})",
                  flush=True)
        completed = int(state["epoch"])
        _check_stage_progress(run_dir, schedule, completed, int(state.get("stage_index") or 0), previous_config)
        for name in ("losses_steps.csv", "losses_epochs.csv"):
            truncate_csv(run_dir / name, completed)
        truncate_eval_csv(run_dir, completed)
        budget = Budget(t.max_seconds, float(state.get("seconds", 0.0)))
        total_epochs = sum(st.epochs for st in schedule)
        if ckpt is not None and completed >= total_epochs:   # an override that changes nothing says so
            print(f"{run_dir} has already trained {completed} epochs (this schedule has {total_epochs}): nothing "
                  f"to train; a larger --epochs continues it", flush=True)
        elif budget.exhausted():
            print(f"train.max_seconds: {run_dir} has already spent {budget.spent():.0f} s of its {t.max_seconds} s "
                  f"budget: nothing to train; a larger --max-seconds continues it", flush=True)
        stop_reason = None
        ends, total = [], 0
        for st in schedule:
            total += st.epochs
            ends.append(total)
        fixed_latents = GAN.fixed_latents(t.sample_count, cfg.model.latent_dim, cfg.seed)
        status = {"status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "model": cfg.model.name}
        write_json_atomic(run_dir / "run.json", status)
        budget_left = (lambda: t.max_seconds - budget.spent()) if t.max_seconds else None
        run_progress = RunProgress(schedule, completed, budget_left=budget_left) if progress else None
        monitor = None
        for i, st in enumerate(schedule):
            if completed >= ends[i]:
                continue
            if budget.exhausted():
                stop_reason = "budget"
                break
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
                        "seed": cfg.seed, "model": cfg.model.name, "seconds": round(budget.spent(), 3)}

            monitor = RunMonitor(run_dir, i, st.resolution, ends[i], steps, t.batch_size, t.checkpoint_every,
                                 t.sample_every, t.keep_checkpoints, fixed_latents,
                                 fixed_batch(stage, t.sample_count), state_fn, t.tensorboard, progress)
            every, end_i = max(1, t.checkpoint_every), ends[i]
            control = RunControl(run_dir, cfg, st.resolution, ends[i], i == len(schedule) - 1, t.batch_size, steps,
                                 budget, state_fn, lambda done, e=every, end=end_i: done % e == 0 or done == end,
                                 progress, stop_request)
            stage_callbacks = [monitor, control, *([run_progress.for_stage(i, steps)] if run_progress else []),
                               *callbacks]
            history = model.fit(ds, epochs=ends[i], initial_epoch=start_epoch, steps_per_epoch=steps,
                                callbacks=stage_callbacks, verbose=0, shuffle=False)
            ran = len(history.epoch) if history is not None else ends[i] - start_epoch
            completed = start_epoch + ran
            state = state_fn(completed)
            if control.stop_reason is not None:
                stop_reason = control.stop_reason
                break
        if monitor is not None:   # every run end leaves samples/latest.png and loss_curve.png
            monitor.write_final(completed)
        status.update(status="finished" if stop_reason is None else "stopped", finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
                      epochs=completed, step=int(model.step.numpy()), seconds=round(budget.spent(), 3))
        if stop_reason is not None:
            status["stop_reason"] = {"budget": f"train.max_seconds ({t.max_seconds} s) spent",
                                     "early_stop": f"{t.early_stop_evals} evaluations without a lower FID",
                                     "signal": f"{stop_request.signal_name}: stopped after epoch {completed}, "
                                               f"checkpointed"}[stop_reason]
            if stop_reason == "signal":
                status["signal"] = stop_request.signal_name
        write_json_atomic(run_dir / "run.json", status)
    except BaseException as exc:   # Ctrl-C, SIGTERM (as SystemExit) or an error: run.json says so
        record_run_end(run_dir / "run.json", exc)
        raise
    finally:
        keras.mixed_precision.set_global_policy(policy)
        if not was_deterministic:  # leave the process as we found it (see set_global_seed)
            tf_config.disable_op_determinism()
            tf.config.optimizer.set_experimental_options({"remapping": was_remapping})
    return run_dir


def load_run_model(run_dir: str | Path, checkpoint: str | Path | int | None = None,
                   ema: bool | None = None, precision: str | None = None) -> tuple[GAN, Config, dict]:
    """Rebuild a run's model and restore a checkpoint (default: ``best``, else the newest).

    Args:
        checkpoint: ``None`` (``checkpoints/best.npz`` when the run has one, else the
            newest), ``"best"``, ``"latest"`` (the newest), an epoch number, or a path.
            A ``":raw"`` suffix (``"latest:raw"``, ``"best:raw"``, ``"12:raw"``, ``":raw"``)
            selects the raw generator weights instead of the EMA ones.
        ema: use the EMA generator weights when the checkpoint has them (None:
            ``train.use_ema`` of the run, unless ``":raw"`` is given).
        precision: the compute dtype of the rebuilt model: None (default) → the one the
            run trained in (:func:`~keras_mammo.precision.inference_precision`:
            ``"bfloat16"`` for ``mixed_bfloat16`` runs, else ``"float32"``), so images are
            those of in-training evaluation; ``"float32"``; or ``"bfloat16"`` (Keras
            ``mixed_bfloat16``: float32 weights, bfloat16 convolutions; about 2.5× faster
            generation on CPUs with AVX512_BF16/AMX; on a trained 64 px fastgan run the
            pixels differed from float32 by 0.12/255 on average, by at most 1.8/255 for
            99.9 % of them and 5.9/255 at most, so 16-bit outputs carry about 8 bits). The global
            dtype policy is left as it was.

    Returns:
        ``(model, config, state)``; the model is set to the checkpoint's stage, α synced,
        and its generator holds the EMA weights (see ``ema``).

    Raises:
        DataError: not a run directory, or no such checkpoint.
        ValueError: ``precision`` is not a key of :data:`INFERENCE_POLICIES`.
    """

    if precision is not None and precision not in INFERENCE_POLICIES:
        raise ValueError(f"precision must be one of {sorted(INFERENCE_POLICIES)}, got {precision!r}")

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    precision = precision or inference_precision(cfg.train.precision)
    if isinstance(checkpoint, str) and checkpoint.endswith(":raw"):
        checkpoint, ema = checkpoint[:-4] or None, False
    if checkpoint == "best":
        path = best_checkpoint(run_dir)
        if path is None:
            raise DataError(f"{run_dir}: no best checkpoint (checkpoints/best.npz is written by in-training "
                            f"evaluation, train.eval_every > 0); use --checkpoint latest")
    elif checkpoint is None or checkpoint in ("latest", "newest"):
        path = best_checkpoint(run_dir) if checkpoint is None else None
        path = path or latest_checkpoint(run_dir)
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
    with dtype_policy(INFERENCE_POLICIES[precision]):
        model = build_run_model(cfg, load_data_info(run_dir))
    if checkpoint is None and path.name != "best.npz":  # no best checkpoint: the newest intact one
        path, state = restore_latest(run_dir, model.checkpoint_variables(),
                                     warn=lambda m: print(f"warning: {m}", flush=True))
    else:
        state = restore_checkpoint(path, model.checkpoint_variables())
    st = state.get("stage") or {}
    if st.get("resolution"):
        model.set_stage(st["resolution"], st.get("fade_in_images", 0), st.get("stage_start_step", 0),
                        st.get("global_batch", 1))
    if hasattr(model, "sync_alpha"):
        model.sync_alpha()
    use_ema = cfg.train.use_ema if ema is None else ema
    if use_ema and model.ema is not None:
        model.ema.copy_to_generator()
    state["checkpoint"] = path.name
    state["weights"] = "ema" if use_ema and model.ema is not None else "raw"
    state["precision"] = precision
    return model, cfg, state
