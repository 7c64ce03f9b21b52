"""The servers of ``tests/servers/scale_out.sh`` themselves, with plain SQLAlchemy: a
PostgreSQL primary, a streaming replica of it and PgBouncer in transaction pooling mode.
These record the facts the replica and PgBouncer support is built on (how a replica
lags and refuses writes, how to make it stale on purpose, and which driver settings
PgBouncer needs); should one stop holding, the design needs another look.

Skipped without ``TEST_PRIMARY_URL``, ``TEST_REPLICA_URL`` and ``TEST_PGBOUNCER_URL``
(``eval "$(tests/servers/scale_out.sh env)"``); with ``CI=true`` missing or unreachable
servers fail instead, as in ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import create_async_engine
from tests.scale_out import ScaleOut
from tests.server_sessions import server_problem

#: How long a row committed on the primary may take to show on the replica.
REPLICATION_TIMEOUT = 10.0
#: Concurrent clients through PgBouncer, more than its 4 server connections, and the
#: statements each runs: the same few statements, which psycopg prepares on a connection
#: after their fifth run (its ``prepare_threshold``).
CLIENTS = 6
EACH = 60


@pytest.fixture
def servers(scale_out: ScaleOut) -> ScaleOut:
    """The servers, from conftest's fixture: skipped without them, failed under CI."""
    return scale_out


def autocommit_engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + REPLICATION_TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {REPLICATION_TIMEOUT} s")
        time.sleep(0.02)


@pytest.fixture
def table(servers: ScaleOut) -> Iterator[str]:
    """A table of this test's own on the primary, already replayed by the replica."""
    name = f"scale_out_smoke_{uuid.uuid4().hex[:12]}"
    primary = autocommit_engine(servers.primary)
    replica = autocommit_engine(servers.replica)
    with primary.connect() as connection:
        connection.execute(sa.text(f"CREATE TABLE {name} (id integer PRIMARY KEY, note text)"))
    try:
        with replica.connect() as connection:

            def replayed() -> bool:
                found = connection.scalar(sa.text(f"SELECT to_regclass('{name}') IS NOT NULL"))
                return found is True

            eventually(replayed, f"the replica shows the table {name}")
        yield name
    finally:
        with replica.connect() as connection:
            connection.execute(sa.text("SELECT pg_wal_replay_resume()"))
        with primary.connect() as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
        primary.dispose()
        replica.dispose()


def count(connection: sa.Connection, table: str, row_id: int) -> int:
    found = connection.scalar(
        sa.text(f"SELECT count(*) FROM {table} WHERE id = :id"), {"id": row_id}
    )
    assert isinstance(found, int)
    return found


def insert_on_primary(servers: ScaleOut, table: str, row_id: int) -> None:
    engine = sa.create_engine(servers.primary, poolclass=sa.NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(f"INSERT INTO {table} (id, note) VALUES (:id, 'written on the primary')"),
                {"id": row_id},
            )
    finally:
        engine.dispose()


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a DBAPI error: on the driver's exception, or the exception SQLAlchemy
    wraps it in (asyncpg's, from SQLAlchemy 2.1).
    """
    causes: list[BaseException | None] = [error]
    if isinstance(error, sa_exc.DBAPIError):
        causes += [error.orig, error.orig.__cause__ if error.orig is not None else None]
    for cause in causes:
        value: object = getattr(cause, "sqlstate", None)
        if isinstance(value, str):
            return value
    return None


# -- The replica ------------------------------------------------------------------------


def test_the_replica_is_a_hot_standby(servers: ScaleOut) -> None:
    engine = autocommit_engine(servers.replica)
    try:
        with engine.connect() as connection:
            assert connection.scalar(sa.text("SELECT pg_is_in_recovery()")) is True
    finally:
        engine.dispose()
    engine = autocommit_engine(servers.primary)
    try:
        with engine.connect() as connection:
            assert connection.scalar(sa.text("SELECT pg_is_in_recovery()")) is False
            senders = connection.scalar(sa.text("SELECT count(*) FROM pg_stat_replication"))
            assert senders == 1, "the primary streams to one replica"
    finally:
        engine.dispose()


def test_a_row_written_on_the_primary_shows_on_the_replica(servers: ScaleOut, table: str) -> None:
    insert_on_primary(servers, table, 1)
    engine = autocommit_engine(servers.replica)
    try:
        with engine.connect() as connection:
            eventually(lambda: count(connection, table, 1) == 1, "the replica shows the row")
    finally:
        engine.dispose()


def test_a_write_on_the_replica_fails_with_sqlstate_25006(servers: ScaleOut, table: str) -> None:
    engine = sa.create_engine(servers.replica, poolclass=sa.NullPool)
    try:
        with pytest.raises(sa_exc.DBAPIError) as raised, engine.begin() as connection:
            connection.execute(sa.text(f"INSERT INTO {table} (id) VALUES (1)"))
    finally:
        engine.dispose()
    # read_only_sql_transaction; psycopg's ReadOnlySqlTransaction is an InternalError.
    assert sqlstate(raised.value) == "25006", raised.value
    assert isinstance(raised.value, sa_exc.InternalError)


def test_a_write_on_the_replica_fails_with_sqlstate_25006_with_asyncpg(
    servers: ScaleOut, table: str
) -> None:
    pytest.importorskip("asyncpg")
    url = sa.make_url(servers.replica).set(drivername="postgresql+asyncpg")

    async def write() -> None:
        engine = create_async_engine(url, poolclass=sa.NullPool)
        try:
            async with engine.begin() as connection:
                await connection.execute(sa.text(f"INSERT INTO {table} (id) VALUES (1)"))
        finally:
            await engine.dispose()

    with pytest.raises(sa_exc.DBAPIError) as raised:
        asyncio.run(write())
    assert sqlstate(raised.value) == "25006", raised.value


def test_paused_replay_hides_a_new_row_until_resumed(servers: ScaleOut, table: str) -> None:
    # How a test makes the replica stale on purpose, for as long as it needs.
    replica = autocommit_engine(servers.replica)
    primary = autocommit_engine(servers.primary)
    try:
        with replica.connect() as on_replica, primary.connect() as on_primary:
            on_replica.execute(sa.text("SELECT pg_wal_replay_pause()"))

            def paused() -> bool:
                state: object = on_replica.scalar(
                    sa.text("SELECT pg_get_wal_replay_pause_state()")
                )
                return state == "paused"

            eventually(paused, "replay paused")
            insert_on_primary(servers, table, 2)
            committed = on_primary.scalar(sa.text("SELECT pg_current_wal_flush_lsn()::text"))

            def received() -> bool:
                behind: object = on_replica.scalar(
                    sa.text(
                        "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), CAST(:lsn AS pg_lsn))"
                    ),
                    {"lsn": committed},
                )
                return isinstance(behind, Decimal) and behind >= 0

            # The commit has reached the replica, and is not replayed: stale, for sure.
            eventually(received, "the replica receives the commit's WAL")
            assert count(on_replica, table, 2) == 0
            time.sleep(0.2)
            assert count(on_replica, table, 2) == 0

            on_replica.execute(sa.text("SELECT pg_wal_replay_resume()"))
            eventually(lambda: count(on_replica, table, 2) == 1, "the replica shows the row")
    finally:
        with replica.connect() as connection:
            connection.execute(sa.text("SELECT pg_wal_replay_resume()"))
        replica.dispose()
        primary.dispose()


def test_the_replica_catches_up_after_being_stopped(servers: ScaleOut, table: str) -> None:
    # The script's own stop-replica and start-replica, which the replica tests use.
    script = servers.script

    def run(action: str) -> None:
        done = subprocess.run(
            [script, action], check=False, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"scale_out.sh {action}: {done.stderr}"

    run("stop-replica")
    try:
        assert server_problem(servers.replica) is not None, "the replica still answers"
        insert_on_primary(servers, table, 3)
    finally:
        run("start-replica")
    engine = autocommit_engine(servers.replica)
    try:
        with engine.connect() as connection:
            eventually(lambda: count(connection, table, 3) == 1, "the replica shows the row")
    finally:
        engine.dispose()


# -- PgBouncer in transaction pooling mode ----------------------------------------------


def hammer(run_one: Callable[[int], None]) -> list[str]:
    """Run ``run_one`` ``EACH`` times from each of ``CLIENTS`` threads at once; return
    the first line of each error met.
    """
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client(number: int) -> None:
        start.wait()
        for index in range(EACH):
            try:
                run_one(number * EACH + index)
            except Exception as error:  # every failure counts
                with lock:
                    errors.append(str(error).splitlines()[0])

    with ThreadPoolExecutor(CLIENTS) as executor:
        list(executor.map(client, range(CLIENTS)))
    return errors


def psycopg_load(url: str, connect_args: dict[str, Any]) -> list[str]:
    # SQLAlchemy's defaults (a QueuePool of 5 and its overflow) but for connect_args.
    engine = sa.create_engine(url, connect_args=connect_args)

    def run_one(number: int) -> None:
        # A transaction each, so each may get another of PgBouncer's server connections.
        # Committed: psycopg forgets its prepared statements, and its counts, on every
        # ROLLBACK (SQLAlchemy's pool ends a transaction left open with one), so
        # transactions that roll back never get to the fifth run.
        with engine.begin() as connection:
            found = connection.scalar(sa.text("SELECT CAST(:n AS integer) + 1"), {"n": number})
            assert found == number + 1

    try:
        return hammer(run_one)
    finally:
        engine.dispose()


def test_pgbouncer_is_in_transaction_pooling_mode(servers: ScaleOut) -> None:
    url = sa.make_url(servers.pgbouncer)
    # PgBouncer's admin console, with psycopg alone: it takes SHOW commands, and none of
    # the queries SQLAlchemy runs on a new connection.
    with psycopg.connect(
        host=url.host, port=url.port, user=url.username, dbname="pgbouncer", autocommit=True
    ) as connection:
        rows = connection.execute("SHOW CONFIG", prepare=False).fetchall()
    settings = {str(row[0]): str(row[1]) for row in rows}
    assert settings["pool_mode"] == "transaction"
    assert int(settings["default_pool_size"]) < CLIENTS


def test_psycopg_defaults_fail_through_pgbouncer(servers: ScaleOut) -> None:
    errors = psycopg_load(servers.pgbouncer, {})
    assert errors, "psycopg's defaults worked through PgBouncer: the setting's reason is gone"
    # Mostly "prepared statement ... does not exist / already exists"; a statement that
    # lands on another server connection half-way can fail otherwise too.
    assert any("prepared statement" in error for error in errors), errors[:5]


def test_psycopg_without_prepared_statements_works_through_pgbouncer(servers: ScaleOut) -> None:
    assert psycopg_load(servers.pgbouncer, {"prepare_threshold": None}) == []


def asyncpg_load(url: str, connect_args: dict[str, Any]) -> list[str]:
    async_url = sa.make_url(url).set(drivername="postgresql+asyncpg")

    async def run(engine: AsyncEngine) -> list[str]:
        errors: list[str] = []

        async def client(number: int) -> None:
            for index in range(EACH):
                try:
                    async with engine.connect() as connection:
                        found = await connection.scalar(
                            sa.text("SELECT CAST(:n AS integer) + 1"), {"n": number + index}
                        )
                        assert found == number + index + 1
                except Exception as error:  # every failure counts
                    errors.append(str(error).splitlines()[0])

        try:
            await asyncio.gather(*(client(number * EACH) for number in range(CLIENTS)))
        finally:
            await engine.dispose()
        return errors

    return asyncio.run(run(create_async_engine(async_url, connect_args=connect_args)))


def test_asyncpg_defaults_fail_through_pgbouncer(servers: ScaleOut) -> None:
    pytest.importorskip("asyncpg")
    errors = asyncpg_load(servers.pgbouncer, {})
    assert errors, "asyncpg's defaults worked through PgBouncer: the setting's reason is gone"
    assert all("prepared statement" in error for error in errors), errors[:5]


def test_asyncpg_without_statement_caches_works_through_pgbouncer(servers: ScaleOut) -> None:
    pytest.importorskip("asyncpg")
    # asyncpg's own cache off, and SQLAlchemy's (its asyncpg dialect's DBAPI argument): then
    # asyncpg prepares unnamed statements, which live only as long as the transaction.
    settings = {"statement_cache_size": 0, "prepared_statement_cache_size": 0}
    assert asyncpg_load(servers.pgbouncer, settings) == []
