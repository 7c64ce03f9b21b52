"""benchmarks/replicas_bench.py runs, and reports what its tables must show on SQLite.

Its timings are not asserted (they depend on the machine), but the facts it reports
are: every app and workload is timed and every ratio reported, the replica's beside its
target; the app with replicas reads from the replica and writes to the primary, and so
does the GET of a client that has just written; its write sets the read-your-writes
cookie; no connection is left checked out; and no request failed.
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
# The repository root, which holds benchmarks/: pytest puts only tests/ and examples/
# on the path.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from benchmarks import replicas_bench

BENCH = Path(replicas_bench.__file__)
APPS = ("typed-db", "replicas", "replicas-twin")
WORKLOADS = ("get", "page", "write")
#: The variables that would add server backends to the run.
SERVER_VARIABLES = {"TEST_POSTGRES_URL", "TEST_PRIMARY_URL", "TEST_REPLICA_URL"}


@pytest.fixture(scope="module")
def output() -> list[str]:
    """The lines of one quick run, on SQLite only, shared by this module's tests."""
    environ = {key: value for key, value in os.environ.items() if key not in SERVER_VARIABLES}
    finished = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # A request answering another status than its workload's stops the run.
    assert finished.returncode == 0, finished.stderr
    return finished.stdout.splitlines()


def rows(output: list[str], first: str) -> list[list[str]]:
    """The cells of each line that starts with ``first`` and a space, in order."""
    return [line.split() for line in output if line.startswith(f"{first} ")]


def test_only_sqlite_is_measured_without_server_urls(output: list[str]) -> None:
    backends = [line.split(",")[0] for line in output if "median µs per request" in line]
    assert backends == ["sqlite"]
    assert any(
        line.endswith("2 processes x 3 interleaved rounds of 4 requests") for line in output
    )
    assert output[-1].startswith("every request answered with its expected status")


def test_the_tables_name_the_apps(output: list[str]) -> None:
    headers = rows(output, "workload")
    assert headers == [["workload", *APPS]] * 2


@pytest.mark.parametrize("workload", WORKLOADS)
def test_each_app_is_timed_on_each_workload(output: list[str], workload: str) -> None:
    timed = rows(output, workload)[0]
    assert timed[0] == workload
    assert len(timed) == 1 + len(APPS)
    assert all(float(cell) > 0 for cell in timed[1:])


@pytest.mark.parametrize(
    ("label", "note"),
    [
        ("replicas/typed-db", "target: under 1.02"),
        ("replicas-twin/replicas", "the control: identical code"),
    ],
)
def test_each_ratio_is_reported_per_workload_with_its_process_range(
    output: list[str], label: str, note: str
) -> None:
    found = rows(output, label)
    assert [cells[1] for cells in found] == list(WORKLOADS)
    for cells in found:
        assert float(cells[2]) > 0
        assert re.fullmatch(r"\(\d+\.\d{3}-\d+\.\d{3}\)", cells[3])
        assert " ".join(cells[4:]) == note


@pytest.mark.parametrize(
    ("workload", "without", "with_replicas"),
    [
        # A read by primary key: the replica's, with replicas.
        ("get", (1, 0), (0, 1)),
        # The page's rows and its count.
        ("page", (2, 0), (0, 2)),
        # The insert, and the refresh after the commit: both the primary's.
        ("write", (2, 0), (2, 0)),
        # A client that has just written reads from the primary.
        ("get-after-write", (1, 0), (1, 0)),
    ],
)
def test_reads_go_to_the_replica_and_writes_to_the_primary(
    output: list[str],
    workload: str,
    without: tuple[int, int],
    with_replicas: tuple[int, int],
) -> None:
    # The second table's row: the first is the times'.
    cells = rows(output, workload)[-1]
    counts = " ".join(cells[1:])
    expected = [without, with_replicas, with_replicas]
    assert counts == " ".join(f"{primary} + {replica}" for primary, replica in expected)


def test_only_the_apps_with_replicas_set_the_cookie(output: list[str]) -> None:
    assert rows(output, "cookie set by the write") == [
        ["cookie", "set", "by", "the", "write", "no", "yes", "yes"]
    ]


def test_no_connection_is_left_checked_out(output: list[str]) -> None:
    assert rows(output, "checked out after") == [["checked", "out", "after", "0", "0", "0"]]
