"""Run code that commits inside transactions that are rolled back: isolated tests."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Generator
from collections.abc import Mapping
from contextlib import ExitStack
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any
from typing import TypeVar

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

_S = TypeVar("_S", bound=Session)

#: The sessionmaker arguments isolation changes, and puts back as they were.
_CONFIGURED = ("bind", "engines", "join_transaction_mode", "replicas")

#: The execution option that marks the connections of test isolation.
ISOLATION_OPTION = "flask_typed_db_test_isolation"


class LazyLoadError(AssertionError):
    """A relationship was lazy-loaded while lazy loads were forbidden: load it eagerly
    (``selectinload``, ``joinedload``) in the query that fetched its parent.
    """


@contextmanager
def isolated(
    maker: sessionmaker[_S],
    engines: Mapping[str | None, sa.Engine],
    *,
    forbid_lazy_loads: bool = False,
) -> Generator[Mapping[str | None, sa.Connection], None, None]:
    """Make every session from ``maker`` work inside one transaction per engine, rolled
    back at the end, whatever the code inside commits.

    Each engine gets one connection with an outer transaction. Sessions made inside
    join it with ``join_transaction_mode="create_savepoint"``: their ``commit()``
    releases a SAVEPOINT and their ``rollback()`` rolls back to one, so the code under
    test runs unchanged, its later sessions see what its earlier ones committed, and
    nothing outlives the block. Not for concurrent use from several threads.

    :param forbid_lazy_loads: Raise :class:`LazyLoadError` on any lazy load of a
        relationship: an N+1 query detector.
    :raises RuntimeError: If a database cannot be reached; the message names it.
    """
    saved = {key: maker.kw[key] for key in _CONFIGURED if key in maker.kw}
    with ExitStack() as stack:
        connections = {
            key: stack.enter_context(_outer_transaction(engine)) for key, engine in engines.items()
        }
        maker.configure(
            bind=connections.get(None),
            engines=MappingProxyType(connections),
            join_transaction_mode="create_savepoint",
        )
        if "replicas" in maker.kw:
            # A test must see its own writes, which no replica has: reads go to the
            # isolated connections too.
            maker.configure(replicas={})
        stack.callback(_restore, maker, saved)
        if forbid_lazy_loads:
            event.listen(maker, "do_orm_execute", _refuse_lazy_load)
            stack.callback(event.remove, maker, "do_orm_execute", _refuse_lazy_load)
        yield MappingProxyType(connections)


def _restore(maker: sessionmaker[_S], saved: Mapping[str, Any]) -> None:
    for key in _CONFIGURED:
        maker.kw.pop(key, None)
    maker.kw.update(saved)


@contextmanager
def _outer_transaction(engine: sa.Engine) -> Generator[sa.Connection, None, None]:
    try:
        connection = engine.connect()
    except sa_exc.DBAPIError as error:
        where = engine.url.render_as_string(hide_password=True)
        lines = str(error.orig).strip().splitlines()
        reason = lines[0] if lines else type(error.orig).__name__
        raise RuntimeError(
            f"Test isolation could not connect to {where}: {reason}. Is the database"
            " server running, and is the URL in the config right?"
        ) from None
    with connection:
        # Tells the query recorder which SAVEPOINTs are isolation's, not the code's.
        connection.execution_options(**{ISOLATION_OPTION: True})
        end_sqlite = begin_for_savepoints(connection)
        transaction = connection.begin()
        try:
            yield connection
        finally:
            if transaction.is_active:
                transaction.rollback()
            if end_sqlite is not None:
                end_sqlite()


def begin_for_savepoints(connection: sa.Connection) -> Callable[[], None] | None:
    """Give a pysqlite connection one real transaction, so that SAVEPOINT works, and
    return what ends it; ``None`` for other drivers, whose transactions are real.

    pysqlite (Python 3.11, and 3.12+ by default) begins a transaction only before
    INSERT, UPDATE and DELETE, so SQLAlchemy's SAVEPOINTs would run outside any
    transaction: SQLAlchemy's documented fix is to turn that handling off and emit
    BEGIN ourselves. With Python 3.12's ``autocommit=False`` the driver already keeps a
    transaction open; with ``autocommit=True`` its rollback() does nothing, so the
    transaction is ended here by statement either way.
    """
    if connection.dialect.name != "sqlite":
        return None
    # sqlite3's connection, or aiosqlite's adapter of its own (which runs each call on
    # its loop) and the aiosqlite connection, which shows sqlite3's attributes.
    dbapi_connection: Any = connection.connection.dbapi_connection
    driver_connection: Any = connection.connection.driver_connection
    if getattr(driver_connection, "autocommit", None) is False:
        return None
    previous = dbapi_connection.isolation_level
    dbapi_connection.isolation_level = None
    dbapi_connection.cursor().execute("BEGIN")

    def end() -> None:
        if driver_connection.in_transaction:
            dbapi_connection.cursor().execute("ROLLBACK")
        dbapi_connection.isolation_level = previous

    return end


def _refuse_lazy_load(state: ORMExecuteState) -> None:
    parent = state.lazy_loaded_from
    if parent is not None:
        raise LazyLoadError(
            f"Lazy load from {parent.class_.__name__} {parent.identity!r} while lazy"
            " loads are forbidden: load the relationship eagerly (selectinload or"
            " joinedload) in the query that fetched it."
        )
