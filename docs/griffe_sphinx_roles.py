"""Griffe extension for the docs build: Sphinx roles in docstrings as Markdown code spans.

The docstrings use ``:mod:`~keras_mammo.metrics.fid```, ``:func:`fid``` and the like
(Sphinx cross-reference roles), which Markdown would show literally. This rewrites them
as code spans before mkdocstrings renders them: ``~a.b.c`` shows ``c``, ``a.b`` shows
``a.b``; and a line ending in reST's literal-block marker ``::`` ends in ``:``. Nothing else
in a docstring changes. Used by ``mkdocs.yml`` only.
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


def rewrite_roles(text: str) -> str:
    """``text`` with every Sphinx role replaced by a Markdown code span, ``::`` by ``:``."""
    return _LITERAL_MARKER.sub(":", _ROLE.sub(_code_span, text))


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring that griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite_roles(obj.docstring.value)
