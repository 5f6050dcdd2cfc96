"""bench/bench_resume.py with 2 kills: a SIGKILLed run resumes to bit-identical weights."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

#: every test here trains a run (bench/bench_resume.py, killed and resumed)
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_bench_resume_two_kills_identical(mias_dir, tmp_path):
    out = tmp_path / "resume.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_resume.py"), "--kills", "2", "--json",
                           str(out), "--mias", str(mias_dir), "--films", "6", "--epochs", "2",
                           "--work", str(tmp_path / "w")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["kills"] == 2 and result["killed_mid_run"] == 2
    assert result["identical"] == 2, result["trials"]
    logs = [Path(t["log"]).read_text() for t in result["trials"]]
    assert all("resuming" in log for log in logs)  # killed, then resumed from a checkpoint
