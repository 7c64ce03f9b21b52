"""Fixtures for the bookshelf example's tests: an app and a worker core per database.

Each backend's tables are created once, by the example's migrations; every test runs
in test isolation (the package's own pytest plugin for the app,
``DatabaseCore.test_isolation()`` for the worker), so a test's commits never reach the
next test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from bookshelf.app import create_app
from bookshelf.app import db
from bookshelf.models import Base
from bookshelf.models import utcnow
from bookshelf.seed import seed
from flask_typed_db import Database
from flask_typed_db.core import DatabaseCore


@pytest.fixture(scope="package")
def app(package_database_url: str) -> Iterator[Flask]:
    """The bookshelf app on each backend, its tables created once for the package by
    its migrations (``flask db upgrade``), so every test here also runs them.

    With the ``db`` fixture below, this is the pair the flask-typed-db pytest plugin
    asks for: tests take ``isolated_db`` and whatever they commit is rolled back.
    """
    app = create_app({"SQLALCHEMY_DATABASE_URI": package_database_url, "TESTING": True})
    with app.app_context():
        upgrade()
    yield app
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


@pytest.fixture(name="db", scope="package")
def db_fixture() -> Database:
    return db


@pytest.fixture
def seeded_app(app: Flask, isolated_db: Database) -> Flask:
    """:func:`app` with the sample data, loans relative to the real current time; it
    is rolled back with the rest of the test.
    """
    with app.app_context():
        seed(isolated_db.session, utcnow())
        isolated_db.session.commit()
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="package")
def worker_core(app: Flask, package_database_url: str) -> Iterator[DatabaseCore]:
    """The worker's DatabaseCore on each backend, on the tables :func:`app` made."""
    with DatabaseCore({"SQLALCHEMY_DATABASE_URI": package_database_url}, Base) as core:
        yield core


@pytest.fixture
def core(worker_core: DatabaseCore) -> Iterator[DatabaseCore]:
    """:func:`worker_core`, with everything the test commits rolled back at its end."""
    with worker_core.test_isolation():
        yield worker_core
