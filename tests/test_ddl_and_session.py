"""create_all() and drop_all() never wait for the current app context's own session.

A Flask-SQLAlchemy test suite calls ``db.drop_all()`` in ``tearDown`` inside the app
context, after a test that read rows: that session still holds its transaction, and
its locks, so the DDL on another connection would wait for it forever.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from flask_typed_db import Database

#: Instead of waiting forever, a DDL statement blocked by a lock fails after this long.
LOCK_TIMEOUT_SECONDS = 5
LOCK_TIMEOUT_CONNECT_ARGS: dict[str, dict[str, object]] = {
    "postgresql": {"options": f"-c lock_timeout={LOCK_TIMEOUT_SECONDS}s"},
    "mysql": {"init_command": f"SET SESSION lock_wait_timeout = {LOCK_TIMEOUT_SECONDS}"},
    "sqlite": {"timeout": LOCK_TIMEOUT_SECONDS},
}


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "ddl_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(sa.String(100))


def make_app(url: str, instance_path: Path) -> tuple[Flask, Database]:
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    backend = "mysql" if url.startswith("mysql") else sa.make_url(url).get_backend_name()
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": LOCK_TIMEOUT_CONNECT_ARGS[backend]}
    return app, Database(Base, app=app)


def test_drop_all_after_reading_in_the_same_app_context_does_not_wait(
    database_url: str, instance_path: Path
) -> None:
    app, db = make_app(database_url, instance_path)
    with app.app_context():
        db.create_all()
        db.session.add(Note(text="read by the test"))
        db.session.commit()
        assert db.session.scalars(sa.select(Note.text)).all() == ["read by the test"]
        assert db.session.in_transaction()

        db.drop_all()

        assert not sa.inspect(db.engine).has_table("ddl_note")
        # The session is still the context's, and usable.
        db.create_all()
        assert db.session.scalars(sa.select(Note.text)).all() == []


def test_create_all_with_uncommitted_changes_raises_and_keeps_them(
    database_url: str, instance_path: Path
) -> None:
    app, db = make_app(database_url, instance_path)
    with app.app_context():
        db.create_all()
        note = Note(text="not committed yet")
        db.session.add(note)

        with pytest.raises(RuntimeError, match=r"db\.session\.commit\(\)"):
            db.create_all()

        assert note in db.session.new
        db.session.commit()
        assert db.session.scalars(sa.select(Note.text)).all() == ["not committed yet"]
