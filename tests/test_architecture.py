"""The package's shape (issue 23): no import cycles, a light ``import keras_mammo``, small files.

The layer order itself (data → models → training → …) is checked by import-linter's
contracts in ``.importlinter`` (``lint-imports``, run by ``.ci/run``); the cycle check
here also covers ``cli`` and cycles within one layer.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("keras_mammo", "cli")
MAX_LINES = 500


def _modules(root: Path) -> dict[str, Path]:
    """``{dotted module name: file}`` of every module of :data:`PACKAGES` (a package is its ``__init__``)."""
    out = {}
    for pkg in PACKAGES:
        for f in sorted((root / pkg).rglob("*.py")):
            name = ".".join(f.relative_to(root).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = f
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every import statement, at any depth (inside functions too), except ``if TYPE_CHECKING:`` ones."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """``{module: modules it imports}`` within the project, counting imports inside functions.

    ``from pkg import name`` counts as an import of ``pkg.name`` when that is a module,
    else of ``pkg``; ``import a.b.c`` as an import of the deepest project module named.
    """
    mods = _modules(root)

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        out = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [owner(a.name) for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    parts = parts[:len(parts) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else owner(base) for a in node.names]
            out.update(t for t in targets if t and t != mod)
        graph[mod] = out
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_sees_function_level_imports(tmp_path):
    pkg = tmp_path / "keras_mammo"
    pkg.mkdir()
    (tmp_path / "cli").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from keras_mammo.b import f\n")
    (pkg / "b.py").write_text("def f():\n    from keras_mammo import a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from keras_mammo import a\n")
    graph = import_graph(tmp_path)
    assert graph["keras_mammo.b"] == {"keras_mammo.a"}
    assert graph["keras_mammo.c"] == set()      # type-checking imports never run
    assert import_cycles(graph) == [["keras_mammo.a", "keras_mammo.b"]]


def test_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 80, "the module scan found too few modules"
    assert import_cycles(graph) == []


def test_no_file_over_500_lines():
    long = {str(f.relative_to(ROOT)): n for f in _modules(ROOT).values()
            if (n := len(f.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_import_keras_mammo_does_not_import_tensorflow():
    code = ("import sys, keras_mammo\n"
            "assert 'train' in dir(keras_mammo)\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api_names_resolve():
    import keras_mammo

    from keras_mammo.metrics.evaluate import evaluate
    from keras_mammo.training.run import train

    assert keras_mammo.train is train and keras_mammo.evaluate is evaluate
    for name in keras_mammo.__all__:
        assert callable(getattr(keras_mammo, name)), name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        keras_mammo.nope
