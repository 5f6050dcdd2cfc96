"""``keras-mammo utility``."""
from __future__ import annotations

import click

from cli.common import parse_sets, user_errors


def _floats(text: str, name: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected comma-separated numbers, e.g. 0.25,0.5,1", param_hint=name)


def _seeds(text: str | None, repeats: int) -> list[int]:
    if text:
        try:
            return [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise click.BadParameter(f"{text!r}: expected comma-separated integers, e.g. 0,1,2", param_hint="--seeds")
    return list(range(repeats))


@click.command()
@click.option("--patches", "patch_dir", type=click.Path(exists=True, file_okay=False), required=True,
              help="Patch set from `keras-mammo patches`.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="reports/utility", show_default=True,
              help="Report folder: utility.json, report.md, confusion_matrices.png, roc_curves.png.")
@click.option("--generated", "generated_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder of generated tumour patches (PNG).")
@click.option("--generator", "generator", type=click.Path(exists=True, file_okay=False), default=None,
              help="Run directory or SavedModel to generate the tumour patches from.")
@click.option("--generator-run", type=click.Path(exists=True, file_okay=False), default=None,
              help="With --generated: the run that produced the folder, to verify it never saw a test patient.")
@click.option("--train-generator", "train_run", type=click.Path(file_okay=False), default=None,
              help="Train (or resume) a generator in this run directory on the patch set's generator_train/ "
                   "(training-split tumour patches only), then generate from it.")
@click.option("--gan-config", type=str, default=None, help="Config for --train-generator (file or bundled name).")
@click.option("--gan-set", "gan_sets", multiple=True, metavar="KEY=VALUE",
              help="Config override for --train-generator, e.g. train.resolution=64 (repeatable).")
@click.option("-n", "--n-generated", type=click.IntRange(min=1), default=None,
              help="Generated patches to use (default: 2 × the real training tumours).")
@click.option("--generator-seed", type=int, default=0, show_default=True, help="Latent seed for generation.")
@click.option("--checkpoint", type=str, default=None, help="Checkpoint epoch or path of --generator's run.")
@click.option("--backbone", type=click.Choice(["inception", "resnet50"]), default="inception", show_default=True,
              help="resnet50: the thesis's ImageNet ResNet50 (downloads weights, or --weights); inception: the "
                   "FID Inception network, available offline.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Local ResNet50 weights file (.h5, with or without the classifier head).")
@click.option("--seeds", type=str, default=None, help="Comma-separated repeat seeds (default 0..REPEATS-1).")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True, help="Number of seeds.")
@click.option("--augment", type=str, default="0.25,0.5,1", show_default=True,
              help="Augmentation sizes as fractions of the real training tumours.")
@click.option("--replace-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.25,
              show_default=True, help="Share of real training tumours replaced (thesis: 0.25).")
@click.option("--tstr/--no-tstr", default=True, show_default=True, help="Run train-on-synthetic, test-on-real.")
@click.option("--bootstrap", "n_boot", type=click.IntRange(min=10), default=1000, show_default=True,
              help="Patient-bootstrap resamples for the 95 % intervals.")
@click.option("--inner-folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Inner CV folds for the SVM's C.")
@click.option("--analysis-size", type=click.IntRange(min=8), default=None,
              help="Side all patches are resized to before the backbone (default: the smaller of real and "
                   "generated).")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="Feature cache folder (default: <patches>/feature_cache).")
@click.option("--no-cache", is_flag=True, help="Do not read or write cached features.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Backbone batch.")
@click.option("--folds", type=click.IntRange(min=2), default=None,
              help="Cross-validated protocol (issue 22): K patient-grouped stratified folds over ALL patches, "
                   "arms real-only / real+classical augmentation, paired Δ with corrected-t and bootstrap "
                   "intervals, minimum detectable effect; resumable per fold in --out/folds/.")
@click.option("--fold-seed", type=int, default=0, show_default=True, help="With --folds: fold assignment seed.")
@click.option("--classifiers", type=str, default="svm", show_default=True,
              help="With --folds: comma-separated subset of svm (linear SVM on frozen features) and cnn (small "
                   "CNN from scratch, early stopping on training patients).")
@click.option("--copies", type=click.IntRange(min=1), default=2, show_default=True,
              help="With --folds: classical-augmentation copies per real training patch.")
@click.option("--cnn-size", type=click.IntRange(min=16), default=64, show_default=True,
              help="With --folds: CNN input side in pixels.")
@click.option("--cnn-epochs", type=click.IntRange(min=1), default=40, show_default=True,
              help="With --folds: CNN maximum epochs (early stopping on validation ROC AUC, patience 6).")
@click.option("--c-grid", type=str, default=None,
              help="Comma-separated candidate values of the SVM's C (default 1e-5,1e-4,...,10).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or notes; only results, warnings and errors.")
@user_errors
def utility(patch_dir, out_dir, generated_dir, generator, generator_run, train_run, gan_config, gan_sets,
            n_generated, generator_seed, checkpoint, backbone, weights, seeds, repeats, augment, replace_fraction,
            tstr, n_boot, inner_folds, analysis_size, cache_dir, no_cache, batch_size, folds, fold_seed, classifiers,
            copies, cnn_size, cnn_epochs, c_grid, quiet):
    """Does synthetic data help? Tumour vs non-tumour SVM on frozen ImageNet features.

    \b
    Experiments (Rahali 2025, §3.6, Tables 4.4-4.5, counts scaled to the data):
      real-only     T real tumour + T non-tumour training patches     (thesis Exp. 1)
      replace-25    0.75 T real + 0.25 T generated tumour + T non-t.  (thesis Exp. 2)
      augment+F     T real + F·T generated tumour + T non-tumour
      tstr          T generated tumour + T real non-tumour
    With --folds K (the cross-validated protocol of issue 22) every patch is tested once in
    K patient-grouped folds; arms real-only and real + classical augmentation (flips, 90°
    turns, ±10°/±5 % affine, brightness/contrast/gamma on training patches only) are
    compared with paired Δ, corrected resampled t and patient-bootstrap intervals, and the
    report states the minimum detectable effect at 80 % power. A killed run resumes.

    Without --folds:
    every experiment is tested on the same real, patient-held-out, balanced test set and
    repeated over --seeds; the report gives mean ± std, patient-bootstrap 95 % intervals
    and the paired difference to real-only. Generated patches come from --generated,
    --generator or --train-generator; a generator whose training data holds a test-split
    patient is refused.

    \b
    Examples:
      keras-mammo utility --patches patches/mias --generator runs/patch-gan
      keras-mammo utility --patches patches/mias --train-generator runs/patch-gan --gan-config dcgan
      keras-mammo utility --patches patches/mias --generated synthetic/ --generator-run runs/patch-gan
      keras-mammo utility --patches patches/mias --folds 5 --classifiers svm,cnn --out reports/utility-cv
    """
    from keras_mammo.utility.generated import load_generated_dir, train_patch_generator
    from keras_mammo.utility.report import results_table
    from keras_mammo.utility.run import run_utility

    given = [x for x in (generated_dir, generator, train_run) if x]
    if len(given) > 1:
        raise click.UsageError("give at most one of --generated, --generator, --train-generator")
    if generator_run and not generated_dir:
        raise click.UsageError("--generator-run goes with --generated")
    if weights and backbone != "resnet50":
        raise click.UsageError("--weights is for --backbone resnet50")
    if folds:
        if given or generator_run:
            raise click.UsageError("--folds trains every generator once per fold on that fold's training patients; "
                                   "--generated, --generator and --train-generator give one generator for all folds "
                                   "and are refused with --folds")
        _crossval(patch_dir, out_dir, folds, fold_seed, classifiers, copies, cnn_size, cnn_epochs, tstr,
                  _seeds(seeds, repeats), n_boot, inner_folds, backbone, weights,
                  None if no_cache else (cache_dir or "auto"), batch_size, quiet,
                  tuple(_floats(c_grid, "--c-grid")) if c_grid else None)
        return
    generated = info = None
    source = generator or generator_run
    if train_run:
        overrides = parse_sets(gan_sets)
        source = str(train_patch_generator(patch_dir, train_run, config=gan_config, overrides=overrides,
                                           progress=not quiet))
        click.echo(f"generator run: {source}")
    if generated_dir:
        generated, info = load_generated_dir(generated_dir)
    result = run_utility(
        patch_dir, out_dir, backbone=backbone, weights=weights, generated=generated, generated_info=info,
        generated_source=source, n_generated=n_generated, generator_seed=generator_seed, checkpoint=checkpoint,
        seeds=_seeds(seeds, repeats), cache_dir=None if no_cache else (cache_dir or "auto"),
        replace_fraction=replace_fraction, augment=_floats(augment, "--augment"), tstr=tstr, n_boot=n_boot,
        **({"c_grid": tuple(_floats(c_grid, "--c-grid"))} if c_grid else {}),
        inner_folds=inner_folds, analysis_size=analysis_size, batch_size=batch_size, progress=not quiet)
    click.echo(results_table(result))
    prov = result.get("generator_provenance")
    if prov and not prov.get("verified"):
        click.echo(f"warning: {prov['note']}", err=True)
    click.echo(f"report: {out_dir}/report.md, {out_dir}/utility.json")


def _crossval(patch_dir, out_dir, folds, fold_seed, classifiers, copies, cnn_size, cnn_epochs, tstr, seeds, n_boot,
              inner_folds, backbone, weights, cache_dir, batch_size, quiet, c_grid=None):
    """``--folds``: :func:`keras_mammo.utility.crossval.run.run_crossval`."""
    from keras_mammo.utility.cnn import CNNOptions
    from keras_mammo.utility.crossval.report import crossval_table
    from keras_mammo.utility.crossval.run import CrossvalOptions, run_crossval

    options = CrossvalOptions(folds=folds, fold_seed=fold_seed, seeds=tuple(seeds),
                              classifiers=tuple(c.strip() for c in classifiers.split(",") if c.strip()),
                              copies=copies, tstr=tstr, inner_folds=inner_folds, n_boot=n_boot,
                              cnn=CNNOptions(size=cnn_size, epochs=cnn_epochs),
                              **({"c_grid": c_grid} if c_grid else {}))
    result = run_crossval(patch_dir, out_dir, options, backbone=backbone, weights=weights, cache_dir=cache_dir,
                          batch_size=batch_size, progress=not quiet, log=None if quiet else click.echo)
    for clf, c in result["classifiers"].items():
        click.echo(f"\n{clf}:\n{crossval_table(result, clf)}")
        if c["mde"]:
            m = c["mde"]["roc_auc"]
            click.echo(f"minimum detectable effect (80 % power), ROC AUC: {m['corrected_t']:.3f} (corrected t) / "
                       f"{m['bootstrap']:.3f} (patient bootstrap)")
    click.echo(f"report: {out_dir}/report.md, {out_dir}/crossval.json")
