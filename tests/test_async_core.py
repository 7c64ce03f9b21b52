"""DatabaseCore's async engines and sessions: their URLs, units of work, event loops,
test isolation, and what they cost a process that never goes async.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.machinery
import importlib.util
import logging
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Generator
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from typing import TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.pool import QueuePool

from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import read_config
from flask_typed_db.core._async import AsyncDriverMissing
from flask_typed_db.core._async import create_async_engine
from flask_typed_db.core._loop import shared_loop

T = TypeVar("T")

PASSWORD = "secret-pw"


class Base(DeclarativeBase):
    pass


class AuthBase(DeclarativeBase):
    metadata = sa.MetaData(info={"bind_key": "auth"})


class Note(Base):
    __tablename__ = "async_core_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(sa.String(100))


class Grant(AuthBase):
    __tablename__ = "async_core_grant"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))


@pytest.fixture
def core(database_url: str, tmp_path: Path) -> Iterator[DatabaseCore]:
    """A core on each backend with both bases' tables, made by the sync engines. The
    "auth" bind is a second SQLite file, or the same server database.
    """
    auth_url = (
        f"sqlite:///{tmp_path / 'auth.db'}" if database_url.startswith("sqlite") else database_url
    )
    config = {"SQLALCHEMY_DATABASE_URI": database_url, "SQLALCHEMY_BINDS": {"auth": auth_url}}
    core = DatabaseCore(config, Base, AuthBase)
    core.create_all()
    yield core
    core.drop_all()


def run_then_dispose(core: DatabaseCore, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work()`` in a new event loop, and dispose of the async engines on it."""

    async def main() -> T:
        try:
            return await work()
        finally:
            await core.async_dispose()

    return asyncio.run(main())


def dispose_on_shared_loop(core: DatabaseCore) -> None:
    shared_loop().run(core.async_dispose())


def count(core: DatabaseCore, model: type[Note] | type[Grant]) -> int:
    """Rows of ``model``'s table, read by the sync engine."""
    with core.sessionmaker() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def queue_pool(pool: sa.Pool) -> QueuePool:
    assert isinstance(pool, QueuePool)
    return pool


def message_of(error: BaseException) -> str:
    """What a user sees of ``error``: its message and its notes."""
    return "\n".join([str(error), *getattr(error, "__notes__", [])])


# -- Which URL each async engine gets (no connection) ---------------------------------


@pytest.mark.parametrize(
    ("sync_url", "async_drivername"),
    [
        (
            f"postgresql+psycopg://app:{PASSWORD}@db.example:5433/shop?connect_timeout=7",
            "postgresql+psycopg_async",
        ),
        (
            f"mysql+pymysql://app:{PASSWORD}@db.example:5433/shop?connect_timeout=7",
            "mysql+aiomysql",
        ),
        (
            f"mariadb+pymysql://app:{PASSWORD}@db.example:5433/shop?connect_timeout=7",
            "mariadb+aiomysql",
        ),
    ],
)
def test_server_async_engine_uses_the_backends_async_driver_with_the_same_url(
    sync_url: str, async_drivername: str
) -> None:
    core = DatabaseCore({"SQLALCHEMY_DATABASE_URI": sync_url})
    url = core.get_async_engine().url
    assert url.drivername == async_drivername
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "app",
        PASSWORD,
        "db.example",
        5433,
        "shop",
    )
    assert url.query["connect_timeout"] == "7"
    assert core.async_engine is core.get_async_engine(None) is core.async_engines[None]


@pytest.mark.parametrize("drivername", ["postgresql", "postgresql+psycopg2"])
def test_psycopg2_url_gets_psycopgs_async_driver(drivername: str) -> None:
    # psycopg2 (SQLAlchemy 2.0's default for a bare "postgresql://") is not installed
    # here, so its sync engine cannot be built: the async engine is made from the bind
    # alone, as DatabaseCore makes it.
    (spec,) = read_config(
        {
            "SQLALCHEMY_DATABASE_URI": f"{drivername}://app:{PASSWORD}@db.example/shop?sslmode=require"
        }
    ).values()
    url = create_async_engine(spec).url
    assert url.drivername == "postgresql+psycopg_async"
    assert (url.username, url.password, url.database) == ("app", PASSWORD, "shop")
    assert url.query["sslmode"] == "require"


def test_sqlite_async_engine_uses_aiosqlite_on_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    core = DatabaseCore({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}?timeout=7"})
    url = core.async_engine.url
    assert url.drivername == "sqlite+aiosqlite"
    assert url.database == str(path)
    assert url.query["timeout"] == "7"
    assert not path.exists()  # made without connecting


def test_relative_sqlite_path_resolves_against_root_path_as_the_sync_engine(
    tmp_path: Path,
) -> None:
    instance = tmp_path / "instance"
    core = DatabaseCore(
        {"SQLALCHEMY_DATABASE_URI": "sqlite:///notes.db"}, Base, root_path=instance
    )
    assert core.async_engine.url.database == core.engine.url.database == str(instance / "notes.db")

    async def create_and_write() -> None:
        async with core.async_engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        async with core.async_transaction() as session:
            session.add(Note(text="here"))

    run_then_dispose(core, create_and_write)
    # The instance folder was made on first connection, and the row is in its file.
    assert count(core, Note) == 1


# -- URLs chosen by the config ---------------------------------------------------------


def test_async_database_uri_overrides_the_default_binds_async_url() -> None:
    core = DatabaseCore(
        {
            "SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://app:{PASSWORD}@db.example/shop",
            "SQLALCHEMY_ASYNC_DATABASE_URI": f"postgresql+asyncpg://app:{PASSWORD}@db.example/shop",
        }
    )
    assert core.async_engine.url.drivername == "postgresql+asyncpg"
    assert core.engine.url.drivername == "postgresql+psycopg"


def test_bind_async_url_overrides_that_binds_async_url_only() -> None:
    core = DatabaseCore(
        {
            "SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://app:{PASSWORD}@db.example/shop",
            "SQLALCHEMY_BINDS": {
                "auth": {
                    "url": f"postgresql+psycopg://app:{PASSWORD}@db.example/auth",
                    "async_url": f"postgresql+asyncpg://app:{PASSWORD}@db.example/auth",
                    "pool_size": 3,
                }
            },
        }
    )
    auth = core.get_async_engine("auth")
    assert auth.url.drivername == "postgresql+asyncpg"
    assert auth.url.database == "auth"
    # The bind's engine options apply to its async engine too.
    assert queue_pool(auth.sync_engine.pool).size() == 3
    assert core.async_engine.url.drivername == "postgresql+psycopg_async"
    assert set(core.async_engines) == {None, "auth"}


def test_bind_async_url_is_not_an_option_of_the_sync_engine() -> None:
    core = DatabaseCore(
        {
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
            "SQLALCHEMY_BINDS": {
                "auth": {
                    "url": f"postgresql+psycopg://app:{PASSWORD}@db.example/auth",
                    "async_url": f"postgresql+asyncpg://app:{PASSWORD}@db.example/auth",
                }
            },
        }
    )
    assert core.get_engine("auth").url.drivername == "postgresql+psycopg"


@pytest.mark.parametrize("binds", [None, {"auth": "sqlite:///auth.db"}])
def test_async_database_uri_without_database_uri_is_an_error(
    binds: Mapping[str, str] | None,
) -> None:
    config = {
        "SQLALCHEMY_ASYNC_DATABASE_URI": f"postgresql+asyncpg://app:{PASSWORD}@db.example/shop",
        "SQLALCHEMY_BINDS": binds,
    }
    with pytest.raises(RuntimeError) as excinfo:
        DatabaseCore(config)
    message = message_of(excinfo.value)
    assert "'SQLALCHEMY_ASYNC_DATABASE_URI'" in message
    assert "'SQLALCHEMY_DATABASE_URI'" in message
    assert PASSWORD not in message


# -- Bad async URLs: errors that name the key, never the password ----------------------


@pytest.mark.parametrize(
    ("config", "bind_key", "config_key"),
    [
        (
            {
                "SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://app:{PASSWORD}@db.example/shop",
                "SQLALCHEMY_ASYNC_DATABASE_URI": f"postgresql+psycopg://app:{PASSWORD}@db.example/shop",
            },
            None,
            "'SQLALCHEMY_ASYNC_DATABASE_URI'",
        ),
        (
            {
                "SQLALCHEMY_DATABASE_URI": "sqlite://",
                "SQLALCHEMY_BINDS": {
                    "auth": {
                        "url": f"mysql+pymysql://app:{PASSWORD}@db.example/auth",
                        "async_url": f"mysql+pymysql://app:{PASSWORD}@db.example/auth",
                    }
                },
            },
            "auth",
            """'SQLALCHEMY_BINDS['auth']["async_url"]'""",
        ),
    ],
)
def test_async_url_with_a_sync_driver_is_an_error_naming_its_key(
    config: Mapping[str, Any], bind_key: str | None, config_key: str
) -> None:
    core = DatabaseCore(config)
    with pytest.raises(ValueError, match="not an async driver") as excinfo:
        core.get_async_engine(bind_key)
    message = message_of(excinfo.value)
    assert config_key in message
    assert PASSWORD not in message


@pytest.mark.parametrize(
    "url",
    [
        f"oracle+oracledb://app:{PASSWORD}@db.example/shop",
        f"mssql+pyodbc://app:{PASSWORD}@shop-dsn",
    ],
)
def test_backend_without_an_async_driver_is_an_error_naming_the_key_to_set(url: str) -> None:
    # Their sync drivers are not installed here, so the async engine is made from the
    # bind alone, as DatabaseCore makes it.
    (spec,) = read_config({"SQLALCHEMY_DATABASE_URI": url}).values()
    with pytest.raises(ValueError, match="no default async driver") as excinfo:
        create_async_engine(spec)
    message = message_of(excinfo.value)
    assert "set 'SQLALCHEMY_ASYNC_DATABASE_URI'" in message
    assert PASSWORD not in message


def hide_package(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Make ``package`` look uninstalled to the core's driver check."""
    find_spec = importlib.util.find_spec

    def find_all_but(
        name: str, parent: str | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        return None if name == package else find_spec(name, parent)

    monkeypatch.setattr(importlib.util, "find_spec", find_all_but)


@pytest.mark.parametrize(
    ("config", "package", "suggests_async_uri"),
    [
        ({"SQLALCHEMY_DATABASE_URI": "sqlite:///app.db"}, "aiosqlite", True),
        (
            {"SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://app:{PASSWORD}@db.example/shop"},
            "psycopg",
            True,
        ),
        (
            {"SQLALCHEMY_DATABASE_URI": f"mariadb+pymysql://app:{PASSWORD}@db.example/shop"},
            "aiomysql",
            True,
        ),
        (
            {
                "SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://app:{PASSWORD}@db.example/shop",
                "SQLALCHEMY_ASYNC_DATABASE_URI": f"postgresql+asyncpg://app:{PASSWORD}@db.example/shop",
            },
            "asyncpg",
            False,
        ),
    ],
)
def test_missing_async_driver_is_an_error_naming_the_package(
    monkeypatch: pytest.MonkeyPatch,
    config: Mapping[str, Any],
    package: str,
    suggests_async_uri: bool,
) -> None:
    core = DatabaseCore(config)
    hide_package(monkeypatch, package)
    with pytest.raises(AsyncDriverMissing) as excinfo:
        core.get_async_engine()
    assert isinstance(excinfo.value, RuntimeError)
    message = message_of(excinfo.value)
    assert f"pip install {package}" in message
    assert ("'SQLALCHEMY_ASYNC_DATABASE_URI'" in message) is suggests_async_uri
    assert PASSWORD not in message


def test_missing_greenlet_is_an_error_naming_sqlalchemys_asyncio_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    core = DatabaseCore(
        {"SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://app:{PASSWORD}@db.example/shop"}
    )
    hide_package(monkeypatch, "greenlet")
    with pytest.raises(AsyncDriverMissing, match=r"sqlalchemy\[asyncio\]") as excinfo:
        core.get_async_engine()
    assert PASSWORD not in message_of(excinfo.value)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_has_no_async_engine(url: str) -> None:
    core = DatabaseCore({"SQLALCHEMY_DATABASE_URI": url})
    with pytest.raises(ValueError, match="in-memory SQLite") as excinfo:
        core.get_async_engine()
    assert "'SQLALCHEMY_DATABASE_URI'" in message_of(excinfo.value)


def test_unknown_bind_has_no_async_engine() -> None:
    core = DatabaseCore({"SQLALCHEMY_DATABASE_URI": "sqlite:///app.db"})
    with pytest.raises(KeyError, match="'nope' is not in 'SQLALCHEMY_BINDS'"):
        core.get_async_engine("nope")


# -- Units of work, on every backend ---------------------------------------------------


def test_async_transaction_commits_when_the_block_succeeds(core: DatabaseCore) -> None:
    async def add() -> None:
        async with core.async_transaction() as session:
            assert isinstance(session, AsyncSession)
            session.add(Note(text="kept"))

    run_then_dispose(core, add)
    with core.sessionmaker() as session:
        assert list(session.scalars(sa.select(Note.text))) == ["kept"]


def test_async_transaction_rolls_back_and_reraises_when_the_block_raises(
    core: DatabaseCore,
) -> None:
    async def add_then_fail() -> None:
        async with core.async_transaction() as session:
            session.add(Note(text="lost"))
            await session.flush()
            raise LookupError("the block failed")

    with pytest.raises(LookupError, match="the block failed"):
        run_then_dispose(core, add_then_fail)
    assert count(core, Note) == 0


def test_async_session_routes_each_base_to_its_binds_async_engine(core: DatabaseCore) -> None:
    async def add_to_both() -> None:
        async with core.async_transaction() as session:
            sync_session = session.sync_session
            assert (
                sync_session.get_bind(mapper=sa.inspect(Grant))
                is core.get_async_engine("auth").sync_engine
            )
            assert sync_session.get_bind(mapper=sa.inspect(Note)) is core.async_engine.sync_engine
            session.add_all([Note(text="default"), Grant(name="auth")])

    run_then_dispose(core, add_to_both)
    # On SQLite, two files: each row is in its own bind's database.
    assert (count(core, Note), count(core, Grant)) == (1, 1)
    with core.get_engine("auth").connect() as connection:
        assert connection.scalar(sa.select(Grant.name)) == "auth"


def test_async_with_core_disposes_every_engine(database_url: str) -> None:
    async def use() -> tuple[QueuePool, QueuePool]:
        async with DatabaseCore({"SQLALCHEMY_DATABASE_URI": database_url}) as core:
            async with core.async_transaction() as session:
                assert await session.scalar(sa.text("SELECT 1")) == 1
            with core.transaction() as sync_session:
                assert sync_session.scalar(sa.text("SELECT 1")) == 1
            pools = (queue_pool(core.async_engine.sync_engine.pool), queue_pool(core.engine.pool))
            assert [pool.checkedin() for pool in pools] == [1, 1]
        return pools

    pools = asyncio.run(use())
    assert [pool.checkedin() for pool in pools] == [0, 0]


def test_aiosqlite_ends_only_open_transactions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each rollback or commit aiosqlite is asked for is a trip to its connection's
    # thread; sqlite3 would do nothing with one outside a transaction.
    import aiosqlite

    calls: list[str] = []
    for name in ("rollback", "commit"):
        original = getattr(aiosqlite.Connection, name)

        async def counted(
            self: aiosqlite.Connection, _name: str = name, _original: Any = original
        ) -> None:
            calls.append(_name)
            await _original(self)

        monkeypatch.setattr(aiosqlite.Connection, name, counted)
    core = DatabaseCore({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'ends.db'}"}, Base)
    core.create_all()

    async def work() -> list[list[str]]:
        seen: list[list[str]] = []
        async with core.async_sessionmaker() as session:  # read, then closed
            assert await session.scalar(sa.text("SELECT 1")) == 1
        seen.append(list(calls))
        async with core.async_transaction() as session:  # read, then committed
            assert await session.scalar(sa.text("SELECT 1")) == 1
        seen.append(list(calls))
        async with core.async_transaction() as session:
            session.add(Note(text="kept"))
        seen.append(list(calls))
        async with core.async_sessionmaker() as session:  # written, closed uncommitted
            session.add(Note(text="dropped"))
            await session.flush()
        seen.append(list(calls))
        return seen

    assert run_then_dispose(core, work) == [[], [], ["commit"], ["commit", "rollback"]]
    with core.sessionmaker() as session:
        assert session.scalars(sa.select(Note.text)).all() == ["kept"]
    core.drop_all()


# -- One event loop per engine ---------------------------------------------------------


#: Pools whose connections belong to an event loop that has ended, never collected.
_POOLS_OF_ENDED_LOOPS: list[object] = []


@contextmanager
def pool_messages() -> Generator[list[str], None, None]:
    """Collect what SQLAlchemy's pools log inside, as messages only: the records' own
    tracebacks would keep a failing driver's dropped connections alive until they warn
    in a later test.
    """
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("sqlalchemy.pool")
    handler = Collect(logging.WARNING)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def second_loop_outcome(core: DatabaseCore) -> tuple[str, list[str]]:
    """Use the core's async engine in one ``asyncio.run()``, then in another: return what
    the second one raised, and what the pool logged meanwhile. The engines are disposed
    of, and what a failing driver dropped unclosed is collected here, so that no
    traceback keeps it alive to warn in a later test.
    """

    async def read() -> int:
        async with core.async_transaction() as session:
            return await session.scalar(sa.select(sa.func.count()).select_from(Note)) or 0

    assert asyncio.run(read()) == 0
    try:
        with pool_messages() as logged:
            try:
                asyncio.run(read())
            except Exception as error:  # whatever it is, the test compares it
                raised = f"{type(error).__name__}: {error}"
            else:
                raised = "nothing"
    finally:
        # The pooled connection is the first loop's, which has ended: it can only be
        # dropped, unclosed, as a worker that forgot async_dispose() would. Its pool is
        # kept: collected, aiomysql's connection would try to close on the dead loop.
        _POOLS_OF_ENDED_LOOPS.append(core.async_engine.sync_engine.pool)
        core.async_engine.sync_engine.dispose(close=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)  # asyncpg's unawaited cancel
            gc.collect()
    return raised, logged


def assert_refused_by_the_core(raised: str, logged: list[str]) -> None:
    assert raised.startswith(
        "RuntimeError: This async engine's pooled connections were made on another event loop"
    )
    assert "'await core.async_dispose()' before that loop ends" in raised
    assert logged == []


def test_async_engine_refuses_a_second_loop_until_disposed(core: DatabaseCore) -> None:
    assert_refused_by_the_core(*second_loop_outcome(core))


def test_asyncpg_engine_refuses_a_second_loop_until_disposed(postgresql_url: str) -> None:
    async_url = sa.make_url(postgresql_url).set(drivername="postgresql+asyncpg")
    config = {
        "SQLALCHEMY_DATABASE_URI": postgresql_url,
        "SQLALCHEMY_ASYNC_DATABASE_URI": async_url,
    }
    core = DatabaseCore(config, Base)
    core.create_all()
    assert_refused_by_the_core(*second_loop_outcome(core))


def test_async_engine_works_on_a_second_loop_after_async_dispose(core: DatabaseCore) -> None:
    async def add(text: str) -> None:
        async with core.async_transaction() as session:
            session.add(Note(text=text))

    run_then_dispose(core, lambda: add("first loop"))
    run_then_dispose(core, lambda: add("second loop"))
    assert count(core, Note) == 2


# -- Test isolation --------------------------------------------------------------------


@pytest.mark.parametrize("async_parts_made", ["before the block", "inside the block"])
def test_isolated_async_sessions_see_each_others_commits_and_leave_nothing(
    core: DatabaseCore, async_parts_made: str
) -> None:
    async def add(text: str) -> None:
        async with core.async_transaction() as session:
            session.add_all([Note(text=text), Grant(name=text)])

    async def texts() -> list[str]:
        async with core.async_sessionmaker() as session:
            return list(await session.scalars(sa.select(Note.text).order_by(Note.id)))

    loop = shared_loop()
    try:
        if async_parts_made == "before the block":
            assert loop.run(texts()) == []
        with core.test_isolation():
            loop.run(add("one"))
            loop.run(add("two"))
            assert loop.run(texts()) == ["one", "two"]
        assert (count(core, Note), count(core, Grant)) == (0, 0)
        # Outside the block, async sessions commit for real again.
        loop.run(add("real"))
        assert (count(core, Note), count(core, Grant)) == (1, 1)
    finally:
        dispose_on_shared_loop(core)


def test_async_session_made_before_isolation_is_isolated_inside_it(core: DatabaseCore) -> None:
    session = core.async_sessionmaker()

    async def add_and_commit() -> None:
        session.add(Note(text="made before"))
        await session.commit()
        await session.close()

    try:
        with core.test_isolation():
            shared_loop().run(add_and_commit())
        assert count(core, Note) == 0
    finally:
        dispose_on_shared_loop(core)


def test_isolated_async_rollback_keeps_earlier_commits(core: DatabaseCore) -> None:
    async def add(text: str, fail: bool) -> None:
        async with core.async_transaction() as session:
            session.add(Note(text=text))
            await session.flush()
            if fail:
                raise LookupError(text)

    async def texts() -> list[str]:
        async with core.async_sessionmaker() as session:
            return list(await session.scalars(sa.select(Note.text)))

    loop = shared_loop()
    try:
        with core.test_isolation():
            loop.run(add("kept", fail=False))
            with pytest.raises(LookupError):
                loop.run(add("rolled back", fail=True))
            assert loop.run(texts()) == ["kept"]
        assert count(core, Note) == 0
    finally:
        dispose_on_shared_loop(core)


# -- What a process pays, and how it exits ---------------------------------------------


def run_python(code: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def test_sync_only_process_imports_no_asyncio_support_and_starts_no_thread(tmp_path: Path) -> None:
    result = run_python(
        f"""
        import sys
        import threading

        import sqlalchemy as sa

        from flask_typed_db.core import DatabaseCore

        core = DatabaseCore({{"SQLALCHEMY_DATABASE_URI": {f"sqlite:///{tmp_path / 'sync.db'}"!r}}})
        with core.transaction() as session:
            assert session.scalar(sa.text("SELECT 1")) == 1
        core.dispose()
        loaded = sorted(
            name
            for name in sys.modules
            if name.startswith(("sqlalchemy.ext.asyncio", "aiosqlite", "asyncpg", "aiomysql"))
        )
        assert not loaded, loaded
        assert threading.active_count() == 1, threading.enumerate()
        """
    )
    assert (result.returncode, result.stderr) == (0, "")


#: Leaves a pooled async connection behind: a core with no Flask app used on the shared
#: loop, or, when argv[3] is "own-loop", on a loop of its own that asyncio.run() closes.
#: Prints "closed" each time the pool closes a connection.
LEAVES_A_POOLED_CONNECTION = """
    import asyncio
    import sys

    import sqlalchemy as sa

    from flask_typed_db.core import DatabaseCore
    from flask_typed_db.core._loop import shared_loop

    sync_url, async_url, where = sys.argv[1:]
    config = {"SQLALCHEMY_DATABASE_URI": sync_url}
    if async_url:
        config["SQLALCHEMY_ASYNC_DATABASE_URI"] = async_url
    core = DatabaseCore(config)
    pool = core.async_engine.sync_engine.pool
    sa.event.listen(pool, "close", lambda *args: print("closed", flush=True))

    async def select_one() -> int:
        async with core.async_transaction() as session:
            return await session.scalar(sa.text("SELECT 1"))

    if where == "own-loop":
        assert asyncio.run(select_one()) == 1
    else:
        assert shared_loop().run(select_one()) == 1
    assert pool.checkedin() == 1
"""


@pytest.fixture(params=["aiosqlite", "asyncpg"])
def exit_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """A sync URL and the async URL to use with it: aiosqlite by default, or
    PostgreSQL through asyncpg, whose connections must be closed on their loop.
    """
    if request.param == "aiosqlite":
        return f"sqlite:///{tmp_path / 'exit.db'}", ""
    url = sa.make_url(request.getfixturevalue("postgresql_url"))
    async_url = url.set(drivername="postgresql+asyncpg")
    return url.render_as_string(hide_password=False), async_url.render_as_string(
        hide_password=False
    )


def run_until_exit(
    urls: tuple[str, str], *, where: str, warnings_are_errors: bool
) -> subprocess.CompletedProcess[str]:
    options = ["-W", "error"] if warnings_are_errors else []
    script = textwrap.dedent(LEAVES_A_POOLED_CONNECTION)
    return subprocess.run(
        [sys.executable, *options, "-c", script, *urls, where],
        capture_output=True,
        text=True,
        check=False,
        timeout=20,
    )


def test_process_exits_with_an_async_connection_left_on_a_closed_loop(
    exit_urls: tuple[str, str],
) -> None:
    # That loop is gone: its connection was the worker's to close; nothing closes it.
    result = run_until_exit(exit_urls, where="own-loop", warnings_are_errors=False)
    assert (result.returncode, result.stdout) == (0, ""), result.stderr


def test_exit_closes_connections_made_on_the_shared_loop_without_flask(
    exit_urls: tuple[str, str],
) -> None:
    # Unclosed connections would warn as they are collected: errors with -W error.
    result = run_until_exit(exit_urls, where="shared", warnings_are_errors=True)
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "closed\n")
