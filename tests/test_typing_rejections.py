"""Code that must not type-check is rejected by mypy and pyright, with the right error.

Each line of ``tests/typing/reject/*.py`` that ends in ``# expect: mypy[code, ...]
pyright[rule, ...]`` must get exactly those errors from each checker, and no other line
may get any. ``mypy[assignment|arg-type]`` accepts either code, for errors that
SQLAlchemy 2.0 and 2.1 lead mypy to report differently. A signature loosened to ``Any``
makes the expected errors disappear, and fails here.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest
from tests.checkers import ROOT
from tests.checkers import mypy_output
from tests.checkers import pyright_diagnostics

REJECT_DIR = Path(__file__).parent / "typing" / "reject"
REJECT_FILES = sorted(REJECT_DIR.glob("reject_*.py"))
EXPECT = re.compile(r"#\s*expect:(?P<spec>.*)$")
CHECKER_SPEC = re.compile(r"(?P<checker>mypy|pyright)\[(?P<codes>[^\]]*)\]")
MYPY_LINE = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")

Errors = dict[tuple[str, int], set[str]]
Expected = dict[tuple[str, int], set[frozenset[str]]]


def expected_errors(checker: str) -> Expected:
    """Per marked line, the errors it must get: each a set of acceptable codes."""
    expected: Expected = defaultdict(set)
    for path in REJECT_FILES:
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            match = EXPECT.search(line)
            if match is None:
                continue
            for spec in CHECKER_SPEC.finditer(match["spec"]):
                if spec["checker"] == checker:
                    for code in spec["codes"].split(","):
                        expected[(path.name, number)].add(frozenset(code.strip().split("|")))
    return dict(expected)


def matches(found: Errors, expected: Expected) -> bool:
    if found.keys() != expected.keys():
        return False
    for key, codes in found.items():
        alternatives = expected[key]
        if len(codes) != len(alternatives):
            return False
        if not all(any(code in choice for code in codes) for choice in alternatives):
            return False
    return True


def mypy_errors(tmp_path: Path) -> Errors:
    output = mypy_output([path.relative_to(ROOT) for path in REJECT_FILES], tmp_path / "mypy")
    found: Errors = defaultdict(set)
    for line in output.splitlines():
        match = MYPY_LINE.match(line)
        if match is not None:
            found[(Path(match["path"]).name, int(match["line"]))].add(match["code"])
    return dict(found)


def pyright_errors(tmp_path: Path) -> Errors:
    found: Errors = defaultdict(set)
    for diagnostic in pyright_diagnostics(REJECT_FILES, tmp_path):
        if diagnostic["severity"] != "error":
            continue
        key = (Path(diagnostic["file"]).name, diagnostic["range"]["start"]["line"] + 1)
        found[key].add(diagnostic.get("rule", "no-rule"))
    return dict(found)


def test_reject_files_declare_expectations() -> None:
    assert REJECT_FILES, "no tests/typing/reject/reject_*.py files"
    assert len(expected_errors("mypy")) >= 10
    assert expected_errors("mypy").keys() == expected_errors("pyright").keys()


@pytest.mark.parametrize("checker", ["mypy", "pyright"])
def test_checker_rejects_exactly_the_marked_lines(checker: str, tmp_path: Path) -> None:
    found = mypy_errors(tmp_path) if checker == "mypy" else pyright_errors(tmp_path)
    expected = expected_errors(checker)
    assert matches(found, expected), f"found {found}, expected {expected}"
