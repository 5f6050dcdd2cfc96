"""Markdown / HTML report of an evaluation (the content of ``metrics.json`` in tables and figures).

The report is built as a list of blocks (heading, paragraph, table, image, list) and
rendered to either format, so both say the same thing.
"""
from __future__ import annotations

import html
import math
from pathlib import Path

from keras_mammo.utils import write_text_atomic


def _f(x, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    if isinstance(x, float) and not math.isfinite(x):
        return "–" if math.isnan(x) else ("∞" if x > 0 else "−∞")
    if isinstance(x, int):
        return str(x)
    if x == 0:
        return "0"
    if abs(x) < 1e-3 or abs(x) >= 1e5:
        return f"{x:.3e}"
    return f"{x:.{digits}g}"


def _pm(d: dict | None, digits: int = 4) -> str:
    if not d:
        return "–"
    return f"{_f(d['mean'], digits)} ± {_f(d['std'], 2)}"


def _dist(d: dict) -> str:
    return f"{_f(d['mean'])} (median {_f(d['median'])}, 5–95 %: {_f(d['p5'])}–{_f(d['p95'])})"


def build_blocks(m: dict) -> list[tuple]:
    """Report blocks from an evaluation result (see :func:`keras_mammo.metrics.evaluate.evaluate`)."""
    b: list[tuple] = []
    fig = m.get("figures", {})
    b.append(("h", 1, "Evaluation of synthetic mammograms"))
    b.append(("p", f"Real: `{m['real']['source']}` (N = {m['real']['n']}, {m['real']['n_patients']} patients). "
                   f"Synthetic: `{m['synthetic']['source']}` (N = {m['synthetic']['n']}). "
                   f"Evaluated at {m['evaluation_size_px']} × {m['evaluation_size_px']} px, seed {m['seed']}."))
    if m.get("warnings"):
        b.append(("ul", [f"**Warning:** {w}" for w in m["warnings"]]))

    b.append(("h", 2, "Summary: each number beside its real-vs-real floor"))
    b.append(("p", "The floor is the same metric between two disjoint random halves of the real set "
                   "(patients never split) at the same N per side; a perfect generator scores at the floor, "
                   "not at 0. Lower is better for FID, KID and W1."))
    rows = []
    if "matched" in m["fid"]:
        fm, km = m["fid"]["matched"], m["kid"]["matched"]
        rows.append(["FID (Inception pool_3)", _pm(fm["synthetic_vs_real_half"], 5), _pm(fm["real_vs_real_floor"], 5),
                     f"{fm['n_per_side']} per side, {fm['splits']} splits"])
        rows.append(["KID (mean over subsets)", _pm(km["synthetic_vs_real_half"]), _pm(km["real_vs_real_floor"]),
                     f"{km['n_per_side']} per side, subsets of {km['subset_size']}"])
    rows.append(["FID, all images", _f(m["fid"]["full"]["value"], 5), "–",
                 f"{m['fid']['full']['n_synthetic']} synthetic vs {m['fid']['full']['n_real']} real"])
    k = m["kid"]["full"]
    rows.append(["KID, all images", f"{_f(k['mean'])} ± {_f(k['std'], 2)}", "–",
                 f"{k['n_synthetic']} vs {k['n_real']}, subsets of {k['subset_size']}"])
    h = m["histogram"]
    rows.append(["Histogram W1 (grey levels in breast)", _f(h["wasserstein1"]),
                 _f(h.get("real_vs_real_floor_wasserstein1")), f"{h['n_synthetic']} vs {h['n_real']} images"])
    for name, key in (("Breast-area fraction W1", "breast_area_fraction"),
                      ("Dense-tissue fraction W1", "dense_fraction")):
        t = m["tissue"][key]
        rows.append([name, _f(t["wasserstein1"]), _f((t.get("real_vs_real_floor") or {}).get("wasserstein1")),
                     f"{t['synthetic']['n']} vs {t['real']['n']}"])
    mem = m["memorization"]
    floor_mem = mem.get("real_vs_real_floor")
    rows.append([f"Near-copies (ratio < {mem['threshold']})", f"{mem['n_flagged']} of {mem['n_synthetic']}",
                 f"{floor_mem['n_flagged']} of {floor_mem['n_query']}" if floor_mem else "–",
                 f"vs {mem['n_training']} training images"])
    b.append(("table", ["metric", "synthetic vs real", "real vs real (floor)", "N"], rows))
    if "floors" in fig:
        b.append(("img", fig["floors"], "Metrics beside their real-vs-real floors"))

    b.append(("h", 2, "Samples"))
    if "samples" in fig:
        b.append(("img", fig["samples"], "Real (left) and synthetic (right) samples, randomly drawn"))

    b.append(("h", 2, "PSNR and SSIM to the nearest real image"))
    b.append(("p", "Each synthetic image against its nearest real image, nearest in Inception-feature space and, "
                   "separately, in pixel space; the floor row pairs each film of one real half with its "
                   "nearest film in the other half. Higher = more similar to some real film; far above the "
                   "floor suggests copying."))
    rows = []
    ps = m["psnr_ssim"]
    for label, blk in (("synthetic → nearest real", ps["synthetic_vs_nearest_real"]),
                       ("real half → nearest other half (floor)", ps.get("real_vs_real_floor"))):
        if not blk:
            continue
        for space in ("nearest_in_feature_space", "nearest_in_pixel_space"):
            rows.append([label, space.replace("nearest_in_", "").replace("_", " "),
                         _dist(blk[space]["psnr_db"]), _dist(blk[space]["ssim"])])
    b.append(("table", ["pairs", "nearest in", "PSNR (dB)", "SSIM"], rows))

    b.append(("h", 2, "Grey-level histograms inside the breast"))
    b.append(("p", f"Pooled over all breast pixels of each set, {h['bins']} bins on [0, 1]. Wasserstein-1 = "
                   f"{_f(h['wasserstein1'])} grey levels (floor {_f(h.get('real_vs_real_floor_wasserstein1'))}); "
                   f"mean grey level real {_f(h['real_mean_grey'])}, synthetic {_f(h['synthetic_mean_grey'])}."))
    if "histograms" in fig:
        b.append(("img", fig["histograms"], "Grey-level histograms inside the breast"))

    b.append(("h", 2, "Binarized-tissue measures"))
    b.append(("p", "Breast-area fraction = breast pixels / image pixels; dense-tissue fraction = breast pixels "
                   "above Otsu's threshold of that image's breast pixels / breast pixels."))
    rows = []
    for name, key in (("breast-area fraction", "breast_area_fraction"), ("dense-tissue fraction", "dense_fraction")):
        t = m["tissue"][key]
        rows.append([name, _dist(t["real"]), _dist(t["synthetic"]), _f(t["wasserstein1"]), _f(t["ks_statistic"]),
                     _f((t.get("real_vs_real_floor") or {}).get("wasserstein1"))])
    b.append(("table", ["measure", "real", "synthetic", "W1", "KS statistic", "W1 floor"], rows))
    if "tissue" in fig:
        b.append(("img", fig["tissue"], "Distributions of the binarized-tissue measures"))

    b.append(("h", 2, "Memorization"))
    b.append(("p", f"Distance of each synthetic image to its nearest training image ({mem['space']}), divided by "
                   f"the median real-to-real nearest-neighbour distance ({_f(mem['typical_real_nn_distance'])}). "
                   f"Ratio ≈ 1: as far from the training set as real films are from each other. Flagged: ratio < "
                   f"{mem['threshold']}."))
    rows = [["synthetic → training", _dist(mem["ratio"]), f"{mem['n_flagged']} of {mem['n_synthetic']}"]]
    if floor_mem:
        rows.append(["real half → other half (floor)", _dist(floor_mem["ratio"]),
                     f"{floor_mem['n_flagged']} of {floor_mem['n_query']}"])
    rows.append(["synthetic → training, Inception space (not used to flag)",
                 _dist(mem["feature_space_ratio"]), "–"])
    b.append(("table", ["pairs", "distance ratio", "flagged"], rows))
    if "nearest_pairs" in fig:
        b.append(("img", fig["nearest_pairs"],
                  "Closest synthetic/training pairs (top: synthetic, bottom: nearest real)"))

    if m.get("losses"):
        lo = m["losses"]
        b.append(("h", 2, "Training losses"))
        b.append(("p", f"`{lo['file']}`: {lo['n_rows']} rows ({lo['n_nonfinite']} non-finite). Phases of G/D "
                       f"balance ({lo['balance']}) found by binary segmentation."))
        rows = [[f"P{p['index'] + 1}", f"{_f(p['start'])}–{_f(p['end'])}", p["resolution"] or "–", p["n"],
                 f"{_f(p['d_loss_mean'])} ± {_f(p['d_loss_std'], 2)}",
                 f"{_f(p['g_loss_mean'])} ± {_f(p['g_loss_std'], 2)}",
                 f"{_f(p['balance_mean'])} ± {_f(p['balance_std'], 2)}", _f(p["balance_slope_per_1k"])]
                for p in lo["phases"]]
        b.append(("table", ["phase", lo["x"], "resolution", "rows", "d_loss", "g_loss", "g − d",
                            "g − d slope /1k"], rows))
        if "losses" in fig:
            b.append(("img", fig["losses"], "Loss curves with phases"))

    fn = m["feature_network"]
    b.append(("h", 2, "Method"))
    b.append(("ul", [
        f"Features: {fn['name']}; input {fn['input']}; resize: {fn['resize_filter']}; "
        f"compute precision: {fn.get('precision', 'float32')}; weights sha256 "
        f"`{fn['weights_sha256']}` (port max abs diff vs TorchScript {_f(fn['port_max_abs_diff'])}).",
        "FID: Heusel et al. 2017; KID: Bińkowski et al. 2018 (unbiased MMD², cubic polynomial kernel).",
        "No per-image FID: FID compares two distributions of 2048-d features and needs many images per side.",
        "All numbers, their N and the settings are in `metrics.json`.",
    ]))
    return b


def render_markdown(blocks: list[tuple]) -> str:
    """Blocks → Markdown text."""
    out = []
    for blk in blocks:
        kind = blk[0]
        if kind == "h":
            out.append("#" * blk[1] + " " + blk[2])
        elif kind == "p":
            out.append(blk[1])
        elif kind == "ul":
            out.append("\n".join(f"- {x}" for x in blk[1]))
        elif kind == "table":
            header, rows = blk[1], blk[2]
            lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
            lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            out.append(f"![{blk[2]}]({blk[1]})")
    return "\n\n".join(out) + "\n"


def _inline_html(text: str) -> str:
    parts = html.escape(str(text)).split("`")
    s = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    bold = s.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(bold))


def render_html(blocks: list[tuple]) -> str:
    """Blocks → a standalone HTML page (figures linked relative to the report)."""
    body = []
    for blk in blocks:
        kind = blk[0]
        if kind == "h":
            body.append(f"<h{blk[1]}>{_inline_html(blk[2])}</h{blk[1]}>")
        elif kind == "p":
            body.append(f"<p>{_inline_html(blk[1])}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline_html(x)}</li>" for x in blk[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in blk[1])
            rows = "".join("<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in r) + "</tr>" for r in blk[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "img":
            body.append(f'<figure><img src="{html.escape(blk[1])}" alt="{html.escape(blk[2])}" style="max-width:100%">'
                        f"<figcaption>{_inline_html(blk[2])}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>keras-mammo evaluation</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(metrics: dict, out_dir: str | Path, report_format: str = "md") -> Path:
    """Write ``report.md`` or ``report.html`` into ``out_dir``; returns its path."""
    blocks = build_blocks(metrics)
    path = Path(out_dir) / ("report.md" if report_format == "md" else "report.html")
    write_text_atomic(path, render_markdown(blocks) if report_format == "md" else render_html(blocks))
    return path
