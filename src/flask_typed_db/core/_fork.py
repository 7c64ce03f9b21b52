"""A process forked from one using our engines never touches its parent's connections.

A child of ``os.fork()`` (``multiprocessing``'s ``fork`` start method, a prefork server, a
view that forks) starts with a copy of its parent's memory: the pools, the connections
checked out of them, and the sessions and transactions using those. Each such connection
is the same server session (or SQLite file state) as the parent's: a child that committed
on it would commit the parent's uncommitted work, and a child that closed it would roll
back, or end, the parent's transaction.

So in the child, before anything else runs:

- every engine's pool is replaced by an empty one (``engine.dispose(close=False)``,
  SQLAlchemy's recipe), so new checkouts connect afresh;
- every connection the parent had, pooled or checked out, is swapped, inside SQLAlchemy's
  pool entry and checked-out connection, for a stand-in that sends nothing anywhere: a
  session or ``Connection`` of the parent's, used in the child, raises
  :class:`~sqlalchemy.exc.InvalidRequestError` on its next statement or commit, and its
  rollback and close (at teardown, or by the garbage collector) do nothing. The DBAPI
  connections themselves are kept, never closed: closing one in the child could end the
  parent's server session (libpq sends a Terminate message).

In-memory SQLite engines are left as they are: their one connection is the database, and
the child's copy of it is the child's own.
"""

from __future__ import annotations

import os
import sys
import weakref
from typing import Any
from typing import NoReturn

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy import event
from sqlalchemy.pool import ConnectionPoolEntry

#: Engines whose pools are replaced in a forked child. Weak, so that a disposed and
#: dropped engine (a test app, say) is not kept alive by the fork hook.
_engines: weakref.WeakSet[sa.Engine] = weakref.WeakSet()
#: Every pool entry that connected on one of those engines: its DBAPI connection is the
#: parent's in a forked child. Filled by a "connect" event, which costs nothing per request.
_entries: weakref.WeakSet[ConnectionPoolEntry] = weakref.WeakSet()
#: In a forked child, the parent's DBAPI connections, kept so that the garbage collector
#: never closes them there.
_inherited: list[Any] = []


class _ParentsConnection:
    """Stands in, in a forked child, for a DBAPI connection of the parent's."""

    def rollback(self) -> None:
        """Nothing the child did is on this connection: nothing to undo."""

    def close(self) -> None:
        """The real connection is the parent's to close."""

    def terminate(self) -> None:
        """What the pool calls instead of ``close()`` for an async driver's connection
        it cannot close on its loop: the parent's to end too.
        """

    def __getattr__(self, name: str) -> NoReturn:
        raise sa_exc.InvalidRequestError(
            "This database connection was opened by the process this one was forked"
            " from, and is still that process's: it is not used here, so that the"
            " parent's transaction is never touched. Use a new session in the child"
            " ('db.session' in a new app context, or 'core.sessionmaker()')."
        )


def make_fork_safe(engine: sa.Engine) -> None:
    """Cut ``engine``'s connections from any child this process forks."""
    _engines.add(engine)
    event.listen(engine, "connect", _remember_entry)


def _remember_entry(_dbapi_connection: Any, entry: ConnectionPoolEntry) -> None:
    _entries.add(entry)


def _cut_inherited_connections() -> None:
    for engine in list(_engines):
        engine.dispose(close=False)
    for public_entry in list(_entries):
        # The entry's class, not its public interface, declares 'dbapi_connection'
        # assignable, as SQLAlchemy's own fork recipe assigns it.
        entry: Any = public_entry
        dbapi_connection = entry.dbapi_connection
        if dbapi_connection is None:
            continue
        _inherited.append(dbapi_connection)
        stand_in = _ParentsConnection()
        entry.dbapi_connection = stand_in
        # 'fairy_ref' is the one link SQLAlchemy keeps (2.0 and 2.1) from an entry to
        # the connection checked out of it; there is no public accessor.
        fairy_ref: weakref.ref[Any] | None = getattr(entry, "fairy_ref", None)
        checked_out = fairy_ref() if fairy_ref is not None else None
        if checked_out is not None:
            checked_out.dbapi_connection = stand_in
    _entries.clear()


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_cut_inherited_connections)
