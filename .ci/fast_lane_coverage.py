#!/usr/bin/env python3
"""Which ``keras_mammo`` / ``cli`` modules does the fast test lane never exercise?

The fast lane is ``pytest -m "not slow"`` (``slow``: tests that train a model or run a whole CLI
pipeline, see ``setup.cfg``). It must touch every module at least once: a module counts as
*exercised* when at least one line inside one of its functions or methods ran (importing a
module only runs its ``def`` lines); a module with no function at all counts once it is imported.
Only the test process is measured: a module that runs only in a subprocess the tests start
(``python -m cli.main ...``, a server) is listed, so give it an in-process test.

Usage (from the repository root, in the test environment; needs ``coverage``)::

    python .ci/fast_lane_coverage.py                  # runs the fast lane under coverage, then reports
    python .ci/fast_lane_coverage.py --data .coverage # reports on an existing coverage data file
    python .ci/fast_lane_coverage.py --data a --data b # on several, combined (lanes run in parts)
    python .ci/fast_lane_coverage.py -- -x -k io      # extra pytest arguments after --

Prints one line per module that is never exercised (``never imported`` or ``imported only``) and
a summary line; exits 1 when there is such a module or the test run failed, else 0.
"""
from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("keras_mammo", "cli")


def package_modules(root: Path = ROOT) -> list[Path]:
    """Every ``.py`` file of :data:`PACKAGES` under ``root``, sorted."""
    return sorted(p for pkg in PACKAGES for p in (root / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def function_body_lines(source: str) -> set[int]:
    """Line numbers of the statements inside every function and method body of ``source``
    (docstrings excluded: they never run)."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                body = body[1:]
            for stmt in body:
                lines.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    return lines


def classify(path: Path, executed: set[int] | None) -> str:
    """``"exercised"``, ``"imported only"`` or ``"never imported"`` for one module, given the
    line numbers coverage saw run in it (``None``: the file is absent from the data)."""
    if not executed:
        return "never imported"
    body = function_body_lines(path.read_text(encoding="utf-8"))
    if not body or executed & body:
        return "exercised"
    return "imported only"


def report(data_files: Path | list[Path], root: Path = ROOT) -> list[tuple[str, str]]:
    """``[(module path relative to root, state)]`` for every module that is not exercised in
    the coverage data file(s) ``data_files`` (several: the lines that ran in any of them)."""
    import coverage

    measured: dict[str, set[int]] = {}
    for data_file in data_files if isinstance(data_files, list) else [data_files]:
        data = coverage.CoverageData(basename=str(data_file))
        data.read()
        for f in data.measured_files():
            measured.setdefault(str(Path(f).resolve()), set()).update(data.lines(f) or ())
    out = []
    for path in package_modules(root):
        state = classify(path, measured.get(str(path.resolve())))
        if state != "exercised":
            out.append((str(path.relative_to(root)), state))
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, action="append",
                    help="an existing coverage data file (repeat to combine several); default: run the fast lane")
    args = ap.parse_args(argv)
    rc = 0
    data_files = args.data
    if not data_files:
        data_files = [ROOT / ".coverage.fast-lane"]
        cmd = [sys.executable, "-m", "coverage", "run", f"--data-file={data_files[0]}",
               "--source=" + ",".join(PACKAGES), "-m", "pytest", "-m", "not slow", *extra]
        rc = subprocess.call(cmd, cwd=ROOT)
    for data_file in data_files:
        if not Path(data_file).is_file():
            print(f"{data_file}: no coverage data", file=sys.stderr)
            return 1
    missing = report(list(data_files))
    for module, state in missing:
        print(f"{module}: {state}")
    total = len(package_modules())
    print(f"fast lane exercises {total - len(missing)} of {total} modules" + ("" if rc == 0 else
                                                                               f" (pytest exited {rc})"))
    return 1 if (missing or rc) else 0


if __name__ == "__main__":
    sys.exit(main())
