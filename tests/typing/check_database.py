"""Static checks: what the public API's types are, as mypy and pyright see them.

Nothing here runs under pytest; ``make typecheck`` runs both checkers over this file
and fails if any ``assert_type`` does not hold, so a loosened signature (an ``Any``
leaking into a return type, say) breaks the build.
"""

from __future__ import annotations

from collections.abc import Awaitable
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import assert_type

import sqlalchemy as sa
from flask import Flask
from flask import Response
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import sessionmaker

from flask_typed_db import Database
from flask_typed_db import get_recorded_queries
from flask_typed_db.core import BindHealth
from flask_typed_db.core import BindSpec
from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import HealthReport
from flask_typed_db.core import RecordedQuery
from flask_typed_db.core import RoutingSession
from flask_typed_db.core import read_config


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "user"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


def check_adapter(app: Flask) -> None:
    db = Database(Base, app=app)
    assert_type(db.session, RoutingSession)
    assert_type(db.sessionmaker, sessionmaker[RoutingSession])
    assert_type(db.sessionmaker(), RoutingSession)
    assert_type(db.session_class, type[RoutingSession])
    assert_type(db.engine, sa.Engine)
    assert_type(db.engines, Mapping[str | None, sa.Engine])
    assert_type(db.get_engine("auth"), sa.Engine)
    assert_type(db.metadata, sa.MetaData)
    assert_type(db.metadatas, Mapping[str | None, sa.MetaData])
    assert_type(db.create_all(), None)
    assert_type(db.drop_all(["auth", None]), None)
    # The session keeps SQLAlchemy's own typing: no Any on the way to the view.
    assert_type(
        db.test_isolation(app, forbid_lazy_loads=True),
        AbstractContextManager[Mapping[str | None, sa.Connection]],
    )
    with db.test_isolation() as connections:
        assert_type(connections[None], sa.Connection)
    assert_type(db.session.get(User, 1), User | None)
    assert_type(db.session.scalars(sa.select(User)).all(), Sequence[User])
    # Bound first: mypy with SQLAlchemy 2.1 picks Session.scalar's Never overload for
    # an inline select() and answers Any; that is SQLAlchemy's typing, not ours.
    names = sa.select(User.name)
    assert_type(db.session.scalar(names), str | None)


def check_core(settings: Mapping[str, object]) -> None:
    core = DatabaseCore(settings, Base, root_path="instance")
    assert_type(core.transaction(), AbstractContextManager[RoutingSession])
    with core.transaction() as session:
        assert_type(session, RoutingSession)
        assert_type(session.scalars(sa.select(User)).one(), User)
    with core as same:
        assert_type(same, DatabaseCore[RoutingSession])
    assert_type(core.engine, sa.Engine)
    assert_type(core.engines, Mapping[str | None, sa.Engine])
    assert_type(core.sessionmaker, sessionmaker[RoutingSession])
    assert_type(read_config(settings), dict[str | None, BindSpec])
    with core.test_isolation() as connections:
        assert_type(connections, Mapping[str | None, sa.Connection])


def show_user(user_id: int) -> ResponseReturnValue:
    return {"id": user_id}


async def show_user_later(user_id: int) -> ResponseReturnValue:
    return {"id": user_id}


def check_units_of_work(app: Flask) -> None:
    db = Database(Base, app=app)
    # The view keeps its parameters; it now returns the Response Flask would make.
    assert_type(db.commit_on_success(show_user)(1), Response)
    assert_type(db.commit_on_success(show_user_later)(1), Awaitable[Response])
    assert_type(db.manual_commit(show_user)(1), ResponseReturnValue)
    with db.transaction() as session:
        assert_type(session, RoutingSession)
    with db.savepoint() as session:
        assert_type(session, RoutingSession)


def check_operations(app: Flask, settings: Mapping[str, object]) -> None:
    db = Database(Base, app=app)
    report = db.check_health(timeout=0.5)
    assert_type(report, HealthReport)
    assert_type(report.ok, bool)
    assert_type(report.binds, tuple[BindHealth, ...])
    assert_type(report.binds[0].error, str | None)
    assert_type(report.as_dict(), dict[str, object])
    with db.record_queries(app) as queries:
        assert_type(queries, Sequence[RecordedQuery])
    assert_type(get_recorded_queries(), list[RecordedQuery])
    query = get_recorded_queries()[0]
    assert_type(query.statement, str)
    assert_type(query.duration, float)
    assert_type(query.location, str)
    core = DatabaseCore(settings, Base)
    assert_type(core.check_health(), HealthReport)
    with core.record_queries() as recorded:
        assert_type(recorded, Sequence[RecordedQuery])


class AuditedSession(RoutingSession):
    """A custom session class with a method of its own."""

    def audit(self, action: str) -> int:
        return len(action)


def check_custom_session_class(app: Flask, settings: Mapping[str, object]) -> None:
    db = Database(Base, session_class=AuditedSession, app=app)
    assert_type(db, Database[AuditedSession])
    assert_type(db.session, AuditedSession)
    assert_type(db.session.audit("export"), int)
    assert_type(db.sessionmaker, sessionmaker[AuditedSession])
    assert_type(db.sessionmaker(), AuditedSession)
    assert_type(db.session_class, type[AuditedSession])
    with db.transaction() as session:
        assert_type(session, AuditedSession)
    with db.savepoint() as session:
        assert_type(session, AuditedSession)
    core = DatabaseCore(settings, Base, session_class=AuditedSession)
    assert_type(core, DatabaseCore[AuditedSession])
    assert_type(core.sessionmaker, sessionmaker[AuditedSession])
    with core.transaction() as worker_session:
        assert_type(worker_session, AuditedSession)
        assert_type(worker_session.audit("report"), int)
    with core as same:
        assert_type(same, DatabaseCore[AuditedSession])


def annotated_without_arguments(db: Database, core: DatabaseCore) -> None:
    # The common case names no session class anywhere.
    assert_type(db.session, RoutingSession)
    with core.transaction() as session:
        assert_type(session, RoutingSession)
