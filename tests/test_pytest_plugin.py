"""The pytest plugin: ``isolated_db``, ``db_session``, ``async_db_session`` and the
``forbid_lazy_loads`` marker, run on small generated test suites in a pytest of their own.
"""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

#: A project's conftest: an app shared by the whole session, on a SQLite file.
CONFTEST = """
from __future__ import annotations

import functools
import os
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from flask_typed_db import Database


class Base(DeclarativeBase):
    pass


class Shelf(Base):
    __tablename__ = "plugin_shelf"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    books: Mapped[list["Book"]] = relationship()


class Book(Base):
    __tablename__ = "plugin_book"
    id: Mapped[int] = mapped_column(primary_key=True)
    shelf_id: Mapped[int] = mapped_column(sa.ForeignKey("plugin_shelf.id"))


database = Database(Base)
#: What the app's on_commit callbacks announced: stands in for a job queue.
ANNOUNCED: list[str] = []


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    app = Flask(__name__)
    path = tmp_path_factory.mktemp("db") / "app.db"
    url = os.environ.get("PLUGIN_TEST_DATABASE_URL") or f"sqlite:///{path}"
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    database.init_app(app)
    with app.app_context():
        database.create_all()

    @app.post("/shelves/<name>")
    def add_shelf(name: str) -> dict[str, str]:
        database.session.add(Shelf(name=name, books=[Book()]))
        database.session.commit()
        return {"name": name}

    @app.post("/announced/<name>")
    def add_announced_shelf(name: str) -> dict[str, str]:
        database.session.add(Shelf(name=name))
        database.on_commit(functools.partial(ANNOUNCED.append, name))
        database.session.commit()
        return {"name": name}

    @app.get("/shelves")
    def list_shelves() -> list[str]:
        return list(database.session.scalars(sa.select(Shelf.name)))

    @app.get("/async/shelves")
    async def list_shelves_async() -> list[str]:
        names = sa.select(Shelf.name).order_by(Shelf.name)
        return list(await database.async_session.scalars(names))

    yield app
    with app.app_context():
        database.drop_all()


@pytest.fixture(scope="session")
def db() -> Database:
    return database


def count_shelves(app: Flask) -> int:
    with app.app_context(), database.engine.connect() as connection:
        return connection.scalar(sa.select(sa.func.count()).select_from(Shelf))
"""

#: Runs in file order: each test relies on the ones before having committed.
TESTS = """
import pytest
import sqlalchemy as sa

from conftest import Shelf, count_shelves


def test_a_commits_through_requests(isolated_db, app):
    client = app.test_client()
    client.post("/shelves/fiction")
    client.post("/shelves/poetry")
    assert client.get("/shelves").json == ["fiction", "poetry"]


def test_b_sees_no_rows_of_test_a(isolated_db, app):
    assert app.test_client().get("/shelves").json == []


def test_c_db_session_commits(db_session):
    db_session.add(Shelf(name="history"))
    db_session.commit()
    assert db_session.scalars(sa.select(Shelf.name)).all() == ["history"]


def test_d_db_session_sees_no_rows_of_test_c(db_session, app):
    assert db_session.scalars(sa.select(Shelf)).all() == []
    assert count_shelves(app) == 0
"""

#: Runs in file order, as TESTS: async sessions, and async views that read what the
#: test added.
ASYNC_TESTS = """
import threading

import sqlalchemy as sa

from conftest import Shelf, count_shelves, database

#: The first test's session, for the next test to check it was closed.
SESSIONS = []


def get_in_a_new_app_context(app, path):
    # A request from another thread pushes an app context, and a session, of its own.
    answers = []
    thread = threading.Thread(target=lambda: answers.append(app.test_client().get(path)))
    thread.start()
    thread.join()
    return answers[0].json


async def shelf_names(session):
    return list(await session.scalars(sa.select(Shelf.name).order_by(Shelf.name)))


def test_a_async_views_see_what_the_test_added(async_db_session, app):
    async def add_shelves():
        async_db_session.add_all([Shelf(name="poetry"), Shelf(name="history")])
        await async_db_session.commit()

    app.ensure_sync(add_shelves)()
    assert app.ensure_sync(shelf_names)(async_db_session) == ["history", "poetry"]
    # The test's requests share its app context, and so its async session.
    assert app.test_client().get("/async/shelves").json == ["history", "poetry"]
    # A request with an app context and session of its own sees the commit too.
    assert get_in_a_new_app_context(app, "/async/shelves") == ["history", "poetry"]
    SESSIONS.append(async_db_session)


def test_b_nothing_remains_of_test_a(async_db_session, app):
    (earlier,) = SESSIONS
    assert async_db_session is not earlier
    assert not earlier.in_transaction()
    assert not earlier.sync_session.identity_map
    assert app.ensure_sync(shelf_names)(async_db_session) == []
    assert app.test_client().get("/async/shelves").json == []
    assert count_shelves(app) == 0


def test_c_no_async_connection_is_left_checked_out(app):
    with app.app_context():
        assert database.async_engine.pool.checkedout() == 0
"""

LAZY_TESTS = """
import pytest
import sqlalchemy as sa

from conftest import Shelf


def lazy_load_books(session):
    session.add(Shelf(name="fiction", books=[]))
    session.commit()
    session.expunge_all()
    shelf = session.scalars(sa.select(Shelf)).one()
    return len(shelf.books)


@pytest.mark.forbid_lazy_loads
def test_marked_lazy_load(db_session):
    lazy_load_books(db_session)


def test_unmarked_lazy_load(db_session):
    assert lazy_load_books(db_session) == 0


@pytest.mark.forbid_lazy_loads
def test_marked_eager_load(db_session):
    db_session.add(Shelf(name="fiction", books=[]))
    db_session.commit()
    db_session.expunge_all()
    query = sa.select(Shelf).options(sa.orm.selectinload(Shelf.books))
    assert db_session.scalars(query).one().books == []
"""


@pytest.fixture(autouse=True)
def _plugins_autoload(monkeypatch: pytest.MonkeyPatch) -> None:
    # The plugin must be found through its pytest11 entry point, as in a user's project.
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)


def run(pytester: pytest.Pytester, **tests: str) -> pytest.RunResult:
    pytester.makeconftest(textwrap.dedent(CONFTEST))
    pytester.makepyfile(**{name: textwrap.dedent(source) for name, source in tests.items()})
    return pytester.runpytest_subprocess(
        "--strict-markers", "-W", "error", "-p", "no:cacheprovider"
    )


def test_commits_of_one_test_are_gone_in_the_next(pytester: pytest.Pytester) -> None:
    result = run(pytester, test_commits=TESTS)
    result.assert_outcomes(passed=4)


def test_async_db_session_adds_what_async_views_see_and_nothing_remains(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, test_async=ASYNC_TESTS)
    result.assert_outcomes(passed=3)


def test_async_db_session_on_postgresql(
    pytester: pytest.Pytester, postgresql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLUGIN_TEST_DATABASE_URL", postgresql_url)
    result = run(pytester, test_async=ASYNC_TESTS, test_commits=TESTS)
    result.assert_outcomes(passed=7)


def test_marked_test_fails_on_lazy_load_and_unmarked_passes(pytester: pytest.Pytester) -> None:
    result = run(pytester, test_lazy=LAZY_TESTS)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["*LazyLoadError: Lazy load from Shelf*", "FAILED test_lazy.py::test_marked_lazy_load*"]
    )


ON_COMMIT_TESTS = """
from conftest import ANNOUNCED


def test_a_callbacks_run_when_the_view_commits(isolated_db, app):
    app.test_client().post("/announced/fiction")
    assert ANNOUNCED == ["fiction"]


def test_b_the_fixture_captures_them_instead(on_commit_callbacks, app):
    app.test_client().post("/announced/poetry")
    assert ANNOUNCED == ["fiction"]
    assert len(on_commit_callbacks) == 1
    on_commit_callbacks[0]()
    assert ANNOUNCED == ["fiction", "poetry"]
"""


def test_on_commit_callbacks_fixture_captures_what_commits_made_due(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, test_on_commit=ON_COMMIT_TESTS)
    result.assert_outcomes(passed=2)


def test_plugin_is_inert_without_app_and_db_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain="""
        import pytest

        def test_plain():
            assert 1 + 1 == 2

        @pytest.mark.forbid_lazy_loads
        def test_marked_without_fixtures():
            pass
        """
    )
    result = pytester.runpytest_subprocess("--strict-markers", "-W", "error")
    result.assert_outcomes(passed=2)


def test_isolated_db_without_an_app_fixture_is_an_error_naming_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_missing="""
        def test_needs_app(isolated_db):
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'app' not found*"])
