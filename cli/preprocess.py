"""``keras-mammo preprocess``."""
from __future__ import annotations

import click

from cli.common import note, parse_sets, quiet_option, user_errors


@click.command()
@click.option("--config", "config_path", type=str, default=None,
              help="YAML config file or bundled name (quickstart, thesis). Its `data` section is used.")
@click.option("--dataset", type=click.Choice(["auto", "mias", "cbis-ddsm", "folder", "mammograms", "rsna", "vindr",
                                             "cmmd", "inbreast"]), default=None,
              help="Dataset adapter (default: auto — MIAS if PATH has Info.txt, the embedded "
                   "`mammograms` package if no PATH, else a folder). rsna, vindr, cmmd, inbreast read "
                   "those datasets' published layouts and metadata tables.")
@click.option("--input", "input_path", type=click.Path(exists=True, file_okay=False), default=None,
              help="Raw dataset folder (MIAS folder, CBIS-DDSM root, image folder).")
@click.option("--csv", "csv_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="CBIS-DDSM case-description CSV (repeatable); for rsna/vindr/cmmd/inbreast a metadata "
                   "table replacing the default one (vindr: breast-level, then finding table).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Prepared-dataset directory (default: data.prepared).")
@click.option("--size", type=int, default=None, help="Output side in pixels, a power of two (default: the config's data.size; 256 without a config).")
@click.option("--min-shape-score", type=float, default=None, help="Shape-score keep threshold in [0, 1] (0.75).")
@click.option("--laterality", type=click.Choice(["any", "L", "R"]), default=None, help="Keep one side only.")
@click.option("--view", "views", multiple=True, help="Keep only these views (CC, MLO; repeatable).")
@click.option("--label", "labels", multiple=True, help="Keep only these labels (e.g. malignant; repeatable).")
@click.option("--birads", multiple=True, help="Keep only these BI-RADS categories (4 also keeps 4A-4C; repeatable).")
@click.option("--density", "densities", multiple=True, help="Keep only these ACR densities A-D (repeatable).")
@click.option("--split", "splits", multiple=True, help="Keep only this official split (VinDr: training, test).")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="Run the per-film work on a Ray cluster: host:port, ray://host:port, auto (RAY_ADDRESS or "
                   "the running cluster) or local (a private local Ray with --workers CPUs). Needs the sweep "
                   "extra; inputs and --out must be on a file system every node sees.")
@click.option("--workers", type=int, default=None, help="Worker processes (default 2).")
@click.option("--limit", type=int, default=None, help="Only the first N films (quick trials).")
@click.option("--overwrite", is_flag=True, help="Replace a prepared dataset made with other settings.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any config key (data.size=128).")
@quiet_option
@user_errors
def preprocess(config_path, dataset, input_path, csv_files, out_dir, size, min_shape_score, laterality, views,
               labels, birads, densities, splits, ray_address, workers, limit, overwrite, sets, quiet):
    """Prepare mammograms for training (Rahali 2025, §3.2.1).

    \b
    Examples:
      keras-mammo preprocess --config quickstart
      keras-mammo preprocess --config mias --input /data/mini-mias
      keras-mammo preprocess --dataset folder --input /data/pacs --size 128 --out prepared/pacs
      keras-mammo preprocess --dataset vindr --input /data/vindr-mammo --split training --birads 4 --birads 5
      keras-mammo preprocess --dataset rsna --input /data/rsna --out prepared/rsna --ray-address auto

    Breast extraction, shape-score filtering, orientation standardization, crop/pad and
    area resize. Writes PNGs, masks, manifest.jsonl/.csv (every input file with kept or
    rejected and why), dataset.json and preview.png. Corrupt files are recorded and skipped.
    Exits non-zero if nothing is kept.
    """
    from keras_mammo.config import load_config
    from keras_mammo.data.prepare import prepare_dataset

    overrides = {"data.dataset": dataset, "data.path": input_path, "data.csv_files": list(csv_files) or None,
                 "data.size": size, "data.min_shape_score": min_shape_score, "data.laterality": laterality,
                 "data.views": list(views) or None, "data.labels": list(labels) or None, "data.workers": workers,
                 "data.birads": list(birads) or None, "data.densities": list(densities) or None,
                 "data.splits": list(splits) or None, "data.ray_address": ray_address,
                 "data.prepared": out_dir, **parse_sets(sets)}
    cfg = load_config(config_path, overrides)
    summary = prepare_dataset(cfg.data, overwrite=overwrite, limit=limit, progress=not quiet)
    out = cfg.data.prepared
    if summary.get("reused"):
        click.echo(f"{out} is up to date ({summary['kept']} of {summary['files']} films kept)")
        return
    click.echo(f"kept {summary['kept']} of {summary['files']} films → {out}")
    for reason, n in summary["rejected_by_reason"].items():
        click.echo(f"  rejected {n}: {reason}")
    for key, n in summary.get("rejected_by_filter", {}).items():
        click.echo(f"    by {key}: {n}")
    if summary.get("metadata_conflicts"):
        click.echo(f"  {summary['metadata_conflicts']} films whose DICOM header disagrees with the metadata table "
                   f"(the table wins; see metadata_conflicts in the manifest)")
    for problem in summary.get("metadata_problems", []):
        click.echo(f"  metadata problem: {problem}")
    note(f"manifest: {out}/manifest.jsonl, preview: {out}/preview.png", quiet)
