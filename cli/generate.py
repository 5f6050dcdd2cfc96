"""``keras-mammo generate``."""
from __future__ import annotations

import click

from cli.common import merge_renamed, note, quiet_option, user_errors


@click.command()
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Training run directory (newest checkpoint unless --checkpoint).")
@click.option("--saved-model", "model_path", type=click.Path(exists=True, file_okay=False), default=None,
              help="SavedModel directory (a version folder, or saved_models/<name> for the newest).")
@click.option("--model", "model_name", default=None,
              help="With --server: the served model's name. (Without --server, the old spelling of --saved-model.)")
@click.option("--server", default=None, help="TF Serving REST URL (e.g. http://127.0.0.1:8501) to generate from.")
@click.option("--format", "fmt", type=click.Choice(["png", "dicom"]), default="png", show_default=True,
              help="png, or dicom: 16-bit synthetic Secondary Capture files without patient data.")
@click.option("-n", "--count", type=click.IntRange(min=1), default=16, show_default=True, help="Images to generate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Latent seed: same seed → same images.")
@click.option("--checkpoint", type=str, default=None, help="Checkpoint epoch number or path (runs only).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", show_default=True, help="PNG bit depth.")
@click.option("--prefix", default="synthetic", show_default=True, help="File-name prefix.")
@click.option("--grid/--no-grid", default=True, show_default=True, help="Also write <prefix>_grid.png.")
@click.option("--overwrite", is_flag=True, help="Replace existing files of the same names (never without it).")
@quiet_option
@user_errors
def generate(run_dir, model_path, model_name, server, fmt, count, seed, checkpoint, out_dir, bits, prefix, grid,
             overwrite, quiet):
    """Generate synthetic mammograms (PNG or DICOM) from a run, a SavedModel or a TF Serving server.

    PNGs from a run or a SavedModel are generated and written in batches (memory flat in
    -n) and carry text chunks saying they are synthetic (model, run, seed). Existing files
    are never replaced without --overwrite.

    \b
    Examples:
      keras-mammo generate --run runs/quickstart -n 16 --seed 0 --out synthetic/
      keras-mammo generate --saved-model saved_models/quickstart -n 64 --bits 16 --out synthetic/
      keras-mammo generate --server http://127.0.0.1:8501 --model quickstart -n 100 --out synthetic/
      keras-mammo generate --run runs/quickstart -n 8 --format dicom --out synthetic_dicom/
    """
    if not server and model_name is not None:
        from pathlib import Path

        if not Path(model_name).is_dir():
            raise click.BadParameter(f"{model_name}: no such SavedModel folder (--model names a served model "
                                     "only with --server; use --saved-model DIR)", param_hint="--model")
        click.echo(f"note: --model DIR is now --saved-model; using --saved-model {model_name}", err=True)
        model_path = merge_renamed(model_path, model_name, "--saved-model")
        model_name = None
    sources = [x for x in (run_dir, model_path, server) if x]
    if len(sources) != 1:
        raise click.UsageError("give exactly one of --run, --saved-model or --server")
    if server and not model_name:
        raise click.UsageError("--server needs --model NAME (the served model's name)")
    if fmt == "png" and not server:
        from keras_mammo.generate import write_images

        res = write_images(run_dir or model_path, count, out_dir, seed=seed, checkpoint=checkpoint, bits=int(bits),
                           prefix=prefix, overwrite=overwrite, grid=grid)
        if res["grid"]:
            note(f"grid: {res['grid']}", quiet)
        click.echo(f"wrote {res['count']} images ({res['shape'][0]}×{res['shape'][1]}, {bits}-bit) to {out_dir}")
        return
    from pathlib import Path

    from keras_mammo.generate import _check_count, generate_images, save_images

    _check_count(count)
    grid_path = Path(out_dir) / f"{prefix}_grid.png"
    if grid and grid_path.exists() and not overwrite:
        raise click.UsageError(f"{grid_path} exists already; pass --overwrite to replace it or --no-grid")
    served = {}
    if server:
        from keras_mammo.serving.client import generate_from_server

        images, served = generate_from_server(server, model_name, count, seed=seed,
                                              bits=16 if fmt == "dicom" else int(bits))
    else:
        images = generate_images(run_dir or model_path, count, seed=seed, checkpoint=checkpoint,
                                 bits=16 if fmt == "dicom" else int(bits))
    if fmt == "dicom":
        from keras_mammo.dicom import save_dicoms, source_provenance

        prov = source_provenance(run_dir or model_path or model_name, seed, checkpoint, server, served.get("version"))
        paths = save_dicoms(images, out_dir, prov, prefix=prefix)
    else:   # from a server: the served model's name and version stand for the run
        text = {"Synthetic": "true", "Software": "keras-mammo", "Model": str(model_name),
                "Description": "Synthetic mammogram generated by a GAN (keras-mammo); not an image of a real patient",
                "Run": f"served version {served.get('version')}", "Seed": str(int(seed))}
        paths = save_images(images, out_dir, bits=int(bits), prefix=prefix, text=text)
    if grid:
        from keras_mammo.viz import image_grid, save_image

        save_image(grid_path, image_grid(images[:64]))
        note(f"grid: {grid_path}", quiet)
    click.echo(f"wrote {len(paths)} images ({images.shape[1]}×{images.shape[2]}, "
               f"{'16-bit DICOM' if fmt == 'dicom' else f'{bits}-bit'}) to {out_dir}")
