"""The command line at the edge: fast help without TensorFlow, no start-up noise, explicit
``--epochs`` on progressive configs, a run-wide ETA, run.json end states, consistent flags."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
VERBS = ["preprocess", "train", "generate", "export", "evaluate", "patches", "utility", "weights"]
#: what TensorFlow/absl/CUDA print at start-up on a machine without a GPU
NOISE = re.compile(r"absl::InitializeLog|oneDNN custom operations|cuda drivers|cuInit|cudart_stub|port\.cc|"
                   r"^[IWE]\d{4} ", re.M)


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "GLOG_minloglevel")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _python(code: str, cwd=REPO, timeout=300):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def test_help_and_user_errors_do_not_import_tensorflow(tmp_path):
    """Every verb's --help, a config error and a path error answer without importing TensorFlow."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: many}\n")
    calls = [[v, "--help"] for v in VERBS] + [
        ["--help"], ["train", "--config", str(bad)], ["train", "--config", str(tmp_path / "missing.yaml")],
        ["train", "--config", "quickstart", "--epochs", "0"], ["generate", "--run", str(tmp_path / "nope"),
                                                               "--out", str(tmp_path / "o")]]
    proc = _python(f"""
        import sys, time
        from cli.main import main
        out = []
        for args in {calls!r}:
            t = time.perf_counter()
            try:
                main(args=args, prog_name="keras-mammo")
            except SystemExit as exc:
                code = exc.code
            out.append((args[0], code, round(time.perf_counter() - t, 3)))
        print(out)
        print("IMPORTED:", sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
    """)
    assert "IMPORTED: []" in proc.stdout, proc.stdout + proc.stderr
    results = eval(proc.stdout.splitlines()[-2])
    assert [c for _, c, _ in results[:len(VERBS) + 1]] == [0] * (len(VERBS) + 1)
    assert all(c != 0 for _, c, _ in results[len(VERBS) + 1:]), results
    assert "train.epochs" in proc.stderr and "missing.yaml: file not found" in proc.stderr
    assert "--epochs: '0'" in proc.stderr and "does not exist" in proc.stderr
    assert not NOISE.search(proc.stderr)


def test_train_help_lists_every_registered_model_without_importing_it():
    from cli.train import registered_model_summaries
    from keras_mammo.models.registry import model_summaries

    assert registered_model_summaries() == model_summaries()


def test_startup_filter_keeps_real_errors():
    from cli.common import filter_startup_lines

    cpu_only = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                "I0000 00:00:1.1 1 port.cc:153] oneDNN custom operations are on. You may see ...\n"
                "I0000 00:00:1.2 1 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not "
                "be used.\n"
                "E0000 00:00:1.3 1 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: (303)\n"
                "E0000 00:00:1.4 1 some_kernel.cc:9] a real problem\n")
    assert filter_startup_lines(cpu_only) == "E0000 00:00:1.4 1 some_kernel.cc:9] a real problem\n"
    # with a driver present, a cuInit failure is a real GPU problem and stays visible
    gpu = "E0000 00:00:1.3 1 cuda_platform.cc:52] failed call to cuInit: CUDA_ERROR_NO_DEVICE\n"
    assert filter_startup_lines(gpu) == gpu


@pytest.mark.parametrize("stages, epochs, expected, fades", [
    ([(64, 200, 0), (128, 400, 20000)], [6], [2, 4], [0, 200]),
    ([(32, 20, 0), (64, 20, 800)], [5], [3, 2], [0, 80]),
    ([(32, 20, 0), (64, 20, 800)], [2, 7], [2, 7], [0, 280]),
    ([(32, 1, 0), (64, 99, 0), (128, 100, 0)], [4], [1, 1, 2], [0, 0, 0]),
])
def test_epochs_scale_every_stage(stages, epochs, expected, fades):
    from keras_mammo.config import StageConfig
    from keras_mammo.training.schedule import scale_stages

    out = scale_stages([StageConfig(r, e, f) for r, e, f in stages], epochs)
    assert [s.epochs for s in out] == expected
    assert [s.resolution for s in out] == [r for r, _, _ in stages]
    assert [s.fade_in_images for s in out] == fades


def test_epochs_errors_name_the_option():
    from keras_mammo.config import StageConfig
    from keras_mammo.errors import ConfigError
    from keras_mammo.training.schedule import parse_epochs, scale_stages

    two = [StageConfig(64, 10, 0), StageConfig(128, 10, 100)]
    with pytest.raises(ConfigError, match="fewer than the config's 2 stages"):
        scale_stages(two, [1])
    with pytest.raises(ConfigError, match="3 numbers for 2 stages"):
        scale_stages(two, [1, 2, 3])
    for bad in ("0", "x", "2,-1", ""):
        with pytest.raises(ConfigError, match="--epochs"):
            parse_epochs(bad)


def test_cli_epochs_keeps_stages_and_says_so():
    from keras_mammo.config import load_config
    from keras_mammo.errors import ConfigError
    from keras_mammo.training.schedule import apply_schedule_options

    notes = []
    mias = load_config("mias")
    cfg = apply_schedule_options(mias, "6", None, note=notes.append)
    assert [(s.resolution, s.epochs) for s in cfg.train.stages] == [(64, 2), (128, 4)]
    assert [(s.resolution, s.epochs) for s in mias.train.stages] == [(64, 200), (128, 400)]   # a new config
    assert "64 px × 200 + 128 px × 400" in notes[0] and "64 px × 2 + 128 px × 4" in notes[0]
    # --resolution on a progressive config trains the stages up to it; --epochs goes to those stages
    low = apply_schedule_options(load_config("mias"), "3", 64, note=notes.append)
    assert [(s.resolution, s.epochs) for s in low.train.schedule()] == [(64, 3)]
    assert [s.resolution for s in low.train.stages] == [64, 128]      # the config's stages are kept
    assert "--resolution 64: training 64 px × 200 epochs only, not the config's" in notes[1]
    with pytest.raises(ConfigError, match=r"--resolution 32: this progressive config has no 32 px stage"):
        apply_schedule_options(load_config("mias"), None, 32)


def test_resume_never_falls_back_to_an_earlier_stage(tmp_path):
    from keras_mammo.config import StageConfig
    from keras_mammo.errors import ConfigError
    from keras_mammo.training.run import _check_stage_progress

    short = [StageConfig(64, 2, 0), StageConfig(128, 4, 200)]
    full = [StageConfig(64, 200, 0), StageConfig(128, 400, 20000)]
    with pytest.raises(ConfigError, match="fall back into stage 1"):
        _check_stage_progress(Path("runs/x"), full, 6, 1)
    _check_stage_progress(Path("runs/x"), short, 3, 1)                               # same schedule, mid-run
    _check_stage_progress(Path("runs/x"), [StageConfig(64, 2, 0), StageConfig(128, 40, 0)], 6, 1)  # longer last
    _check_stage_progress(Path("runs/x"), full, 1, 0)
    # the refused run keeps its config.yaml, and the message says how to continue it
    previous = yaml.safe_dump({"train": {"stages": [{"resolution": 64, "epochs": 2}, {"resolution": 128, "epochs": 4}]}})
    (tmp_path / "config.yaml").write_text("overwritten")
    with pytest.raises(ConfigError, match=r"keeping the finished stages' epochs \(here --epochs 2,N\)"):
        _check_stage_progress(tmp_path, full, 6, 1, previous)
    assert (tmp_path / "config.yaml").read_text() == previous


def test_run_progress_eta_says_estimating_until_each_stage_left_is_measured():
    """A stage's first epoch includes graph tracing and a stage not reached yet has no
    measured epoch: the ETA says "estimating" instead of a number (a 5-minute quickstart's
    first-epoch ETA once said 1:16:48)."""
    from keras_mammo.config import StageConfig
    from keras_mammo.training.progress import RunProgress

    now = [0.0]
    lines = []
    p = RunProgress([StageConfig(32, 3, 0), StageConfig(64, 3, 0)], completed=0, write=lines.append,
                    clock=lambda: now[0])
    now[0] += 300.0
    p.epoch_done(0, 300.0)                 # the first epoch: tracing
    assert p.eta() == (None, "estimating") and lines[-1].endswith("ETA estimating")
    for sec in (4.0, 6.0):
        now[0] += sec
        p.epoch_done(0, sec)
    assert p.eta() == (None, "estimating")  # stage 2 not measured yet: no guess scaled from 32 px
    assert lines[-1] == "run: 3/6 epochs (stage 1/2, 32 px) · elapsed 0:05:10 · ETA estimating"
    now[0] += 50.0
    p.epoch_done(1, 50.0)
    assert p.eta() == (None, "estimating")  # its first epoch includes tracing too
    now[0] += 20.0
    p.epoch_done(1, 20.0)
    assert p.eta() == (20.0, "schedule") and lines[-1].endswith("ETA 0:00:20")
    resumed = RunProgress([StageConfig(32, 3, 0), StageConfig(64, 2, 0)], completed=4, write=lines.append)
    resumed.epoch_done(1, 7.0)
    assert resumed.eta() == (0.0, "schedule") and lines[-1].startswith("run: 5/5 epochs")
    # a wall-clock budget (train.max_seconds) bounds the ETA, also while estimating
    left = [25.0]
    capped = RunProgress([StageConfig(32, 10, 0)], completed=0, write=lines.append, clock=lambda: now[0],
                         budget_left=lambda: left[0])
    capped.epoch_done(0, 50.0)
    assert capped.eta() == (25.0, "estimating") and lines[-1].endswith("ETA ≤ 0:00:25 (budget; estimating)")
    capped.epoch_done(0, 5.0)
    assert capped.eta() == (25.0, "budget") and lines[-1].endswith("ETA 0:00:25 (budget)")
    left[0] = 100.0                        # schedule (8 × 5 s) ends first
    assert capped.eta() == (40.0, "schedule") and not capped.line().endswith("(budget)")


def test_run_json_records_interrupt_and_failure(tmp_path):
    from keras_mammo.training.progress import record_run_end

    path = tmp_path / "run.json"
    path.write_text(json.dumps({"status": "running", "started": "2026-01-01T00:00:00", "model": "thesis"}))
    s = record_run_end(path, KeyboardInterrupt())
    assert s["status"] == "interrupted" and s["reason"] == "KeyboardInterrupt (Ctrl-C)"
    assert json.loads(path.read_text())["started"] == "2026-01-01T00:00:00"
    s = record_run_end(path, KeyboardInterrupt("terminated by SIGTERM"))
    assert s["reason"] == "terminated by SIGTERM"
    s = record_run_end(path, ValueError("bad pixels"))
    assert s["status"] == "failed" and s["reason"] == "ValueError: bad pixels"


@pytest.mark.slow
def test_train_end_to_end_is_quiet_and_honest(mias_dir, tmp_path):
    """A real (tiny) progressive run through the CLI: no start-up noise on stderr, the
    preprocessing summary, the --epochs note, the run-wide ETA, and run.json."""
    films = tmp_path / "films"
    films.mkdir()
    for i in range(1, 7):
        (films / f"mdb{i:03d}.png").write_bytes((Path(mias_dir) / f"mdb{i:03d}.png").read_bytes())
    cfg = {"seed": 1, "run_dir": "runs/tiny",
           "data": {"dataset": "folder", "path": str(films), "prepared": "prepared/tiny", "size": 32, "workers": 1},
           "model": {"name": "thesis", "params": {"base_channels": 64, "g_channels": [32, 32, 16],
                                                  "d_channels": [64, 32, 16]}},
           "train": {"stages": [{"resolution": 16, "epochs": 4}, {"resolution": 32, "epochs": 6,
                                                                  "fade_in_images": 24}],
                     "batch_size": 4, "steps_per_epoch": 2, "sample_count": 4, "tensorboard": False}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "cli.main", "train", "--config", "tiny.yaml", "--epochs", "3"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not NOISE.search(proc.stderr), proc.stderr
    out = proc.stdout
    assert re.search(r"kept \d of 6 films → prepared/tiny", out), out
    assert "16 px × 1 + 32 px × 2 (fade-in 8 images) epochs" in proc.stderr
    assert re.search(r"run: 3/3 epochs \(stage 2/2, 32 px\) · elapsed \d:\d\d:\d\d · ETA 0:00:00", out), out
    saved = yaml.safe_load((tmp_path / "runs/tiny/config.yaml").read_text())
    assert [s["epochs"] for s in saved["train"]["stages"]] == [1, 2]
    status = json.loads((tmp_path / "runs/tiny/run.json").read_text())
    assert status["status"] == "finished" and status["epochs"] == 3


def test_stderr_filter_process_passes_everything_but_noise():
    """The forked stderr filter: progress text passes at once, noise records vanish, errors stay."""
    import threading

    from cli.common import _filter_loop

    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    t = threading.Thread(target=_filter_loop, args=(r_in, w_out))
    t.start()
    os.write(w_in, b"\r16px epoch 1/4:   0%|  | 0/2")
    os.write(w_in, b"E0000 00:00:1795949377.2 31035 util.cc:131] oneDNN supports DT_INT32 only on platforms with "
                   b"AVX-512. Falling back to the default Eigen-based implementation if present.\n")
    os.write(w_in, b"E0000 00:00:1795924606.3 10891 meta_optimizer.cc:967] remapper failed: INVALID_ARGUMENT\n")
    os.write(w_in, b"I0000 00:00:1.2 1 cudart_stub.cc:31] Could not find cuda drivers on your machine\n"
                   b"E0000 00:00:1.3 1 cuda_platform.cc:52] failed call to cuInit: (303)\n"
                   b"Traceback (most recent call last):\nE0000 00:00:1.4 1 kernel.cc:9] a real problem\n")
    ray = b"\x1b[36m(_ray_trainable pid=26476)\x1b[0m "     # a Ray worker's line, forwarded by the driver
    os.write(w_in, ray + b"E0000 00:00:1795946792.7 26520 node_def_util.cc:682] NodeDef mentions attribute "
                   b"use_unbounded_threadpool which is not in the op definition: Op<name=MapDataset; ...> This may "
                   b"be expected if your graph generating binary is newer  than this binary. Unknown attributes "
                   b"will be ignored. NodeDef: {{node ParallelMapDatasetV2/_7}}\n")
    os.write(w_in, ray + b"epoch 1/40 (64px): d_loss=0.3366\n" + ray + b"E0000 00:00:1.5 1 kernel.cc:9] real\ntail")
    os.close(w_in)
    t.join(10)
    os.close(w_out)
    with os.fdopen(r_out, "rb") as fh:
        out = fh.read()
    os.close(r_in)
    assert out == (b"\r16px epoch 1/4:   0%|  | 0/2Traceback (most recent call last):\n"
                   b"E0000 00:00:1.4 1 kernel.cc:9] a real problem\n"
                   + ray + b"epoch 1/40 (64px): d_loss=0.3366\n" + ray + b"E0000 00:00:1.5 1 kernel.cc:9] real\ntail")


@pytest.mark.slow
def test_interrupted_training_says_so_in_run_json(mias_prepared, tmp_path, monkeypatch):
    from keras_mammo.config import load_config
    from keras_mammo.training import progress
    from keras_mammo.training.run import train

    cfg = load_config(None, {"run_dir": str(tmp_path / "run"), "data.prepared": str(mias_prepared),
                             "model.params": {"base_channels": 64, "g_channels": [32, 32, 16],
                                              "d_channels": [64, 32, 16]},
                             "train.resolution": 16, "train.epochs": 3, "train.batch_size": 4,
                             "train.steps_per_epoch": 1, "train.sample_count": 4, "train.tensorboard": False})

    def stop(self, stage_index, seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(progress.RunProgress, "epoch_done", stop)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=True)
    status = json.loads((tmp_path / "run" / "run.json").read_text())
    assert status["status"] == "interrupted" and status["reason"] == "KeyboardInterrupt (Ctrl-C)"


def _leaf_commands():
    import click

    from cli.main import main

    out = []
    for name, cmd in main.commands.items():
        if isinstance(cmd, click.Group):
            out += [(f"{name} {sub}", c, cmd) for sub, c in cmd.commands.items()]
        else:
            out.append((name, cmd, None))
    return out


def test_every_verb_has_quiet_and_an_example():
    from click.testing import CliRunner

    from cli.main import main

    runner = CliRunner()
    for name, cmd, group in _leaf_commands():
        assert "quiet" in [p.name for p in cmd.params], f"{name}: no --quiet"
        text = runner.invoke(main, [*name.split(), "--help"]).output
        group_text = runner.invoke(main, [name.split()[0], "--help"]).output if group else ""
        assert "Examples:" in text + group_text and "keras-mammo " + name.split()[0] in text + group_text, name
    # a run directory is --run everywhere; train keeps --run-dir as an alias
    for name, cmd, _ in _leaf_commands():
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
        assert "--run-dir" not in opts or "--run" in opts, name
        if {"--model", "--saved-model"} & opts and name != "train":
            model = next(p for p in cmd.params if "--model" in p.opts)
            if name == "generate":   # with --server, --model is the served model's name (TF Serving's term)
                assert "served model" in model.help, name
                continue
            assert model.hidden, f"{name}: --model must mean a registered model name or be a hidden alias"


def test_old_spellings_still_work_and_say_what_to_use(tmp_path):
    from click.testing import CliRunner

    from cli.main import main

    runner = CliRunner()
    res = runner.invoke(main, ["generate", "--model", str(tmp_path), "--run", str(tmp_path), "--out", "x"])
    assert res.exit_code == 2 and "--model DIR is now --saved-model" in res.output
    assert "give exactly one of --run, --saved-model, --pretrained or --server" in res.output
    res = runner.invoke(main, ["evaluate", "--model", str(tmp_path), "--saved-model", str(tmp_path)])
    assert res.exit_code == 2 and "give --saved-model once" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {batch_size: x}\n")
    res = runner.invoke(main, ["train", "--run-dir", str(tmp_path / "r"), "--config", str(bad)])
    assert res.exit_code == 1 and "train.batch_size" in res.output


def test_wheel_ships_the_bundled_configs(tmp_path):
    """The wheel `pip install .` builds holds keras_mammo/configs/*.yaml, and from another folder
    `--config quickstart` resolves to the installed copy (built offline, without build isolation)."""
    import shutil
    import zipfile

    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for pkg in ("keras_mammo", "cli"):
        shutil.copytree(REPO / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PIP_NO_INPUT": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheel = next((tmp_path / "dist").glob("keras_mammo-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    bundled = {f"keras_mammo/configs/{p.name}" for p in (REPO / "keras_mammo" / "configs").glob("*.yaml")}
    assert {"keras_mammo/configs/quickstart.yaml", "keras_mammo/configs/mias.yaml"} <= bundled
    assert bundled <= names, sorted(bundled - names)
    assert "cli/main.py" in names
    # installed elsewhere (unpacked wheel on sys.path), run from an unrelated folder
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    code = ("import keras_mammo.config as c; p = c.resolve_config_path('quickstart'); "
            "print(p); assert str(p).startswith(%r)" % str(site))
    proc = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _tiny_cfg(prepared, run_dir, **extra):
    from keras_mammo.config import load_config

    return load_config(None, {"run_dir": str(run_dir), "data.prepared": str(prepared),
                              "model.params": {"base_channels": 64, "g_channels": [32, 32, 16],
                                               "d_channels": [64, 32, 16]},
                              "train.resolution": 16, "train.epochs": 1, "train.batch_size": 4,
                              "train.steps_per_epoch": 1, "train.sample_count": 4, "train.tensorboard": False,
                              **extra})


@pytest.mark.slow
def test_savedmodel_honours_the_umask(mias_prepared, tmp_path):
    """TF Serving often runs as another user: under umask 022 folders are 0755 and files 0644."""
    import stat

    from keras_mammo.generation.export import export_model
    from keras_mammo.training.run import train

    run = train(_tiny_cfg(mias_prepared, tmp_path / "run"), progress=False)
    old = os.umask(0o022)
    try:
        target = export_model(run, out_dir=tmp_path / "saved", name="m")
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path): stat.S_IMODE(p.stat().st_mode) for p in [target, *target.rglob("*")]}
    assert modes[target.relative_to(tmp_path)] == 0o755
    assert all(m == (0o755 if (tmp_path / p).is_dir() else 0o644) for p, m in modes.items()), modes
    assert any(p.name == "saved_model.pb" for p in modes)
