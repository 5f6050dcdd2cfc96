"""``keras-mammo models``: the registered architectures and the pretrained generators."""
from __future__ import annotations

import json

import click

from cli.common import quiet_option, user_errors


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@quiet_option
@user_errors
def models(as_json, quiet):
    """List the registered model architectures and the pretrained generators.

    Each pretrained generator is listed with its resolution, FID as a multiple of the
    real-vs-real floor and KID (both at N images per side, from its model_card.json,
    computed when it was shipped), its training budget and the path of its model card.

    \b
    Examples:
      keras-mammo models
      keras-mammo generate --pretrained mias-128 -n 16 --seed 0 --out synthetic/
    """
    from cli.train import registered_model_summaries
    from keras_mammo.pretrained import available_pretrained

    archs = registered_model_summaries()
    shipped = available_pretrained()
    if as_json:
        click.echo(json.dumps({"architectures": archs,
                               "pretrained": [{**{k: (str(v) if k in ("path", "card") else v)
                                                  for k, v in g.__dict__.items()}} for g in shipped]}, indent=2))
        return
    click.echo("Registered architectures (keras-mammo train --model NAME):")
    width = max(map(len, archs), default=0)
    for name, summary in archs.items():
        click.echo(f"  {name:<{width}}  {summary}")
    click.echo("\nPretrained generators (keras-mammo generate --pretrained NAME):")
    if not shipped:
        click.echo("  none in this installation")
        return
    header = ("name", "model", "px", "FID x floor", "KID", "N/side", "near-copies", "training", "card")
    rows = [(g.name, g.model, str(g.resolution), f"{g.fid_over_floor:.2f} ({g.fid:.1f} / {g.fid_floor:.1f})",
             f"{g.kid:.4f}", str(g.n_per_side), f"{g.near_copies}/{g.near_copy_n}",
             f"{g.images_seen / 1000:.1f}k images, {_hours(g.train_seconds)}", str(g.card)) for g in shipped]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for r in (header, *rows):
        click.echo("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
