"""benchmarks/async_bench.py runs, and reports what its tables must show on SQLite.

Its timings are not asserted (they depend on the machine), but the facts it reports
are: every app is timed and every ratio reported; the apps on flask-typed-db open no
connection once warm, where the NullPool app opens one a request; no connection is
left checked out; and no request of the concurrent bursts fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# The benchmark imports requests_bench, which compares against these; the
# oldest-versions venv does not install them.
pytest.importorskip("flask_sqlalchemy")
pytest.importorskip("flask_sqlalchemy_lite")
pytest.importorskip("aiosqlite")
pytest.importorskip("asgiref")
# The repository root, which holds benchmarks/: pytest puts only tests/ and examples/
# on the path.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from benchmarks import async_bench

BENCH = Path(async_bench.__file__)
#: --quick: 2 processes of 3 timed rounds of 4 requests.
TIMED_REQUESTS = 2 * 3 * 4


def run_quick(*options: str) -> list[str]:
    """The lines of one quick run, on SQLite only."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if key not in {"TEST_POSTGRES_URL", "TEST_MARIADB_URL"}
    }
    finished = subprocess.run(
        [sys.executable, str(BENCH), "--quick", *options],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    return finished.stdout.splitlines()


@pytest.fixture(scope="module")
def output() -> list[str]:
    """One quick run, shared by this module's tests."""
    return run_quick()


def row(output: list[str], first: str) -> list[str]:
    """The cells of the one line that starts with ``first`` and a space."""
    rows = [line.split() for line in output if line.startswith(f"{first} ")]
    assert len(rows) == 1, f"{first!r}: {rows}"
    return rows[0]


def test_only_sqlite_is_measured_without_server_urls(output: list[str]) -> None:
    backends = [line.split(":")[0] for line in output if "median µs per request" in line]
    assert backends == ["sqlite+aiosqlite"]
    assert any(
        line.endswith("2 processes x 3 interleaved rounds of 4 requests") for line in output
    )


@pytest.mark.parametrize(
    ("app", "opened"),
    [("sync", 0), ("async", 0), ("async-twin", 0), ("nullpool", TIMED_REQUESTS)],
)
def test_each_app_is_timed_and_only_nullpool_connects_while_timed(
    output: list[str], app: str, opened: int
) -> None:
    name, microseconds, connections, _, requests, _, checked_out = row(output, app)
    assert name == app
    assert float(microseconds) > 0
    assert (int(connections), int(requests)) == (opened, TIMED_REQUESTS)
    assert int(checked_out) == 0


@pytest.mark.parametrize("label", ["async/sync", "nullpool/async", "async-twin/async"])
def test_each_ratio_is_reported_with_its_process_range(output: list[str], label: str) -> None:
    cells = row(output, label)
    assert float(cells[1]) > 0
    assert re.fullmatch(r"\(\d+\.\d{3}-\d+\.\d{3}\)", cells[2])


@pytest.mark.parametrize("app", ["sync", "async", "nullpool"])
def test_no_request_of_the_concurrent_bursts_fails(output: list[str], app: str) -> None:
    _, name, milliseconds, failures, _ = row(output, f"burst {app}")
    assert name == app
    assert float(milliseconds) > 0
    assert int(failures) == 0


def test_breakdown_times_the_variants_and_reports_each_difference() -> None:
    lines = run_quick("--breakdown")
    for app in async_bench.BREAKDOWN_APPS:
        _, _, connections, _, requests, _, checked_out = row(lines, app)
        assert (int(connections), int(requests), int(checked_out)) == (0, TIMED_REQUESTS, 0)
    for name, over, _ in async_bench.DIFFERENCES:
        cells = row(lines, f"diff {name} - {over}")
        assert re.fullmatch(r"-?\d+\.\d", cells[4])
