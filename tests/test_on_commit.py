"""The core's on_commit(): callbacks run after the outermost commit, never for work that
was rolled back, on every backend.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import weakref
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Session
from sqlalchemy.orm import mapped_column

from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import async_on_commit
from flask_typed_db.core import captured_on_commit
from flask_typed_db.core import on_commit


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "on_commit_order"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    reference: Mapped[str] = mapped_column(sa.String(20), unique=True)


class Calls:
    """What the callbacks did, and what the database held when each ran, read on a
    connection of its own: only committed rows are there.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.seen: list[tuple[str, list[str]]] = []

    def stored(self) -> list[str]:
        with self.engine.connect() as connection:
            return list(connection.scalars(sa.select(Order.reference).order_by(Order.id)))

    def __call__(self, name: str) -> Callable[[], None]:
        def callback() -> None:
            self.seen.append((name, self.stored()))

        callback.__qualname__ = f"callback_{name}"
        return callback

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.seen]


@pytest.fixture
def core(database_url: str) -> Iterator[DatabaseCore]:
    with DatabaseCore({"SQLALCHEMY_DATABASE_URI": database_url}, Base) as core:
        core.create_all()
        yield core


@pytest.fixture
def calls(core: DatabaseCore) -> Calls:
    return Calls(core.engine)


def test_callbacks_run_after_the_commit_in_order_once(core: DatabaseCore, calls: Calls) -> None:
    with core.sessionmaker() as session:
        session.add(Order(id=1, reference="a"))
        on_commit(session, calls("first"))
        session.flush()
        on_commit(session, calls("second"))
        assert calls.seen == []
        session.commit()
        # Both ran, in order, and the row was committed when they did.
        assert calls.seen == [("first", ["a"]), ("second", ["a"])]
        session.add(Order(id=2, reference="b"))
        session.commit()
    assert calls.names == ["first", "second"]


def test_rollback_drops_them(core: DatabaseCore, calls: Calls) -> None:
    with core.sessionmaker() as session:
        session.add(Order(id=1, reference="a"))
        on_commit(session, calls("dropped"))
        session.rollback()
        session.add(Order(id=2, reference="b"))
        on_commit(session, calls("kept"))
        session.commit()
    assert calls.seen == [("kept", ["b"])]


def test_closing_without_commit_drops_them(core: DatabaseCore, calls: Calls) -> None:
    with core.sessionmaker() as session:
        session.add(Order(id=1, reference="a"))
        on_commit(session, calls("dropped"))
    with core.sessionmaker() as session:
        session.commit()
    assert calls.seen == []


def test_a_failed_commit_drops_them(core: DatabaseCore, calls: Calls) -> None:
    with core.sessionmaker() as session:
        session.add(Order(id=1, reference="a"))
        session.commit()
        session.add(Order(id=2, reference="a"))  # the same reference: unique
        on_commit(session, calls("failed"))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        session.add(Order(id=3, reference="c"))
        session.commit()
    assert calls.seen == []
    assert calls.stored() == ["a", "c"]


def test_savepoints_released_wait_rolled_back_drop(core: DatabaseCore, calls: Calls) -> None:
    with core.sessionmaker() as session:
        session.add(Order(id=1, reference="a"))
        on_commit(session, calls("outer"))
        with session.begin_nested():
            session.add(Order(id=2, reference="b"))
            on_commit(session, calls("released"))
            with session.begin_nested():
                on_commit(session, calls("inner released"))
        try:
            with session.begin_nested():
                on_commit(session, calls("rolled back"))
                session.add(Order(id=3, reference="a"))
                session.flush()
        except IntegrityError:
            pass
        else:
            pytest.fail("the duplicate reference was accepted")
        try:
            with session.begin_nested():
                on_commit(session, calls("rolled back by hand"))
                raise LookupError
        except LookupError:
            pass
        # Released SAVEPOINTs wait for the outer commit.
        assert calls.seen == []
        session.commit()
    assert calls.seen == [
        ("outer", ["a", "b"]),
        ("released", ["a", "b"]),
        ("inner released", ["a", "b"]),
    ]


def test_outer_rollback_drops_released_savepoints_callbacks(
    core: DatabaseCore, calls: Calls
) -> None:
    with core.sessionmaker() as session:
        session.add(Order(id=1, reference="a"))
        with session.begin_nested():
            on_commit(session, calls("released"))
        session.rollback()
        session.commit()
    assert calls.seen == []


def test_with_no_transaction_it_runs_at_once(core: DatabaseCore, calls: Calls) -> None:
    with core.sessionmaker() as session:
        on_commit(session, calls("fresh"))
        assert calls.names == ["fresh"]
        session.add(Order(id=1, reference="a"))
        session.commit()
        on_commit(session, calls("after commit"))
        assert calls.seen == [("fresh", []), ("after commit", ["a"])]


def test_the_session_is_usable_inside(core: DatabaseCore) -> None:
    found: list[str] = []
    with core.sessionmaker() as session:
        order = Order(id=1, reference="a")
        session.add(order)
        # Expired by the commit: reading it refreshes it, in a new transaction.
        on_commit(session, lambda: found.append(order.reference))
        on_commit(session, lambda: found.append(session.scalars(sa.select(Order.reference)).one()))
        session.commit()
    assert found == ["a", "a"]


def test_in_a_sessionmaker_begin_block(core: DatabaseCore, calls: Calls) -> None:
    """``with sessionmaker.begin()`` commits in the block's exit, where SQLAlchemy would
    refuse statements until the exit is over: callbacks still use the session.
    """
    found: list[Order | None] = []
    with core.sessionmaker.begin() as session:
        session.add(Order(id=1, reference="a"))
        on_commit(session, lambda: found.append(session.get(Order, 1)))
        on_commit(session, calls("begin"))
    assert [order.reference if order else None for order in found] == ["a"]
    assert calls.seen == [("begin", ["a"])]


def test_several_sessions_keep_their_own(core: DatabaseCore, calls: Calls) -> None:
    with core.sessionmaker() as first, core.sessionmaker() as second:
        first.add(Order(id=1, reference="a"))
        on_commit(first, calls("first"))
        second.add(Order(id=2, reference="b"))
        on_commit(second, calls("second"))
        second.commit()
        first.rollback()
    assert calls.seen == [("second", ["b"])]


def test_a_callback_may_register_another(core: DatabaseCore, calls: Calls) -> None:
    with core.sessionmaker() as session:

        def then_more() -> None:
            # Inside a callback the transaction has ended: this one runs at once.
            on_commit(session, calls("registered inside"))

        session.add(Order(id=1, reference="a"))
        on_commit(session, then_more)
        on_commit(session, calls("after"))
        session.commit()
    assert calls.names == ["registered inside", "after"]


def test_an_exception_is_logged_by_name_and_the_rest_run(
    core: DatabaseCore, calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    def notify_warehouse(order_id: int) -> None:
        raise ConnectionError(f"queue down for {order_id}")

    with core.sessionmaker() as session:
        session.add(Order(id=1, reference="a"))
        on_commit(session, functools.partial(notify_warehouse, 1))
        on_commit(session, calls("after"))
        with caplog.at_level(logging.ERROR, logger="flask_typed_db"):
            session.commit()  # does not raise: the data is saved
    assert calls.seen == [("after", ["a"])]
    (record,) = caplog.records
    assert "notify_warehouse" in record.getMessage()
    assert "1" not in record.getMessage()  # the name, not the arguments
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ConnectionError)


def test_raise_errors_raises_from_commit_after_the_others_ran(
    core: DatabaseCore, calls: Calls
) -> None:
    def fails() -> None:
        raise ConnectionError("queue down")

    with core.sessionmaker() as session:
        session.add(Order(id=1, reference="a"))
        on_commit(session, fails, raise_errors=True)
        on_commit(session, calls("after"))
        with pytest.raises(ConnectionError, match="queue down"):
            session.commit()
        assert calls.seen == [("after", ["a"])]
        with pytest.raises(ConnectionError):
            on_commit(session, fails, raise_errors=True)  # runs at once, raises here
    assert calls.stored() == ["a"]


def test_an_async_function_on_a_sync_session_is_refused(core: DatabaseCore) -> None:
    async def enqueue() -> None:
        pass

    with core.sessionmaker() as session:
        session.add(Order(id=1, reference="a"))
        with pytest.raises(TypeError, match=r"async function.*async_on_commit"):
            on_commit(session, enqueue)
        with pytest.raises(TypeError, match="enqueue"):
            on_commit(session, functools.partial(enqueue))


def test_captured_callbacks_are_collected_not_run(core: DatabaseCore, calls: Calls) -> None:
    first, second, dropped = calls("first"), calls("second"), calls("dropped")
    with core.sessionmaker() as session, captured_on_commit() as captured:
        session.add(Order(id=1, reference="a"))
        on_commit(session, first)
        session.commit()
        session.add(Order(id=2, reference="b"))
        on_commit(session, dropped)
        session.rollback()
        on_commit(session, second)  # no transaction: due at once
    assert captured == [first, second]
    assert calls.seen == []
    with core.sessionmaker() as session, captured_on_commit(run=True) as ran:
        session.add(Order(id=3, reference="c"))
        on_commit(session, first)
        session.commit()
    assert ran == [first]
    assert calls.seen == [("first", ["a", "c"])]


def test_async_callbacks_are_awaited_after_the_commit(core: DatabaseCore, calls: Calls) -> None:
    found: list[str] = []

    async def work() -> None:
        async with core.async_sessionmaker() as session:

            async def enqueue() -> None:
                await asyncio.sleep(0)
                order = await session.get(Order, 1)
                found.append(order.reference if order else "missing")

            session.add(Order(id=1, reference="a"))
            await async_on_commit(session, enqueue)
            await async_on_commit(session, calls("sync one"))
            assert found == []
            await session.commit()
            assert found == ["a"]
            session.add(Order(id=2, reference="b"))
            await async_on_commit(session, calls("rolled back"))
            await session.rollback()
            await async_on_commit(session, enqueue)  # no transaction: awaited at once
            assert found == ["a", "a"]
        await core.async_dispose()

    asyncio.run(work())
    assert calls.seen == [("sync one", ["a"])]


class Job:
    def __call__(self) -> None:
        raise AssertionError("a dropped callback ran")


def test_dropped_callbacks_are_not_kept(core: DatabaseCore) -> None:
    """A long-lived session (a worker's) that rolls back holds on to nothing."""
    with core.sessionmaker() as session:
        job = Job()
        dropped = weakref.ref(job)
        session.add(Order(id=1, reference="a"))
        on_commit(session, job)
        with session.begin_nested() as savepoint:
            in_savepoint = Job()
            dropped_in_savepoint = weakref.ref(in_savepoint)
            on_commit(session, in_savepoint)
            savepoint.rollback()
        del job, in_savepoint
        gc.collect()
        assert dropped_in_savepoint() is None
        assert dropped() is not None  # still waiting for the commit
        session.rollback()
        gc.collect()
        assert dropped() is None
        session.commit()


def test_under_core_isolation_they_run_when_the_code_commits(core: DatabaseCore) -> None:
    """A commit there releases a SAVEPOINT of the test's transaction: callbacks run as in
    production, and see the row (on the test's connection), which is gone afterwards.
    """
    found: list[list[str]] = []
    with core.test_isolation():
        with core.sessionmaker() as session:
            session.add(Order(id=1, reference="a"))
            on_commit(
                session,
                lambda: found.append(list(session.scalars(sa.select(Order.reference)))),
            )
            on_commit(session, lambda: found.append(["second"]))
            with session.begin_nested() as savepoint:
                on_commit(session, lambda: found.append(["rolled back"]))
                savepoint.rollback()
            session.commit()
        with core.sessionmaker() as session:
            session.add(Order(id=2, reference="b"))
            on_commit(session, lambda: found.append(["uncommitted"]))
    assert found == [["a"], ["second"]]
    assert Calls(core.engine).stored() == []


def test_a_commit_that_fails_at_commit_time_drops_them(postgresql_url: str) -> None:
    """A deferred constraint is checked by the COMMIT itself, after every flush went
    through: the callbacks must wait for the COMMIT's answer, not the flush's.
    """
    engine = sa.create_engine(postgresql_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "CREATE TABLE on_commit_deferred (id integer PRIMARY KEY, code integer,"
                " CONSTRAINT on_commit_deferred_code UNIQUE (code)"
                " DEFERRABLE INITIALLY DEFERRED)"
            )
        ran: list[str] = []
        with Session(engine) as session:
            session.execute(sa.text("INSERT INTO on_commit_deferred VALUES (1, 7), (2, 7)"))
            on_commit(session, lambda: ran.append("deferred"))
            with pytest.raises(IntegrityError):
                session.commit()
            session.rollback()
            session.execute(sa.text("INSERT INTO on_commit_deferred VALUES (3, 8)"))
            on_commit(session, lambda: ran.append("kept"))
            session.commit()
        assert ran == ["kept"]
    finally:
        engine.dispose()


def test_session_classes_listened_to_in_any_order_run_callbacks_once(
    core: DatabaseCore, calls: Calls
) -> None:
    """A subclass first, then its base; and a session with listeners of its own."""

    class Audited(Session):
        pass

    class AuditedMore(Audited):
        pass

    seen_commits: list[str] = []

    def own_listener(session: Session) -> None:
        seen_commits.append("own")

    for session_class in (AuditedMore, Audited):
        with session_class(core.engine) as session:
            event.listen(session, "after_commit", own_listener)
            session.add(Order(id=len(calls.seen) + 1, reference=session_class.__name__))
            on_commit(session, calls(session_class.__name__))
            session.commit()
    with AuditedMore(core.engine) as session:
        session.add(Order(id=3, reference="again"))
        on_commit(session, calls("again"))
        session.commit()
    assert calls.names == ["AuditedMore", "Audited", "again"]
    assert seen_commits == ["own", "own"]


def test_a_coroutine_returned_on_a_sync_session_is_an_error_not_a_lost_job(
    core: DatabaseCore, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    async def enqueue() -> None:
        ran.append("enqueued")

    with core.sessionmaker() as session:
        session.add(Order(id=1, reference="a"))
        on_commit(session, lambda: enqueue())  # noqa: PLW0108  # hides that it is async
        with caplog.at_level(logging.ERROR, logger="flask_typed_db"):
            session.commit()
    assert ran == []
    (record,) = caplog.records
    assert record.exc_info is not None
    assert "returned a coroutine" in str(record.exc_info[1])


class AuditBase(DeclarativeBase):
    metadata = sa.MetaData(info={"bind_key": "audit"})


class AuditEntry(AuditBase):
    __tablename__ = "on_commit_audit_entry"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)


def test_with_two_binds_they_run_once_both_are_committed(
    database_url: str, tmp_path: Path
) -> None:
    settings = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_BINDS": {"audit": f"sqlite:///{tmp_path / 'audit.db'}"},
    }
    with DatabaseCore(settings, Base, AuditBase) as core:
        core.create_all()
        seen: list[tuple[list[str], list[int]]] = []

        def look() -> None:
            with core.engine.connect() as orders, core.get_engine("audit").connect() as audit:
                seen.append(
                    (
                        list(orders.scalars(sa.select(Order.reference))),
                        list(audit.scalars(sa.select(AuditEntry.id))),
                    )
                )

        with core.sessionmaker() as session:
            session.add_all([Order(id=1, reference="a"), AuditEntry(id=7)])
            on_commit(session, look)
            session.flush()
            assert seen == []
            session.commit()
        assert seen == [(["a"], [7])]
