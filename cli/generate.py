"""``keras-mammo generate``."""
from __future__ import annotations

import click

from cli.common import merge_renamed, note, quiet_option, renamed_option, user_errors


@click.command()
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Training run directory (newest checkpoint unless --checkpoint).")
@click.option("--saved-model", "model_path", type=click.Path(exists=True, file_okay=False), default=None,
              help="SavedModel directory (a version folder, or saved_models/<name> for the newest).")
@renamed_option("--model", "--saved-model", "model_path", type=click.Path(exists=True, file_okay=False))
@click.option("-n", "--count", type=click.IntRange(min=1), default=16, show_default=True, help="Images to generate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Latent seed: same seed → same images.")
@click.option("--checkpoint", type=str, default=None, help="Checkpoint epoch number or path (runs only).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", show_default=True, help="PNG bit depth.")
@click.option("--prefix", default="synthetic", show_default=True, help="File-name prefix.")
@click.option("--grid/--no-grid", default=True, show_default=True, help="Also write <prefix>_grid.png.")
@quiet_option
@user_errors
def generate(run_dir, model_path, model_path_old, count, seed, checkpoint, out_dir, bits, prefix, grid, quiet):
    """Generate synthetic mammograms as PNG files from a run or a SavedModel.

    \b
    Examples:
      keras-mammo generate --run runs/quickstart -n 16 --seed 0 --out synthetic/
      keras-mammo generate --saved-model saved_models/quickstart -n 64 --bits 16 --out synthetic/
    """
    model_path = merge_renamed(model_path, model_path_old, "--saved-model")
    if bool(run_dir) == bool(model_path):
        raise click.UsageError("give exactly one of --run or --saved-model")
    from keras_mammo.generate import generate_images, save_images

    images = generate_images(run_dir or model_path, count, seed=seed, checkpoint=checkpoint)
    paths = save_images(images, out_dir, bits=int(bits), prefix=prefix)
    if grid:
        from pathlib import Path

        from keras_mammo.viz import image_grid, save_image

        g = Path(out_dir) / f"{prefix}_grid.png"
        save_image(g, image_grid(images[:64]))
        note(f"grid: {g}", quiet)
    click.echo(f"wrote {len(paths)} images ({images.shape[1]}×{images.shape[2]}, {bits}-bit) to {out_dir}")
