"""Every idle pooled connection of the served app ended by the server between two bursts
of load (``pg_terminate_backend``, as an administrator or an idle timeout does): the
second burst gets only its intended answers, since each dead connection is replaced at
checkout. With ``pool_pre_ping=False``, which turns that check off, it does not.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from tests.load.harness import Serve
from tests.load.harness import served_app_environment
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

WORKERS = 3
THREADS = 4
POOL_SIZE = THREADS + 1
#: Scenarios in each burst (about 1.2 requests each), and the client threads sending them.
BURST = 400
CLIENTS = 12
#: Seconds the ended connections get to disappear from the server.
GONE_TIMEOUT = 10.0
#: What a request on a dead connection raises, when nothing replaces it.
DEAD_CONNECTION_ERRORS = ("sqlalchemy.exc.OperationalError", "psycopg.*")


@dataclass(frozen=True)
class Bursts:
    before: list[Outcome]
    #: How many idle connections of the app the server ended between the bursts.
    ended: int
    after: list[Outcome]
    #: Seconds the second burst took.
    after_seconds: float


def end_idle_connections(database: sa.Engine, application_name: str) -> int:
    """End every idle connection of the app's on the server; return once they are
    gone, with how many there were.
    """
    with database.connect() as connection:
        ended = connection.scalars(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = :name AND state = 'idle'"
            ),
            {"name": application_name},
        ).all()
    deadline = time.monotonic() + GONE_TIMEOUT
    while app_connections(database, application_name):
        assert time.monotonic() < deadline, app_connections(database, application_name)
        time.sleep(0.05)
    return sum(ended)


def bursts_around_ended_connections(
    serve: Serve,
    bookshelf_url: str,
    database: sa.Engine,
    application_name: str,
    *,
    engine_options: Mapping[str, object],
    expected_errors: tuple[str, ...] = (),
) -> Bursts:
    """Serve the app, send a burst, end its idle connections, send another burst."""
    options = {
        **engine_options,
        "pool_size": POOL_SIZE,
        "max_overflow": 0,
        "pool_timeout": 5,
        "connect_args": {"application_name": application_name},
    }
    server = serve(
        served_app_environment(bookshelf_url, options),
        workers=WORKERS,
        threads=THREADS,
        expected_errors=[*INTENDED_ERRORS, *expected_errors],
    )
    catalogue = Catalogue.read(database)
    before = Workload(server.port, catalogue, seed=1).run(BURST, CLIENTS)
    # No request is in flight: every connection of the app's is idle in its pool.
    assert busy_connections(database, application_name) == []
    ended = end_idle_connections(database, application_name)
    started = time.monotonic()
    after = Workload(server.port, catalogue, seed=2).run(BURST, CLIENTS)
    return Bursts(before, ended, after, time.monotonic() - started)


def test_requests_after_the_server_ended_every_idle_connection_get_no_error(
    serve: Serve, bookshelf_url: str, database: sa.Engine, application_name: str
) -> None:
    bursts = bursts_around_ended_connections(
        serve, bookshelf_url, database, application_name, engine_options={}
    )

    assert problems(bursts.before) == [], tally(bursts.before)
    # Each worker had pooled connections to lose.
    assert bursts.ended >= WORKERS
    summary = f"{bursts.ended} ended; {tally(bursts.after)} in {bursts.after_seconds:.1f} s"
    assert problems(bursts.after) == [], summary
    assert write_problems(database, [*bursts.before, *bursts.after]) == []
    assert busy_connections(database, application_name) == []


def test_with_pool_pre_ping_false_requests_fail_on_the_ended_connections(
    serve: Serve, bookshelf_url: str, database: sa.Engine, application_name: str
) -> None:
    """The control: the same bursts with the check turned off get 500s."""
    bursts = bursts_around_ended_connections(
        serve,
        bookshelf_url,
        database,
        application_name,
        engine_options={"pool_pre_ping": False},
        expected_errors=DEAD_CONNECTION_ERRORS,
    )

    assert problems(bursts.before) == [], tally(bursts.before)
    assert bursts.ended >= WORKERS
    failures = problems(bursts.after)
    assert failures, tally(bursts.after)
    # Each a 500 of a request that needed the database, none without an answer.
    assert all(": 500 " in failure for failure in failures), failures
