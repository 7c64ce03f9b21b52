"""Fixtures for the load and fault tests: the example app served by gunicorn on
PostgreSQL.

These tests start servers, restart PostgreSQL and take a while, so they carry the
``load`` marker and run apart from the rest of the suite: ``pytest -m load tests/load``.
They need ``TEST_POSTGRES_URL``; without it they skip, and fail under ``CI=true``.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Collection
from collections.abc import Iterator
from collections.abc import Mapping
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

# The modules here import each other as 'tests.load.*', as gunicorn imports them.
sys.path.append(str(Path(__file__).resolve().parents[2]))

from tests.load.harness import Gunicorn
from tests.load.harness import Serve

from bookshelf.app import create_app
from bookshelf.app import db
from bookshelf.models import utcnow
from bookshelf.seed import seed


@pytest.fixture
def bookshelf_url(postgresql_url: str) -> str:
    """The PostgreSQL test database with the example's tables, made by its migrations,
    and its sample data; emptied again after the test.
    """
    app = create_app({"SQLALCHEMY_DATABASE_URI": postgresql_url})
    with app.app_context():
        upgrade()
        seed(db.session, utcnow())
        db.session.commit()
    return postgresql_url


@pytest.fixture
def database(bookshelf_url: str) -> Iterator[sa.Engine]:
    """An engine of the test's own on the database, to check what the app wrote."""
    engine = sa.create_engine(bookshelf_url, poolclass=sa.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def application_name() -> str:
    """The ``application_name`` the served app's connections carry, unique to the test,
    so ``pg_stat_activity`` tells them from everyone else's.
    """
    return f"typed-db-load-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start gunicorn servers; stop them after the test and fail it if one logged a
    problem (see :meth:`Gunicorn.problems`), with its log in the message.
    """
    servers: list[Gunicorn] = []

    def start(
        environment: Mapping[str, str],
        *,
        workers: int = 3,
        threads: int = 4,
        expected_errors: Collection[str] = (),
    ) -> Gunicorn:
        server = Gunicorn(
            environment,
            tmp_path / f"gunicorn-{len(servers)}.log",
            workers=workers,
            threads=threads,
            expected_errors=expected_errors,
        )
        servers.append(server)
        server.wait_until_serving()
        return server

    yield start
    reports: list[str] = []
    for server in servers:
        try:
            server.stop()
        except RuntimeError as error:
            reports.append(str(error))
            continue
        problems = server.problems()
        if problems:
            lines = "\n".join(problems)
            # The problems last: a long log is cut from the top in CI's output.
            reports.append(
                f"gunicorn on port {server.port} logged:\n{server.log()}\n"
                f"Problems of gunicorn on port {server.port}:\n{lines}"
            )
    if reports:
        pytest.fail("\n\n".join(reports), pytrace=False)
