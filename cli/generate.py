"""``keras-mammo generate``."""
from __future__ import annotations

import click

from cli.common import user_errors


@click.command()
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Training run directory (newest checkpoint unless --checkpoint).")
@click.option("--model", "model_path", type=click.Path(exists=True, file_okay=False), default=None,
              help="SavedModel directory (a version folder, or saved_models/<name> for the newest).")
@click.option("-n", "--count", type=click.IntRange(min=1), default=16, show_default=True, help="Images to generate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Latent seed: same seed → same images.")
@click.option("--checkpoint", type=str, default=None, help="Checkpoint epoch number or path (runs only).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", show_default=True, help="PNG bit depth.")
@click.option("--prefix", default="synthetic", show_default=True, help="File-name prefix.")
@click.option("--grid/--no-grid", default=True, show_default=True, help="Also write grid.png.")
@click.option("--overwrite", is_flag=True, help="Replace existing files of the same names.")
@user_errors
def generate(run_dir, model_path, count, seed, checkpoint, out_dir, bits, prefix, grid, overwrite):
    """Generate synthetic mammograms as PNG files from a run or a SavedModel (streamed in batches)."""
    from keras_mammo.generate import write_images

    if bool(run_dir) == bool(model_path):
        raise click.UsageError("give exactly one of --run or --model")
    res = write_images(run_dir or model_path, count, out_dir, seed=seed, checkpoint=checkpoint, bits=int(bits),
                       prefix=prefix, overwrite=overwrite, grid=grid)
    if res["grid"]:
        click.echo(f"grid: {res['grid']}")
    click.echo(f"wrote {res['count']} images ({res['shape'][0]}×{res['shape'][1]}, {bits}-bit) to {out_dir}")
