"""benchmarks/requests_bench.py runs, and what it counts holds on every backend.

Its timings are not asserted (they depend on the machine), but the facts its tables
report are: how many SQL statements each app runs per request, that typed-db takes
no connection and makes no Session on a request that does not use the database, and
that no connection is left checked out. So is what makes its timings fair: every
response's status is checked, and every app runs first, and after each other app,
equally often.
"""

from __future__ import annotations

import sys
from collections import Counter
from itertools import pairwise
from itertools import permutations
from pathlib import Path

import pytest
from sqlalchemy import event

# The benchmark compares against these; the oldest-versions venv does not install them.
pytest.importorskip("flask_sqlalchemy")
pytest.importorskip("flask_sqlalchemy_lite")
# The repository root, which holds benchmarks/: pytest puts only tests/ and examples/
# on the path.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from benchmarks import requests_bench
from benchmarks.requests_bench import Result

#: Statements per request of every app: a page count, and the refresh of the new
#: row's id after the commit expired it, are one statement each.
BY_HAND = {"no-db": 0, "get": 1, "404": 1, "page": 2, "last-page": 2, "write": 2}
#: typed-db knows the total from a page that is not full: no count on the last page.
TYPED_DB = {**BY_HAND, "last-page": 1}


@pytest.fixture(scope="module")
def result(package_database_url: str) -> Result:
    """One quick run of the benchmark on each backend, shared by this module's tests."""
    return requests_bench.measure(package_database_url, requests_bench.QUICK)


def statements(result: Result, contender: str) -> dict[str, int]:
    return {workload: counts.statements for workload, counts in result.counts[contender].items()}


def test_typed_db_runs_the_statements_the_baseline_runs_minus_the_last_page_count(
    result: Result,
) -> None:
    assert statements(result, "baseline") == BY_HAND
    assert statements(result, "typed-db") == TYPED_DB


def test_flask_sqlalchemy_lite_and_the_twin_run_the_statements_the_baseline_runs(
    result: Result,
) -> None:
    assert statements(result, "fsa") == BY_HAND
    assert statements(result, "fsa-lite") == BY_HAND
    assert statements(result, "twin") == BY_HAND


def test_typed_db_takes_no_connection_and_no_session_without_database_work(
    result: Result,
) -> None:
    counts = result.counts["typed-db"]["no-db"]
    assert (counts.checkouts, counts.sessions, counts.transaction_ends) == (0, 0, 0)


def test_counting_sees_the_checkout_and_session_of_a_request_that_queries(
    result: Result,
) -> None:
    counts = result.counts["typed-db"]["get"]
    assert (counts.checkouts, counts.sessions) == (1, 1)


def test_no_app_leaves_a_connection_checked_out(result: Result) -> None:
    assert result.checked_out == dict.fromkeys(requests_bench.CONTENDERS, 0)


def test_every_app_is_timed_on_every_workload_in_every_round(result: Result) -> None:
    rounds = requests_bench.QUICK.rounds
    for contender in requests_bench.CONTENDERS:
        assert {workload: len(times) for workload, times in result.times[contender].items()} == (
            dict.fromkeys(BY_HAND, rounds)
        )


def test_every_app_reads_and_writes_the_same_tables() -> None:
    """The same rows in the same place for every app: a table of its own, further into
    the file, measured up to 1% slower with the same code.
    """
    rb = requests_bench
    bases = [rb.BaselineBase, rb.TwinBase, rb.TypedBase, rb.FsaBase, rb.LiteBase]
    tables = [sorted(base.metadata.tables) for base in bases]
    assert tables == [["bench_book", "bench_note"]] * len(bases)


def test_the_twin_writes_through_model_classes_of_its_own() -> None:
    """A control on the baseline's classes would share their slots in CPython's type
    attribute cache, and could not show what a layout of its own does to a time.
    """
    app, engine = requests_bench.twin_app("sqlite://")
    requests_bench.TwinBase.metadata.create_all(engine)
    inserted: list[object] = []

    def after_insert(mapper: object, connection: object, target: object) -> None:
        inserted.append(target)

    models = (requests_bench.BaselineNote, requests_bench.TwinNote)
    for model in models:
        event.listen(model, "after_insert", after_insert)
    try:
        write = next(workload for workload in requests_bench.WORKLOADS if workload.name == "write")
        requests_bench.Request.build(write).send(app)
    finally:
        for model in models:
            event.remove(model, "after_insert", after_insert)
        engine.dispose()
    assert [type(target) for target in inserted] == [requests_bench.TwinNote]


def test_a_request_answered_with_another_status_stops_the_run() -> None:
    app, engine = requests_bench.baseline_app("sqlite://")
    expecting_404 = requests_bench.Workload("no-db", "GET", "/ping", "404 NOT FOUND")
    with pytest.raises(RuntimeError, match=r"GET /ping answered '200 OK', not '404 NOT FOUND'"):
        requests_bench.Request.build(expecting_404).send(app)
    engine.dispose()


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_orders_put_each_app_first_and_after_each_other_equally_often(count: int) -> None:
    orders = requests_bench.balanced_orders(count)
    assert all(sorted(order) == list(range(count)) for order in orders)
    firsts = Counter(order[0] for order in orders)
    assert set(firsts) == set(range(count))
    assert len(set(firsts.values())) == 1
    neighbours = Counter(pair for order in orders for pair in pairwise(order))
    assert set(neighbours) == set(permutations(range(count), 2))
    assert len(set(neighbours.values())) <= 1


def test_quick_run_reports_each_workload_with_its_ratios(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable in ("TEST_POSTGRES_URL", "TEST_MARIADB_URL"):
        monkeypatch.delenv(variable, raising=False)
    requests_bench.main(["--quick"])
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("sqlite: median µs per request, 2 processes x 3") for line in lines)
    for workload in BY_HAND:
        timing = next(line for line in lines if line.startswith(f"{workload} "))
        # The name, 5 medians, 5 ratios and the range of two of them.
        assert len(timing.split()) == 1 + 5 + 5 + 2


def test_processes_each_time_their_rounds_and_only_the_first_measures_memory(
    tmp_path: Path,
) -> None:
    settings = requests_bench.QUICK
    merged = requests_bench.measure_in_processes(f"sqlite:///{tmp_path / 'bench.db'}", settings)
    for contender in requests_bench.CONTENDERS:
        assert {workload: len(times) for workload, times in merged.times[contender].items()} == (
            dict.fromkeys(BY_HAND, settings.processes * settings.rounds)
        )
    assert statements(merged, "typed-db") == TYPED_DB
    assert set(merged.memory_growth) == set(requests_bench.CONTENDERS)
    assert merged.checked_out == dict.fromkeys(requests_bench.CONTENDERS, 0)


def test_process_range_is_the_spread_of_the_processes_own_ratios() -> None:
    # Two processes of two rounds: ratios 1.0 and 1.5 in the first, 2.0 and 3.0 in the second.
    times = {"typed-db": [1.0, 1.5, 2.0, 3.0], "baseline": [1.0, 1.0, 1.0, 1.0]}
    assert requests_bench.process_range(times, "typed-db", "baseline", 2) == (1.25, 2.5)
