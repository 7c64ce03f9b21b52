"""Create engines with the defaults each backend needs."""

from __future__ import annotations

import inspect
import os
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.engine import Dialect
from sqlalchemy.pool import NullPool
from sqlalchemy.pool import QueuePool
from sqlalchemy.pool import StaticPool

from ._config import BindSpec
from ._fork import make_fork_safe
from ._liveness import replace_dead_connections

#: Backends reached over a socket, whose server can end a pooled connection.
SERVER_BACKENDS = frozenset({"postgresql", "mysql", "mariadb"})


def create_engine(spec: BindSpec, root_path: str | os.PathLike[str] | None = None) -> sa.Engine:
    """Create the engine for one bind, with backend defaults applied.

    :param spec: The bind's URL and options, from :func:`read_config`.
    :param root_path: The directory a relative SQLite path is resolved against (the
        Flask app's instance folder). ``None`` leaves it relative to the working
        directory, as SQLite does.
    """
    options = dict(spec.options)
    url = apply_backend_defaults(spec.url, options, root_path)
    if spec.pgbouncer:
        url = apply_pgbouncer_settings(url, options)
    try:
        engine = sa.create_engine(url, **options)
    except Exception as error:
        # SQLAlchemy's message names the option or driver but not where it came from.
        error.add_note(f"While creating the engine configured by {spec.config_key}.")
        raise
    if spec.pgbouncer:
        no_server_side_cursors(engine.dialect)
    if not is_sqlite_memory(url):
        # An in-memory database exists only in its one connection: a child that
        # dropped it would see an empty database, so that pool is left as it is.
        make_fork_safe(engine)
    if url.get_backend_name() == "sqlite":
        begin_before_savepoints(engine.dialect)
    if root_path is not None and url is not spec.url and url.get_backend_name() == "sqlite":
        # The path was resolved against root_path (the instance folder): make its folder
        # when the file is first opened, not now, so that building an app or a core
        # never writes to the disk.
        make_sqlite_folder_on_connect(engine, url)
    if (
        url.get_backend_name() in SERVER_BACKENDS
        and "pool_pre_ping" not in options
        and not isinstance(engine.pool, NullPool)
    ):
        # A server can end a pooled connection while it sits idle; a request must not
        # fail for it. pool_pre_ping=True asks for SQLAlchemy's full round trip instead,
        # and pool_pre_ping=False for no check at all.
        replace_dead_connections(engine)
    return engine


def apply_backend_defaults(
    url: URL, options: dict[str, Any], root_path: str | os.PathLike[str] | None
) -> URL:
    """Fill in ``options`` with what the backend needs and return the URL to use.

    Options the user set are never overridden.
    """
    backend = url.get_backend_name()
    if backend == "sqlite":
        if is_sqlite_memory(url):
            # Every new connection to ":memory:" would be a new, empty database:
            # keep exactly one connection and let every thread use it.
            options.setdefault("poolclass", StaticPool)
            connect_args: Mapping[str, Any] = options.get("connect_args", {})
            options["connect_args"] = {"check_same_thread": False, **connect_args}
        elif root_path is not None:
            url = _resolve_sqlite_path(url, root_path)
    elif backend == "postgresql" and url.get_driver_name() in {"psycopg", "psycopg2"}:
        # libpq waits forever for a server that accepts the connection and never
        # answers: a request would hang past every timeout. Give up after 10 seconds.
        if "connect_timeout" not in url.query:
            connect_args = options.get("connect_args", {})
            options["connect_args"] = {"connect_timeout": 10, **connect_args}
    elif backend in {"mysql", "mariadb"}:
        # MySQL's "utf8" is a three-byte subset; utf8mb4 stores all of Unicode.
        if "charset" not in url.query:
            url = url.update_query_dict({"charset": "utf8mb4"})
        # The server drops connections idle longer than wait_timeout (8 hours by
        # default); recycle pooled ones well before that.
        if options.get("poolclass", QueuePool) is QueuePool:
            options.setdefault("pool_recycle", 7200)
    return url


def apply_pgbouncer_settings(url: URL, options: dict[str, Any]) -> URL:
    """Set what PgBouncer's transaction pooling needs of ``url``'s driver, in
    ``options`` and the URL it returns; what the user set is never overridden.

    In that mode each transaction may run on another server connection, so nothing may
    outlive one on the server: a prepared statement made in one transaction is missing
    in the next (``prepared statement "_pg3_0" does not exist``), or there already under
    the same name from another client (``already exists``).

    - psycopg 3 prepares a statement the sixth time a connection runs it:
      ``prepare_threshold=None`` never does.
    - asyncpg prepares every statement: its own cache is turned off
      (``statement_cache_size=0``), SQLAlchemy's too (``prepared_statement_cache_size=0``,
      so each transaction prepares what it runs), and the statements get unique names
      (``prepared_statement_name_func``) instead of a counter that restarts with each
      client connection.
    - psycopg2 prepares nothing.
    """
    connect_args: dict[str, Any] = dict(options.get("connect_args", {}))
    driver = url.get_driver_name()
    if driver in {"psycopg", "psycopg_async"}:
        connect_args.setdefault("prepare_threshold", None)
    elif driver == "asyncpg":
        connect_args.setdefault("statement_cache_size", 0)
        if _names_asyncpg_statements():
            connect_args.setdefault("prepared_statement_name_func", _unique_statement_name)
        if "prepared_statement_cache_size" not in url.query:
            url = url.update_query_dict({"prepared_statement_cache_size": "0"})
    options["connect_args"] = connect_args
    return url


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


def _names_asyncpg_statements() -> bool:
    """Whether this SQLAlchemy takes ``prepared_statement_name_func`` (2.0.0 passes it on
    to asyncpg, which refuses it; without it, the caches turned off suffice).
    """
    from sqlalchemy.dialects.postgresql import asyncpg

    # Looked up as an object: SQLAlchemy leaves the adapter's signature partly untyped.
    adapter: Any = getattr(asyncpg, "AsyncAdapt_asyncpg_connection")  # noqa: B009  # see above
    return "prepared_statement_name_func" in inspect.signature(adapter.__init__).parameters


def no_server_side_cursors(dialect: Dialect) -> None:
    """Make ``stream_results`` and ``yield_per`` fetch through client-side cursors on
    this engine: a server-side cursor is a server session's state, which PgBouncer's
    transaction pooling does not keep for a client beyond a transaction (and never for
    one outside a transaction, in autocommit).
    """
    dialect.supports_server_side_cursors = False


def is_sqlite_memory(url: URL) -> bool:
    """Whether ``url`` names an in-memory SQLite database."""
    if url.get_backend_name() != "sqlite":
        return False
    database = url.database or ""
    return (
        database in {"", ":memory:"}
        or database.startswith("file::memory:")
        or url.query.get("mode") == "memory"
    )


def _resolve_sqlite_path(url: URL, root_path: str | os.PathLike[str]) -> URL:
    database = url.database or ""
    # sqlite:///file:name.db?uri=true passes a SQLite URI filename through.
    is_uri = url.query.get("uri") in {"true", "True", "1"}
    path = database.removeprefix("file:") if is_uri else database
    if os.path.isabs(path):
        return url
    path = os.path.join(root_path, path)
    return url.set(database=f"file:{path}" if is_uri else path)


def make_sqlite_folder_on_connect(engine: sa.Engine, url: URL) -> None:
    path = (url.database or "").removeprefix("file:")
    folder = os.path.dirname(path)

    def make_folder(*_: object) -> None:
        os.makedirs(folder, exist_ok=True)

    # A dialect event: it runs once per new DBAPI connection, nothing per statement.
    event.listen(engine, "do_connect", make_folder)


def begin_before_savepoints(dialect: Dialect) -> None:
    """Make SAVEPOINT on pysqlite nest inside a real transaction.

    The sqlite3 driver (Python 3.11, and 3.12+ by default) begins a transaction only
    before INSERT, UPDATE and DELETE. A SAVEPOINT after a SELECT would then begin one
    itself, and releasing it would commit everything: the session's later rollback
    would undo nothing. Beginning the transaction first keeps SAVEPOINTs nested. With
    Python 3.12's ``autocommit`` attribute set, the driver's own handling is kept: a
    transaction is always open (False), or the user asked for none (True).

    Done on this engine's own dialect, not with a ``savepoint`` event: any connection
    event listener sends every statement of the engine through SQLAlchemy's event
    dispatch, which costs a request more than its own Python work does.
    """
    do_savepoint = dialect.do_savepoint

    def begin_then_savepoint(connection: sa.Connection, name: str) -> None:
        # sqlite3's connection, or aiosqlite's, which shows the same attributes.
        driver_connection: Any = connection.connection.driver_connection
        autocommit = getattr(driver_connection, "autocommit", None)
        if autocommit not in {True, False} and not driver_connection.in_transaction:
            # Through the DBAPI cursor: aiosqlite's adapter runs it on the loop.
            connection.connection.dbapi_connection.cursor().execute("BEGIN")  # type: ignore[union-attr]  # checked out, so never None
        do_savepoint(connection, name)

    dialect.do_savepoint = begin_then_savepoint  # type: ignore[method-assign]  # this engine's dialect only


def end_only_open_transactions(dialect: Dialect) -> None:
    """Make an aiosqlite engine's rollback and commit skip the trip to the connection's
    thread when no transaction is open.

    sqlite3's own ``rollback()`` and ``commit()`` do nothing then, but aiosqlite hands
    each to its connection's thread and waits for the answer. A request that only read
    pays two such trips for nothing, each as long as a query: its session's close rolls
    back, then the pool rolls back again as the connection comes back. Done on this
    engine's dialect, as :func:`begin_before_savepoints` is.
    """
    do_rollback = dialect.do_rollback
    do_commit = dialect.do_commit

    def rollback_if_open(dbapi_connection: Any) -> None:
        if _in_transaction(dbapi_connection):
            do_rollback(dbapi_connection)

    def commit_if_open(dbapi_connection: Any) -> None:
        if _in_transaction(dbapi_connection):
            do_commit(dbapi_connection)

    dialect.do_rollback = rollback_if_open  # type: ignore[method-assign]  # this engine's dialect only
    dialect.do_commit = commit_if_open  # type: ignore[method-assign]  # this engine's dialect only


def _in_transaction(dbapi_connection: Any) -> bool:
    # The pool's proxy of an aiosqlite connection, whichever path ends the transaction.
    driver_connection: Any = getattr(dbapi_connection, "driver_connection", None)
    try:
        return bool(driver_connection.in_transaction)
    except (AttributeError, ValueError):
        # Not aiosqlite's, or closed: the driver's own call says what is wrong.
        return True
