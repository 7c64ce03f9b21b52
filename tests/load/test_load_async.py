"""Async views under gunicorn's threaded workers (``--threads``, ``--preload``, several
workers) on PostgreSQL: many requests at once with zero failures and no connection
left checked out, each worker on a loop and connections of its own, a clean exit,
PostgreSQL restarted under async load, and views timed out or cancelled mid-query.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from tests.load import test_load_faults
from tests.load.harness import Gunicorn
from tests.load.harness import Serve
from tests.load.harness import fetch
from tests.load.harness import served_app_environment
from tests.load.harness import wait_for_database
from tests.load.served_async import ASYNC_BEFORE_FORK_SWITCH
from tests.load.served_async import ASYNC_SWITCH
from tests.load.served_async import MASTER_BACKEND
from tests.load.served_async import QueryNotInterrupted
from tests.load.test_load_faults import DATABASE_DOWN_ERRORS
from tests.load.test_load_faults import RESTART_TIMEOUT
from tests.load.test_load_faults import outage_problems
from tests.load.test_load_faults import server_start_time
from tests.load.workload import ASYNC_WEIGHTS
from tests.load.workload import Call
from tests.load.workload import Catalogue
from tests.load.workload import Outcome
from tests.load.workload import Workload
from tests.load.workload import app_connections
from tests.load.workload import busy_connections
from tests.load.workload import problems
from tests.load.workload import tally

pytestmark = pytest.mark.load

WORKERS = 3
THREADS = 4
#: One connection per thread, and one for the health check's own thread.
POOL_SIZE = THREADS + 1
#: Seconds a test waits for the server to end a cancelled query.
STATE_TIMEOUT = 10.0
#: What the async drivers raise while the server restarts, besides the sync path's:
#: asyncpg's errors, SQLAlchemy's adaptations of them, and the socket errors under them.
ASYNC_DATABASE_DOWN_ERRORS = (
    *DATABASE_DOWN_ERRORS,
    "asyncpg.*",
    "sqlalchemy.dialects.postgresql.asyncpg.*",
    # asyncpg's "the database system is shutting down", which SQLAlchemy does not
    # class as an OperationalError.
    "sqlalchemy.exc.DBAPIError",
    "sqlalchemy.exc.InterfaceError",
    # asyncpg's rollback at teardown of a connection whose query the restart cut off
    # ("another operation is in progress"): the connection is invalidated instead.
    "sqlalchemy.exc.InternalError",
    "ConnectionRefusedError",
    "ConnectionResetError",
)
#: What a view whose task is cancelled raises in the request's thread.
CANCELLED = "concurrent.futures._base.CancelledError"
#: Noise an async exit must not print: a loop closed under a connection or task.
EXIT_NOISE = re.compile(
    r"Event loop is closed|Task was destroyed|Exception ignored|was never awaited|Traceback"
)

#: The fault tests' fixture: restarts the shared server, and waits until it is back.
restart_postgresql = test_load_faults.restart_postgresql

#: The async engine's driver: psycopg's async mode, the default for the bind's URL, or
#: asyncpg, through SQLALCHEMY_ASYNC_DATABASE_URI.
DRIVERS = ["psycopg_async", "asyncpg"]


def async_environment(
    url: str,
    application_name: str,
    *,
    driver: str = "psycopg_async",
    config: Mapping[str, object] | None = None,
) -> dict[str, str]:
    """The served app with the async views, its async engine on ``driver``."""
    options: dict[str, object] = {
        "pool_size": POOL_SIZE,
        # A connection never given back then starves the pool, which the load cannot miss.
        "max_overflow": 0,
        "pool_timeout": 5,
    }
    settings: dict[str, object] = {ASYNC_SWITCH: True, **(config or {})}
    if driver == "asyncpg":
        # Shared with the sync engine, which these tests never connect: asyncpg takes
        # its server settings and timeout under other names than psycopg.
        options["connect_args"] = {
            "server_settings": {"application_name": application_name},
            "timeout": 5,
        }
        async_url = sa.make_url(url).set(drivername="postgresql+asyncpg")
        settings["SQLALCHEMY_ASYNC_DATABASE_URI"] = async_url.render_as_string(hide_password=False)
    else:
        options["connect_args"] = {"application_name": application_name, "connect_timeout": 5}
    return served_app_environment(url, options, **settings)


def async_workload(server: Gunicorn, catalogue: Catalogue, seed: int = 0) -> Workload:
    return Workload(server.port, catalogue, seed=seed, weights=ASYNC_WEIGHTS)


@dataclass(frozen=True)
class Backend:
    """What ``/load/async/backend`` answered: the worker, and its server connection."""

    pid: int
    backend: int


def ask_backends(server: Gunicorn, requests: int, clients: int) -> list[Backend]:
    with ThreadPoolExecutor(clients) as pool:
        pending = [
            pool.submit(fetch, server.port, "GET", "/load/async/backend") for _ in range(requests)
        ]
        answers = [answer.result() for answer in pending]
    assert [answer.status for answer in answers] == [200] * requests, answers
    return [Backend(**answer.json()) for answer in answers]


def backends_by_worker(backends: Sequence[Backend]) -> dict[int, set[int]]:
    found: dict[int, set[int]] = {}
    for answer in backends:
        found.setdefault(answer.pid, set()).add(answer.backend)
    return found


# -- Many requests, one after another and at once -------------------------------------


def test_async_requests_in_turn_and_at_once_all_succeed_and_leave_no_connection_checked_out(
    serve: Serve, bookshelf_url: str, database: sa.Engine, application_name: str
) -> None:
    server = serve(
        async_environment(bookshelf_url, application_name), workers=WORKERS, threads=THREADS
    )
    catalogue = Catalogue.read(database)

    sequential = async_workload(server, catalogue, seed=1).run(200, threads=1)
    at_once = async_workload(server, catalogue, seed=2).run(50, threads=50)
    backends = ask_backends(server, 120, clients=2 * WORKERS * THREADS)
    busy = busy_connections(database, application_name)
    server.stop()

    assert len(sequential) == 200
    assert problems(sequential) == [], tally(sequential)
    assert len(at_once) == 50
    assert problems(at_once) == [], tally(at_once)
    assert busy == []
    # Pooled: each worker reused its few server connections, request after request.
    by_worker = backends_by_worker(backends)
    assert all(len(pids) <= POOL_SIZE for pids in by_worker.values()), by_worker
    # Every worker that ran async views reported its pool at exit: nothing checked out.
    reports = server.async_pool_reports()
    assert {pid for pid, _ in reports} >= set(by_worker)
    assert all(checked_out == "0" for _, checked_out in reports), reports


# -- Fork (--preload) and exit -----------------------------------------------------------


@pytest.mark.parametrize("before_fork", [False, True], ids=["idle-master", "master-connected"])
def test_preloaded_workers_each_run_async_views_on_connections_of_their_own_and_exit_cleanly(
    serve: Serve,
    bookshelf_url: str,
    database: sa.Engine,
    application_name: str,
    before_fork: bool,
) -> None:
    """With ``master-connected``, gunicorn's master ran an async query before forking:
    its loop thread ran, and its pool held a connection, when the workers were forked.
    """
    config = {ASYNC_BEFORE_FORK_SWITCH: before_fork}
    server = serve(
        async_environment(bookshelf_url, application_name, config=config),
        workers=WORKERS,
        threads=THREADS,
    )

    backends = ask_backends(server, 150, clients=2 * WORKERS * THREADS)
    connections = len(app_connections(database, application_name))
    started = time.monotonic()
    server.stop()
    stop_seconds = time.monotonic() - started
    log = server.log()

    by_worker = backends_by_worker(backends)
    assert len(by_worker) >= 2, by_worker  # the load reached several workers
    # No two workers ever shared a server connection, nor used the master's.
    for pid, pids in by_worker.items():
        others = {b for other, bs in by_worker.items() if other != pid for b in bs}
        assert not pids & others, by_worker
    master_backends = [int(n) for n in re.findall(re.escape(MASTER_BACKEND) + r" (\d+)", log)]
    assert len(master_backends) == (1 if before_fork else 0), log
    assert not set(master_backends) & {answer.backend for answer in backends}
    assert connections <= WORKERS * POOL_SIZE + len(master_backends)
    # The exit: quick, silent, every pool (the master's too) with nothing checked out.
    assert stop_seconds < 10, log
    assert server.process.returncode == 0, log
    assert EXIT_NOISE.findall(log) == [], log
    reports = server.async_pool_reports()
    assert {pid for pid, _ in reports} >= set(by_worker)
    assert len(reports) == len(by_worker) + len(master_backends), reports
    assert all(checked_out == "0" for _, checked_out in reports), reports


# -- PostgreSQL restarted under async load ---------------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
def test_async_views_recover_from_a_postgresql_restart_without_restarting_gunicorn(
    serve: Serve,
    bookshelf_url: str,
    database: sa.Engine,
    application_name: str,
    *,
    restart_postgresql: Callable[[], None],
    driver: str,
) -> None:
    environment = async_environment(bookshelf_url, application_name, driver=driver)
    # One server under load through the restart; one left idle, whose pooled
    # connections all break unseen and which only the pre-ping can save.
    busy = serve(environment, workers=2, threads=4, expected_errors=ASYNC_DATABASE_DOWN_ERRORS)
    idle = serve(environment, workers=2, threads=4, expected_errors=ASYNC_DATABASE_DOWN_ERRORS)
    catalogue = Catalogue.read(database)
    started_before = server_start_time(database)
    before = async_workload(idle, catalogue, seed=1).run(100, threads=8)
    assert problems(before) == [], tally(before)

    stop = threading.Event()
    with ThreadPoolExecutor(1) as background:
        running = background.submit(
            async_workload(busy, catalogue, seed=2).run_until, stop, threads=6
        )
        try:
            time.sleep(1.0)  # let the load get going first
            restart_postgresql()
        finally:
            stop.set()
        during = running.result()
    wait_for_database(bookshelf_url, RESTART_TIMEOUT)

    after = [
        *async_workload(busy, catalogue, seed=3).run(150, threads=8),
        *async_workload(idle, catalogue, seed=4).run(150, threads=8),
    ]
    busy_after = busy_connections(database, application_name)

    failed = [outcome for outcome in during if outcome.problem() is not None]
    print(
        f"\n{driver}: {len(failed)} of {len(during)} requests during the restart failed"
        f" ({len(failed) / max(len(during), 1):.0%}): {tally(during)}"
    )
    assert server_start_time(database) > started_before  # it did restart
    assert outage_problems(during) == [], tally(during)
    assert problems(after) == [], tally(after)
    assert busy_after == []
    # No worker was replaced: the serve fixture checks that each booted only once.


# -- Views timed out or cancelled mid-query --------------------------------------------

#: Slow requests of each kind, and the client threads sending them.
SLOW_REQUESTS = 20
SLOW_CLIENTS = 4


def send_slow_requests(server: Gunicorn, catalogue: Catalogue) -> list[Outcome]:
    calls = [
        Call("timeout", "GET", "/load/async/timeout", expected=frozenset({504})),
        Call("cancel", "GET", "/load/async/cancel", expected=frozenset({500})),
    ]
    sender = async_workload(server, catalogue)
    with ThreadPoolExecutor(SLOW_CLIENTS) as pool:
        return list(pool.map(sender.send, calls * SLOW_REQUESTS))


def wait_until_idle(database: sa.Engine, application_name: str) -> list[tuple[str, ...]]:
    """The app's connections still busy once the server had time to end cancelled
    queries: none, when every query was cancelled on the server too.
    """
    deadline = time.monotonic() + STATE_TIMEOUT
    while (busy := busy_connections(database, application_name)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return busy


@pytest.mark.parametrize("driver", DRIVERS)
def test_views_timed_out_or_cancelled_mid_query_under_load_leave_no_connection_checked_out(
    serve: Serve, bookshelf_url: str, database: sa.Engine, application_name: str, driver: str
) -> None:
    server = serve(
        async_environment(bookshelf_url, application_name, driver=driver),
        workers=WORKERS,
        threads=THREADS,
        expected_errors=[CANCELLED],
    )
    catalogue = Catalogue.read(database)

    slow, reads = async_workload(server, catalogue, seed=1).alongside(
        lambda: send_slow_requests(server, catalogue), threads=8
    )
    busy = wait_until_idle(database, application_name)
    # Forty connections never given back would have exhausted the pools.
    after = async_workload(server, catalogue, seed=2).run(100, threads=12)
    server.stop()

    assert problems(slow) == [], tally(slow)
    assert problems(reads) == [], tally(reads)
    assert busy == []
    assert problems(after) == [], tally(after)
    assert all(checked_out == "0" for _, checked_out in server.async_pool_reports())
    assert QueryNotInterrupted.__name__ not in server.log()


# -- Measured: the same read, async and sync -------------------------------------------

#: Requests of each view, after a warm-up, and the client threads sending them.
MEASURED = 600
MEASURE_CLIENTS = 8


@dataclass(frozen=True)
class Measure:
    path: str
    seconds: float
    latencies: Sequence[float]

    def line(self) -> str:
        p50 = statistics.median(self.latencies) * 1000
        p99 = statistics.quantiles(self.latencies, n=100)[98] * 1000
        rate = len(self.latencies) / self.seconds
        return f"{self.path:28} {rate:7.0f} req/s  p50 {p50:5.1f} ms  p99 {p99:5.1f} ms"


def measure(server: Gunicorn, path: str) -> Measure:
    def timed(_: int) -> float:
        started = time.perf_counter()
        answer = fetch(server.port, "GET", path)
        assert answer.status == 200, answer
        return time.perf_counter() - started

    with ThreadPoolExecutor(MEASURE_CLIENTS) as pool:
        list(pool.map(timed, range(MEASURE_CLIENTS * 10)))  # every worker connected
        started = time.perf_counter()
        latencies = list(pool.map(timed, range(MEASURED)))
    return Measure(path, time.perf_counter() - started, latencies)


def test_async_and_sync_reads_of_a_book_measured_under_the_same_gunicorn(
    serve: Serve, bookshelf_url: str, database: sa.Engine, application_name: str
) -> None:
    """No time is asserted: the rates and latencies are printed (``pytest -s``)."""
    server = serve(
        async_environment(bookshelf_url, application_name), workers=WORKERS, threads=THREADS
    )
    book_id = Catalogue.read(database).books[0][0]

    results = [
        measure(server, path)
        for path in [
            f"/api/books/{book_id}",
            f"/api/async/books/{book_id}",
            "/api/books?per_page=5",
            "/api/async/books?per_page=5",
        ]
    ]

    print(
        f"\n{WORKERS} workers x {THREADS} threads, {MEASURE_CLIENTS} clients:\n"
        + "\n".join(result.line() for result in results)
    )
    assert all(len(result.latencies) == MEASURED for result in results)
    # The same JSON from both.
    sync, asynchronous = (
        fetch(server.port, "GET", f"/api{prefix}/books/{book_id}").json()
        for prefix in ["", "/async"]
    )
    assert sync == asynchronous
