"""Fixtures shared by the test suite: the database URL, parametrized over backends.

SQLite always runs. PostgreSQL and MariaDB run when ``TEST_POSTGRES_URL`` and
``TEST_MARIADB_URL`` are set (``.ci/run`` sets both); otherwise their parameters skip
with the reason shown by ``-ra``. With ``CI=true`` a missing or unreachable server fails
the run instead, so CI can never go green by skipping a database.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy as sa

SERVER_URL_VARIABLES = {"postgresql": "TEST_POSTGRES_URL", "mariadb": "TEST_MARIADB_URL"}
IN_CI = os.environ.get("CI", "").lower() == "true"


@functools.cache
def _server_problem(url: str) -> str | None:
    """Why the server at ``url`` cannot be used, or None if it answers."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception as error:  # any failure to connect means the backend is unusable
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"
    finally:
        engine.dispose()
    return None


def _unavailable(message: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"{message} (CI=true: every database must be tested)", pytrace=False)
    pytest.skip(message)


def _drop_every_table(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        metadata = sa.MetaData()
        metadata.reflect(engine)
        metadata.drop_all(engine)
    finally:
        engine.dispose()


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
    url = server_url(backend)
    _drop_every_table(url)
    yield url
    _drop_every_table(url)
