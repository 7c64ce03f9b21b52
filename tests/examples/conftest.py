"""Fixtures for the bookshelf example's tests: an app and a worker core per database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bookshelf.app import create_app
from bookshelf.app import db
from bookshelf.models import Base
from bookshelf.models import utcnow
from bookshelf.seed import seed
from flask_typed_db.core import DatabaseCore


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    """The bookshelf app on an empty database of each backend, tables created."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True})
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


@pytest.fixture
def seeded_app(app: Flask) -> Flask:
    """:func:`app` with the sample data, loans relative to the real current time."""
    with app.app_context():
        seed(db.session, utcnow())
        db.session.commit()
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def core(database_url: str) -> Iterator[DatabaseCore]:
    """The worker's DatabaseCore on an empty database of each backend, tables created."""
    with DatabaseCore({"SQLALCHEMY_DATABASE_URI": database_url}, Base) as core:
        core.create_all()
        yield core
