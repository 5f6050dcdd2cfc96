"""``keras-mammo train``."""
from __future__ import annotations

import click

from cli.common import note, parse_sets, quiet_option, user_errors


def registered_model_summaries() -> dict[str, str]:
    """``{name: summary}`` of the registered models, from :mod:`keras_mammo.models.catalog`
    (the model modules' ``@register_model`` declarations read from source, so ``train
    --help`` does not load TensorFlow, about 10 s)."""
    from keras_mammo.models.catalog import declarations

    return {name: d.summary or "" for name, d in declarations().items()}


class _LazyHelpCommand(click.Command):
    def format_help(self, ctx, formatter):
        for p in self.params:
            if p.name == "model":
                p.help = "Registered model name — " + "; ".join(f"{k}: {v}"
                                                                for k, v in registered_model_summaries().items())
        super().format_help(ctx, formatter)


@click.command(cls=_LazyHelpCommand)
@click.option("--config", "config_path", type=str, default=None,
              help="YAML config file or bundled name (quickstart, mias, thesis, ...).")
@click.option("--model", type=str, default=None, help="Registered model name.")
@click.option("--run", "--run-dir", "run_dir", type=click.Path(file_okay=False), default=None,
              help="Run directory; an existing run resumes from its newest checkpoint.")
@click.option("--prepared", type=click.Path(file_okay=False), default=None,
              help="Prepared dataset (preprocessed first if missing).")
@click.option("--epochs", type=str, default=None, metavar="N|A,B,...",
              help="Fixed-resolution config: epochs. Progressive config: N scales the stages' epochs to N in "
                   "total (in proportion); A,B,... sets each stage's epochs. Stages are never dropped.")
@click.option("--resolution", type=int, default=None,
              help="Training resolution; on a progressive config, train only the stages up to it (says so).")
@click.option("--max-seconds", type=int, default=None,
              help="Wall-clock budget of the run in seconds (train.max_seconds); a resumed run counts time spent.")
@click.option("--batch-size", type=int, default=None, help="Global batch size (thesis: 32).")
@click.option("--seed", type=int, default=None, help="Random seed (same seed, same machine → same images).")
@click.option("--export/--no-export", "do_export", default=False,
              help="Export a SavedModel to saved_models/<name>/<version> when training ends.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override any config key, e.g. train.precision=mixed_bfloat16.")
@quiet_option
@user_errors
def train(config_path, model, run_dir, prepared, epochs, resolution, max_seconds, batch_size, seed, do_export, sets,
          quiet):
    """Train a GAN on a prepared dataset; resumes automatically after a kill.

    \b
    Examples:
      keras-mammo train --config quickstart --export
      keras-mammo train --config mias --epochs 6 --run runs/mias-short
      keras-mammo train --config mias --epochs 2,4 --run runs/mias-short
      keras-mammo train --config dcgan --resolution 32 --epochs 5 --set train.batch_size=8

    Writes to the run directory: config.yaml, run.json, data_info.json,
    dataset_manifest.jsonl, checkpoints/, samples/ (fixed-latent grids), losses_steps.csv,
    losses_epochs.csv, loss_curve.png, tensorboard/. A loss that becomes NaN/Inf stops
    training with the last good checkpoint kept.
    """
    from keras_mammo.config import load_config
    from keras_mammo.errors import OptionError
    from keras_mammo.training.schedule import apply_schedule_options, parse_epochs

    if epochs is not None:
        parse_epochs(epochs)   # a bad value answers before the config is loaded
    overrides = {"model.name": model, "run_dir": run_dir, "data.prepared": prepared,
                 "train.batch_size": batch_size, "seed": seed, "train.max_seconds": max_seconds, **parse_sets(sets)}
    cfg = load_config(config_path, overrides)
    refuse_ignored_sets(cfg, sets)
    try:
        cfg = apply_schedule_options(cfg, epochs, resolution, note=lambda message: note(message, quiet))
    except OptionError as exc:
        raise click.UsageError(str(exc)) from None

    from keras_mammo.training.run import train as run_training   # TensorFlow is imported from here on
    from keras_mammo.utils import sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():   # outside the epochs too (preparing data, building the model)
            out = run_training(cfg, progress=not quiet)
    except KeyboardInterrupt:
        from keras_mammo.training.checkpoint import latest_checkpoint

        ckpt = latest_checkpoint(cfg.run_dir)
        raise click.ClickException(
            f"interrupted: the epoch in progress is lost; {cfg.run_dir} resumes from "
            f"{ckpt.name if ckpt else 'its start (no checkpoint yet)'}: rerun the same command to resume") from None
    click.echo(run_summary(out))
    if do_export:
        from keras_mammo.generation.export import export_model

        path = export_model(out, cfg.export.dir, cfg.export.name)
        click.echo(f"SavedModel: {path}")


def run_summary(run_dir) -> str:
    """The closing line of ``train``: the run, the files it left that exist, and how it ended
    (``run.json``), with "rerun the same command to resume" when a signal stopped it."""
    import json
    from pathlib import Path

    out = Path(run_dir)
    files = [f"{what}: {out / name}" for what, name in (("samples", "samples/latest.png"),
                                                         ("loss curve", "loss_curve.png")) if (out / name).is_file()]
    line = f"run: {out}" + (f" ({', '.join(files)})" if files else "")
    try:
        status = json.loads((out / "run.json").read_text())
    except (OSError, ValueError):
        return line
    if status.get("status") == "stopped":
        line += f"\nstopped: {status.get('stop_reason', '')}"
        if status.get("signal"):
            line += "; rerun the same command to resume"
    return line


def refuse_ignored_sets(cfg, sets: tuple[str, ...]) -> None:
    """Refuse a ``--set`` the config would ignore: ``train.epochs`` / ``train.resolution``
    on a progressive config (its stages decide both).

    Raises:
        ConfigError: naming the key and the option that does it instead.
    """
    from keras_mammo.errors import ConfigError

    if not cfg.train.stages:
        return
    given = parse_sets(sets)
    for key, option in (("train.epochs", "--epochs N (scales every stage) or --epochs A,B,..."),
                        ("train.resolution", "--resolution R (trains the stages up to R)")):
        if key in given:
            raise ConfigError(f"--set {key}={given[key]}: this progressive config ignores {key} (its "
                              f"train.stages decide it); use {option}")

