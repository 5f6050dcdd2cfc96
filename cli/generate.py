"""``keras-mammo generate``."""
from __future__ import annotations

import click

from cli.common import merge_renamed, note, precision_option, quiet_option, user_errors


@click.command()
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Training run directory (newest checkpoint unless --checkpoint).")
@click.option("--saved-model", "model_path", type=click.Path(exists=True, file_okay=False), default=None,
              help="SavedModel directory (a version folder, or saved_models/<name> for the newest).")
@click.option("--pretrained", default=None, metavar="NAME",
              help="A pretrained generator shipped with keras-mammo (mias-64, mias-128; `keras-mammo models`).")
@click.option("--model", "model_name", default=None,
              help="With --server: the served model's name. (Without --server, the old spelling of --saved-model.)")
@click.option("--server", default=None, help="TF Serving REST URL (e.g. http://127.0.0.1:8501) to generate from.")
@click.option("--format", "fmt", type=click.Choice(["png", "dicom"]), default="png", show_default=True,
              help="png, or dicom: 16-bit synthetic Secondary Capture files without patient data.")
@click.option("-n", "--count", type=click.IntRange(min=1), default=16, show_default=True, help="Images to generate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Latent seed: same seed → same images.")
@click.option("--checkpoint", type=str, default=None, help="Checkpoint epoch number or path (runs only).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", show_default=True, help="PNG bit depth (16: from a SavedModel or server through its 16-bit PNG signature).")
@click.option("--prefix", default="synthetic", show_default=True, help="File-name prefix.")
@click.option("--grid/--no-grid", default=True, show_default=True, help="Also write <prefix>_grid.png.")
@click.option("--overwrite", is_flag=True, help="Replace existing files of the same names (never without it).")
@precision_option("--run only: compute dtype")
@quiet_option
@user_errors
def generate(run_dir, model_path, pretrained, model_name, server, fmt, count, seed, checkpoint, out_dir, bits, prefix, grid,
             overwrite, precision, quiet):
    """Generate synthetic mammograms (PNG or DICOM) from a run, a SavedModel or a TF Serving server.

    Images are generated (or fetched from the server) and written batch by batch, so
    memory stays flat in -n. PNGs carry text chunks saying they are synthetic (model, run,
    seed); DICOM files always hold 16-bit pixels (from a SavedModel or server through its
    16-bit PNG signature). Existing files are never replaced without --overwrite.

    \b
    Examples:
      keras-mammo generate --pretrained mias-128 -n 16 --seed 0 --out synthetic/
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
    sources = [x for x in (run_dir, model_path, pretrained, server) if x]
    if len(sources) != 1:
        raise click.UsageError("give exactly one of --run, --saved-model, --pretrained or --server")
    if pretrained:
        from keras_mammo.pretrained import pretrained_path

        model_path = str(pretrained_path(pretrained))   # a SavedModel like any other: one generation path
    if server and not model_name:
        raise click.UsageError("--server needs --model NAME (the served model's name)")
    from keras_mammo.errors import OptionError
    from keras_mammo.generation.generate import check_precision_source, write_images

    try:
        check_precision_source(precision, run_dir or model_path or model_name, server)
    except OptionError as exc:
        raise click.UsageError(str(exc)) from None
    res = write_images(run_dir or model_path or model_name, count, out_dir, seed=seed, checkpoint=checkpoint,
                       bits=int(bits), prefix=prefix, overwrite=overwrite, grid=grid, fmt=fmt, server=server,
                       precision=precision)
    if res["grid"]:
        note(f"grid: {res['grid']}", quiet)
    kind = "16-bit DICOM" if fmt == "dicom" else f"{res['bits']}-bit"
    click.echo(f"wrote {res['count']} images ({res['shape'][0]}×{res['shape'][1]}, {kind}) to {out_dir}")
