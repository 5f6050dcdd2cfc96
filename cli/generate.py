"""``keras-mammo generate``."""
from __future__ import annotations

import click

from cli.common import user_errors


@click.command()
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Training run directory (newest checkpoint unless --checkpoint).")
@click.option("--model", "model_path", type=click.Path(file_okay=False), default=None,
              help="SavedModel directory (a version folder, or saved_models/<name> for the newest); "
                   "with --server: the model name.")
@click.option("--server", default=None, help="TF Serving REST URL (e.g. http://127.0.0.1:8501) to generate from.")
@click.option("--format", "fmt", type=click.Choice(["png", "dicom"]), default="png", show_default=True,
              help="png, or dicom: 16-bit synthetic Secondary Capture files without patient data.")
@click.option("-n", "--count", type=click.IntRange(min=1), default=16, show_default=True, help="Images to generate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Latent seed: same seed → same images.")
@click.option("--checkpoint", type=str, default=None, help="Checkpoint epoch number or path (runs only).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", show_default=True, help="PNG bit depth.")
@click.option("--prefix", default="synthetic", show_default=True, help="File-name prefix.")
@click.option("--grid/--no-grid", default=True, show_default=True, help="Also write grid.png.")
@user_errors
def generate(run_dir, model_path, server, fmt, count, seed, checkpoint, out_dir, bits, prefix, grid):
    """Generate synthetic mammograms (PNG or DICOM) from a run, a SavedModel or a TF Serving server."""
    from keras_mammo.generate import generate_images, save_images

    if bool(run_dir) == bool(model_path):
        raise click.UsageError("give exactly one of --run or --model")
    if server and not model_path:
        raise click.UsageError("--server needs --model NAME (the served model's name)")
    served = {}
    if server:
        from keras_mammo.serving.client import generate_from_server

        images, served = generate_from_server(server, model_path, count, seed=seed)
    else:
        images = generate_images(run_dir or model_path, count, seed=seed, checkpoint=checkpoint)
    if fmt == "dicom":
        from keras_mammo.dicom import save_dicoms, source_provenance

        prov = source_provenance(run_dir or model_path, seed, checkpoint, server, served.get("version"))
        paths = save_dicoms(images, out_dir, prov, prefix=prefix)
    else:
        paths = save_images(images, out_dir, bits=int(bits), prefix=prefix)
    if grid:
        from pathlib import Path

        from keras_mammo.viz import image_grid, save_image

        g = Path(out_dir) / f"{prefix}_grid.png"
        save_image(g, image_grid(images[:64]))
        click.echo(f"grid: {g}")
    click.echo(f"wrote {len(paths)} images ({images.shape[1]}×{images.shape[2]}, "
               f"{'16-bit DICOM' if fmt == 'dicom' else f'{bits}-bit'}) to {out_dir}")
