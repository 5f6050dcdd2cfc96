"""``keras-mammo sweep``: a Taguchi design of real training runs, scored by FID."""
from __future__ import annotations

import click

from cli.common import quiet_option, user_errors


@click.command()
@click.option("--config", "config_path", type=str, required=True,
              help="Sweep config: a normal config plus a `sweep:` section (bundled: taguchi-dcgan, taguchi-stylegan).")
@click.option("--design", type=click.Choice(["L9", "L4", "L8", "L18", "full", "paper"]), default=None,
              help="Design (default: the config's, else L9). `paper`: Reyes-Hernández et al. 2025's nine rows "
                   "(not orthogonal).")
@click.option("--prepared", type=click.Path(file_okay=False), default=None,
              help="Prepared dataset (preprocessed first if missing).")
@click.option("--resolution", type=int, default=None, help="Training resolution of every trial, in pixels.")
@click.option("--trial-seconds", type=float, default=None, help="Wall-clock training budget of each trial, in s.")
@click.option("--repeats", type=int, default=None, help="Seeds per design row (default 1); S/N is over them.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Sweep directory (default: sweeps/<config name>); rerunning continues it.")
@click.option("--address", type=str, default=None,
              help="Ray cluster to join (`auto` or host:port); default: a local Ray instance.")
@click.option("--engine", type=click.Choice(["ray", "local"]), default="ray", show_default=True,
              help="`local` runs the trials one after another in this process, without Ray.")
@click.option("--cpus-per-trial", type=float, default=None,
              help="Ray CPUs per trial (default: all local CPUs, so trials run one at a time).")
@click.option("--gpus-per-trial", type=float, default=None, help="Ray GPUs per trial (default 0).")
@click.option("--no-confirm", is_flag=True, help="Skip the confirmation run of the predicted optimum.")
@click.option("--plan", is_flag=True, help="Print the design's rows and its orthogonality check; train nothing.")
@quiet_option
@user_errors
def sweep(config_path, design, prepared, resolution, trial_seconds, repeats, out_dir, address, engine,
          cpus_per_trial, gpus_per_trial, no_confirm, plan, quiet):
    """Choose hyper-parameters with a Taguchi design (L9 by default) of real training runs.

    Every design row is a `train` run in its own directory under --out, scored by FID and
    KID against the prepared films (with N and the real-vs-real floor). Writes trials.csv,
    main_effects.csv, main_effects.png (S/N by level) and report.md (response table, ANOVA
    percent contribution, predicted optimum beside its confirmation run). A killed sweep,
    rerun with the same command, continues: finished trials are not re-trained.

    \b
    Examples:
      keras-mammo sweep --config taguchi-dcgan --resolution 32 --trial-seconds 60
      keras-mammo sweep --config taguchi-dcgan --design paper --out sweeps/paper
    """
    from pathlib import Path

    from keras_mammo.errors import EXTRAS, require_extra

    # --plan and --engine local run without Ray
    require_extra("sweep", "keras-mammo sweep" + (" --engine ray" if engine == "ray" and not plan else ""),
                  tuple(m for m in EXTRAS["sweep"] if m != "ray" or (engine == "ray" and not plan)))
    from keras_mammo.sweep.runner import plan_sweep, run_sweep

    if plan:
        from keras_mammo.sweep.design import decode

        _, spec, codes, orth = plan_sweep(config_path, design=design, prepared=prepared, resolution=resolution,
                                          trial_seconds=trial_seconds, repeats=repeats)
        click.echo(f"design {spec.design}: {len(codes)} rows × {spec.repeats} repeat(s)")
        for i, row in zip(codes.index, decode(codes, spec.factors)):
            click.echo(f"  {i:>2}: " + ", ".join(f"{k}={v}" for k, v in row.items()))
        click.echo(orth.describe())
        return

    out = out_dir or str(Path("sweeps") / Path(config_path).stem)
    try:
        res = run_sweep(config_path, out, design=design, prepared=prepared, resolution=resolution,
                        trial_seconds=trial_seconds, repeats=repeats, engine=engine, address=address,
                        cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                        confirm=False if no_confirm else None,
                        echo=(lambda *a, **k: None) if quiet else click.echo)
    except KeyboardInterrupt:
        raise click.ClickException(f"interrupted: finished trials are kept in {out}; rerun the same command to "
                                   f"continue the sweep") from None
    a = res.analysis
    click.echo(f"optimum: {', '.join(f'{k}={v}' for k, v in a.optimum.items())}; predicted S/N "
               f"{a.predicted_sn:.2f} dB (FID ≈ {a.predicted_fid:.4g})")
    if res.confirmation:
        c = res.confirmation
        click.echo(f"confirmation: S/N {c['sn']:.2f} dB, FID {c['fid']:.4g}; at N={c['floor_n']}/side "
                   f"{c['fid_matched']:.4g} = {c['x_floor']:.2f}× the floor {c['fid_floor']:.4g}; KID {c['kid']:.4g}")
    click.echo(f"report: {res.out_dir}/report.md ({res.seconds:.0f} s)")
