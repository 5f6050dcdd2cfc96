"""Taguchi sweeps: the designs, the analysis on a hand-computed example, and a real sweep
of DCGAN trials on MIAS films that is interrupted and continued."""
from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("pyDOE3")
pytest.importorskip("statsmodels")

from keras_mammo.sweep import analysis as an  # noqa: E402
from keras_mammo.sweep.design import check_orthogonality, decode, make_design, orthogonal_array  # noqa: E402

# Reyes-Hernández et al. 2025, Table 1 factors (learning rate, batch size, epochs)
PAPER = {"lr": [0.0001, 0.0002, 0.0003], "batch": [16, 32, 64], "epochs": [250, 500, 750]}
# ... and their DCGAN FIDs of Table 3, in its row order
PAPER_DCGAN_FID = [0.448, 0.002, 0.161, 0.025, 0.006, 2.472, 0.012, 0.024, 0.02]


@pytest.mark.parametrize("name,levels", [("L9", 3), ("L18", 3), ("L4", 2), ("L8", 2)])
def test_orthogonal_arrays_hold_every_level_pair_equally_often(name, levels):
    arr = orthogonal_array(name)
    runs = {"L9": 9, "L18": 18, "L4": 4, "L8": 8}[name]
    assert arr.shape[0] == runs
    for a, b in itertools.combinations(range(arr.shape[1]), 2):
        pairs = list(zip(arr[:, a].tolist(), arr[:, b].tolist()))
        counts = {p: pairs.count(p) for p in itertools.product(range(levels), repeat=2)}
        assert set(counts.values()) == {runs // levels ** 2}, (name, a, b, counts)
    assert check_orthogonality(make_design(name, {f"f{i}": [1, 2, 3] for i in range(min(3, arr.shape[1]))})).orthogonal


def test_l9_of_three_factors_and_full_factorial():
    codes = make_design("L9", PAPER)
    assert codes.shape == (9, 3)
    for a, b in itertools.combinations(codes.columns, 2):   # each of the 9 level pairs exactly once
        assert sorted(zip(codes[a], codes[b])) == list(itertools.product(range(3), repeat=2))
    full = make_design("full", PAPER)
    assert len(full) == 27 and len({tuple(r) for r in full.to_numpy()}) == 27


def test_paper_design_is_flagged_as_confounded():
    codes = make_design("paper", PAPER)
    rows = [(r["lr"], r["batch"], r["epochs"]) for r in decode(codes, PAPER)]
    assert rows == [(lr, b, e) for lr in PAPER["lr"] for b, e in zip(PAPER["batch"], PAPER["epochs"])]
    check = check_orthogonality(codes)
    assert not check.orthogonal
    assert check.confounded == [("batch", "epochs")]
    assert "confounded" in check.describe() and "batch with epochs" in check.describe()


def test_sn_response_table_anova_and_optimum_on_the_papers_dcgan_fids():
    a = an.analyze(make_design("paper", PAPER), PAPER_DCGAN_FID, PAPER)
    # S/N = −20 log10(FID) for one run: 0.448 → 6.974 dB, 0.002 → 53.979 dB, 2.472 → −7.861 dB
    assert a.sn[[0, 1, 5]] == pytest.approx([6.9744, 53.9794, -7.8614], abs=1e-3)
    assert an.sn_smaller_the_better([0.1, 0.3]) == pytest.approx(-10 * math.log10(0.05), abs=1e-9)
    t = a.table.set_index(["factor", "level"])
    # learning rate: rows 1–3, 4–6, 7–9; batch size (= epochs): rows 1,4,7 / 2,5,8 / 3,6,9
    assert t.loc["lr"].mean_sn.tolist() == pytest.approx([25.6058, 22.8724, 34.9305], abs=1e-3)
    assert t.loc["batch"].mean_sn.tolist() == pytest.approx([25.8107, 43.6041, 13.9940], abs=1e-3)
    assert t.loc["epochs"].mean_sn.tolist() == t.loc["batch"].mean_sn.tolist()
    assert t.loc["lr"].mean_fid.tolist() == pytest.approx([0.203667, 0.834333, 0.018667], abs=1e-6)
    e = a.effects.set_index("factor")
    assert e.delta.tolist() == pytest.approx([12.0581, 29.6101, 29.6101], abs=1e-3)
    assert e["rank"].tolist() == [3, 1, 1]
    assert e.loc["batch", "confounded_with"] == "epochs"
    # optimum: lr 0.0003, batch 32 with epochs 500; the aliased effect counted once:
    # 27.8029 + (34.9305 − 27.8029) + (43.6041 − 27.8029) = 50.7317 dB
    assert a.optimum == {"lr": 0.0003, "batch": 32, "epochs": 500}
    assert a.predicted_sn == pytest.approx(50.7317, abs=1e-3)
    assert a.predicted_fid == pytest.approx(10 ** (-50.7317 / 20), rel=1e-4)
    # ANOVA: SS(lr) = 3 Σ (level mean − grand mean)² = 239.82; terms lr, batch = epochs, error
    anova = a.anova.set_index("term")
    assert list(anova.index) == ["lr", "batch = epochs", "error"]
    assert anova.loc["lr", "sum_sq"] == pytest.approx(239.82, abs=0.01)
    assert anova.df.tolist() == [2, 2, 4]
    assert anova.percent.sum() == pytest.approx(100.0)


def _tiny_sweep_config(tmp_path, mias_dir, prepared) -> Path:
    cfg = {
        "seed": 5, "run_dir": "unused",
        "data": {"dataset": "mias", "path": str(mias_dir), "prepared": str(prepared), "size": 64},
        "model": {"name": "dcgan", "latent_dim": 16,
                  "params": {"g_base_channels": 32, "min_channels": 8, "d_base_channels": 8, "max_d_channels": 16}},
        "train": {"resolution": 32, "epochs": 1, "batch_size": 4, "steps_per_epoch": 2, "checkpoint_every": 1,
                  "keep_checkpoints": 1, "sample_every": 5, "sample_count": 4, "tensorboard": False},
        # the paper's three factors (learning rate, batch size, epochs) as a true L9, a few seconds a trial
        "sweep": {"design": "L9", "trial_seconds": 30,
                  "factors": {"train.g_learning_rate+train.d_learning_rate": [0.0001, 0.0002, 0.0003],
                              "train.batch_size": [4, 6, 8], "train.epochs": [1, 2, 3]}},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.mark.slow
def test_sweep_runs_end_to_end_and_a_rerun_after_a_kill_retrains_nothing_finished(mias_dir, mias_prepared, tmp_path,
                                                                                     monkeypatch):
    from keras_mammo.sweep import runner, scoring, trials as trial_configs

    config = _tiny_sweep_config(tmp_path, mias_dir, mias_prepared)
    out = tmp_path / "sweep"
    real_score = scoring.score_run
    calls = []

    def killed_on_third(*args, **kwargs):          # the process dies after training trial 3, before scoring it
        calls.append(args[0])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_score(*args, **kwargs)

    monkeypatch.setattr(scoring, "score_run", killed_on_third)
    with pytest.raises(KeyboardInterrupt):
        runner.run_sweep(config, out, engine="local", echo=lambda s: None)
    trials = out / "trials"
    assert sorted(p.parent.name for p in trials.glob("*/result.json")) == ["t01-s0", "t02-s0"]
    half = trials / "t03-s0"
    assert not (half / "result.json").exists() and list((half / "run" / "checkpoints").glob("ckpt-*.npz"))
    stamps = {p: p.stat().st_mtime_ns for p in trials.glob("*/run/checkpoints/ckpt-*.npz")}
    stamps.update({p: p.stat().st_mtime_ns for p in trials.glob("*/result.json")})

    trained_before = json.loads((half / "run" / "run.json").read_text())["seconds"]
    monkeypatch.setattr(scoring, "score_run", real_score)
    lines = []
    res = runner.run_sweep(config, out, engine="local", echo=lines.append)
    assert "2 of 9 trial(s) finished earlier: not re-trained" in lines
    assert res.trained == [f"t{i:02d}-s0" for i in range(3, 10)] + [f"confirm-{trial_configs.config_hash(res.analysis.optimum)}-s0"]
    for p, t in stamps.items():                     # nothing finished was trained or scored again
        assert p.stat().st_mtime_ns == t, p
    assert (half / "attempts.log").read_text().count("start") == 2
    t03 = json.loads((half / "result.json").read_text())    # the killed attempt's training time is counted
    assert t03["train_seconds_earlier"] == pytest.approx(trained_before, abs=0.01) and trained_before > 0
    assert t03["train_seconds"] >= trained_before
    assert (trials / "t01-s0" / "attempts.log").read_text().count("start") == 1

    t = res.trials
    assert list(t.columns[:4]) == ["trial", "train.g_learning_rate+train.d_learning_rate", "train.batch_size",
                                   "train.epochs"]
    assert {"fid", "sn", "kid", "seconds", "kind", "run_dir", "fid_floor", "n_real"} <= set(t.columns)
    assert t.kind.tolist() == ["design"] * 9 + ["confirmation"]
    assert np.isfinite(t.fid).all() and (t.fid > 0).all() and (t.fid_floor > 0).all()
    assert np.isfinite(t.fid_matched).all() and np.allclose(t.x_floor, t.fid_matched / t.fid_floor)   # same N
    assert t.sn.tolist() == pytest.approx([-20 * math.log10(f) for f in t.fid])
    from keras_mammo.data.pipeline import kept_rows

    kept = len(kept_rows(mias_prepared))   # every trial is scored against all the kept films, with as many images
    assert kept >= 12 and t.n_real.tolist() == [kept] * 10 and t.n_synthetic.tolist() == [kept] * 10
    conf = t.iloc[-1]
    assert {k: conf[k] for k in res.analysis.optimum} == res.analysis.optimum
    for name in ("trials.csv", "main_effects.csv", "main_effects.png", "report.md"):
        assert (out / name).stat().st_size > 0
    assert "Confirmation run" in (out / "report.md").read_text()
    factors = json.loads((out / "sweep.json").read_text())["factors"]
    rows = decode(make_design("L9", factors), factors)
    for i, row in enumerate(rows, start=1):         # each trial trained its own row's levels, the epochs included
        cfg = yaml.safe_load((trials / f"t{i:02d}-s0" / "run" / "config.yaml").read_text())
        assert cfg["train"]["g_learning_rate"] == cfg["train"]["d_learning_rate"] == row[
            "train.g_learning_rate+train.d_learning_rate"]
        assert cfg["train"]["batch_size"] == row["train.batch_size"] and cfg["train"]["epochs"] == row["train.epochs"]
        assert cfg["train"]["max_seconds"] == 30
        assert json.loads((trials / f"t{i:02d}-s0" / "result.json").read_text())["epochs_done"] == row["train.epochs"]

    again = runner.run_sweep(config, out, engine="local", echo=lambda s: None)   # a third call trains nothing
    assert again.trained == []


def test_ray_engine_runs_trials_one_at_a_time_by_default(tmp_path, capfd):
    pytest.importorskip("ray")
    import time

    from keras_mammo.sweep import backends

    def fake_trial(spec):                           # pickled by value into Ray's worker processes
        import json as _json
        import os as _os
        import time as _time
        from pathlib import Path as _Path

        import ray as _ray

        if spec.get("fail"):
            raise ValueError(f"boom in {spec['name']}")
        t0 = _time.time()
        _time.sleep(0.3)
        r = {"name": spec["name"], "fid": spec["row"] * 10.0, "start": t0, "end": _time.time(), "pid": _os.getpid(),
             "cpus": _ray.get_runtime_context().get_assigned_resources().get("CPU")}
        _Path(spec["trial_dir"]).mkdir(parents=True)
        (_Path(spec["trial_dir"]) / "result.json").write_text(_json.dumps(r))
        return r

    from keras_mammo.errors import TrialFailedError

    specs = [{"name": f"t{i}", "row": i, "trial_dir": str(tmp_path / f"t{i}"), "fail": i == 3} for i in (1, 2, 3)]
    t0 = time.time()
    with pytest.raises(TrialFailedError, match=r"^trial t3 failed: ValueError: boom in t3 \(the whole error: "
                                               r".*t3/error\.txt\); finished trials are kept: rerun"):
        backends.run_ray(specs, tmp_path / "ray", trial_fn=fake_trial)
    text = (tmp_path / "t3" / "error.txt").read_text()
    assert "in fake_trial" in text and "\x1b[" not in text       # the frames, without Ray's colours
    results = [json.loads((tmp_path / f"t{i}" / "result.json").read_text()) for i in (1, 2)]   # the others finished
    assert [r["fid"] for r in results] == [10.0, 20.0]
    spans = sorted((r["start"], r["end"]) for r in results)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans   # no two trials overlapped
    assert all(t0 < s < time.time() for s, _ in spans)
    import os

    assert all(r["cpus"] == os.cpu_count() for r in results), results  # each trial holds every CPU
    assert (tmp_path / "ray").is_dir()
    out, err = capfd.readouterr()       # Ray and Tune kept quiet: no tables, colours or token notices
    for noise in ("Configuration for experiment", "╭", "\x1b[", "Token authentication", "View detailed results"):
        assert noise not in out + err, (noise, (out + err)[-2000:])


def test_cli_plan_of_the_paper_design_says_it_is_confounded():
    from click.testing import CliRunner

    from cli.sweep import sweep

    out = CliRunner().invoke(sweep, ["--config", "taguchi-dcgan", "--design", "paper", "--plan"])
    assert out.exit_code == 0, out.output
    assert "NOT orthogonal" in out.output and "train.batch_size with train.epochs" in out.output
    assert out.output.count("train.batch_size=16, train.epochs=40") == 3         # 16 always with the lowest epochs
    l9 = CliRunner().invoke(sweep, ["--config", "taguchi-stylegan", "--plan"])
    assert l9.exit_code == 0 and "orthogonal: every pair" in l9.output and "NOT" not in l9.output


def _fake_trial(spec):
    """A stand-in for training: FID falls with the learning rate and rises with the batch size."""
    from keras_mammo.utils import write_json_atomic

    ov = spec["overrides"]
    lr = ov["train.g_learning_rate+train.d_learning_rate"]
    fid = 100.0 - 1e5 * lr + 0.5 * ov["train.batch_size"] + 0.1 * spec["repeat"]
    r = {"name": spec["name"], "fid": fid, "kid": fid / 1000, "seconds": 1.0, "run_dir": spec["config"]["run_dir"],
         "fid_floor": 50.0, "kid_floor": 0.0, "fid_n_real": 16, "fid_n_synthetic": 16, "floor_n": 8,
         "seed": spec["config"]["seed"]}
    Path(spec["trial_dir"]).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(spec["trial_dir"]) / "result.json", r)
    return r


def test_l9_sweep_with_repeats_analyses_rows_over_seeds_and_confirms_the_optimum(tmp_path):
    from keras_mammo.sweep import runner

    # the prepared dataset is made when missing: give the sweep an existing (empty) one instead
    (tmp_path / "prep").mkdir()
    (tmp_path / "prep" / "manifest.jsonl").write_text("")
    res = runner.run_sweep("taguchi-dcgan", tmp_path / "s", prepared=str(tmp_path / "prep"), repeats=2,
                           engine="local", trial_fn=_fake_trial, echo=lambda s: None)
    assert len(res.trained) == 9 * 2 + 2
    t = res.trials
    assert len(t) == 10 and t.kind.tolist() == ["design"] * 9 + ["confirmation"]
    seeds = {json.loads(p.read_text())["seed"] for p in (tmp_path / "s" / "trials").glob("t*-s*/result.json")}
    assert seeds == {1234, 1235}
    row1 = t.iloc[0]                                  # lr 1e-4, batch 16: FIDs 98 and 98.1
    assert row1.fid == pytest.approx(98.05)
    assert row1.sn == pytest.approx(-10 * math.log10((98.0 ** 2 + 98.1 ** 2) / 2))
    assert res.analysis.optimum == {"train.g_learning_rate+train.d_learning_rate": 0.0003, "train.batch_size": 16,
                                    "train.epochs": res.analysis.optimum["train.epochs"]}
    assert t.iloc[-1].fid == pytest.approx(100 - 30 + 8 + 0.05)
    assert runner.run_sweep("taguchi-dcgan", tmp_path / "s", prepared=str(tmp_path / "prep"), repeats=2,
                            engine="local", trial_fn=_fake_trial, echo=lambda s: None).trained == []
    with pytest.raises(Exception, match="different sweep"):
        runner.run_sweep("taguchi-dcgan", tmp_path / "s", prepared=str(tmp_path / "prep"), repeats=3,
                         engine="local", trial_fn=_fake_trial, echo=lambda s: None)


def test_sweep_resolution_keeps_the_stages_train_would_keep():
    """The sweep's resolution and ``train --resolution`` keep the same stages (one owner:
    keras_mammo.training.schedule.stages_up_to); the sweep drops the others from the trial config."""
    from keras_mammo.errors import ConfigError
    from keras_mammo.sweep.trials import apply_resolution, build_config, split_sweep_config
    from keras_mammo.training.schedule import apply_schedule_options

    tree, _ = split_sweep_config("taguchi-stylegan")
    kept = apply_schedule_options(build_config(tree, {}), None, 32).train.schedule()
    apply_resolution(tree, 32)
    assert [s["resolution"] for s in tree["train"]["stages"]] == [s.resolution for s in kept] == [8, 16, 32]
    with pytest.raises(ConfigError, match=r"--resolution 4: this progressive config has no 4 px stage"):
        apply_resolution(split_sweep_config("taguchi-stylegan")[0], 4)


def _descendants(pid: int) -> dict[int, str]:
    """``{pid: command line}`` of every live process below ``pid`` (from /proc)."""
    parents, names = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] == "Z":
                continue
            parents[int(d)] = int(fields[1])
            names[int(d)] = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
    out, frontier = {}, [pid]
    while frontier:
        p = frontier.pop()
        for child, parent in parents.items():
            if parent == p and child not in out:
                out[child] = names[child]
                frontier.append(child)
    return out


def _alive(pid: int, cmdline: str) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        same = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace") == cmdline
        return same and stat[stat.rindex(")") + 2:].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_killed_ray_sweep_leaves_no_ray_process_behind(tmp_path, sig):
    """Killing `keras-mammo sweep` (SIGTERM from a scheduler, Ctrl-C) left Ray's raylet, GCS
    server and workers running for minutes. Here a Ray sweep whose trial sleeps is killed
    once the trial runs; every process Ray started must be gone soon after."""
    pytest.importorskip("ray")
    marker = tmp_path / "trial-started"
    script = tmp_path / "sweep.py"
    script.write_text(textwrap.dedent(f"""
        import time
        from keras_mammo.sweep.backends import run_ray

        def trial(spec):
            open(spec["marker"], "w").close()
            time.sleep(300)

        run_ray([{{"name": "t1", "trial_dir": {str(tmp_path / "t1")!r}, "marker": {str(marker)!r}}}],
                {str(tmp_path / "ray")!r}, cpus_per_trial=1, trial_fn=trial)
    """))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent) + os.pathsep
           + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    ray_procs: dict[int, str] = {}
    try:
        deadline = time.time() + 240
        while not marker.exists():
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read().decode()[-3000:]
            time.sleep(0.5)
        ray_procs = _descendants(proc.pid)
        assert any("raylet" in c for c in ray_procs.values()) and any("gcs_server" in c for c in ray_procs.values())
        os.killpg(proc.pid, sig)   # as a terminal's Ctrl-C or a scheduler does: the whole process group
        proc.wait(timeout=120)
        deadline = time.time() + 30
        while time.time() < deadline and any(_alive(p, c) for p, c in ray_procs.items()):
            time.sleep(0.5)
        left = {p: c[:80] for p, c in ray_procs.items() if _alive(p, c)}
        assert left == {}, left
    finally:
        if proc.poll() is None:
            proc.kill()
        for p, c in ray_procs.items():   # never leave this test's processes behind
            if _alive(p, c):
                os.kill(p, signal.SIGKILL)
