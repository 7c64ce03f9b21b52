"""A session class of one's own: the sessions' type, and the one place for session events.

Its events are listened for once, at import time, before any app exists, and fire for
every session made of the class: in every app's requests, in the core's workers, and
under test isolation.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Session
from sqlalchemy.orm import mapped_column

from flask_typed_db import Database
from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import RoutingSession


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "session_class_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(sa.String(100))


class AuditedSession(RoutingSession):
    """Keeps, for the whole process, what each session committed."""

    committed: ClassVar[list[str]] = []

    def audit(self) -> list[str]:
        return [type(item).__name__ for item in self.new]


# Listened for once, on the class, before any Database or app exists.
@event.listens_for(AuditedSession, "before_commit")
def remember_commit(session: Session) -> None:
    assert isinstance(session, AuditedSession)
    AuditedSession.committed.extend(session.audit() or ["(nothing new)"])


@pytest.fixture(autouse=True)
def _forget_commits() -> None:
    AuditedSession.committed.clear()


def make_app(url: str, instance_path: Path, db: Database[AuditedSession]) -> Flask:
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    db.init_app(app)
    with app.app_context():
        db.create_all()

    @app.post("/notes")
    def add_note() -> str:
        db.session.add(Note(text="from a request"))
        db.session.commit()
        return "ok"

    return app


def test_session_class_events_fire_in_every_app_the_core_and_isolation(
    database_url: str, tmp_path: Path
) -> None:
    db = Database(Base, session_class=AuditedSession)
    first = make_app(database_url, tmp_path / "first", db)
    second = make_app(database_url, tmp_path / "second", db)

    assert first.test_client().post("/notes").status_code == 200
    assert second.test_client().post("/notes").status_code == 200
    with first.app_context():
        assert isinstance(db.session, AuditedSession)
        assert db.session_class is AuditedSession

    settings = {"SQLALCHEMY_DATABASE_URI": database_url}
    core = DatabaseCore(settings, Base, session_class=AuditedSession)
    with core, core.transaction() as session:
        assert isinstance(session, AuditedSession)
        session.add(Note(text="from a worker"))
    with db.test_isolation(first):
        assert first.test_client().post("/notes").status_code == 200

    assert AuditedSession.committed == ["Note", "Note", "Note", "Note"]


def test_session_options_class_still_sets_the_class(database_url: str, tmp_path: Path) -> None:
    db = Database(Base, session_options={"class_": AuditedSession})
    app = make_app(database_url, tmp_path, db)  # type: ignore[arg-type]  # typed only by session_class=
    with app.app_context():
        assert isinstance(db.session, AuditedSession)
        assert db.session_class is AuditedSession


def test_session_class_given_twice_is_an_error() -> None:
    with pytest.raises(TypeError, match="given twice"):
        Database(Base, session_class=AuditedSession, session_options={"class_": AuditedSession})


ROUTES_MODELS = r"must be a subclass of flask_typed_db\.core\.RoutingSession"


def test_session_class_must_route_models_to_their_binds() -> None:
    with pytest.raises(TypeError, match=rf"^session_class {ROUTES_MODELS}"):
        Database(Base, session_class=Session)  # type: ignore[type-var]  # pyright: ignore[reportArgumentType]  # the error under test


def test_session_options_class_must_route_models_to_their_binds() -> None:
    with pytest.raises(TypeError, match=rf"^session_options\['class_'\] {ROUTES_MODELS}"):
        Database(Base, session_options={"class_": Session})
