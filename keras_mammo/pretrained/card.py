"""Model cards of the shipped generators: ``model_card.json`` (facts) → ``MODEL_CARD.md`` (prose).

The layout follows Mitchell et al. (2019), "Model Cards for Model Reporting" (FAT* '19,
section 4: model details, intended use, factors, metrics, evaluation data, training data,
quantitative analyses, ethical considerations, caveats) in the Hugging Face model-card
order: model details, uses and out-of-scope uses, training data and licence, training
procedure, evaluation with its protocol, limitations, how to reproduce.

:func:`render_card` is a pure function of the JSON that ``bench/ship_pretrained.py`` writes
from computed metrics, so every figure in the Markdown is one the JSON holds.
:func:`check_shareable` refuses a card that would carry a path of the machine it was
made on.
"""
from __future__ import annotations

import re

from keras_mammo.errors import DataError

#: MIAS: what its licence says (``Licence.txt`` of the database) and how to cite it.
MIAS_CITATION = ("J Suckling et al. (1994) \"The Mammographic Image Analysis Society Digital Mammogram "
                 "Database\", Excerpta Medica, International Congress Series 1069, pp. 375–378")
MIAS_TERMS = "research use only; cite Suckling et al. (1994); the database may not be rented, leased or sold"

_ABS_PATH = re.compile(r"(?<![\w.])/(?:home|root|work|tmp|mnt|data|Users|scratch|var)/[^\s'\"]*")


def check_shareable(obj, where: str = "model_card.json") -> None:
    """Refuse absolute machine paths (``/home/…``, ``/work/…``, ``/tmp/…``) anywhere in ``obj``.

    Raises:
        DataError: naming the key and the offending path.
    """
    def walk(x, key):
        if isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(x, list | tuple):
            for i, v in enumerate(x):
                walk(v, f"{key}[{i}]")
        elif isinstance(x, str):
            m = _ABS_PATH.search(x)
            if m:
                raise DataError(f"{where}: {key} holds a machine path ({m.group(0)}); a shared model card may "
                                f"name relative paths only")
    walk(obj, "")


def _fmt_seconds(s: float) -> str:
    s = round(float(s))
    return f"{s // 3600} h {s % 3600 // 60:02d} min" if s >= 3600 else f"{s // 60} min {s % 60:02d} s"


def budget_text(card: dict) -> str:
    """One line: images seen until the shipped checkpoint, and the run's wall time and precision."""
    t = card["training"]
    return (f"{t['images_seen']:,} images to the shipped checkpoint (epoch {t['checkpoint_epoch']}); "
            f"run: {t['epochs']} epochs, {t['images_seen_total']:,} images, {_fmt_seconds(t['seconds'])} "
            f"on {t['hardware']}, {t['precision']}")


def render_card(card: dict) -> str:
    """``MODEL_CARD.md`` text of a ``model_card.json`` dict (see ``bench/ship_pretrained.py``).

    Raises:
        KeyError: a key the card needs is missing.
    """
    t, ev, mem, data = card["training"], card["evaluation"], card["memorization"], card["data"]
    res = card["resolution"]
    itr = ev.get("in_training") or {}
    check = card.get("export_check") or {}
    lines = [
        f"# Model card: {card['name']}",
        "",
        f"Unconditional generator of synthetic {res} × {res} px single-channel mammograms "
        f"(digitised screen-film style, MIAS), shipped with keras-mammo. Synthetic images only: "
        f"no image it makes shows a real patient.",
        "",
        "## Model details",
        "",
        f"- Architecture: `{card['model']}` ({card['architecture']}); latent vector "
        f"{card['latent_dim']}-d standard normal.",
        f"- Output: `(N, {res}, {res}, 1)`; signatures `{'`, `'.join(card['signatures'])}` "
        f"(uint8 in [0, 255], or 8-/16-bit PNG bytes); TensorFlow SavedModel in TF Serving's layout "
        f"(`{card['name']}/1/`), {card['size_mb']:.1f} MB.",
        f"- Weights: the EMA generator of the run's `best` checkpoint (lowest in-training FID), "
        f"epoch {t['checkpoint_epoch']}; compute dtype {card['precision']}.",
        f"- keras-mammo commit `{t['commit']}`; licence of the weights: see training data (MIAS terms apply).",
        "",
        "## Intended use",
        "",
        "- Research on synthetic mammography: method development, augmentation experiments, "
        "teaching, testing pipelines with images that carry no patient data.",
        "- Out of scope: diagnosis, screening, clinical decisions, or any claim about a patient; "
        "training a clinical model on these images without validation on real data; "
        "commercial use (MIAS may not be rented, leased or sold).",
        "",
        "## Training data",
        "",
        f"- {data['name']}: {data['films_kept']} films kept of {data['films_total']} (rejected by `preprocess`: "
        f"{', '.join(f'{v} {k}' for k, v in data['rejected_by_reason'].items()) or 'none'}), all views and both sides, "
        f"prepared at {data['prepared_size']} px and trained at {res} px.",
        f"- Licence: {MIAS_TERMS}.",
        f"- Citation: {MIAS_CITATION}.",
        "",
        "## Training procedure",
        "",
        f"- Config `{t['config']}` (FastGAN with the small-data recipe: EMA generator, ADA), seed {t['seed']}.",
        f"- Budget: {budget_text(card)}.",
        "- Commands (from a clone at the commit above, MIAS in `data/mini-mias`):",
        "",
        "```",
        *t["commands"],
        "```",
        "",
        "## Evaluation",
        "",
        f"Protocol: {ev['n_generated']} images generated from the shipped SavedModel (seed {ev['seed']}) against "
        f"the {data['films_kept']} training films at {ev['size_px']} px; Fréchet Inception Distance (Heusel et al. "
        f"2017) and Kernel Inception Distance (Bińkowski et al. 2018) at a matched N = {ev['n_per_side']} images per "
        f"side against one real half, beside the real-vs-real floor (half A vs half B, same N), mean over "
        f"{ev['splits']} random halves. FID at this N is biased far above 0: read it against the floor.",
        "",
        "| metric | generator | real-vs-real floor | ratio |",
        "|---|---|---|---|",
        f"| FID (N = {ev['n_per_side']}/side) | {ev['fid']:.2f} ± {ev['fid_std']:.2f} | {ev['fid_floor']:.2f} | "
        f"{ev['fid_over_floor']:.2f}× |",
        f"| KID (N = {ev['n_per_side']}/side) | {ev['kid']:.4f} | {ev['kid_floor']:.4f} | — |",
        "",
        f"- Memorization: {mem['near_copies']} near-copies in {mem['n_synthetic']} generated images (nearest "
        f"training film in {mem['space']}, distance ratio below {mem['threshold']}; closest ratio "
        f"{mem['min_ratio']:.3f}).",
    ]
    if itr:
        lines.append(f"- In training (the `best` checkpoint's row of `eval.csv`): FID {itr['fid']:.2f} at "
                     f"N = {itr['n']} against all films; {itr['fid_over_floor']:.2f}× its floor.")
    rc = ev.get("run_checkpoint")
    if rc:
        lines.append(f"- The run's own `{rc['checkpoint']}` checkpoint, evaluated the same way from float images "
                     f"(`keras-mammo evaluate --run R -n {ev['n_generated']}`): FID {rc['fid']:.2f}, KID {rc['kid']:.4f}; "
                     f"the shipped SavedModel's 8-bit images {ev['fid']:.2f} ({rc['fid_difference']:+.2f}).")
    if check:
        lines.append(f"- Export check: the SavedModel's uint8 images equal the run checkpoint's images rounded to "
                     f"8 bits within {check['max_abs_diff_uint8']} grey level(s) on {check['n']} images "
                     f"({check['share_equal']:.4f} of pixels identical).")
    lines += [
        "- Commands:",
        "",
        "```",
        *ev["commands"],
        "```",
        "",
        "## Limitations",
        "",
        f"- {res} px: far below diagnostic resolution (MIAS films are 1024 px at 200 µm; a {res} px image "
        f"has {1024 * 200 // res} µm pixels): no microcalcification or fine spiculation detail.",
        "- One small dataset (MIAS, 317 films, one UK screening programme) of digitised 1990s screen films: "
        "one scanner era, film grain and digitiser artefacts, no full-field digital (FFDM) or tomosynthesis "
        "appearance; unknown behaviour on any other population.",
        "- Unconditional: no control of view, side, density or pathology; lesion realism was not assessed by "
        "radiologists.",
        "- FID/KID use an ImageNet Inception network; they measure feature statistics, not clinical realism.",
        f"- Computes in {card['precision']}" + (": fast on CPUs with AVX512_BF16/AMX and on GPUs with bfloat16 "
                                                "units, emulated (slower) elsewhere." if card['precision'] == "bfloat16"
                                                else "."),
        "",
        "## How to use",
        "",
        "```",
        f"keras-mammo generate --pretrained {card['name']} -n 16 --seed 0 --out synthetic/",
        f"keras-mammo generate --pretrained {card['name']} -n 16 --format dicom --out synthetic_dicom/",
        f"keras-mammo serve --pretrained {card['name']}",
        "```",
        "",
        "![samples, seed 0](samples.png)",
        "",
    ]
    return "\n".join(lines)


def markdown_table(cards: list[dict]) -> str:
    """The docs/README table of shipped generators, one row per ``model_card.json`` dict:
    name, resolution, FID × floor (FID / floor at N per side), KID, near-copies, training budget."""
    rows = ["| name | resolution | FID × floor | KID | near-copies | training budget |",
            "|---|---|---|---|---|---|"]
    for c in cards:
        ev, mem, t = c["evaluation"], c["memorization"], c["training"]
        rows.append(f"| `{c['name']}` | {c['resolution']} px | {ev['fid_over_floor']:.2f}× ({ev['fid']:.1f} / "
                    f"{ev['fid_floor']:.1f}, N = {ev['n_per_side']}/side) | {ev['kid']:.4f} | "
                    f"{mem['near_copies']}/{mem['n_synthetic']} | {t['images_seen']:,} images "
                    f"(best of {t['images_seen_total']:,}), {_fmt_seconds(t['seconds'])} on {t['hardware']} |")
    return "\n".join(rows)
