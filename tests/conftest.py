"""Fixtures shared by the test suite: the database URL, parametrized over backends.

SQLite always runs. PostgreSQL and MariaDB run when ``TEST_POSTGRES_URL`` and
``TEST_MARIADB_URL`` are set (``.ci/run`` sets both); otherwise their parameters skip
with the reason shown by ``-ra``. With ``CI=true`` a missing or unreachable server fails
the run instead, so CI can never go green by skipping a database.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool

# Test modules share helpers as 'tests.*' (tests.checkers, tests.load.*).
sys.path.append(str(Path(__file__).resolve().parents[1]))

from tests.scale_out import SCALE_OUT_VARIABLES  # once the path has tests
from tests.scale_out import ScaleOut  # once the path has tests
from tests.server_sessions import server_problem  # once the path has tests

SERVER_URL_VARIABLES = {"postgresql": "TEST_POSTGRES_URL", "mariadb": "TEST_MARIADB_URL"}
IN_CI = os.environ.get("CI", "").lower() == "true"


#: Asked once per URL for the whole run.
_server_problem = functools.cache(server_problem)


def _unavailable(message: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"{message} (CI=true: every database must be tested)", pytrace=False)
    pytest.skip(message)


#: Only a safety net: a test that leaks a connection holding a lock makes the cleanup
#: below fail with a lock timeout instead of waiting for that connection forever.
_LOCK_TIMEOUT_CONNECT_ARGS: dict[str, dict[str, str]] = {
    "postgresql": {"options": "-c lock_timeout=10s"},
    "mysql": {"init_command": "SET SESSION lock_wait_timeout = 10"},
    "mariadb": {"init_command": "SET SESSION lock_wait_timeout = 10"},
}


def _drop_every_table(url: str) -> None:
    connect_args = _LOCK_TIMEOUT_CONNECT_ARGS.get(sa.make_url(url).get_backend_name(), {})
    engine = sa.create_engine(url, poolclass=sa.NullPool, connect_args=connect_args)
    try:
        metadata = sa.MetaData()
        metadata.reflect(engine)
        metadata.drop_all(engine)
    finally:
        engine.dispose()


def _emptied(url: str) -> Iterator[str]:
    """Yield ``url`` with no tables in its database, and drop what the test made."""
    _drop_every_table(url)
    yield url
    _drop_every_table(url)


def server_url(backend: str) -> str:
    """The URL of a server backend, or skip (fail in CI) when it is not usable."""
    variable = SERVER_URL_VARIABLES[backend]
    url = os.environ.get(variable)
    if not url:
        _unavailable(f"{variable} is not set, so the {backend} tests do not run")
    problem = _server_problem(url)
    if problem is not None:
        _unavailable(f"{backend} at {variable} is unreachable: {problem}")
    return url


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty database of each backend; its tables are dropped after the test."""
    backend: str = request.param
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    yield from _emptied(server_url(backend))


@pytest.fixture(scope="package", params=["sqlite", "postgresql", "mariadb"])
def package_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database of each backend shared by all the tests of a package, emptied before
    and after them: for tests that keep to themselves with ``test_isolation()``.
    """
    backend: str = request.param
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('package') / 'test.db'}"
        return
    yield from _emptied(server_url(backend))


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    """The PostgreSQL URL alone, for tests of that backend's behaviour."""
    yield from _emptied(server_url("postgresql"))


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """The MariaDB URL alone, for tests of that backend's behaviour."""
    yield from _emptied(server_url("mariadb"))


@pytest.fixture
def instance_path(tmp_path: Path) -> Path:
    """An instance folder of its own for each test's Flask apps; not created yet."""
    return tmp_path / "instance"


@pytest.fixture(autouse=True)
def _dispose_engines_after_test() -> Iterator[None]:
    """Close the pooled connections of every engine a test connected with.

    A test app is dropped at the end of its test with its connections still pooled;
    psycopg warns about each open connection it garbage-collects. In-memory SQLite
    (StaticPool) is left alone: disposing it would empty a database some fixture may
    still use.
    """
    engines: set[sa.Engine] = set()

    def remember(connection: sa.Connection) -> None:
        engines.add(connection.engine)

    event.listen(sa.Engine, "engine_connect", remember)
    yield
    event.remove(sa.Engine, "engine_connect", remember)
    for engine in engines:
        if not isinstance(engine.pool, StaticPool):
            engine.dispose()


@pytest.fixture(scope="session")
def scale_out() -> ScaleOut:
    """The servers of tests/servers/scale_out.sh, from the variables it prints."""
    variables = SCALE_OUT_VARIABLES
    values = [os.environ.get(variable) for variable in variables]
    missing = [variable for variable, value in zip(variables, values, strict=True) if not value]
    if missing:
        _unavailable(
            f"{', '.join(missing)} not set: start the servers with"
            " 'tests/servers/scale_out.sh start' and export 'scale_out.sh env'"
        )
    primary, replica, pgbouncer = (value or "" for value in values)
    for variable, url in zip(variables, (primary, replica, pgbouncer), strict=True):
        problem = _server_problem(url)
        if problem is not None:
            _unavailable(f"the server at {variable} is unreachable: {problem}")
    script = os.environ.get("TEST_SCALE_OUT_SCRIPT") or os.path.join(
        os.path.dirname(__file__), "servers", "scale_out.sh"
    )
    return ScaleOut(primary, replica, pgbouncer, script)
