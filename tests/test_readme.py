"""The README, the repository's page, and README-pypi.md, the package index's page.

The quick start's code runs and type-checks in tests/test_packaging.py, against the
installed wheel; here, what the pages say around it holds, and the index page, read
away from the repository, shows that same code and links only to absolute addresses.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
README = (ROOT / "README.md").read_text("utf-8")
INDEX_PAGE = (ROOT / "README-pypi.md").read_text("utf-8")
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
CONSOLE_BLOCK = re.compile(r"^```console\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)\s]+)\)")
#: Where the index page's links into the repository start.
REPOSITORY: str = PYPROJECT["project"]["urls"]["Source"]


def test_first_screen_gives_the_two_commands() -> None:
    before_first_section = README.split("\n## ")[0]
    first_block = CONSOLE_BLOCK.findall(before_first_section)[0]
    assert [line.split("#")[0].strip() for line in first_block.splitlines()] == [
        "$ make demo",
        "$ make test",
    ]


def test_readme_names_the_pythons_the_makefile_looks_for() -> None:
    makefile = (ROOT / "Makefile").read_text("utf-8")
    names = re.search(r"^PYTHON_NAMES := (.*)$", makefile, re.MULTILINE)
    assert names is not None
    *first, last = names[1].split()
    listed = ", ".join(f"`{name}`" for name in first) + f" and `{last}`"
    assert listed in " ".join(README.split())


@pytest.mark.parametrize("page", ["README.md", "README-pypi.md"])
def test_page_says_how_to_install_and_which_python(page: str) -> None:
    text = (ROOT / page).read_text("utf-8")
    section = text.split("## Installing\n")[1].split("\n## ")[0]
    commands = [
        line.split("#")[0].strip()
        for block in CONSOLE_BLOCK.findall(section)
        for line in block.splitlines()
    ]
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert commands == [
        "$ pip install flask-typed-db",
        *(f'$ pip install "flask-typed-db[{extra}]"' for extra in extras),
    ]
    oldest = PYPROJECT["project"]["requires-python"].removeprefix(">=")
    assert f"It needs Python {oldest} or newer" in section


def test_index_page_links_are_absolute_and_lead_somewhere() -> None:
    links = LINK.findall(INDEX_PAGE)
    assert links
    for link in links:
        assert link.startswith("https://"), link
        if not link.startswith(REPOSITORY + "/"):
            continue
        # .../blob/main/PATH#anchor or .../tree/main/PATH: a file or folder of this tree.
        match = re.fullmatch(
            re.escape(REPOSITORY) + r"/(?:blob|tree)/main/([^#]+)(?:#(.+))?", link
        )
        assert match is not None, link
        target = ROOT / match[1]
        assert target.exists(), link
        if match[2] is not None:
            assert match[2] in heading_anchors(target.read_text("utf-8")), link


def heading_anchors(markdown: str) -> set[str]:
    """The anchors a Markdown renderer gives the headings: ``## Quick start`` -> quick-start."""
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)
    }


def test_index_page_example_is_the_readme_quick_start_code() -> None:
    # Those blocks run and type-check, from the installed wheel, in test_packaging.py.
    quick_start = README.split("## Quick start\n")[1].split("\n## ")[0]
    tested = PYTHON_BLOCK.findall(quick_start)
    shown = PYTHON_BLOCK.findall(INDEX_PAGE)
    assert shown
    assert [block for block in shown if block not in tested] == []
