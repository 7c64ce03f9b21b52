"""Read replicas and PgBouncer against real servers: a PostgreSQL primary, a streaming
replica of it and PgBouncer in transaction pooling mode, started by
``tests/servers/scale_out.sh`` (``.ci/run`` starts them, and exports their URLs).

Skipped without ``TEST_PRIMARY_URL``, ``TEST_REPLICA_URL`` and ``TEST_PGBOUNCER_URL``;
with ``CI=true``, failed instead. A replica whose replay is paused
(``pg_wal_replay_pause()``) is a stale replica that stays stale: what a lagging one
does for a moment, made certain.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from flask import Flask
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Session
from sqlalchemy.orm import mapped_column
from tests.scale_out import ScaleOut
from tests.scale_out import pause_replay
from tests.scale_out import resume_replay
from tests.scale_out import wait_on_replica

from flask_typed_db import Database
from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import _replicas  # pyright: ignore[reportPrivateUsage]  # its retry interval

#: How long a row committed on the primary may take to show on the replica.
REPLICATION_TIMEOUT = 10.0


class Base(DeclarativeBase):
    pass


class Ledger(Base):
    __tablename__ = "scale_out_ledger"
    id: Mapped[int] = mapped_column(primary_key=True)
    note: Mapped[str] = mapped_column(sa.String(100))


@pytest.fixture
def tables(scale_out: ScaleOut) -> Iterator[None]:
    """The test's table on the primary, and on the replica once replayed."""
    engine = sa.create_engine(scale_out.primary, poolclass=sa.NullPool)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    try:
        wait_on_replica(
            scale_out, "SELECT count(*) FROM scale_out_ledger", lambda count: count == 0
        )
        yield
    finally:
        resume_replay(scale_out)
        Base.metadata.drop_all(engine)
        engine.dispose()


def read_by_replica(session: Session) -> bool:
    """Whether a read in ``session`` goes to the replica (a server in recovery)."""
    return bool(session.scalar(sa.select(sa.func.pg_is_in_recovery())))


def config(scale_out: ScaleOut, **extra: object) -> dict[str, object]:
    return {
        "SQLALCHEMY_DATABASE_URI": scale_out.primary,
        "SQLALCHEMY_REPLICAS": {None: [scale_out.replica]},
        **extra,
    }


# -- Which statement goes where ---------------------------------------------------------


def test_each_kind_of_statement_goes_where_the_rule_says(
    scale_out: ScaleOut, tables: None
) -> None:
    with DatabaseCore(config(scale_out), Base) as core:
        with core.sessionmaker() as session:
            assert read_by_replica(session)
            assert session.scalars(sa.select(Ledger)).all() == []
            session.add(Ledger(id=1, note="written"))
            session.flush()
            assert not read_by_replica(session)
            session.commit()
            # Refreshed after the commit: from the primary, whatever the replica has.
            assert session.get(Ledger, 1) is not None
            assert not read_by_replica(session)
        with core.sessionmaker() as session:
            session.execute(sa.select(Ledger).with_for_update())
            assert not read_by_replica(session)
        with core.sessionmaker() as session, core.primary():
            assert not read_by_replica(session)
        with core.sessionmaker() as session:
            assert read_by_replica(session)
            # What may write goes to the primary: on the replica it would fail (25006).
            session.execute(sa.update(Ledger).values(note="changed"))
            session.commit()


def test_a_write_sent_to_the_replica_would_fail(scale_out: ScaleOut, tables: None) -> None:
    # Why writes must never reach a replica: the error a mistake would meet.
    engine = sa.create_engine(scale_out.replica, poolclass=sa.NullPool)
    try:
        with pytest.raises(sa_exc.DBAPIError) as raised, engine.begin() as connection:
            connection.execute(sa.insert(Ledger).values(id=9, note="nowhere"))
        assert getattr(raised.value.orig, "sqlstate", None) == "25006"
    finally:
        engine.dispose()


def test_stale_replica_read_your_writes_in_and_across_requests(
    scale_out: ScaleOut, tables: None
) -> None:
    app = Flask(__name__)
    app.config.from_mapping(config(scale_out))
    db = Database(Base)
    db.init_app(app)

    @app.post("/ledger")
    def add() -> ResponseReturnValue:
        db.session.add(Ledger(id=1, note="saved"))
        db.session.commit()
        # The same request reads what it wrote, and the object refreshes from the
        # primary: a replica behind would say the row does not exist.
        entry = db.get_or_404(Ledger, 1)
        return entry.note

    @app.get("/ledger/<int:entry_id>")
    def read(entry_id: int) -> ResponseReturnValue:
        return db.get_or_404(Ledger, entry_id).note

    pause_replay(scale_out)
    writer = app.test_client()
    assert writer.post("/ledger").text == "saved"
    # The writer's next requests read from the primary (the cookie); another client's
    # go to the replica, which has not replayed the row.
    assert writer.get("/ledger/1").text == "saved"
    assert app.test_client().get("/ledger/1").status_code == 404
    resume_replay(scale_out)
    wait_on_replica(scale_out, "SELECT count(*) FROM scale_out_ledger", lambda count: count == 1)
    assert app.test_client().get("/ledger/1").text == "saved"


def test_health_reports_the_replicas_replay_lag(scale_out: ScaleOut, tables: None) -> None:
    with DatabaseCore(config(scale_out), Base) as core:
        report = core.check_health()
        assert report.ok
        (replica,) = report.replicas
        assert replica.ok
        assert replica.replay_lag is not None
        assert 0 <= replica.replay_lag < REPLICATION_TIMEOUT
        pause_replay(scale_out)
        with core.transaction() as session:
            session.add(Ledger(id=2, note="not replayed"))
        # WAL received and not replayed: behind by at least the time since.
        time.sleep(0.3)
        lagging = core.check_health().replicas[0]
        assert lagging.replay_lag is not None
        assert lagging.replay_lag > 0


# -- Replicas that go down --------------------------------------------------------------


@pytest.fixture
def replica_restarted(scale_out: ScaleOut) -> Iterator[None]:
    yield
    scale_out.replica_server("start-replica")


def test_replica_stopped_mid_run_sends_reads_to_the_primary(
    scale_out: ScaleOut, tables: None, replica_restarted: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_typed_db")
    app = Flask(__name__)
    app.config.from_mapping(config(scale_out))
    db = Database(Base)
    db.init_app(app)

    @app.get("/where")
    def where() -> ResponseReturnValue:
        return "replica" if read_by_replica(db.session) else "primary"

    client = app.test_client()
    assert {client.get("/where").text for _ in range(5)} == {"replica"}
    scale_out.replica_server("stop-replica")
    answers = [client.get("/where") for _ in range(20)]
    assert [answer.status_code for answer in answers] == [200] * 20
    assert {answer.text for answer in answers} == {"primary"}
    assert len([r for r in caplog.records if "cannot be reached" in r.message]) == 1
    scale_out.replica_server("start-replica")
    with app.app_context():
        replicas = db.replica_engines[None]
    # Tried again once its time is up: back on the replica.
    deadline = time.monotonic() + _replicas.RETRY_AFTER + REPLICATION_TIMEOUT
    while client.get("/where").text != "replica":
        assert time.monotonic() < deadline, "reads never went back to the replica"
        time.sleep(0.2)
    pool = replicas[0].pool
    assert isinstance(pool, sa.QueuePool)
    assert pool.checkedout() == 0


def test_all_replicas_down_reads_from_the_primary(scale_out: ScaleOut, tables: None) -> None:
    refused = sa.make_url(scale_out.replica).set(port=1).render_as_string(hide_password=False)
    settings = config(scale_out, SQLALCHEMY_REPLICAS={None: [refused]})
    with DatabaseCore(settings, Base) as core, core.sessionmaker() as session:
        assert not read_by_replica(session)
        assert session.scalars(sa.select(Ledger)).all() == []


# -- PgBouncer in transaction pooling mode ----------------------------------------------


def hammer(run_one: Callable[[int], None], clients: int = 4, each: int = 40) -> list[str]:
    """Run ``run_one`` ``each`` times from each of ``clients`` threads at once; return
    the errors met.
    """
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client(number: int) -> None:
        start.wait()
        for index in range(each):
            try:
                run_one(number * each + index)
            except Exception as error:  # every failure counts
                with lock:
                    errors.append(str(error).splitlines()[0])

    with ThreadPoolExecutor(clients) as executor:
        list(executor.map(client, range(clients)))
    return errors


def read_through(core: DatabaseCore) -> Callable[[int], None]:
    def run_one(number: int) -> None:
        # One statement, run often: psycopg prepares it after its fifth run.
        with core.transaction() as session:
            session.scalar(sa.select(Ledger.note).where(Ledger.id == number % 7))

    return run_one


def test_pgbouncer_fails_with_the_defaults(scale_out: ScaleOut, tables: None) -> None:
    """The reason for the setting, made certain rather than left to a race: two
    connections run the same statement in turns, one transaction at a time. PgBouncer
    hands both the server connection used last (it reuses them last in, first out), so
    the second prepares, under psycopg's own statement name, a statement the first
    already prepared there.
    """
    statement = sa.select(Ledger.note).where(Ledger.id == 1)
    errors: list[str] = []
    with (
        DatabaseCore({"SQLALCHEMY_DATABASE_URI": scale_out.pgbouncer}, Base) as core,
        core.engine.connect() as first,
        core.engine.connect() as second,
    ):
        for connection in (first, second):
            for _ in range(8):  # psycopg prepares a statement at its sixth run
                try:
                    with connection.begin():
                        connection.execute(statement)
                except sa_exc.DBAPIError as error:
                    errors.append(str(error.orig))
    assert any("prepared statement" in error for error in errors), errors[:3]


def test_pgbouncer_setting_makes_psycopg_work_under_concurrency(
    scale_out: ScaleOut, tables: None
) -> None:
    settings = {"SQLALCHEMY_DATABASE_URI": scale_out.pgbouncer, "SQLALCHEMY_PGBOUNCER": True}
    with DatabaseCore(settings, Base) as core:
        assert hammer(read_through(core)) == []


#: SQLAlchemy before 2.0.58 (seen on 2.0.0, 2.0.25 and 2.0.46; not on 2.0.58 or 2.1)
#: leaves the asyncpg connections it invalidates after the errors of PgBouncer without
#: our setting to the garbage collector, which warns at some later point, up to the
#: process's exit: there, the defaults' failure is shown by newer versions only.
_SQLALCHEMY_VERSION = tuple(int(part) for part in re.findall(r"\d+", sa.__version__)[:3])
_LEAKS_INVALIDATED_ASYNCPG = pytest.mark.skipif(
    _SQLALCHEMY_VERSION < (2, 0, 58),
    reason="SQLAlchemy < 2.0.58 leaves invalidated asyncpg connections unclosed",
)


@pytest.mark.parametrize(
    "pgbouncer", [pytest.param(False, marks=_LEAKS_INVALIDATED_ASYNCPG), True]
)
def test_pgbouncer_with_asyncpg(scale_out: ScaleOut, tables: None, pgbouncer: bool) -> None:
    pytest.importorskip("asyncpg")
    async_url = sa.make_url(scale_out.pgbouncer).set(drivername="postgresql+asyncpg")
    settings = {
        "SQLALCHEMY_DATABASE_URI": scale_out.pgbouncer,
        "SQLALCHEMY_ASYNC_DATABASE_URI": async_url,
        "SQLALCHEMY_PGBOUNCER": pgbouncer,
    }
    core = DatabaseCore(settings, Base)

    async def many() -> list[str]:
        errors: list[str] = []

        async def client(number: int) -> None:
            for index in range(40):
                try:
                    async with core.async_transaction() as session:
                        await session.scalar(
                            sa.select(Ledger.note).where(Ledger.id == (number + index) % 7)
                        )
                except Exception as error:  # every failure counts
                    errors.append(str(error).splitlines()[0])

        try:
            await asyncio.gather(*(client(number) for number in range(4)))
        finally:
            await core.async_dispose()
        return errors

    errors = asyncio.run(many())
    core.dispose()
    if pgbouncer:
        assert errors == []
    else:
        assert errors, "asyncpg's defaults through PgBouncer worked: the setting's reason is gone"
