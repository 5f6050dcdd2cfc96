"""``keras-mammo export``."""
from __future__ import annotations

import click

from cli.common import note, precision_option, quiet_option, user_errors


@click.command()
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False), required=True,
              help="Training run directory.")
@click.option("--checkpoint", type=str, default=None, help="Checkpoint epoch number or path (default newest).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Model base path for TF Serving (default: the run's export.dir, saved_models).")
@click.option("--name", default=None, help="Model name (default: the run's export.name).")
@click.option("--version", type=int, default=None, help="Version number (default: next free).")
@precision_option("Compute dtype of the exported graph")
@quiet_option
@user_errors
def export(run_dir, checkpoint, out_dir, name, version, precision, quiet):
    """Export the generator as a TF-Serving SavedModel: <out>/<name>/<version>/.

    \b
    Examples:
      keras-mammo export --run runs/quickstart                 # saved_models/quickstart/<next>/
      keras-mammo export --run runs/mias --checkpoint 40 --name mias-e40 --version 1

    \b
    Signatures (unconditional models):
      serving_default: latent float32 [N, 128]       -> images uint8 [N, H, W, 1]
      generate:        count int32 [], seed int64 [] -> images uint8 [count, H, W, 1]
      generate_png, generate_png16: count, seed      -> images_png_bytes string [count]
      latent_png, latent_png16:     latent           -> images_png_bytes string [N]
      (8- or 16-bit PNGs; TF Serving's REST API returns them as {"b64": ...})
    Inspect with: saved_model_cli show --all --dir <out>/<name>/<version>
    """
    from keras_mammo.generation.export import export_model

    path = export_model(run_dir, out_dir, name, version, checkpoint, precision=precision)
    click.echo(f"SavedModel: {path}")
    note(f"serve: tensorflow_model_server --model_name={path.parent.name} --model_base_path={path.parent.resolve()}", quiet)
