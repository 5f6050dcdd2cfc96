"""``keras-mammo evaluate``: FID/KID with floors, PSNR/SSIM, histograms, tissue, memorization, losses."""
from __future__ import annotations

import warnings
from pathlib import Path

import click

from cli.common import merge_renamed, note, quiet_option, renamed_option, user_errors


def _run_real_dir(run_dir: Path) -> Path:
    """The prepared dataset a run was trained on (``data.prepared`` of its config.yaml)."""
    from keras_mammo.config import load_config
    from keras_mammo.errors import DataError

    cfg = load_config(run_dir / "config.yaml")
    prepared = Path(cfg.data.prepared)
    candidates = [prepared] if prepared.is_absolute() else [prepared,
                                                            *(p / prepared for p in run_dir.resolve().parents)]
    for c in candidates:
        if (c / "manifest.jsonl").is_file():
            return c
    raise DataError(f"{run_dir}/config.yaml: its prepared dataset {prepared} was not found; pass --real DIR")


@click.command()
@click.option("--real", "real_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Real images: a prepared dataset (manifest.jsonl), a MIAS folder or an image folder. "
                   "Default with --run: the run's prepared dataset.")
@click.option("--synthetic", "synthetic_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder of synthetic images (e.g. `keras-mammo generate --out` output).")
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Training run: generates -n images unless --synthetic is given; its losses are summarized.")
@click.option("--saved-model", "model_path", type=click.Path(exists=True, file_okay=False), default=None,
              help="SavedModel directory to generate -n images from (needs --real).")
@renamed_option("--model", "--saved-model", "model_path", type=click.Path(exists=True, file_okay=False))
@click.option("-n", "--count", type=click.IntRange(min=2), default=None,
              help="Images to generate with --run/--saved-model (default: as many as real images).")
@click.option("--checkpoint", default=None, help="Checkpoint epoch number or path (--run only).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the latent vectors, the real halves and KID's subsets.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Report directory (default: reports/<name of the synthetic set or run>).")
@click.option("--size", type=click.IntRange(min=16), default=None,
              help="Evaluation side in pixels (default: the synthetic images' side).")
@click.option("--splits", type=click.IntRange(min=1), default=3, show_default=True,
              help="Random real halves for the real-vs-real floors.")
@click.option("--kid-subsets", type=click.IntRange(min=1), default=100, show_default=True, help="KID subsets.")
@click.option("--copy-threshold", type=click.FloatRange(min=0), default=None,
              help="Memorization ratio below which an image is flagged as a near-copy [default: 0.4].")
@click.option("--format", "report_format", type=click.Choice(["md", "html"]), default="md", show_default=True,
              help="Report format.")
@click.option("--cache/--no-cache", default=True, show_default=True,
              help="Cache Inception features per image set in the user cache ($KERAS_MAMMO_CACHE).")
@click.option("--segmenter", "segmenter_run", type=click.Path(exists=True, file_okay=False), default=None,
              help="seg-cdcgan runs: a `unet` run whose segmentation of the synthetic films is scored "
                   "against the conditioning masks (Dice, Tripathi et al.).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Inception batch size.")
@click.option("--fid-precision", type=click.Choice(["float32", "bfloat16"]), default="float32", show_default=True,
              help="Inception compute dtype: bfloat16 is about 3x faster on CPUs with AVX512_BF16/AMX, FID within "
                   "0.1% of float32 at 161 images per side (more apart at a few images); compare FIDs of one "
                   "precision only.")
@quiet_option
@user_errors
def evaluate(real_dir, synthetic_dir, run_dir, model_path, model_path_old, count, checkpoint, seed, out_dir, size,
             splits, kid_subsets, copy_threshold, report_format, cache, segmenter_run, batch_size, fid_precision,
             quiet):
    """Evaluate synthetic mammograms against real ones and write a report.

    \b
    Examples:
      keras-mammo evaluate --real prepared/quickstart --synthetic samples/
      keras-mammo evaluate --run runs/quickstart -n 200
      keras-mammo evaluate --saved-model saved_models/quickstart --real prepared/quickstart -n 200

    Writes metrics.json (every number with its N and real-vs-real floor) and report.md
    (or .html) with figures. FID needs ≥ 2 images per side and is biased below ~2,000;
    read it beside its floor and prefer KID at these sizes.
    """
    model_path = merge_renamed(model_path, model_path_old, "--saved-model")
    if synthetic_dir is None and not (run_dir or model_path):
        raise click.UsageError("give --synthetic DIR, or --run DIR / --saved-model PATH to generate images")
    if run_dir and model_path:
        raise click.UsageError("give at most one of --run and --saved-model")
    if synthetic_dir is not None and model_path:
        raise click.UsageError("--saved-model generates the synthetic images; do not combine it with --synthetic")
    if count is not None and synthetic_dir is not None:
        raise click.UsageError("-n sets how many images --run/--saved-model generate; it does not apply to "
                               "--synthetic")
    from keras_mammo.metrics.evaluate import evaluate as run_evaluation
    from keras_mammo.metrics.imagesets import count_images, image_set_from_array, load_image_set, peek_size
    from keras_mammo.metrics.memorization import COPY_RATIO

    if real_dir is None:
        if not run_dir:
            raise click.UsageError("--real DIR is required (it defaults to the run's prepared dataset only with --run)")
        real_dir = _run_real_dir(Path(run_dir))
        note(f"real images: {real_dir} (from {run_dir}/config.yaml)", quiet)
    from keras_mammo.metrics.inception import FIDWeightsError, fid_weights_status

    ready, reason = fid_weights_status()
    if not ready:   # fail before reading or generating anything
        raise FIDWeightsError(reason)
    name = Path(synthetic_dir or run_dir or model_path).resolve().name
    out = Path(out_dir or Path("reports") / name)
    extra = {}
    if synthetic_dir is not None:
        size = size or peek_size(synthetic_dir)
        synthetic = load_image_set(synthetic_dir, size=size, name="synthetic", progress=not quiet)
    else:
        from keras_mammo.generation.generate import generate_images

        n = count or count_images(real_dir)
        source = run_dir or model_path
        note(f"generating {n} images from {source} (seed {seed})", quiet)
        images = generate_images(source, n, seed=seed, checkpoint=checkpoint)
        size = size or int(images.shape[1])
        used = checkpoint
        if used is None:   # a run's default is its best checkpoint when it has one (load_run_model)
            from keras_mammo.training.checkpoint import best_checkpoint

            used = "best" if run_dir and best_checkpoint(run_dir) is not None else "latest"
        synthetic = image_set_from_array(images, "synthetic", size=size,
                                         source=f"generated from {source} (n={n}, seed={seed}, checkpoint={used})")
        extra["generation"] = {"source": str(source), "n": n, "seed": seed, "checkpoint": used}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # the evaluator's warnings are echoed below
        result = run_evaluation(real_dir, synthetic, out, size=size, splits=splits, seed=seed,
                                kid_subsets=kid_subsets,
                                copy_threshold=COPY_RATIO if copy_threshold is None else copy_threshold,
                                cache_dir=None if cache else False, run_dir=run_dir, batch_size=batch_size,
                                progress=not quiet, report_format=report_format, extra=extra,
                                fid_precision=fid_precision)
    _echo_summary(result)
    if run_dir is not None:
        _model_specific(Path(run_dir), segmenter_run, seed, out, result)
    click.echo(f"report: {result['report']}\nmetrics: {out / 'metrics.json'}")


def _model_specific(run_dir: Path, segmenter_run, seed: int, out: Path, result: dict) -> None:
    """Add the paper-specific metrics of seg-cdcgan / pix2pix / unet runs to metrics.json and the report."""
    import json

    from keras_mammo.generation.run_metrics import evaluate_run_model_specific
    from keras_mammo.utils import write_json_atomic

    specific = evaluate_run_model_specific(run_dir, segmenter_run=segmenter_run, seed=seed)
    if specific is None:
        return
    metrics_path = out / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["model_specific"] = specific
    write_json_atomic(metrics_path, metrics)
    report = Path(result["report"])
    text = json.dumps(specific, indent=2)
    section = (f"\n\n## Model-specific metrics ({specific['model']})\n\nComputed on the run's prepared films "
               f"(N = {specific['n_films']}); see `keras_mammo.metrics.model_specific`.\n\n")
    if report.suffix == ".md":
        report.write_text(report.read_text() + section + "```json\n" + text + "\n```\n")
    click.echo(f"model-specific ({specific['model']}): written to {metrics_path}")


def _echo_summary(r: dict) -> None:
    f = r["fid"]
    k = r["kid"]
    click.echo(f"N: {r['real']['n']} real, {r['synthetic']['n']} synthetic at {r['evaluation_size_px']} px")
    if "matched" in f:
        fm, km = f["matched"], k["matched"]
        click.echo(f"FID  {fm['synthetic_vs_real_half']['mean']:.2f}  (real-vs-real floor "
                   f"{fm['real_vs_real_floor']['mean']:.2f}; N={fm['n_per_side']} per side)")
        click.echo(f"KID  {km['synthetic_vs_real_half']['mean']:.5f}  (floor {km['real_vs_real_floor']['mean']:.5f})")
    click.echo(f"FID, all images: {f['full']['value']:.2f}; KID {k['full']['mean']:.5f} ± {k['full']['std']:.5f}")
    m = r["memorization"]
    click.echo(f"near-copies: {m['n_flagged']} of {m['n_synthetic']} (ratio < {m['threshold']})")
    for w in r.get("warnings", []):
        click.echo(f"warning: {w}", err=True)
