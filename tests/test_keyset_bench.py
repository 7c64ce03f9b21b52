"""benchmarks/keyset_bench.py runs on PostgreSQL and reports every row of its table.

Its timings are not asserted (they depend on the machine); what is: the script checks
that OFFSET and keyset pagination return the same rows on every page it times (it
fails otherwise), and it reports each page, the count and the targets' ratios.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "keyset_bench.py"


def test_quick_run_agrees_and_reports_every_row(postgresql_url: str) -> None:
    finished = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        env={**os.environ, "TEST_POSTGRES_URL": postgresql_url},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert lines[0].startswith("PostgreSQL, 100,000 rows made in")
    names = [line[:28].strip() for line in lines[2:-1]]
    assert names == [
        "offset page 1",
        "keyset page 1",
        "offset page 1,000",
        "keyset page 1,000",
        "offset page 1 with count",
        "offset page 1 with estimate",
        "the count alone",
        "the estimate alone",
    ]
    assert lines[-1].startswith("targets: keyset page 1,000 / keyset page 1 = ")


def test_without_postgresql_it_says_so() -> None:
    environ = {key: value for key, value in os.environ.items() if key != "TEST_POSTGRES_URL"}
    finished = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (finished.returncode, finished.stdout) == (
        0,
        "keyset_bench: TEST_POSTGRES_URL is not set; nothing to measure.\n",
    )
