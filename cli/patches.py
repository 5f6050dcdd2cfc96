"""``keras-mammo patches``."""
from __future__ import annotations

import click

from cli.common import user_errors


@click.command()
@click.option("--input", "input_path", type=click.Path(exists=True, file_okay=False), default=None,
              help="Raw dataset folder (default: the MIAS folder from $KERAS_MAMMO_MIAS or ../shared/data/mini-mias).")
@click.option("--dataset", type=click.Choice(["auto", "mias", "cbis-ddsm"]), default="auto", show_default=True,
              help="Dataset adapter; it must give lesion locations (MIAS Info.txt, CBIS-DDSM ROI masks).")
@click.option("--csv", "csv_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="CBIS-DDSM case-description CSV (repeatable).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Patch-set directory.")
@click.option("--size", type=click.IntRange(min=8), default=128, show_default=True, help="Patch side in pixels.")
@click.option("--crop-size", type=click.IntRange(min=8), default=None,
              help="Crop side in film pixels before resizing to SIZE (default: SIZE, no resize).")
@click.option("--crop", type=click.Choice(["fixed", "lesion"]), default="fixed", show_default=True,
              help="fixed: every crop is CROP_SIZE film pixels (same physical scale for both classes); "
                   "lesion: tumour crops grow to 2 × radius × 1.2 and are resized to SIZE.")
@click.option("--normals-per-film", type=click.IntRange(min=0), default=2, show_default=True,
              help="Non-tumour patches sampled per eligible film.")
@click.option("--normal-source", type=click.Choice(["normal-films", "lesion-free"]), default="normal-films",
              show_default=True, help="Non-tumour tissue from normal films, or from tissue away from every lesion "
                                      "(for datasets without normal films, e.g. CBIS-DDSM).")
@click.option("--min-tissue", type=click.FloatRange(0, 1), default=0.95, show_default=True,
              help="Minimum share of a non-tumour patch inside the breast mask.")
@click.option("--source-scale", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="Resize films by this factor before cropping (CBIS-DDSM 50 µm → 200 µm: 0.25).")
@click.option("--test-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.2,
              show_default=True, help="Share of tumour patches (and of other patients) held out, by patient.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the non-tumour positions and the split.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N films (quick trials).")
@click.option("--overwrite", is_flag=True, help="Replace an existing patch set in --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or notes; only results, warnings and errors.")
@user_errors
def patches(input_path, dataset, csv_files, out_dir, size, crop_size, crop, normals_per_film, normal_source, min_tissue,
            source_scale, test_fraction, seed, limit, overwrite, quiet):
    """Cut tumour / non-tumour patches, split by patient (Rahali 2025, §3.6).

    A tumour patch is centred on a located abnormality (MIAS: Info.txt centre, y from the
    bottom-left; CBIS-DDSM: ROI-mask bounding box); a non-tumour patch is breast tissue
    from a normal film of the SAME dataset. Patients, not patches, are split into train
    and test. Writes images/*.png (16-bit), manifest.jsonl (source film, patient, class,
    severity, crop box, split), patches.json, and generator_train/: the training split's
    tumour patches, the only set a generator for `keras-mammo utility` may be trained on.

    \b
    Examples:
      keras-mammo patches --input /data/mini-mias --out patches/mias
      keras-mammo patches --out patches/mias-64 --size 64 --crop-size 128 --limit 40
    """
    import shutil
    from itertools import islice
    from pathlib import Path

    from keras_mammo.data.datasets import default_mias_path, open_dataset
    from keras_mammo.data.records import pseudonym_key
    from keras_mammo.errors import DataError
    from keras_mammo.utility.patches import GENERATOR_TRAIN_DIR, PatchOptions, extract_patches, write_patch_set

    if input_path is None:
        found = default_mias_path()
        if found is None:
            raise click.UsageError("no --input given and no MIAS folder found ($KERAS_MAMMO_MIAS or "
                                   "../shared/data/mini-mias)")
        input_path = str(found)
    out = Path(out_dir)
    if (out / "manifest.jsonl").exists():
        if not overwrite:
            raise DataError(f"{out}: a patch set exists already; pass --overwrite to replace it")
        for name in ("images", GENERATOR_TRAIN_DIR):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in ("manifest.jsonl", "patches.json", "dataset.json"):
            (out / name).unlink(missing_ok=True)
    ds = open_dataset(dataset, input_path, csv_files=list(csv_files), pseudonym_key=pseudonym_key(out)[0])
    records = list(islice(ds.records(), limit) if limit else ds.records())
    options = PatchOptions(size=size, crop_size=crop_size, crop=crop, normals_per_film=normals_per_film, normal_source=normal_source,
                           min_tissue=min_tissue, source_scale=source_scale, test_fraction=test_fraction, seed=seed)
    result, notes = extract_patches(records, options, progress=not quiet)
    write_patch_set(result, out, options, source={"dataset": ds.name, "path": Path(input_path).resolve().name,
                                                  "films": len(records)}, notes=notes)
    from keras_mammo.utility.patches import PatchSet

    c = PatchSet(out).info["counts"]
    for split in ("train", "test"):
        click.echo(f"{split:5s}: {c[split]['tumour']:4d} tumour + {c[split]['non-tumour']:4d} non-tumour patches "
                   f"from {c[split]['patients']} patients")
    if notes:
        click.echo(f"{len(notes)} notes (skipped lesions / small breasts) in {out}/patches.json")
    click.echo(f"patch set: {out} (generator training set: {out / GENERATOR_TRAIN_DIR})")
