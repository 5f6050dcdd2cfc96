"""``keras-mammo train``."""
from __future__ import annotations

import click

from cli.common import parse_sets, user_errors


def _model_help() -> str:
    from keras_mammo.models.registry import model_summaries

    return "; ".join(f"{k}: {v}" for k, v in model_summaries().items())


class _LazyHelpCommand(click.Command):
    def format_help(self, ctx, formatter):
        for p in self.params:
            if p.name == "model":
                p.help = "Registered model — " + _model_help()
        super().format_help(ctx, formatter)


@click.command(cls=_LazyHelpCommand)
@click.option("--config", "config_path", type=str, default=None,
              help="YAML config file or bundled name (quickstart, thesis).")
@click.option("--model", type=str, default=None, help="Registered model name.")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Run directory; an existing run resumes from its newest checkpoint.")
@click.option("--prepared", type=click.Path(file_okay=False), default=None,
              help="Prepared dataset (preprocessed first if missing).")
@click.option("--epochs", type=int, default=None, help="Epochs for a fixed-resolution run.")
@click.option("--resolution", type=int, default=None,
              help="Training resolution; on a progressive config, train only the stages up to it.")
@click.option("--max-seconds", type=int, default=None,
              help="Wall-clock budget of the run in seconds (train.max_seconds); a resumed run counts time spent.")
@click.option("--batch-size", type=int, default=None, help="Global batch size (thesis: 32).")
@click.option("--seed", type=int, default=None, help="Random seed (same seed, same machine → same images).")
@click.option("--export/--no-export", "do_export", default=False,
              help="Export a SavedModel to saved_models/<name>/<version> when training ends.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override any config key, e.g. train.mixed_precision=true.")
@user_errors
def train(config_path, model, run_dir, prepared, epochs, resolution, max_seconds, batch_size, seed, do_export, sets):
    """Train a GAN on a prepared dataset; resumes automatically after a kill.

    Writes to the run directory: config.yaml, dataset_manifest.jsonl, checkpoints/,
    samples/ (fixed-latent grids), losses_steps.csv, losses_epochs.csv, loss_curve.png,
    tensorboard/. A loss that becomes NaN/Inf stops training with the last good
    checkpoint kept.
    """
    from keras_mammo.config import load_config
    from keras_mammo.training.run import train as run_training

    overrides = {"model.name": model, "run_dir": run_dir, "data.prepared": prepared, "train.epochs": epochs,
                 "train.resolution": resolution, "train.batch_size": batch_size, "seed": seed,
                 "train.max_seconds": max_seconds, **parse_sets(sets)}
    if resolution is not None and epochs is None and load_config(config_path, {**overrides, "train.resolution": None,
                                                                               "train.stages": None}).train.stages:
        overrides["train.resolution"], overrides["train.max_resolution"] = None, resolution   # stages up to R
    elif epochs is not None or resolution is not None:
        overrides["train.stages"] = []
    cfg = load_config(config_path, overrides)
    out = run_training(cfg)
    click.echo(f"run: {out} (samples: {out}/samples/latest.png, loss curve: {out}/loss_curve.png)")
    if do_export:
        from keras_mammo.export import export_model

        path = export_model(out, cfg.export.dir, cfg.export.name)
        click.echo(f"SavedModel: {path}")
