"""The example under gunicorn (--preload, several workers with threads) on PostgreSQL,
under a bounded mixed load: only the intended answers, exactly the acknowledged writes
kept, and no connection left checked out.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from tests.load.harness import Serve
from tests.load.harness import served_app_environment
from tests.load.workload import INTENDED_ERRORS
from tests.load.workload import WEIGHTS
from tests.load.workload import Catalogue
from tests.load.workload import Workload
from tests.load.workload import app_connections
from tests.load.workload import busy_connections
from tests.load.workload import problems
from tests.load.workload import tally
from tests.load.workload import write_problems

from bookshelf.models import Book

pytestmark = pytest.mark.load

WORKERS = 3
THREADS = 4
#: One connection per thread, and one for the health check's own thread.
POOL_SIZE = THREADS + 1
#: Scenarios sent, from this many client threads: about 3,500 requests.
SCENARIOS = 3000
CLIENTS = 12


def test_mixed_load_gets_only_intended_answers_and_keeps_exactly_the_acknowledged_writes(
    serve: Serve, bookshelf_url: str, database: sa.Engine, application_name: str
) -> None:
    engine_options = {
        "pool_pre_ping": True,
        "pool_size": POOL_SIZE,
        # A leaked connection then starves the pool, which the load cannot miss.
        "max_overflow": 0,
        "pool_timeout": 5,
        "connect_args": {"application_name": application_name},
    }
    server = serve(
        served_app_environment(bookshelf_url, engine_options, CONNECT_BEFORE_FORK=True),
        workers=WORKERS,
        threads=THREADS,
        expected_errors=INTENDED_ERRORS,
    )
    catalogue = Catalogue.read(database)

    outcomes = Workload(server.port, catalogue).run(SCENARIOS, CLIENTS)

    counts = tally(outcomes)
    assert problems(outcomes) == [], counts
    # Every scenario ran, and every one's answers were checked.
    assert {outcome.call.kind.partition("/")[0] for outcome in outcomes} == set(WEIGHTS)
    assert write_problems(database, outcomes) == []
    created = sum(1 for outcome in outcomes if outcome.call.kind == "create")
    with database.connect() as connection:
        books = connection.scalar(sa.select(sa.func.count()).select_from(Book))
    assert books == len(catalogue.books) + created
    assert busy_connections(database, application_name) == []
    # Each worker's pool, and the connection the master made before forking.
    assert len(app_connections(database, application_name)) <= WORKERS * POOL_SIZE + 1
