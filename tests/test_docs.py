"""The README stays a short front page whose commands are the ones CI runs, and whose links
into the docs site resolve (issue 23, deliverable 3). The site itself is checked by
``mkdocs build --strict`` in ``.ci/run`` (broken links, anchors and API references)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")

#: the README's longest allowed length, in lines (issue 23)
MAX_README_LINES = 300


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def _commands(line: str) -> list[list[str]]:
    """The `&&`-separated commands of one shell line, as argument lists without `-q`."""
    return [[a for a in shlex.split(part) if a != "-q"] for part in line.split("&&") if part.strip()]


def test_readme_is_at_most_300_lines():
    n = len(README.splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines; move the detail to a docs/ page"


def test_ci_runs_the_readme_install_and_test_commands():
    """Every command of the README's test set-up line (install, FID helper, pytest) is run by
    `.ci/run`, with the same arguments (`-q` aside)."""
    line = next(ln for block in _bash_blocks(README) for ln in block.splitlines() if '".[test]"' in ln)
    readme_cmds = _commands(line)
    assert readme_cmds[-1] == ["pytest"], line
    ci_cmds = [cmd for ln in (REPO / ".ci" / "run").read_text().splitlines()
               if ln.strip() and not ln.lstrip().startswith("#") for cmd in _commands(ln)]
    missing = [" ".join(c) for c in readme_cmds if c not in ci_cmds]
    assert not missing, f".ci/run does not run these README commands: {missing}"
    assert ["mkdocs", "build", "--strict"] in [c[:3] for c in ci_cmds], ".ci/run does not build the docs strictly"


def test_readme_links_resolve_and_docs_pages_are_in_the_nav():
    """Relative links in the README point to files that exist (GitHub renders docs/*.md), and
    every page it links to is in mkdocs.yml's nav."""
    links = [m for m in re.findall(r"\]\(([^)\s]+)\)", README) if not re.match(r"[a-z]+://|#", m)]
    assert links, "the README links to no docs page"
    missing = [link for link in links if not (REPO / link.split("#")[0]).exists()]
    assert not missing, f"README links to missing files: {missing}"

    def pages(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, list):
            for item in node:
                yield from pages(item)
        elif isinstance(node, dict):
            for value in node.values():
                yield from pages(value)

    # mkdocs.yml may hold python/name tags (none today); read it as plain YAML
    nav = set(pages(yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]))
    linked = {link.split("#")[0].removeprefix("docs/") for link in links if link.startswith("docs/")}
    assert linked - {""} <= nav, f"linked from the README but not in mkdocs.yml's nav: {sorted(linked - nav)}"
