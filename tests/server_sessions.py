"""Database servers from a test's side: whether one answers, and ending a server's
session from outside, as an administrator, a restart or the server's idle timeout does
(for the tests of what a pool does with the connection).
"""

from __future__ import annotations

import time

import sqlalchemy as sa


def server_problem(url: str) -> str | None:
    """Why the server at ``url`` cannot be used, or None if it answers."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception as error:  # any failure to connect means the server is unusable
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"
    finally:
        engine.dispose()
    return None


#: How long the server may take to end a connection it was told to end.
KILL_TIMEOUT = 10.0


def end_server_session(url: str, server_id: int) -> None:
    """End the server session ``server_id`` from another connection, as an administrator,
    a restart or the server's idle timeout does, and wait until it is gone.
    """
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    postgresql = engine.dialect.name == "postgresql"
    kill = "SELECT pg_terminate_backend(:id)" if postgresql else f"KILL CONNECTION {server_id}"
    alive = (
        "SELECT count(*) FROM pg_stat_activity WHERE pid = :id"
        if postgresql
        else "SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID = :id"
    )
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(kill), {"id": server_id})
        deadline = time.monotonic() + KILL_TIMEOUT
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                if connection.execute(sa.text(alive), {"id": server_id}).scalar_one() == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"the server did not end session {server_id}")
    finally:
        engine.dispose()
