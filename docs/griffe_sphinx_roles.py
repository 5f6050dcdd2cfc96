"""Griffe extension for the docs build: Sphinx roles in docstrings as Markdown code spans.

The docstrings use ``:mod:`~keras_mammo.metrics.fid```, ``:func:`fid``` and the like
(Sphinx cross-reference roles), which Markdown would show literally. This rewrites them
as code spans before mkdocstrings renders them: ``~a.b.c`` shows ``c``, ``a.b`` shows
``a.b``; a line ending in reST's literal-block marker ``::`` ends in ``:``; and a reST
simple table (columns ruled by ``=====  =====`` lines) becomes a Markdown table. Nothing
else in a docstring changes. Used by ``mkdocs.yml`` only.
"""
from __future__ import annotations

import re
from typing import Any

import griffe

_LITERAL_MARKER = re.compile(r"(?<=\S)::$", re.MULTILINE)
_ROLE = re.compile(r":(?:py:)?(?:mod|func|class|meth|attr|obj|data|exc|const):`(~?)([^`]+)`")


def _code_span(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


_RULE = re.compile(r"^\s*=+(?:\s+=+)+\s*$")


def _cells(line: str, spans: list[tuple[int, int]]) -> list[str]:
    cells = [line[a:b].strip() for a, b in spans[:-1]] + [line[spans[-1][0]:].strip()]
    return [c.replace("|", "\\|") for c in cells]


def _simple_tables(text: str) -> str:
    """reST simple tables (a rule, a header row, a rule, rows, a rule) as Markdown tables."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        rule = lines[i]
        if _RULE.match(rule) and i + 2 < len(lines) and _RULE.match(lines[i + 2]):
            end = next((k for k in range(i + 3, len(lines)) if _RULE.match(lines[k])), None)
            if end is not None:
                spans = [m.span() for m in re.finditer(r"=+", rule)]
                indent = rule[: len(rule) - len(rule.lstrip())]
                rows = [_cells(lines[i + 1], spans)] + [_cells(ln, spans) for ln in lines[i + 3:end] if ln.strip()]
                out += ["", *(indent + "| " + " | ".join(r) + " |" for r in rows[:1]),
                        indent + "|" + "---|" * len(spans),
                        *(indent + "| " + " | ".join(r) + " |" for r in rows[1:]), ""]
                i = end + 1
                continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def rewrite_roles(text: str) -> str:
    """``text`` with Sphinx roles as Markdown code spans, ``::`` as ``:``, simple tables as tables."""
    return _simple_tables(_LITERAL_MARKER.sub(":", _ROLE.sub(_code_span, text)))


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring that griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite_roles(obj.docstring.value)
