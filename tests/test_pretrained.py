"""The pretrained generators shipped inside the package (``keras_mammo.pretrained``).

They are FastGAN generators trained on the real MIAS films (see their MODEL_CARD.md); the
tests generate from the shipped SavedModels themselves, check the listing against their
``model_card.json`` and that the wheel carries them.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from keras_mammo.errors import DataError
from keras_mammo.pretrained import (
    CARD_JSON,
    CARD_MD,
    PRETRAINED_DIR,
    VERSION,
    available_pretrained,
    pretrained_path,
    read_card,
)
from keras_mammo.pretrained.card import check_shareable, render_card

ROOT = Path(__file__).resolve().parents[1]
#: What this tree ships: every folder of keras_mammo/pretrained with a model card (mias-64 at least).
SHIPPED = tuple(g.name for g in available_pretrained())


def test_every_shipped_generator_is_present_and_small():
    assert "mias-64" in SHIPPED
    for name in SHIPPED:
        path = pretrained_path(name)
        assert (path / VERSION / "saved_model.pb").is_file() and (path / CARD_MD).is_file()
        assert (path / "samples.png").is_file()
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        assert size < 25 * 2**20, f"{name}: {size / 2**20:.1f} MB"


@pytest.mark.parametrize("name", SHIPPED)
def test_generate_from_shipped_generator(name):
    from keras_mammo.generation.generate import generate_images

    card = read_card(pretrained_path(name))
    r = card["resolution"]
    a = generate_images(pretrained_path(name), 6, seed=0)
    assert a.shape == (6, r, r, 1) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert a.std() > 0.05                                   # not a constant image
    assert np.array_equal(a, generate_images(pretrained_path(name), 6, seed=0))   # same seed, same images
    b = generate_images(pretrained_path(name), 6, seed=1)
    assert np.abs(a - b).mean() > 0.01                      # another seed, other images
    # images are 8-bit levels (the SavedModel's uint8 output / 255)
    assert np.allclose(a * 255.0, np.round(a * 255.0), atol=1e-3)


def test_load_pretrained_signatures():
    import tensorflow as tf

    from keras_mammo.pretrained import load_pretrained

    name = SHIPPED[0]
    m = load_pretrained(name)
    r = read_card(pretrained_path(name))["resolution"]
    out = m.signatures["generate"](count=tf.constant(3), seed=tf.constant(0, tf.int64))["images"]
    assert out.dtype == tf.uint8 and tuple(out.shape) == (3, r, r, 1)
    assert set(read_card(pretrained_path(name))["signatures"]) <= set(m.signatures)


def test_generate_cli_pretrained_png_and_dicom(tmp_path):
    import pydicom

    from cli.main import main

    name = SHIPPED[0]
    r = read_card(pretrained_path(name))["resolution"]
    res = CliRunner().invoke(main, ["generate", "--pretrained", name, "-n", "3", "--seed", "0",
                                    "--out", str(tmp_path / "png")])
    assert res.exit_code == 0, res.output
    pngs = sorted((tmp_path / "png").glob("synthetic_0*.png"))
    assert len(pngs) == 3
    import cv2

    assert cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED).shape == (r, r)
    res = CliRunner().invoke(main, ["generate", "--pretrained", name, "-n", "2", "--format", "dicom",
                                    "--out", str(tmp_path / "dcm")])
    assert res.exit_code == 0, res.output
    ds = pydicom.dcmread(sorted((tmp_path / "dcm").glob("*.dcm"))[0])
    assert (ds.Rows, ds.Columns) == (r, r)


def test_unknown_name_is_one_line_error_listing_the_names(tmp_path):
    with pytest.raises(DataError) as e:
        pretrained_path("mias-1024")
    msg = str(e.value)
    assert "\n" not in msg and "mias-1024" in msg
    for name in SHIPPED:
        assert name in msg
    from cli.main import main

    res = CliRunner().invoke(main, ["generate", "--pretrained", "nope", "-n", "1", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "nope: no such pretrained generator" in res.output
    assert not (tmp_path / "x").exists()
    res = CliRunner().invoke(main, ["serve", "--pretrained", "nope"])
    assert res.exit_code != 0 and "nope: no such pretrained generator" in res.output


def test_models_lists_generators_with_figures_from_their_card():
    from cli.main import main

    res = CliRunner().invoke(main, ["models"])
    assert res.exit_code == 0, res.output
    assert "fastgan" in res.output and "dcgan" in res.output    # registered architectures
    for name in SHIPPED:
        card = read_card(pretrained_path(name))
        line = next(x for x in res.output.splitlines() if x.split()[:1] == [name])
        ev = card["evaluation"]
        assert f"{ev['fid_over_floor']:.2f} ({ev['fid']:.1f} / {ev['fid_floor']:.1f})" in line
        assert f"{ev['kid']:.4f}" in line and str(card["resolution"]) in line.split()
        assert f"{card['memorization']['near_copies']}/{card['memorization']['n_synthetic']}" in line
        assert str(pretrained_path(name) / CARD_MD) in line
    res = CliRunner().invoke(main, ["models", "--json"])
    listed = {g["name"]: g for g in json.loads(res.output)["pretrained"]}
    assert set(listed) == set(SHIPPED)


def test_cards_are_consistent_and_shareable():
    for name in SHIPPED:
        card = read_card(pretrained_path(name))
        ev = card["evaluation"]
        assert card["name"] == name
        assert ev["fid_over_floor"] == pytest.approx(ev["fid"] / ev["fid_floor"])
        assert ev["n_per_side"] == 158                # the floor protocol: 317 films → halves of 158/159
        assert card["memorization"]["n_synthetic"] == 1000
        check_shareable(card)
        md = (pretrained_path(name) / CARD_MD).read_text()
        assert md == render_card(card)                # the Markdown says what the JSON holds
        assert "Suckling" in md and "may not be rented, leased or sold" in md and "diagnosis" in md
        meta = json.loads((pretrained_path(name) / VERSION / "assets.extra" / "keras_mammo.json").read_text())
        assert "run_dir" not in meta and meta["resolution"] == card["resolution"]


def test_check_shareable_refuses_machine_paths():
    check_shareable({"a": ["keras-mammo train --run runs/mias-64"]})
    with pytest.raises(DataError, match=r"training\.commands\[1\].*/work/exp"):
        check_shareable({"training": {"commands": ["ok", "keras-mammo train --run /work/exp/runs/x"]}})


def test_serve_loads_pretrained_folder_beside_its_card():
    """The card, json and grid beside the version folder do not disturb the version scan."""
    from keras_mammo.savedmodel import find_versions

    for name in SHIPPED:
        assert list(find_versions(pretrained_path(name))) == [int(VERSION)]
        link = ROOT / "saved_models" / name   # in a clone, TF Serving's --model_base_path
        if (ROOT / ".git").exists():
            assert link.resolve() == pretrained_path(name).resolve()


@pytest.mark.slow
def test_wheel_contains_the_shipped_generators(tmp_path):
    """Built from a copy of the files git would ship (a stale build/ in the clone cannot leak in)."""
    import shutil

    if not (ROOT / ".git").exists():
        pytest.skip("needs a git clone of keras-mammo")
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for f in filter(None, files):
        if (ROOT / f).exists() or (ROOT / f).is_symlink():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, src / f, follow_symlinks=False)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("keras_mammo-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in SHIPPED:
        base = f"keras_mammo/pretrained/{name}/"
        for f in (f"{VERSION}/saved_model.pb", f"{VERSION}/variables/variables.index",
                  f"{VERSION}/assets.extra/keras_mammo.json", CARD_MD, CARD_JSON, "samples.png"):
            assert base + f in names, f"{base + f} not in {wheel.name}"
    extra = {n for n in names if n.startswith("keras_mammo/pretrained/")
             and not re.match(r"keras_mammo/pretrained/(__init__|card)\.py$", n)
             and not any(n.startswith(f"keras_mammo/pretrained/{s}/") for s in SHIPPED)}
    assert not extra, f"unshipped files in the wheel: {sorted(extra)[:5]}"
    # installed from the wheel alone, run from an empty folder: generates offline
    import os

    site, empty = tmp_path / "site", tmp_path / "empty"
    empty.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site),
                    str(wheel)], check=True, cwd=tmp_path)
    name = SHIPPED[0]
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", "import keras_mammo; print(keras_mammo.__file__)"], env=env,
                         cwd=empty, check=True, capture_output=True, text=True).stdout
    assert Path(out.strip()).is_relative_to(site)
    subprocess.run([sys.executable, "-m", "cli.main", "generate", "--pretrained", name, "-n", "2", "--out", "x"],
                   env=env, cwd=empty, check=True, capture_output=True)
    assert len(list((empty / "x").glob("synthetic_0000*.png"))) == 2
    assert PRETRAINED_DIR.name == "pretrained"


def test_serve_pretrained_resolves_name_and_path(monkeypatch):
    """`serve --pretrained NAME` serves the package's folder under NAME (no --model_base_path needed)."""
    import keras_mammo.serving.server as server_mod
    from cli.main import main

    seen = {}
    monkeypatch.setattr(server_mod, "serve", lambda name, base, *a, **k: seen.update(name=name, base=base))
    name = SHIPPED[0]
    res = CliRunner().invoke(main, ["serve", "--pretrained", name, "--quiet"])
    assert res.exit_code == 0, res.output
    assert seen == {"name": name, "base": str(pretrained_path(name))}
    res = CliRunner().invoke(main, ["serve", "--pretrained", name, "--model_base_path", str(pretrained_path(name))])
    assert res.exit_code != 0 and "exactly one of --model_base_path or --pretrained" in res.output


@pytest.mark.slow
def test_clone_saved_models_folder_serves_the_shipped_images():
    """TF Serving's --model_base_path=saved_models/<name> in a clone: same images as the package's SavedModel."""
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from keras_mammo.generation.generate import generate_images
    from keras_mammo.serving.launch import running_server

    name = SHIPPED[0]
    base = ROOT / "saved_models" / name
    if not base.exists():
        pytest.skip("not a clone (no saved_models/ symlinks)")
    with running_server(name, base) as srv:
        meta = httpx.get(f"{srv.url}/v1/models/{name}").json()
        assert [v["version"] for v in meta["model_version_status"]] == [VERSION]
        got = httpx.post(f"{srv.url}/v1/models/{name}:predict",
                         json={"signature_name": "generate", "inputs": {"count": 2, "seed": 0}}, timeout=60).json()
    served = np.asarray(got["outputs"], np.float32) / 255.0
    assert np.array_equal(served, generate_images(pretrained_path(name), 2, seed=0))
