"""What porting a real Flask-SQLAlchemy 3.1 app (microblog) by the docs ran into.

Each test is one thing a user moving over meets: a call spelled the Flask-SQLAlchemy way,
and what it should answer; a session event that needs the app, and what it does in a
worker. Tests marked ``xfail`` show a fix not made yet: they fail today, and the marker
goes when the fix lands (``strict``: a fix that makes one pass fails the run until then).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask import current_app
from flask import has_app_context
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


class Post(Base):
    __tablename__ = "port_findings_post"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(sa.String(140))


class UnguardedSession(RoutingSession):
    """Its after_commit listener reads the app, as microblog's search indexing did."""


class GuardedSession(RoutingSession):
    """Its after_commit listener reads the app only where there is one."""


@event.listens_for(UnguardedSession, "after_commit")
def index_with_the_app(session: Session) -> None:
    current_app.extensions["search_index"].append("indexed")


@event.listens_for(GuardedSession, "after_commit")
def index_with_the_app_if_any(session: Session) -> None:
    if has_app_context():
        current_app.extensions["search_index"].append("indexed")


def count_posts(session: Session) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(Post)) or 0


def test_database_without_bases_says_to_pass_the_models_base() -> None:
    # 'db = SQLAlchemy()' moved over word for word: no base, so no tables. Flask-Migrate's
    # env.py then asks for db.metadata.
    db = Database()

    with pytest.raises(RuntimeError, match=r"Database\(Base\)"):
        db.metadata  # noqa: B018


@pytest.mark.parametrize(
    ("name", "replacement"),
    [
        ("Model", "DeclarativeBase"),
        ("Column", "sqlalchemy"),
        ("case", "sqlalchemy"),
        ("event", "session_class"),
        ("Query", "select()"),
    ],
)
def test_flask_sqlalchemy_attribute_names_its_replacement(name: str, replacement: str) -> None:
    db = Database(Base)

    with pytest.raises(AttributeError) as caught:
        getattr(db, name)

    assert replacement in str(caught.value)


def test_listener_needing_the_app_fails_a_workers_commit_after_committing(
    database_url: str, tmp_path: Path
) -> None:
    # What docs/sessions.md warns about: the class's listeners fire in workers too.
    settings = {"SQLALCHEMY_DATABASE_URI": database_url}
    with DatabaseCore(settings, Base, session_class=UnguardedSession, root_path=tmp_path) as core:
        core.create_all()

        with (
            pytest.raises(RuntimeError, match="application context"),
            core.transaction() as session,
        ):
            session.add(Post(body="from a worker"))

        with core.sessionmaker() as session:
            assert count_posts(session) == 1  # committed all the same


def test_listener_guarded_by_has_app_context_runs_in_the_app_and_lets_a_worker_commit(
    database_url: str, tmp_path: Path
) -> None:
    db = Database(Base, session_class=GuardedSession)
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    app.extensions["search_index"] = []
    db.init_app(app)
    with app.app_context():
        db.create_all()
        db.session.add(Post(body="from a view"))
        db.session.commit()
    assert app.extensions["search_index"] == ["indexed"]

    settings = {"SQLALCHEMY_DATABASE_URI": database_url}
    with DatabaseCore(settings, Base, session_class=GuardedSession, root_path=tmp_path) as core:
        with core.transaction() as session:
            session.add(Post(body="from a worker"))
        with core.sessionmaker() as session:
            assert count_posts(session) == 2
    assert app.extensions["search_index"] == ["indexed"]
