"""Async views in Flask: ``db.async_session`` and its helpers, served on the process's one
event loop through the test client, from many threads at once, with commit-on-success,
test isolation, fork, timeouts and cancellation, the CLI, bad input and interpreter exit.

Every app made here has its async engines disposed of on the loop at the end of its
test (the ``make_app`` fixture), so no pooled async connection outlives its test.
"""

from __future__ import annotations

import asyncio
import importlib.machinery
import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from typing import Protocol

import click
import pytest
import sqlalchemy as sa
from flask import Flask
from flask import current_app
from flask import g
from flask import request
from flask.typing import ResponseReturnValue
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Session
from sqlalchemy.orm import mapped_column
from sqlalchemy.pool import QueuePool
from tests.server_sessions import end_server_session
from werkzeug.test import TestResponse

from flask_typed_db import Database
from flask_typed_db._sessions import app_states
from flask_typed_db.core._async import AsyncDriverMissing
from flask_typed_db.core._loop import loop_started
from flask_typed_db.core._loop import shared_loop

LOOP_THREAD_NAME = "flask-typed-db event loop"
PASSWORD = "secret-pw"


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "async_views_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)


#: The query naming the server-side session a connection talks to, per backend.
BACKEND_ID_QUERIES = {
    "postgresql": "SELECT pg_backend_pid()",
    "mysql": "SELECT CONNECTION_ID()",
    "mariadb": "SELECT CONNECTION_ID()",
}
#: A query that takes five seconds on the server, per backend.
SLEEP_QUERIES = {
    "postgresql": "SELECT pg_sleep(5)",
    "mysql": "SELECT SLEEP(5)",
    "mariadb": "SELECT SLEEP(5)",
}


# -- Backends, apps and their views ----------------------------------------------------


def backend_config(driver: str, request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The config of an app whose async engine uses ``driver``, on an empty database."""
    if driver == "aiosqlite":
        return {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'async-views.db'}"}
    if driver == "aiomysql":
        return {"SQLALCHEMY_DATABASE_URI": request.getfixturevalue("mariadb_url")}
    url: str = request.getfixturevalue("postgresql_url")
    if driver == "psycopg":
        return {"SQLALCHEMY_DATABASE_URI": url}
    async_url = sa.make_url(url).set(drivername="postgresql+asyncpg")
    return {
        "SQLALCHEMY_DATABASE_URI": url,
        "SQLALCHEMY_ASYNC_DATABASE_URI": async_url.render_as_string(hide_password=False),
    }


@pytest.fixture(params=["aiosqlite", "psycopg", "asyncpg", "aiomysql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The config of each async driver's backend: SQLite through aiosqlite, PostgreSQL
    through psycopg's async mode and through asyncpg, MariaDB through aiomysql.
    """
    return backend_config(request.param, request, tmp_path)


@pytest.fixture(params=["psycopg", "asyncpg", "aiomysql"])
def server_backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The server backends of :func:`backend` alone."""
    return backend_config(request.param, request, tmp_path)


class MakeApp(Protocol):
    def __call__(
        self, config: Mapping[str, object], *, app_class: type[Flask] = Flask
    ) -> tuple[Flask, Database]: ...


def dispose_async_engines(app: Flask) -> None:
    """Close the pooled async connections of every Database on ``app``, on their loop."""
    if not loop_started():
        return
    for state in app_states(app).values():
        shared_loop().run(state.core.async_dispose())


@pytest.fixture
def make_app(instance_path: Path) -> Iterator[MakeApp]:
    """Make apps with :func:`add_views` and the item table; dispose of their async
    engines after the test.
    """
    made: list[Flask] = []

    def make(
        config: Mapping[str, object], *, app_class: type[Flask] = Flask
    ) -> tuple[Flask, Database]:
        db = Database(Base)
        app = app_class(__name__, instance_path=str(instance_path))
        for key, value in config.items():
            app.config[key] = value
        app.testing = True  # the test client raises a view's error
        db.init_app(app)
        made.append(app)
        with app.app_context():
            db.create_all()
        add_views(app, db)
        return app, db

    yield make
    for app in made:
        dispose_async_engines(app)


def add_views(app: Flask, db: Database) -> None:
    """Async views reading and writing items, and the server's id of their connection."""

    @app.get("/items/<ident>")
    async def show_item(ident: str) -> ResponseReturnValue:
        item = await db.async_get_or_404(Item, ident)
        return {"id": item.id, "name": item.name}

    @app.get("/first/<name>")
    async def first_item(name: str) -> ResponseReturnValue:
        item = await db.async_first_or_404(
            sa.select(Item).where(Item.name.startswith(name)).order_by(Item.id)
        )
        return {"name": item.name}

    @app.get("/one/<name>")
    async def one_item(name: str) -> ResponseReturnValue:
        item = await db.async_one_or_404(sa.select(Item).where(Item.name.startswith(name)))
        return {"name": item.name}

    @app.get("/items")
    async def list_items() -> ResponseReturnValue:
        page = await db.async_paginate(sa.select(Item).order_by(Item.id))
        return {
            "names": [item.name for item in page.items],
            "page": page.page,
            "per_page": page.per_page,
            "total": page.total,
        }

    @app.post("/items/<name>")
    async def add_item(name: str) -> ResponseReturnValue:
        item = Item(name=name)
        db.async_session.add(item)
        await db.async_session.flush()
        item_id = item.id  # before the commit expires it
        await db.async_session.commit()
        return {"id": item_id, "name": name}, 201

    @app.get("/count")
    async def count_items() -> ResponseReturnValue:
        return {"count": await async_count(db)}

    @app.get("/backend-id")
    async def show_backend_id() -> ResponseReturnValue:
        connection = await db.async_session.connection()
        query = BACKEND_ID_QUERIES.get(connection.dialect.name)
        backend_id = None if query is None else await connection.scalar(sa.text(query))
        return {"id": backend_id}


async def async_count(db: Database) -> int:
    return await db.async_session.scalar(sa.select(sa.func.count()).select_from(Item)) or 0


def sync_count(app: Flask, db: Database) -> int:
    """Rows of the item table, read by the sync engine."""
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Item)) or 0


def async_pool(app: Flask, db: Database) -> QueuePool:
    with app.app_context():
        pool = db.async_engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    return pool


def json_of(response: TestResponse) -> dict[str, Any]:
    body: dict[str, Any] = response.get_json()
    return body


def count_connects(app: Flask, db: Database) -> list[int]:
    """The process id of each new connection of the async engine, from now on."""
    connects: list[int] = []
    with app.app_context():
        event.listen(
            db.async_engine.sync_engine, "connect", lambda *_: connects.append(os.getpid())
        )
    return connects


def message_of(error: BaseException) -> str:
    """What a user sees of ``error``: its message and its notes."""
    return "\n".join([str(error), *getattr(error, "__notes__", [])])


# -- Reads and writes ------------------------------------------------------------------


def test_async_views_write_and_read_items(backend: dict[str, str], make_app: MakeApp) -> None:
    app, db = make_app(backend)
    client = app.test_client()

    created = client.post("/items/dune")
    assert created.status_code == 201
    item_id = json_of(created)["id"]
    assert json_of(client.get(f"/items/{item_id}")) == {"id": item_id, "name": "dune"}
    assert json_of(client.get("/first/du")) == {"name": "dune"}
    assert json_of(client.get("/one/dune")) == {"name": "dune"}
    assert sync_count(app, db) == 1
    assert async_pool(app, db).checkedout() == 0


@pytest.mark.parametrize("path", ["/items/999", "/items/abc", "/items/1.5", "/items/-"])
def test_async_get_or_404_answers_404_for_missing_and_impossible_ids(
    backend: dict[str, str], make_app: MakeApp, path: str
) -> None:
    app, db = make_app(backend)
    client = app.test_client()
    client.post("/items/dune")

    assert client.get(path).status_code == 404
    assert async_pool(app, db).checkedout() == 0


def test_async_first_and_one_or_404_answer_404_for_no_row_and_one_for_several(
    backend: dict[str, str], make_app: MakeApp
) -> None:
    app, _ = make_app(backend)
    client = app.test_client()
    client.post("/items/dune")
    client.post("/items/dune-messiah")

    assert json_of(client.get("/first/dune")) == {"name": "dune"}
    assert client.get("/first/solaris").status_code == 404
    assert client.get("/one/solaris").status_code == 404
    assert client.get("/one/dune").status_code == 404  # two rows
    assert json_of(client.get("/one/dune-m")) == {"name": "dune-messiah"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Both capped by SQLALCHEMY_MAX_PER_PAGE: the default 20, and the 100 asked for.
        ("", (["a", "b", "c", "d"], 1, 4)),
        ("?per_page=100", (["a", "b", "c", "d"], 1, 4)),
        ("?page=2&per_page=2", (["c", "d"], 2, 2)),
        ("?page=3&per_page=2", (["e"], 3, 2)),
    ],
)
def test_async_paginate_follows_the_query_string_and_the_cap(
    backend: dict[str, str],
    make_app: MakeApp,
    query: str,
    expected: tuple[list[str], int, int],
) -> None:
    app, _ = make_app({**backend, "SQLALCHEMY_MAX_PER_PAGE": 4})
    client = app.test_client()
    for name in "abcde":
        client.post(f"/items/{name}")

    names, page, per_page = expected
    assert json_of(client.get(f"/items{query}")) == {
        "names": names,
        "page": page,
        "per_page": per_page,
        "total": 5,
    }


@pytest.mark.parametrize(
    "query", ["?page=4&per_page=2", "?page=0", "?page=abc", "?per_page=-1", "?per_page=x"]
)
def test_async_paginate_answers_404_past_the_last_page_and_for_bad_numbers(
    backend: dict[str, str], make_app: MakeApp, query: str
) -> None:
    app, db = make_app(backend)
    client = app.test_client()
    for name in "abcde":
        client.post(f"/items/{name}")

    assert client.get(f"/items{query}").status_code == 404
    assert async_pool(app, db).checkedout() == 0


def test_async_paginate_of_an_empty_table_is_an_empty_first_page(
    backend: dict[str, str], make_app: MakeApp
) -> None:
    app, _ = make_app(backend)
    assert json_of(app.test_client().get("/items")) == {
        "names": [],
        "page": 1,
        "per_page": 20,
        "total": 0,
    }


# -- Many requests: no failure, nothing checked out, the same server connections --------


def test_200_sequential_async_requests_reuse_the_pooled_connection(
    backend: dict[str, str], make_app: MakeApp
) -> None:
    app, db = make_app(backend)
    client = app.test_client()
    warm_up_ids = {json_of(client.get("/backend-id"))["id"] for _ in range(3)}
    connects = count_connects(app, db)

    statuses: list[int] = []
    backend_ids: set[object] = set()
    for _ in range(200):
        response = client.get("/backend-id")
        statuses.append(response.status_code)
        backend_ids.add(json_of(response)["id"])

    assert statuses == [200] * 200
    assert connects == []
    assert backend_ids <= warm_up_ids
    assert async_pool(app, db).checkedout() == 0


def test_200_sequential_async_writes_all_land(backend: dict[str, str], make_app: MakeApp) -> None:
    app, db = make_app(backend)
    client = app.test_client()

    statuses = [client.post(f"/items/n{number}").status_code for number in range(200)]

    assert statuses == [201] * 200
    assert sync_count(app, db) == 200
    assert async_pool(app, db).checkedout() == 0


def test_50_concurrent_async_requests_run_together_on_the_loop_without_failing(
    backend: dict[str, str], make_app: MakeApp
) -> None:
    app, db = make_app(backend)
    pool = async_pool(app, db)
    most_checked_out: list[int] = [0]

    @app.get("/held")
    async def held() -> ResponseReturnValue:
        await db.async_session.execute(sa.text("SELECT 1"))
        # Hold the connection while other requests run on the loop.
        await asyncio.sleep(0.02)
        most_checked_out[0] = max(most_checked_out[0], pool.checkedout())
        return {"name": request.args["name"], "thread": threading.current_thread().name}

    def call(number: int) -> tuple[int, str]:
        client = app.test_client()
        if number % 2:
            response = client.get(f"/held?name=n{number}")
        else:
            response = client.post(f"/items/n{number}")
        return response.status_code, json_of(response)["name"]

    with ThreadPoolExecutor(max_workers=50) as executor:
        results = list(executor.map(call, range(50)))

    assert results == [(200 if number % 2 else 201, f"n{number}") for number in range(50)]
    assert sync_count(app, db) == 25
    assert most_checked_out[0] > 1
    assert pool.checkedout() == 0


# -- One async session per app context, closed at teardown -----------------------------


def test_async_session_is_one_object_for_the_view_and_its_async_hook(
    backend: dict[str, str], make_app: MakeApp
) -> None:
    app, db = make_app(backend)
    seen: list[tuple[AsyncSession, AsyncSession, AsyncSession]] = []

    @app.before_request
    async def open_session() -> None:
        g.hook_session = db.async_session

    @app.get("/same")
    async def same() -> str:
        seen.append((g.hook_session, db.async_session, db.async_session))
        await db.async_session.execute(sa.text("SELECT 1"))
        return "ok"

    client = app.test_client()
    client.get("/same")
    client.get("/same")

    (hook_a, view_a, again_a), (hook_b, view_b, _) = seen
    assert hook_a is view_a is again_a
    assert hook_b is view_b
    assert view_a is not view_b
    # Closed at teardown: no transaction, its connection back in the pool.
    assert not view_a.in_transaction()
    assert async_pool(app, db).checkedout() == 0


def test_uncommitted_async_work_is_rolled_back_at_teardown(
    backend: dict[str, str], make_app: MakeApp
) -> None:
    app, db = make_app(backend)

    @app.post("/uncommitted")
    async def uncommitted() -> str:
        db.async_session.add(Item(name="never committed"))
        await db.async_session.flush()
        return "ok"

    client = app.test_client()
    assert client.post("/uncommitted").status_code == 200
    assert async_pool(app, db).checkedout() == 0
    assert json_of(client.get("/count")) == {"count": 0}
    assert sync_count(app, db) == 0


def test_async_session_of_a_failing_view_is_rolled_back_and_returned(
    backend: dict[str, str], make_app: MakeApp
) -> None:
    app, db = make_app(backend)

    @app.post("/fails")
    async def fails() -> str:
        db.async_session.add(Item(name="never committed"))
        await db.async_session.flush()
        raise LookupError("the view fails")

    client = app.test_client()
    with pytest.raises(LookupError):
        client.post("/fails")
    assert async_pool(app, db).checkedout() == 0
    assert json_of(client.get("/count")) == {"count": 0}


# -- Sync and async views in one app ---------------------------------------------------


def test_sync_and_async_views_share_data_through_commits(
    backend: dict[str, str], make_app: MakeApp
) -> None:
    app, db = make_app(backend)
    sessions: list[object] = []

    @app.post("/sync/items/<name>")
    def add_item_sync(name: str) -> ResponseReturnValue:
        sessions.append(db.session)
        db.session.add(Item(name=name))
        db.session.commit()
        return {"name": name}, 201

    @app.get("/sync/names")
    def names_sync() -> ResponseReturnValue:
        return {"names": list(db.session.scalars(sa.select(Item.name).order_by(Item.id)))}

    client = app.test_client()
    assert client.post("/sync/items/from-sync").status_code == 201
    assert json_of(client.get("/first/from-sync")) == {"name": "from-sync"}
    assert client.post("/items/from-async").status_code == 201
    assert json_of(client.get("/sync/names")) == {"names": ["from-sync", "from-async"]}
    assert json_of(client.get("/count")) == {"count": 2}
    [session] = sessions
    assert isinstance(session, Session)
    with app.app_context():
        assert isinstance(db.engine.pool, QueuePool)
        assert db.engine.pool.checkedout() == 0
    assert async_pool(app, db).checkedout() == 0


def test_async_view_that_never_touches_the_database_connects_nothing_async(
    database_url: str, make_app: MakeApp
) -> None:
    async_connects: list[str] = []

    def on_engine_connect(connection: sa.Connection) -> None:
        if connection.dialect.is_async:
            async_connects.append(connection.dialect.driver)

    event.listen(sa.Engine, "engine_connect", on_engine_connect)
    try:
        app, db = make_app({"SQLALCHEMY_DATABASE_URI": database_url})

        @app.get("/hello")
        async def hello() -> str:
            await asyncio.sleep(0)
            return threading.current_thread().name

        @app.get("/sync/count")
        def count_sync() -> str:
            return str(db.session.scalar(sa.select(sa.func.count()).select_from(Item)))

        client = app.test_client()
        assert [client.get("/hello").text for _ in range(3)] == [LOOP_THREAD_NAME] * 3
        assert client.get("/sync/count").text == "0"
    finally:
        event.remove(sa.Engine, "engine_connect", on_engine_connect)
    assert async_connects == []


def run_python(
    code: str, *args: str, options: tuple[str, ...] = (), timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *options, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


ASYNC_VIEW_WITHOUT_DATABASE = """
    import sys

    import sqlalchemy as sa
    from flask import Flask

    from flask_typed_db import Database

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = sys.argv[1]
    db = Database()
    db.init_app(app)

    @app.get("/hello")
    async def hello() -> str:
        return "hello"

    @app.get("/sync")
    def sync() -> str:
        return str(db.session.scalar(sa.text("SELECT 1")))

    client = app.test_client()
    assert client.get("/hello").text == "hello"
    assert client.get("/sync").text == "1"
    assert client.get("/hello").text == "hello"
    loaded = sorted(
        name
        for name in sys.modules
        if name.startswith(
            ("sqlalchemy.ext.asyncio", "aiosqlite", "asyncpg", "aiomysql", "asyncmy")
        )
        or name == "psycopg"
    )
    assert not loaded, loaded
"""


def test_async_view_that_never_touches_the_database_imports_no_asyncio_support(
    tmp_path: Path,
) -> None:
    result = run_python(ASYNC_VIEW_WITHOUT_DATABASE, f"sqlite:///{tmp_path / 'plain.db'}")
    assert (result.returncode, result.stderr) == (0, "")


# -- Commit on success -----------------------------------------------------------------


def add_commit_on_success_views(app: Flask, db: Database) -> list[BaseException]:
    """Views under ``@db.commit_on_success``; returns the errors the IntegrityError
    handler saw.
    """
    handled: list[BaseException] = []

    @app.post("/cos/<name>/<int:status>")
    @db.commit_on_success
    async def add_with_status(name: str, status: int) -> ResponseReturnValue:
        db.async_session.add(Item(name=name))
        await db.async_session.flush()
        return {"name": name}, status

    @app.post("/cos-raises/<name>")
    @db.commit_on_success
    async def add_then_raise(name: str) -> ResponseReturnValue:
        db.async_session.add(Item(name=name))
        await db.async_session.flush()
        raise LookupError(name)

    @app.post("/cos-duplicate/<name>")
    @db.commit_on_success
    async def add_new_and_duplicate(name: str) -> ResponseReturnValue:
        # Not flushed: the commit itself fails.
        db.async_session.add_all([Item(name=f"{name}-new"), Item(name=name)])
        return {"name": name}, 201

    @app.errorhandler(IntegrityError)
    async def duplicate(error: IntegrityError) -> ResponseReturnValue:
        handled.append(error)
        # The session was rolled back: the handler can use it.
        return {"error": "duplicate", "count": await async_count(db)}, 409

    return handled


@pytest.mark.parametrize(("status", "kept"), [(200, 1), (201, 1), (302, 1), (404, 0), (503, 0)])
def test_commit_on_success_commits_an_async_view_by_its_status(
    backend: dict[str, str], make_app: MakeApp, status: int, kept: int
) -> None:
    app, db = make_app(backend)
    add_commit_on_success_views(app, db)

    assert app.test_client().post(f"/cos/dune/{status}").status_code == status
    assert sync_count(app, db) == kept
    assert async_pool(app, db).checkedout() == 0


def test_commit_on_success_rolls_back_an_async_view_that_raises(
    backend: dict[str, str], make_app: MakeApp
) -> None:
    app, db = make_app(backend)
    add_commit_on_success_views(app, db)
    app.testing = False

    assert app.test_client().post("/cos-raises/dune").status_code == 500
    assert sync_count(app, db) == 0
    assert async_pool(app, db).checkedout() == 0


def test_failing_commit_of_an_async_view_is_its_error_and_keeps_nothing(
    backend: dict[str, str], make_app: MakeApp
) -> None:
    app, db = make_app(backend)
    handled = add_commit_on_success_views(app, db)
    client = app.test_client()
    assert client.post("/cos/dune/201").status_code == 201

    response = client.post("/cos-duplicate/dune")

    assert (response.status_code, json_of(response)) == (409, {"error": "duplicate", "count": 1})
    [error] = handled
    assert isinstance(error, IntegrityError)
    with app.app_context():
        assert list(db.session.scalars(sa.select(Item.name))) == ["dune"]
    assert async_pool(app, db).checkedout() == 0


def test_commit_on_success_config_commits_every_async_view_but_manual_ones(
    backend: dict[str, str], make_app: MakeApp
) -> None:
    app, db = make_app({**backend, "SQLALCHEMY_COMMIT_ON_SUCCESS": True})

    @app.post("/auto/<name>/<int:status>")
    async def add_without_commit(name: str, status: int) -> ResponseReturnValue:
        db.async_session.add(Item(name=name))
        await db.async_session.flush()
        return {"name": name}, status

    @app.post("/manual/<name>")
    @db.manual_commit
    async def add_manually(name: str) -> ResponseReturnValue:
        db.async_session.add(Item(name=name))
        await db.async_session.flush()
        return {"name": name}, 201

    client = app.test_client()
    assert client.post("/auto/kept/201").status_code == 201
    assert client.post("/auto/gone/409").status_code == 409
    assert client.post("/manual/gone-too").status_code == 201
    with app.app_context():
        assert list(db.session.scalars(sa.select(Item.name))) == ["kept"]
    assert async_pool(app, db).checkedout() == 0


# -- Test isolation --------------------------------------------------------------------


def test_isolated_async_views_see_each_others_commits_and_leave_nothing(
    backend: dict[str, str], make_app: MakeApp
) -> None:
    app, db = make_app(backend)
    client = app.test_client()

    with db.test_isolation(app):
        assert client.post("/items/one").status_code == 201
        assert client.post("/items/two").status_code == 201
        assert json_of(client.get("/count")) == {"count": 2}
        assert json_of(client.get("/first/tw")) == {"name": "two"}

    assert sync_count(app, db) == 0
    # Outside the block, async views commit for real again.
    assert client.post("/items/real").status_code == 201
    assert sync_count(app, db) == 1
    assert async_pool(app, db).checkedout() == 0


# -- Fork ------------------------------------------------------------------------------


def run_in_child(work: Callable[[], dict[str, Any]], timeout: float = 20) -> dict[str, Any]:
    """Run ``work`` in a forked child and return what it reported through a pipe; a
    child that does not exit within ``timeout`` seconds is killed, and the test fails.
    """
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12 warns that forking a process with threads may deadlock the child.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: report, then leave without running the parent's cleanup
        os.close(read_end)
        status = 1
        report: dict[str, Any] = {"error": "no report"}
        try:
            report = work()
            status = 0
        except BaseException as error:
            report = {"error": repr(error)}
        finally:
            with os.fdopen(write_end, "w") as pipe:
                pipe.write(json.dumps(report))
            os._exit(status)
    os.close(write_end)
    deadline = time.monotonic() + timeout
    waited_pid, wait_status = os.waitpid(pid, os.WNOHANG)
    while waited_pid == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
        waited_pid, wait_status = os.waitpid(pid, os.WNOHANG)
    if waited_pid == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read_end)
        pytest.fail(f"the forked child did not exit within {timeout} s")
    with os.fdopen(read_end) as pipe:
        child_report: dict[str, Any] = json.loads(pipe.read() or "{}")
    assert os.waitstatus_to_exitcode(wait_status) == 0, child_report
    return child_report


@pytest.mark.skipif(sys.platform == "win32", reason="os.fork() is POSIX only")
def test_forked_child_serves_async_requests_on_its_own_loop_and_connection(
    backend: dict[str, str], make_app: MakeApp
) -> None:
    app, db = make_app(backend)
    client = app.test_client()
    parent_ids = {json_of(client.get("/backend-id"))["id"] for _ in range(3)}
    assert client.post("/items/parent").status_code == 201
    connects = count_connects(app, db)
    parent_loop = shared_loop()
    parent_pid = os.getpid()

    def child_work() -> dict[str, Any]:
        child_client = app.test_client()
        ids = [json_of(child_client.get("/backend-id"))["id"] for _ in range(3)]
        created = child_client.post("/items/child").status_code

        async def loop_thread_name() -> str:
            await db.async_session.execute(sa.text("SELECT 1"))
            return threading.current_thread().name

        with app.app_context():
            thread_name = app.ensure_sync(loop_thread_name)()
        return {
            "ids": ids,
            "created": created,
            "count": json_of(child_client.get("/count"))["count"],
            "thread": thread_name,
            "own_loop": shared_loop() is not parent_loop,
            "connects": connects.count(os.getpid()),
            "checked_out": async_pool(app, db).checkedout(),
        }

    report = run_in_child(child_work)

    assert report == {
        "ids": [report["ids"][0]] * 3,
        "created": 201,
        "count": 2,
        "thread": LOOP_THREAD_NAME,
        "own_loop": True,
        "connects": 1,
        "checked_out": 0,
    }
    if None not in parent_ids:
        assert report["ids"][0] not in parent_ids
    # The parent goes on, on its own loop and its pooled connections.
    assert shared_loop() is parent_loop
    after = {json_of(client.get("/backend-id"))["id"] for _ in range(3)}
    assert after <= parent_ids
    assert client.post("/items/parent-again").status_code == 201
    assert json_of(client.get("/count")) == {"count": 3}
    assert connects.count(parent_pid) == 0
    assert async_pool(app, db).checkedout() == 0


@pytest.mark.skipif(sys.platform == "win32", reason="os.fork() is POSIX only")
def test_child_forked_inside_an_app_context_gets_a_new_async_session(
    backend: dict[str, str], make_app: MakeApp
) -> None:
    app, db = make_app(backend)

    async def session_in_a_transaction() -> AsyncSession:
        db.async_session.add(Item(name="uncommitted in the parent"))
        await db.async_session.flush()
        return db.async_session

    with app.app_context():
        parent_session = app.ensure_sync(session_in_a_transaction)()

        async def child_report() -> dict[str, Any]:
            return {"same": db.async_session is parent_session, "count": await async_count(db)}

        report = run_in_child(app.ensure_sync(child_report))

        assert report == {"same": False, "count": 0}
        # The parent's transaction is intact: it still sees its own row.
        assert app.ensure_sync(async_count)(db) == 1
    assert sync_count(app, db) == 0
    assert async_pool(app, db).checkedout() == 0


# -- Timeouts and cancellation ---------------------------------------------------------


def test_timed_out_query_answers_500_quickly_and_leaves_nothing_checked_out(
    server_backend: dict[str, str], make_app: MakeApp
) -> None:
    app, db = make_app(server_backend)
    app.testing = False

    @app.get("/slow")
    async def slow() -> str:
        connection = await db.async_session.connection()
        sleep = sa.text(SLEEP_QUERIES[connection.dialect.name])
        await asyncio.wait_for(db.async_session.execute(sleep), 0.2)
        return "not reached"

    client = app.test_client()
    assert client.post("/items/before").status_code == 201
    started = time.monotonic()
    response = client.get("/slow")
    elapsed = time.monotonic() - started

    assert response.status_code == 500
    assert elapsed < 3
    assert async_pool(app, db).checkedout() == 0
    assert json_of(client.get("/count")) == {"count": 1}
    assert client.post("/items/after").status_code == 201
    assert async_pool(app, db).checkedout() == 0


def test_timed_out_query_can_be_answered_by_an_error_handler(
    server_backend: dict[str, str], make_app: MakeApp
) -> None:
    app, db = make_app(server_backend)

    @app.get("/slow")
    async def slow() -> str:
        connection = await db.async_session.connection()
        sleep = sa.text(SLEEP_QUERIES[connection.dialect.name])
        await asyncio.wait_for(db.async_session.execute(sleep), 0.2)
        return "not reached"

    @app.errorhandler(TimeoutError)
    def timed_out(error: TimeoutError) -> ResponseReturnValue:
        del error
        return "try again later", 503

    client = app.test_client()
    response = client.get("/slow")
    assert (response.status_code, response.text) == (503, "try again later")
    assert async_pool(app, db).checkedout() == 0
    assert json_of(client.get("/count")) == {"count": 0}


def test_cancelled_async_view_leaves_nothing_checked_out(
    backend: dict[str, str], make_app: MakeApp
) -> None:
    app, db = make_app(backend)
    app.testing = False

    @app.post("/cancelled")
    async def cancelled() -> str:
        db.async_session.add(Item(name="never committed"))
        await db.async_session.flush()
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(1)
        return "not reached"

    client = app.test_client()
    assert client.post("/cancelled").status_code == 500
    assert async_pool(app, db).checkedout() == 0
    assert json_of(client.get("/count")) == {"count": 0}
    assert client.post("/items/after").status_code == 201
    assert async_pool(app, db).checkedout() == 0


# -- CLI commands and the shell --------------------------------------------------------


def test_cli_command_runs_async_code_through_ensure_sync(
    backend: dict[str, str], make_app: MakeApp
) -> None:
    app, db = make_app(backend)

    @app.cli.command("add-item")
    @click.argument("name")
    def add_item_command(name: str) -> None:
        async def add() -> int:
            db.async_session.add(Item(name=name))
            await db.async_session.commit()
            return await async_count(db)

        click.echo(app.ensure_sync(add)())

    runner = app.test_cli_runner()
    for name, output in [("one", "1\n"), ("two", "2\n")]:
        result = runner.invoke(args=["add-item", name])
        assert (result.exit_code, result.output) == (0, output), result.exception
    assert async_pool(app, db).checkedout() == 0
    assert json_of(app.test_client().get("/count")) == {"count": 2}


def test_async_session_used_from_asyncio_run_is_refused_with_the_fix(
    backend: dict[str, str], make_app: MakeApp
) -> None:
    app, db = make_app(backend)
    # The pool belongs to the shared loop once a request has used it.
    assert json_of(app.test_client().get("/count")) == {"count": 0}

    @app.cli.command("count-wrongly")
    def count_wrongly() -> None:
        click.echo(asyncio.run(async_count(db)))

    result = app.test_cli_runner().invoke(args=["count-wrongly"])

    assert isinstance(result.exception, RuntimeError)
    message = str(result.exception)
    assert "made on another event loop" in message
    assert "'app.ensure_sync(func)()'" in message
    assert async_pool(app, db).checkedout() == 0
    # The pool is intact for the app's own loop.
    assert json_of(app.test_client().get("/count")) == {"count": 0}


def test_app_context_as_in_flask_shell_keeps_one_async_session_for_ensure_sync_calls(
    backend: dict[str, str], make_app: MakeApp
) -> None:
    app, db = make_app(backend)

    async def add_and_return_session() -> AsyncSession:
        db.async_session.add(Item(name=f"n{await async_count(db)}"))
        await db.async_session.flush()
        return db.async_session

    with app.app_context():
        first = app.ensure_sync(add_and_return_session)()
        second = app.ensure_sync(add_and_return_session)()
        assert first is second
        assert app.ensure_sync(async_count)(db) == 2
    # Never committed: rolled back when the context ended.
    assert sync_count(app, db) == 0
    assert async_pool(app, db).checkedout() == 0


# -- Bad input -------------------------------------------------------------------------


def hide_package(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Make ``package`` look uninstalled to the core's driver check."""
    find_spec = importlib.util.find_spec

    def find_all_but(
        name: str, parent: str | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        return None if name == package else find_spec(name, parent)

    monkeypatch.setattr(importlib.util, "find_spec", find_all_but)


def test_missing_async_driver_is_an_error_at_first_use_and_sync_views_still_work(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_app: MakeApp
) -> None:
    hide_package(monkeypatch, "aiosqlite")
    app, db = make_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'app.db'}"})

    @app.get("/sync/count")
    def count_sync() -> str:
        return str(db.session.scalar(sa.select(sa.func.count()).select_from(Item)))

    client = app.test_client()
    for _ in range(2):
        with pytest.raises(AsyncDriverMissing) as excinfo:
            client.get("/count")
        assert "pip install aiosqlite" in message_of(excinfo.value)
        assert client.get("/sync/count").text == "0"


def test_missing_async_driver_error_never_shows_the_password(
    monkeypatch: pytest.MonkeyPatch, make_app: MakeApp
) -> None:
    hide_package(monkeypatch, "psycopg")
    url = f"postgresql+psycopg://app:{PASSWORD}@db.example/shop"
    # No table is made: the server does not exist, and nothing connects.
    db = Database(Base)
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.testing = True
    db.init_app(app)
    add_views(app, db)

    with pytest.raises(AsyncDriverMissing) as excinfo:
        app.test_client().get("/count")
    message = message_of(excinfo.value)
    assert "pip install psycopg" in message
    assert PASSWORD not in message


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_with_an_async_view_is_an_error_naming_the_fix(
    url: str, make_app: MakeApp
) -> None:
    app, db = make_app({"SQLALCHEMY_DATABASE_URI": url})

    @app.get("/sync/count")
    def count_sync() -> str:
        return str(db.session.scalar(sa.select(sa.func.count()).select_from(Item)))

    client = app.test_client()
    with pytest.raises(ValueError, match="in-memory SQLite") as excinfo:
        client.get("/count")
    message = message_of(excinfo.value)
    assert "'SQLALCHEMY_DATABASE_URI'" in message
    assert "Use a file ('sqlite:///app.db')" in message
    assert client.get("/sync/count").text == "0"


# -- Where coroutines run --------------------------------------------------------------


def test_async_views_hooks_and_handlers_run_on_the_shared_loop_with_the_requests_context(
    make_app: MakeApp, tmp_path: Path
) -> None:
    app, _ = make_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'app.db'}"})

    @app.before_request
    def mark_sync() -> None:
        g.marked_by = "sync hook"

    @app.before_request
    async def mark_async() -> None:
        g.hook_thread = threading.current_thread().name

    @app.get("/where")
    async def where() -> ResponseReturnValue:
        if "fail" in request.args:
            raise LookupError(request.args["fail"])
        return {
            "view": threading.current_thread().name,
            "hook": g.hook_thread,
            "marked_by": g.marked_by,
            "q": request.args["q"],
            "app": current_app.extensions is app.extensions,
            "on_shared_loop": asyncio.get_running_loop() is shared_loop().loop,
        }

    @app.errorhandler(LookupError)
    async def not_found(error: LookupError) -> ResponseReturnValue:
        return {"handler": threading.current_thread().name, "q": str(error)}, 404

    client = app.test_client()
    assert json_of(client.get("/where?q=first")) == {
        "view": LOOP_THREAD_NAME,
        "hook": LOOP_THREAD_NAME,
        "marked_by": "sync hook",
        "q": "first",
        "app": True,
        "on_shared_loop": True,
    }
    assert json_of(client.get("/where?fail=second")) == {
        "handler": LOOP_THREAD_NAME,
        "q": "second",
    }


def test_app_whose_class_overrides_async_to_sync_keeps_its_own(
    make_app: MakeApp, tmp_path: Path
) -> None:
    calls: list[str] = []

    class OwnLoopFlask(Flask):
        def async_to_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
            def run(*args: Any, **kwargs: Any) -> Any:
                calls.append(func.__name__)
                return asyncio.run(func(*args, **kwargs))

            return run

    app, _ = make_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'app.db'}"}, app_class=OwnLoopFlask
    )

    @app.get("/thread")
    async def thread() -> str:
        return threading.current_thread().name

    assert "async_to_sync" not in vars(app)
    assert app.test_client().get("/thread").text == threading.current_thread().name
    assert calls == ["thread"]


def test_app_whose_instance_overrides_async_to_sync_keeps_its_own(tmp_path: Path) -> None:
    calls: list[str] = []

    def own_async_to_sync(func: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            calls.append(func.__name__)
            return asyncio.run(func(*args, **kwargs))

        return run

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'app.db'}"
    app.async_to_sync = own_async_to_sync  # type: ignore[method-assign]  # as Flask's docs invite
    Database(Base).init_app(app)

    @app.get("/thread")
    async def thread() -> str:
        return threading.current_thread().name

    assert app.async_to_sync is own_async_to_sync
    assert app.test_client().get("/thread").text == threading.current_thread().name
    assert calls == ["thread"]


# -- Exit ------------------------------------------------------------------------------


SERVES_ASYNC_REQUESTS_THEN_EXITS = """
    import sys
    from concurrent.futures import ThreadPoolExecutor

    import sqlalchemy as sa
    from flask import Flask

    from flask_typed_db import Database

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = sys.argv[1]
    if sys.argv[2]:
        app.config["SQLALCHEMY_ASYNC_DATABASE_URI"] = sys.argv[2]
    db = Database()
    db.init_app(app)

    @app.get("/")
    async def select_one() -> str:
        return str(await db.async_session.scalar(sa.text("SELECT 1")))

    @app.post("/uncommitted")
    async def uncommitted() -> str:
        await db.async_session.execute(sa.text("SELECT 1"))
        return "left to teardown"

    def call(number: int) -> str:
        client = app.test_client()
        if number % 3 == 0:
            return client.post("/uncommitted").text
        return client.get("/").text

    with ThreadPoolExecutor(max_workers=8) as executor:
        texts = list(executor.map(call, range(40)))
    assert set(texts) == {"1", "left to teardown"}, texts
    # The pool holds several connections as the interpreter exits.
"""


@pytest.mark.parametrize("options", [("-W", "error::ResourceWarning"), ("-X", "dev")])
def test_process_that_served_async_requests_exits_promptly_and_silently(
    backend: dict[str, str], options: tuple[str, str]
) -> None:
    started = time.monotonic()
    result = run_python(
        SERVES_ASYNC_REQUESTS_THEN_EXITS,
        backend["SQLALCHEMY_DATABASE_URI"],
        backend.get("SQLALCHEMY_ASYNC_DATABASE_URI", ""),
        options=options,
    )
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("driver", ["psycopg_async", "asyncpg"])
def test_pooled_async_connections_the_server_ended_are_replaced_before_a_request(
    postgresql_url: str, driver: str, make_app: MakeApp
) -> None:
    async_url = sa.make_url(postgresql_url).set(drivername=f"postgresql+{driver}")
    app, db = make_app(
        {"SQLALCHEMY_DATABASE_URI": postgresql_url, "SQLALCHEMY_ASYNC_DATABASE_URI": async_url}
    )

    @app.get("/backend-pid")
    async def backend_pid() -> ResponseReturnValue:
        return str(await db.async_session.scalar(sa.text("SELECT pg_backend_pid()")))

    client = app.test_client()
    pids = {client.get("/backend-pid").text for _ in range(10)}
    for pid in pids:
        # And wait until it is gone: the client's socket has its goodbye by then.
        end_server_session(postgresql_url, int(pid))
    answers = [client.get("/backend-pid") for _ in range(10)]
    assert [answer.status_code for answer in answers] == [200] * 10
    assert not pids & {answer.text for answer in answers}
