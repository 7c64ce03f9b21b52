"""Faults under gunicorn: PostgreSQL restarted under load, the pool exhausted, the
database unreachable at start-up. Each ends in clean answers, never a hang.
"""

from __future__ import annotations

import os
import random
import shlex
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import pytest
import sqlalchemy as sa
from tests.load.harness import Answer
from tests.load.harness import Serve
from tests.load.harness import fetch
from tests.load.harness import raised_exceptions
from tests.load.harness import served_app_environment
from tests.load.harness import wait_for_database
from tests.load.workload import INTENDED_ERRORS
from tests.load.workload import Catalogue
from tests.load.workload import Outcome
from tests.load.workload import Workload
from tests.load.workload import app_connections
from tests.load.workload import busy_connections
from tests.load.workload import problems
from tests.load.workload import tally
from tests.load.workload import write_problems

pytestmark = pytest.mark.load

#: What a request running into a database that is down raises, and the app logs.
#: InvalidatePoolError is how pool_pre_ping starts a reconnect, inside SQLAlchemy: it
#: shows as the first link of the chained error when that reconnect fails too.
DATABASE_DOWN_ERRORS = (
    "sqlalchemy.exc.OperationalError",
    "sqlalchemy.exc.InvalidatePoolError",
    "psycopg.*",
)
#: Seconds PostgreSQL gets to accept connections again after the restart.
RESTART_TIMEOUT = 60.0
#: Seconds a test waits for the served app's connection to reach a given state.
STATE_TIMEOUT = 10.0


# -- PostgreSQL restarted under load ----------------------------------------------------


@pytest.fixture
def restart_postgresql(bookshelf_url: str) -> Iterator[Callable[[], None]]:
    """Run ``$TEST_POSTGRES_RESTART``, the command that restarts the server of
    ``TEST_POSTGRES_URL``. Whatever happens, the test ends only once the server
    accepts connections again, so what runs next finds it up.
    """
    command = os.environ.get("TEST_POSTGRES_RESTART")
    if not command:
        message = "TEST_POSTGRES_RESTART is not set, so PostgreSQL is not restarted"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: every fault must be tested)", pytrace=False)
        pytest.skip(message)

    def restart() -> None:
        result = subprocess.run(
            shlex.split(command),
            capture_output=True,
            text=True,
            timeout=RESTART_TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, f"{command!r} failed: {result.stdout}{result.stderr}"

    try:
        yield restart
    finally:
        wait_for_database(bookshelf_url, RESTART_TIMEOUT)


def server_start_time(database: sa.Engine) -> datetime:
    with database.connect() as connection:
        started: datetime = connection.execute(
            sa.select(sa.func.pg_postmaster_start_time())
        ).scalar_one()
        return started


def outage_problems(outcomes: Sequence[Outcome]) -> list[str]:
    """What did not fail cleanly while the server was down: a request must get its
    intended answer, or a 500 or 503 (JSON ``{"error": ...}`` under ``/api/``); never
    no answer at all.
    """
    found: list[str] = []
    for outcome in outcomes:
        answer, path = outcome.answer, outcome.call.path
        if answer is None or answer.status not in {500, 503}:
            problem = outcome.problem()
            if problem is not None:
                found.append(problem)
        elif path.startswith("/api/") and not answer.is_json_error():
            found.append(f"{path}: {answer.status} {answer.body[:300]!r} is not a JSON error")
    return found


def test_app_recovers_from_a_postgresql_restart_without_restarting_gunicorn(
    serve: Serve,
    bookshelf_url: str,
    database: sa.Engine,
    application_name: str,
    restart_postgresql: Callable[[], None],
) -> None:
    engine_options = {
        "pool_pre_ping": True,
        "pool_size": 5,
        "max_overflow": 0,
        "pool_timeout": 5,
        "connect_args": {"application_name": application_name, "connect_timeout": 5},
    }
    environment = served_app_environment(bookshelf_url, engine_options)
    # One server under load through the restart; one left idle, whose pooled
    # connections all break unseen and which only pool_pre_ping can save.
    expected_errors = [*DATABASE_DOWN_ERRORS, *INTENDED_ERRORS]
    busy = serve(environment, workers=2, threads=4, expected_errors=expected_errors)
    idle = serve(environment, workers=2, threads=4, expected_errors=expected_errors)
    catalogue = Catalogue.read(database)
    started_before = server_start_time(database)
    before = Workload(idle.port, catalogue, seed=1).run(200, threads=8)
    assert problems(before) == []

    stop = threading.Event()
    with ThreadPoolExecutor(1) as background:
        running = background.submit(
            Workload(busy.port, catalogue, seed=2).run_until, stop, threads=6
        )
        try:
            time.sleep(1.0)  # let the load get going first
            restart_postgresql()
        finally:
            stop.set()
        during = running.result()
    wait_for_database(bookshelf_url, RESTART_TIMEOUT)

    after = [
        *Workload(busy.port, catalogue, seed=3).run(300, threads=8),
        *Workload(idle.port, catalogue, seed=4).run(300, threads=8),
    ]

    assert server_start_time(database) > started_before  # it did restart
    assert outage_problems(during) == [], tally(during)
    assert problems(after) == [], tally(after)
    assert write_problems(database, [*before, *during, *after]) == []
    assert busy_connections(database, application_name) == []
    # No worker was replaced: the serve fixture checks that each booted only once.


# -- The pool exhausted -----------------------------------------------------------------

POOL_TIMEOUT = 1.0


@dataclass(frozen=True)
class Starved:
    """The answers while the one pooled connection is held by a blocked request."""

    #: A request that needs a connection, sent while there is none.
    starved: Answer
    #: A request that needs none, sent at the same time; and the blocked one still was.
    free: Answer
    blocked_meanwhile: bool
    #: The blocked request, once let go; then one that needs a connection again.
    held: Answer
    recovered: Answer
    #: What the server logged, once stopped.
    log: str


@pytest.fixture
def starved(
    serve: Serve, bookshelf_url: str, database: sa.Engine, application_name: str
) -> Starved:
    """Serve the app with a pool of one connection and hold that connection in a
    request blocked on an advisory lock the test holds, for exactly as long as the
    test needs: no sleep to tune.
    """
    engine_options = {
        "pool_size": 1,
        "max_overflow": 0,
        "pool_timeout": POOL_TIMEOUT,
        "connect_args": {"application_name": application_name},
    }
    server = serve(
        served_app_environment(bookshelf_url, engine_options),
        workers=1,
        threads=4,
        expected_errors=["sqlalchemy.exc.TimeoutError"],
    )
    lock_key = random.randrange(2**62)
    with ThreadPoolExecutor(1) as pool:
        # Closing this connection releases the lock, should anything fail first.
        with database.connect() as lock_holder:
            lock_holder.execute(sa.select(sa.func.pg_advisory_lock(lock_key)))
            holding = pool.submit(fetch, server.port, "GET", f"/load/hold/{lock_key}")
            wait_for_lock_wait(database, application_name)
            starved = fetch(server.port, "GET", "/api/books")
            free = fetch(server.port, "GET", "/load/no-db")
            blocked_meanwhile = not holding.done()
            lock_holder.execute(sa.select(sa.func.pg_advisory_unlock(lock_key)))
        held = holding.result()
    recovered = fetch(server.port, "GET", "/api/books")
    server.stop()
    return Starved(starved, free, blocked_meanwhile, held, recovered, server.log())


def wait_for_lock_wait(database: sa.Engine, application_name: str) -> None:
    """Return once one of the app's connections waits for a lock."""
    deadline = time.monotonic() + STATE_TIMEOUT
    while not any(wait == "Lock" for _, wait, _ in app_connections(database, application_name)):
        assert time.monotonic() < deadline, app_connections(database, application_name)
        time.sleep(0.05)


def test_a_request_that_gets_no_connection_in_time_is_a_503_and_others_go_on(
    starved: Starved,
) -> None:
    assert starved.starved.status == 503, starved.starved.body
    assert starved.starved.is_json_error(), starved.starved.body
    # It waited for the pool and gave up: the one error the app logged.
    (error,) = raised_exceptions(starved.log)
    assert error.startswith("sqlalchemy.exc.TimeoutError: QueuePool limit of size 1 overflow 0")
    assert starved.free.status == 200
    assert starved.blocked_meanwhile
    assert starved.held.status == 200, starved.held.body
    assert starved.recovered.status == 200, starved.recovered.body


def test_a_503_for_want_of_a_connection_says_when_to_retry(starved: Starved) -> None:
    assert starved.starved.status == 503
    assert starved.starved.headers.get("retry-after") == "1"


# -- The database unreachable at start-up -----------------------------------------------


NEW_BOOK = {"title": "Solaris", "isbn": "9780156027601", "author": "Stanisław Lem"}


@dataclass(frozen=True)
class Unreachable:
    port: int
    #: What the health check must give as the reason.
    reason: str


@pytest.fixture(params=["refused", "silent"])
def unreachable(request: pytest.FixtureRequest) -> Iterator[Unreachable]:
    """A port of 127.0.0.1 where no database answers: nothing listens (connections
    are refused), or a socket listens but never answers (connections hang until the
    connect timeout).
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        if request.param == "refused":
            yield Unreachable(port, "Connection refused")
        else:
            sock.listen(64)
            # The health check's own time limit is one second.
            yield Unreachable(port, "no answer within 1 s")


def test_app_starts_with_its_database_unreachable_and_its_health_check_says_why(
    serve: Serve, unreachable: Unreachable
) -> None:
    password = f"secret-{uuid.uuid4().hex}"
    url = f"postgresql+psycopg://bookshelf:{password}@127.0.0.1:{unreachable.port}/bookshelf"
    engine_options = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 2}}
    server = serve(
        served_app_environment(url, engine_options),
        workers=2,
        threads=2,
        expected_errors=DATABASE_DOWN_ERRORS,
    )

    health = fetch(server.port, "GET", "/healthz")
    no_db = fetch(server.port, "GET", "/load/no-db")
    calls: list[tuple[str, str, object]] = [
        ("GET", "/api/books", None),
        ("GET", "/api/books/1", None),
        ("POST", "/api/books", NEW_BOOK),
        ("GET", "/", None),
    ]
    # At once: each waits for the connect timeout when the database is silent.
    with ThreadPoolExecutor(len(calls)) as pool:
        pending = {
            f"{method} {path}": pool.submit(fetch, server.port, method, path, body)
            for method, path, body in calls
        }
    views = {view: answer.result() for view, answer in pending.items()}
    server.stop()

    assert no_db.status == 200
    assert health.status == 503
    report = health.json()
    assert report["ok"] is False
    (bind,) = report["binds"]
    assert bind["ok"] is False
    # The probe names no host; the operators find the URL and the reason in the log.
    assert "url" not in bind
    assert "127.0.0.1" not in health.body.decode(errors="replace")
    assert url.replace(password, "***") in server.log()
    assert unreachable.reason in server.log()
    # A clean 500, in JSON under /api/, while the database is away.
    assert {view: answer.status for view, answer in views.items()} == dict.fromkeys(views, 500)
    assert all(answer.is_json_error() for view, answer in views.items() if " /api/" in view)
    for answer in [health, no_db, *views.values()]:
        assert password not in answer.body.decode(errors="replace")
        assert password not in str(answer.headers)
    assert password not in server.log()
