"""Sessions whose close fails at teardown, under gunicorn with a mixed load running: an
engine ``rollback`` listener raises in some requests, and a log handler keeps each
error, and so the failed session, for the life of the process. No connection is left
in its transaction: none is idle in transaction, and schema changes take their locks
at once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from tests.load.harness import Serve
from tests.load.harness import served_app_environment
from tests.load.served_hardening import CLOSE_FAILS_SWITCH
from tests.load.served_hardening import RollbackListenerFailure
from tests.load.workload import INTENDED_ERRORS
from tests.load.workload import Call
from tests.load.workload import Catalogue
from tests.load.workload import Outcome
from tests.load.workload import Workload
from tests.load.workload import busy_connections
from tests.load.workload import problems
from tests.load.workload import tally
from tests.load.workload import write_problems

from bookshelf.models import Author

pytestmark = pytest.mark.load

WORKERS = 3
THREADS = 4
POOL_SIZE = THREADS + 1
#: Requests whose close fails, and the client threads sending them.
CLOSE_FAILURES = 150
FAILING_CLIENTS = 3
#: Client threads of the mixed load sent meanwhile.
CLIENTS = 8
#: What the schema changes wait for their locks at most.
LOCK_TIMEOUT = "2s"

LISTENER_FAILURE = f"{RollbackListenerFailure.__module__}.{RollbackListenerFailure.__qualname__}"
CLOSE_FAILED_LOG = "flask-typed-db: closing the session failed"


def close_fails_call(number: int) -> Call:
    body = {"author": f"Close fails {number}"}
    return Call("close-fails", "POST", "/load/close-fails", body, contains={"books": 5})


def send_close_failures(port: int, catalogue: Catalogue) -> list[Outcome]:
    sender = Workload(port, catalogue)
    with ThreadPoolExecutor(FAILING_CLIENTS, thread_name_prefix="close-fails") as pool:
        return list(pool.map(sender.send, map(close_fails_call, range(CLOSE_FAILURES))))


def schema_changes(database: sa.Engine) -> None:
    """Alter and drop the example's tables, in a transaction rolled back after: each
    statement raises if a lock it needs is not granted within :data:`LOCK_TIMEOUT`.
    """
    with database.connect() as connection:
        connection.execute(sa.text(f"SET lock_timeout = '{LOCK_TIMEOUT}'"))
        connection.execute(sa.text("ALTER TABLE authors ADD COLUMN load_note text"))
        connection.execute(sa.text("ALTER TABLE books ADD COLUMN load_note text"))
        connection.execute(sa.text("DROP TABLE loans, books, authors"))
        connection.rollback()


def kept_authors(database: sa.Engine, outcomes: Sequence[Outcome]) -> list[str]:
    names = [body["author"] for o in outcomes if isinstance(body := o.call.body, Mapping)]
    with database.connect() as connection:
        return list(connection.scalars(sa.select(Author.name).where(Author.name.in_(names))))


def test_sessions_whose_close_fails_under_load_leave_no_connection_in_a_transaction(
    serve: Serve, bookshelf_url: str, database: sa.Engine, application_name: str
) -> None:
    engine_options = {
        "pool_size": POOL_SIZE,
        # A connection left checked out then starves the pool, which the load cannot miss.
        "max_overflow": 0,
        "pool_timeout": 2,
        "connect_args": {"application_name": application_name},
    }
    server = serve(
        served_app_environment(bookshelf_url, engine_options, **{CLOSE_FAILS_SWITCH: True}),
        workers=WORKERS,
        threads=THREADS,
        expected_errors=[*INTENDED_ERRORS, LISTENER_FAILURE],
    )
    catalogue = Catalogue.read(database)

    started = time.monotonic()
    failing, mixed = Workload(server.port, catalogue, seed=1).alongside(
        lambda: send_close_failures(server.port, catalogue), threads=CLIENTS
    )
    elapsed = time.monotonic() - started

    # No connection is left in its transaction, holding its locks.
    assert busy_connections(database, application_name) == []
    schema_changes(database)
    summary = f"{tally(failing)} {tally(mixed)} in {elapsed:.1f} s"
    assert problems([*failing, *mixed]) == [], summary
    # Every one of them failed to close, with the error logged (and kept).
    assert server.log().count(CLOSE_FAILED_LOG) == CLOSE_FAILURES
    assert kept_authors(database, failing) == []
    assert write_problems(database, mixed) == []
