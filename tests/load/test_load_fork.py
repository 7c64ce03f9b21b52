"""A child forked inside a request, under gunicorn with a mixed load running: the child
works on a connection of its own, and the parent's transaction, committed or failed,
is exactly what the parent did.
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
from tests.load.served_hardening import FORK_SWITCH
from tests.load.served_hardening import ParentFailure
from tests.load.served_hardening import child_author
from tests.load.workload import INTENDED_ERRORS
from tests.load.workload import Call
from tests.load.workload import Catalogue
from tests.load.workload import Outcome
from tests.load.workload import Workload
from tests.load.workload import app_connections
from tests.load.workload import busy_connections
from tests.load.workload import problems
from tests.load.workload import tally
from tests.load.workload import write_problems

from bookshelf.models import Author

pytestmark = pytest.mark.load

WORKERS = 3
THREADS = 4
POOL_SIZE = THREADS + 1
#: Forking requests, half of them committing, and the client threads sending them.
FORKS = 100
FORK_CLIENTS = 4
#: Client threads of the mixed load sent meanwhile.
CLIENTS = 8
#: Seconds a forked child's connection gets to disappear from the server once it exited.
GONE_TIMEOUT = 10.0

PARENT_FAILURE = f"{ParentFailure.__module__}.{ParentFailure.__qualname__}"


def fork_call(number: int) -> Call:
    """Scenario ``number``: the even ones commit (201), the odd ones fail (500)."""
    commit = number % 2 == 0
    body = {"author": f"Fork parent {number}", "commit": commit}
    return Call("fork", "POST", "/load/fork", body, frozenset({201 if commit else 500}))


def send_forks(port: int, catalogue: Catalogue) -> list[Outcome]:
    sender = Workload(port, catalogue)
    with ThreadPoolExecutor(FORK_CLIENTS, thread_name_prefix="fork-client") as pool:
        return list(pool.map(sender.send, map(fork_call, range(FORKS))))


def author_of(call: Call) -> str:
    assert isinstance(call.body, Mapping)
    name = call.body["author"]
    assert isinstance(name, str)
    return name


def report_problems(outcomes: Sequence[Outcome]) -> list[str]:
    """What each forking request's report shows went wrong: the child on the parent's
    connection or session, or seeing its uncommitted row; the parent's connection or
    row changed under it.
    """
    found: list[str] = []
    for outcome in outcomes:
        answer, name = outcome.answer, author_of(outcome.call)
        if answer is None:
            continue
        if not answer.headers.get("content-type", "").startswith("application/json"):
            found.append(f"{name!r}: no report in {answer.body[:300]!r}")
            continue
        report = answer.json()
        expected = {
            "new_session": True,
            "parent_rows_seen": 0,
            "parent_session_commit": "InvalidRequestError",
            "parent_backend_after": report.get("parent_backend"),
            "parent_rows_after": 1,
        }
        wrong = {key: report.get(key) for key in expected if report.get(key) != expected[key]}
        if "child_error" in report:
            wrong["child_error"] = report["child_error"]
        if report.get("child_backend") in {None, report.get("parent_backend")}:
            wrong["child_backend"] = report.get("child_backend")
        if wrong:
            found.append(f"{name!r}: {wrong} in {report}")
    return found


def stored_authors(database: sa.Engine, names: Sequence[str]) -> set[str]:
    with database.connect() as connection:
        return set(connection.scalars(sa.select(Author.name).where(Author.name.in_(names))))


def wait_for_connections_at_most(database: sa.Engine, application_name: str, most: int) -> int:
    """Wait until the app has at most ``most`` connections; return how many it has."""
    deadline = time.monotonic() + GONE_TIMEOUT
    while len(connections := app_connections(database, application_name)) > most:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return len(connections)


def test_child_forked_in_a_request_under_load_never_touches_the_parents_transaction(
    serve: Serve, bookshelf_url: str, database: sa.Engine, application_name: str
) -> None:
    engine_options = {
        "pool_size": POOL_SIZE,
        "max_overflow": 0,
        "pool_timeout": 5,
        "connect_args": {"application_name": application_name},
    }
    server = serve(
        served_app_environment(bookshelf_url, engine_options, **{FORK_SWITCH: True}),
        workers=WORKERS,
        threads=THREADS,
        expected_errors=[*INTENDED_ERRORS, PARENT_FAILURE],
    )
    catalogue = Catalogue.read(database)

    started = time.monotonic()
    forks, mixed = Workload(server.port, catalogue, seed=1).alongside(
        lambda: send_forks(server.port, catalogue), threads=CLIENTS
    )
    elapsed = time.monotonic() - started

    summary = f"{tally(forks)} {tally(mixed)} in {elapsed:.1f} s"
    assert problems([*forks, *mixed]) == [], summary
    assert report_problems(forks) == []
    committed = [author_of(o.call) for o in forks if o.status == 201]
    failed = [author_of(o.call) for o in forks if o.status == 500]
    assert len(committed) == len(failed) == FORKS // 2
    assert stored_authors(database, failed) == set()
    assert stored_authors(database, committed) == set(committed)
    # Each child committed its own row, whatever its parent then did.
    children = [child_author(name) for name in [*committed, *failed]]
    assert stored_authors(database, children) == set(children)
    assert write_problems(database, mixed) == []
    assert busy_connections(database, application_name) == []
    # The children's connections ended with them: only the workers' pools are left.
    most = WORKERS * POOL_SIZE
    assert wait_for_connections_at_most(database, application_name, most) <= most
