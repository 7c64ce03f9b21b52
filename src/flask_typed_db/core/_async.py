"""Async engines and sessions, made from the same binds as the sync ones.

Imported only when something asks for an async engine or session: an app or worker that
never does imports neither ``sqlalchemy.ext.asyncio`` nor any async driver.

Each bind's async engine uses the bind's URL with its backend's async driver (the table
below), or the URL given for it (``SQLALCHEMY_ASYNC_DATABASE_URI``, a bind's
``"async_url"``), and the bind's engine options.

An async engine's pooled connections belong to the event loop they were made on: used
from another loop, they fail in ways that never heal ("attached to a different loop",
"another operation is in progress"). So each engine's pool is tied to the first loop
that checks a connection out of it, and a checkout from any other loop is refused with
an error that says so, before any connection is touched. :meth:`AsyncEngines.dispose`
unties it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from typing import Generic

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.pool import QueuePool
from sqlalchemy.util import greenlet_spawn

from ._config import BindSpec
from ._engine import SERVER_BACKENDS
from ._engine import apply_backend_defaults
from ._engine import apply_pgbouncer_settings
from ._engine import begin_before_savepoints
from ._engine import end_only_open_transactions
from ._engine import is_sqlite_memory
from ._engine import make_sqlite_folder_on_connect
from ._engine import no_server_side_cursors
from ._fork import make_fork_safe
from ._isolation import ISOLATION_OPTION
from ._isolation import begin_for_savepoints
from ._liveness import replace_dead_connections
from ._loop import close_at_exit_if_shared
from ._session import A

#: The async driver of each backend when the bind's URL names a sync one. Asyncpg is
#: chosen by an async URL: psycopg 3 serves both sides from one package, with the same
#: connection arguments.
ASYNC_DRIVERS: Mapping[str, str] = MappingProxyType(
    {
        "postgresql": "psycopg_async",
        "mysql": "aiomysql",
        "mariadb": "aiomysql",
        "sqlite": "aiosqlite",
    }
)

#: What to install for each async driver SQLAlchemy has a dialect for.
_DRIVER_PACKAGES: Mapping[str, str] = MappingProxyType(
    {
        "psycopg_async": "psycopg",
        "asyncpg": "asyncpg",
        "aiomysql": "aiomysql",
        "asyncmy": "asyncmy",
        "aiosqlite": "aiosqlite",
    }
)


class AsyncDriverMissing(RuntimeError):
    """The async driver a bind needs is not installed."""


def async_url_of(spec: BindSpec) -> tuple[URL, str]:
    """The URL of ``spec``'s async engine, and the config key it comes from.

    :raises AsyncDriverMissing: If the driver is not installed; the message names the
        package.
    :raises ValueError: If the URL's driver is not an async one, or the backend has no
        async driver we know; the message names the key to set.
    """
    if spec.async_url is not None:
        url, where = spec.async_url, spec.async_config_key
    else:
        backend = spec.url.get_backend_name()
        if backend not in ASYNC_DRIVERS:
            raise ValueError(
                f"There is no default async driver for {backend!r} URLs such as"
                f" {spec.config_key}: set {_async_key(spec.key)} to a URL with one."
            )
        url, where = spec.url.set(drivername=f"{backend}+{ASYNC_DRIVERS[backend]}"), None
    if importlib.util.find_spec("greenlet") is None:
        raise AsyncDriverMissing(
            "Async sessions need SQLAlchemy's asyncio support, which needs the"
            " 'greenlet' package: pip install 'sqlalchemy[asyncio]'."
        )
    driver = url.get_driver_name()
    package = _DRIVER_PACKAGES.get(driver)
    if package is None:
        raise ValueError(
            f"{where or spec.config_key} names the driver {driver!r}, which is not an"
            f" async driver. Use one of {', '.join(sorted(_DRIVER_PACKAGES))}, for example"
            f" '{url.get_backend_name()}+{ASYNC_DRIVERS.get(url.get_backend_name(), 'asyncpg')}://...'."
        )
    if importlib.util.find_spec(package) is None:
        raise AsyncDriverMissing(
            f"Async sessions on {url.render_as_string(hide_password=True)} need the"
            f" {package!r} package: pip install {package}"
            + ("" if where else f" (or set {_async_key(spec.key)} to another async URL)")
            + "."
        )
    return url, where or spec.config_key


def create_async_engine(
    spec: BindSpec, root_path: str | os.PathLike[str] | None = None
) -> AsyncEngine:
    """Create one bind's async engine, with the backend defaults its sync engine gets.

    :raises AsyncDriverMissing: If the driver is not installed.
    :raises ValueError: If the bind is an in-memory SQLite database, which lives in the
        sync engine's one connection and cannot be shared.
    """
    url, config_key = async_url_of(spec)
    if is_sqlite_memory(url):
        raise ValueError(
            f"{config_key} is an in-memory SQLite database: it exists only inside the sync"
            " engine's one connection, which an async session cannot share. Use a file"
            " ('sqlite:///app.db'), or a server database, for async sessions."
        )
    options = dict(spec.options)
    if options.get("poolclass", QueuePool) in {QueuePool, AsyncAdaptedQueuePool}:
        # The default pool, made for asyncio (QueuePool itself is refused by async
        # engines) and tied to one loop.
        options["poolclass"] = OneLoopQueuePool
    resolved = apply_backend_defaults(url, options, root_path)
    if spec.pgbouncer and url.get_backend_name() == "postgresql":
        resolved = apply_pgbouncer_settings(resolved, options)
    try:
        engine = _create_async_engine(resolved, **options)
    except Exception as error:
        error.add_note(f"While creating the async engine configured by {config_key}.")
        raise
    sync_engine = engine.sync_engine
    if spec.pgbouncer:
        no_server_side_cursors(sync_engine.dialect)
    make_fork_safe(sync_engine)
    if url.get_backend_name() in SERVER_BACKENDS and "pool_pre_ping" not in options:
        # As for sync engines: a connection the server ended while it sat idle is
        # replaced before a request gets it. psycopg's async connection leaves its
        # socket alone while idle, so a poll of it finds that with no round trip; the
        # drivers whose transport reads the socket itself are pinged.
        replace_dead_connections(sync_engine)
    if url.get_backend_name() == "sqlite":
        begin_before_savepoints(sync_engine.dialect)
        end_only_open_transactions(sync_engine.dialect)
        if resolved is not url:
            make_sqlite_folder_on_connect(sync_engine, resolved)
    return engine


class AsyncEngines(Mapping[str | None, AsyncEngine]):
    """Each bind's async engine, made on first use from its spec. Read-only."""

    def __init__(
        self, specs: Mapping[str | None, BindSpec], root_path: str | os.PathLike[str] | None
    ) -> None:
        self._specs = dict(specs)
        self._root_path = root_path
        self._engines: dict[str | None, AsyncEngine] = {}

    def __getitem__(self, key: str | None) -> AsyncEngine:
        engine = self._engines.get(key)
        if engine is None:
            engine = self._engines[key] = create_async_engine(self._specs[key], self._root_path)
        return engine

    def __contains__(self, key: object) -> bool:
        # Without making the engine, which Mapping's own __contains__ would.
        return key in self._specs

    def __iter__(self) -> Iterator[str | None]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def made(self) -> list[AsyncEngine]:
        """The engines made so far."""
        return list(self._engines.values())

    async def dispose(self) -> None:
        """Close the pooled connections of every engine made, on the running loop,
        which must be the loop they were made on. Their next use, on any loop, connects
        afresh.
        """
        for engine in self.made():
            await engine.dispose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._engines!r})"


class OneLoopQueuePool(AsyncAdaptedQueuePool):
    """SQLAlchemy's asyncio queue pool, refusing a checkout from any event loop but the
    one its first checkout ran on, before it touches a connection: a connection of
    another loop cannot even be pinged or closed from this one. :meth:`recreate` (what
    ``engine.dispose()`` does) makes a pool free to serve another loop.
    """

    _loop: asyncio.AbstractEventLoop | None = None

    def _do_get(self) -> ConnectionPoolEntry:
        # _do_get is the method every pool class implements to hand out an entry.
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            close_at_exit_if_shared(self, loop)
        elif loop is not self._loop:
            raise RuntimeError(
                "This async engine's pooled connections were made on another event loop,"
                " and an asyncio connection works only on its own loop. In a Flask app,"
                " run async code through Flask (an async view, or"
                " 'app.ensure_sync(func)()' in a CLI command or a test), never with"
                " asyncio.run(); in a worker, use one loop for the engines' life, or"
                " 'await core.async_dispose()' before that loop ends."
            )
        return super()._do_get()


def _async_key(key: str | None) -> str:
    if key is None:
        return "'SQLALCHEMY_ASYNC_DATABASE_URI'"
    return f"'SQLALCHEMY_BINDS[{key!r}][\"async_url\"]'"


class AsyncBinds(Mapping[str | None, "sa.Engine | sa.Connection"]):
    """What an async session's sync session routes each bind to: the sync face of the
    bind's async engine, or, under test isolation, of its isolated connection.
    """

    def __init__(self, engines: AsyncEngines) -> None:
        self._engines = engines
        #: The isolated connections while a test isolation is active.
        self.isolation: AsyncIsolation | None = None

    def __getitem__(self, key: str | None) -> sa.Engine | sa.Connection:
        if self.isolation is not None:
            return self.isolation.connection(key)
        return self._engines[key].sync_engine

    def __contains__(self, key: object) -> bool:
        # Without opening anything, which Mapping's own __contains__ would.
        return key in self._engines

    def __iter__(self) -> Iterator[str | None]:
        return iter(self._engines)

    def __len__(self) -> int:
        return len(self._engines)


class AsyncIsolation:
    """One connection per bind, in a transaction that is rolled back at the end, for
    every async session of a test isolation: opened when a session first needs it (in
    SQLAlchemy's greenlet, on the loop the session runs on), so that a test that never
    goes async opens nothing.
    """

    def __init__(self, engines: AsyncEngines) -> None:
        self._engines = engines
        self._connections: dict[str | None, sa.Connection] = {}
        self._ends: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def connection(self, key: str | None) -> sa.Connection:
        connection = self._connections.get(key)
        if connection is not None:
            return connection
        loop = asyncio.get_running_loop()
        if self._loop is not None and loop is not self._loop:
            raise RuntimeError(
                "An isolated test's async sessions all run on one event loop: this one"
                " is not the loop its first async session ran on."
            )
        self._loop = loop
        connection = self._engines[key].sync_engine.connect()
        connection.execution_options(**{ISOLATION_OPTION: True})
        end = begin_for_savepoints(connection)
        if end is not None:
            self._ends.append(end)
        connection.begin()
        self._connections[key] = connection
        return connection

    def end(self) -> None:
        """Roll back and close the connections, from a thread that is not their loop's."""
        loop = self._loop
        if loop is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop or not loop.is_running():
            raise RuntimeError(
                "Test isolation ended where its async connections cannot be closed: on"
                " their own event loop, or after that loop stopped. End it from sync code"
                " while the loop runs (Flask's loop always does)."
            )
        asyncio.run_coroutine_threadsafe(greenlet_spawn(self._end_on_loop), loop).result()

    def _end_on_loop(self) -> None:
        connections, self._connections = self._connections, {}
        ends, self._ends = self._ends, []
        for connection in connections.values():
            connection.rollback()
        for end in ends:
            end()
        for connection in connections.values():
            connection.close()


class AsyncParts(Generic[A]):
    """A core's async engines and session factory, made when first asked for."""

    def __init__(
        self,
        specs: Mapping[str | None, BindSpec],
        root_path: str | os.PathLike[str] | None,
        session_class: type[Session],
        async_session_class: type[A],
        session_options: Mapping[str, Any],
    ) -> None:
        self.engines = AsyncEngines(specs, root_path)
        self.binds = AsyncBinds(self.engines)
        #: Async sessions route each bind as the sync ones do: their sync session is of
        #: the core's session class, given this mapping instead of the sync engines.
        self.sessionmaker: async_sessionmaker[A] = async_sessionmaker(
            class_=async_session_class,
            sync_session_class=session_class,
            engines=self.binds,
            **session_options,
        )
        self._join_mode_before: object = None

    def begin_isolation(self) -> None:
        """Make every async session join one isolated connection per bind."""
        self.binds.isolation = AsyncIsolation(self.engines)
        self._join_mode_before = self.sessionmaker.kw.get("join_transaction_mode")
        self.sessionmaker.configure(join_transaction_mode="create_savepoint")

    def end_isolation(self) -> None:
        """Roll back and close what :meth:`begin_isolation` began."""
        isolation, self.binds.isolation = self.binds.isolation, None
        if isolation is None:
            return
        if self._join_mode_before is None:
            self.sessionmaker.kw.pop("join_transaction_mode", None)
        else:
            self.sessionmaker.configure(join_transaction_mode=self._join_mode_before)
        isolation.end()


def default_async_session_class() -> type[AsyncSession]:
    """SQLAlchemy's AsyncSession: the class of async sessions unless one is given."""
    return AsyncSession
