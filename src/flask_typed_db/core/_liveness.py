"""Replace pooled connections that died while idle, before a request uses them.

A connection can die in the pool: the server restarted, an administrator ended it
(``pg_terminate_backend``, ``KILL``), the server's idle timeout closed it. SQLAlchemy's
``pool_pre_ping`` finds it with a round trip to the server at every checkout. A server that
ends a connection closes its socket, usually with a last error message first, so an idle
connection whose socket has anything to read is dead, or at least not idle: that is
checked here with a ``poll()`` of the socket, without a round trip. Only such a
connection is then pinged, and one that fails the ping is replaced before it is handed
out, through the pool's documented ``checkout`` event and ``DisconnectionError``.

A connection dropped silently on the way (a firewall that forgets it, without a reset)
shows nothing on its socket: ``pool_recycle`` and TCP keepalives are the tools for that.
"""

from __future__ import annotations

import select
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy import event
from sqlalchemy.engine import Dialect
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.pool import PoolProxiedConnection


def replace_dead_connections(engine: sa.Engine) -> None:
    """Check each connection ``engine``'s pool hands out, and replace a dead one."""
    dialect = engine.dialect

    def check_on_checkout(
        dbapi_connection: Any, _entry: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        if not _looks_alive(dbapi_connection, dialect):
            # The pool closes it, connects afresh and checks again, twice at most.
            raise sa_exc.DisconnectionError("the pooled connection died while idle")

    event.listen(engine, "checkout", check_on_checkout)


def _looks_alive(dbapi_connection: Any, dialect: Dialect) -> bool:
    try:
        fd = _socket_of(dbapi_connection)
        if fd is not None and not _has_input(fd):
            return True
        # Something came in while it sat idle (the server's farewell, or an end of
        # file), or the driver does not show its socket: ask the server.
        return dialect.do_ping(dbapi_connection)
    except Exception:  # any failure to reach the server means the connection is unusable
        return False


def _socket_of(dbapi_connection: Any) -> int | None:
    """The file descriptor of a driver's socket, if the driver shows it."""
    # An asyncio driver's connection is inside SQLAlchemy's adapter.
    connection = getattr(dbapi_connection, "driver_connection", dbapi_connection)
    if connection is not dbapi_connection and not hasattr(connection, "fileno"):
        # asyncpg's and aiomysql's transports read the socket themselves: a poll would
        # find nothing there. Ask the server.
        return None
    fileno = getattr(connection, "fileno", None)  # psycopg (sync and async), psycopg2
    if fileno is not None:
        return int(fileno())
    # PyMySQL has no public accessor for its socket.
    sock = getattr(dbapi_connection, "_sock", None)
    if sock is not None:
        return int(sock.fileno())
    return None


def _has_input(fd: int) -> bool:
    """Whether ``fd`` has data or an end of file to read, without waiting."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)  # Windows: no poll()
    return bool(readable)
