""".ci/fast_lane_coverage.py: a module counts as exercised only when a line inside one of its
functions ran (an import runs only the ``def`` lines)."""
from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE = textwrap.dedent('''\
    """A module."""
    LIMIT = 3


    def f(x):
        """Docstring: never runs."""
        y = x + 1
        return y


    class C:
        def m(self):
            return (1,
                    2)
''')


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("fast_lane_coverage", ROOT / ".ci" / "fast_lane_coverage.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_function_bodies_without_docstrings(tool):
    assert tool.function_body_lines(SOURCE) == {7, 8, 13, 14}


def test_imported_only_versus_exercised(tool, tmp_path):
    pytest.importorskip("coverage")
    import coverage

    pkg = tmp_path / "keras_mammo"
    pkg.mkdir()
    (pkg / "a.py").write_text(SOURCE)
    (pkg / "b.py").write_text(SOURCE)
    (pkg / "c.py").write_text(SOURCE)
    (pkg / "consts.py").write_text("X = 1\n")
    (tmp_path / "cli").mkdir()
    imported = {1, 2, 5, 11, 12}                                  # what `import a` runs
    data = coverage.CoverageData(basename=str(tmp_path / ".coverage"))
    data.add_lines({str(pkg / "a.py"): imported, str(pkg / "b.py"): imported | {7, 8},
                    str(pkg / "consts.py"): {1}})
    data.write()
    assert tool.report(tmp_path / ".coverage", root=tmp_path) == [("keras_mammo/a.py", "imported only"),
                                                                  ("keras_mammo/c.py", "never imported")]
    # lanes run in parts: a module exercised in any of the data files counts
    part = coverage.CoverageData(basename=str(tmp_path / ".coverage.part"))
    part.add_lines({str(pkg / "a.py"): {7}, str(pkg / "c.py"): imported})
    part.write()
    assert tool.report([tmp_path / ".coverage", tmp_path / ".coverage.part"], root=tmp_path) == [
        ("keras_mammo/c.py", "imported only")]
