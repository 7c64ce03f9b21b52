"""pytest fixtures for apps built on flask-typed-db: an isolated database per test.

Registered through the ``pytest11`` entry point, so pytest loads it whenever this
package is installed, but it does nothing until a test asks for one of its fixtures: it
has no autouse fixture and changes no collection. Where plugin autoloading is off
(``PYTEST_DISABLE_PLUGIN_AUTOLOAD``), load it with ``-p flask_typed_db.pytest_plugin``
or ``pytest_plugins = ["flask_typed_db.pytest_plugin"]`` in the root ``conftest.py``.

A project opts in by defining two fixtures, ``app`` and ``db``, in its ``conftest.py``::

    @pytest.fixture(scope="session")
    def app() -> Flask:
        app = create_app({"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg:///test"})
        with app.app_context():
            db.create_all()
        return app

    @pytest.fixture(scope="session")
    def db() -> Database:
        return my_app.db

Then a test takes ``isolated_db`` (everything it does, through any number of requests,
is rolled back at its end) or ``db_session`` (the same, plus an app context and its
session). ``@pytest.mark.forbid_lazy_loads`` makes any lazy load in the test raise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from flask import Flask
    from sqlalchemy.orm import Session

    from ._extension import Database

MARKER = "forbid_lazy_loads"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: make any lazy load of a relationship raise LazyLoadError in tests"
        " that use isolated_db or db_session (flask-typed-db).",
    )


@pytest.fixture
def isolated_db(request: pytest.FixtureRequest, app: Flask, db: Database) -> Iterator[Database]:
    """``db``, with everything the test does rolled back at its end.

    Needs the project's ``app`` and ``db`` fixtures. See
    :meth:`flask_typed_db.Database.test_isolation`.
    """
    forbid = request.node.get_closest_marker(MARKER) is not None
    with db.test_isolation(app, forbid_lazy_loads=forbid):
        yield db


@pytest.fixture
def db_session(isolated_db: Database, app: Flask) -> Iterator[Session]:
    """The session of an app context pushed for the test, inside :func:`isolated_db`."""
    with app.app_context():
        yield isolated_db.session
