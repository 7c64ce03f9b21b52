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
``on_commit_callbacks`` is the list of ``db.on_commit()`` callbacks the test's commits
made due, captured instead of run.

For async views, ``async_db_session`` is the async session of that app context. The
test stays a plain ``def``: it runs its coroutines with ``app.ensure_sync(func)()``, on
the event loop that owns the async connections, as a request would::

    def test_lists_shelves(async_db_session: AsyncSession, app: Flask) -> None:
        async def add_shelf() -> None:
            async_db_session.add(Shelf(name="fiction"))
            await async_db_session.commit()

        app.ensure_sync(add_shelf)()
        assert app.test_client().get("/shelves").json == ["fiction"]

Async and sync sessions commit in transactions of their own: seed what an async view
reads through ``async_db_session``, what a sync view reads through ``db_session``.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from flask import Flask
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

    from ._extension import Database

MARKER = "forbid_lazy_loads"


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, so that ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}: make any lazy load of a relationship raise LazyLoadError in tests"
        " that use isolated_db, db_session or async_db_session (flask-typed-db).",
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


@pytest.fixture
def async_db_session(isolated_db: Database, app: Flask) -> Iterator[AsyncSession]:
    """The async session of an app context pushed for the test, inside
    :func:`isolated_db`: run coroutines that use it with ``app.ensure_sync(func)()``.
    Requests made in the test share that app context, and so the session; the
    context's teardown closes it, on its event loop, before the isolation ends.
    """
    with app.app_context():
        yield isolated_db.async_session


@pytest.fixture
def on_commit_callbacks(isolated_db: Database) -> Iterator[list[Callable[[], object]]]:
    """The callbacks that ``db.on_commit()`` (or the core's) made due during the test,
    in order, without running them: see :meth:`flask_typed_db.Database.captured_on_commit`.
    Call them to run them.
    """
    with isolated_db.captured_on_commit() as callbacks:
        yield callbacks
