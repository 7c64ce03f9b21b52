"""Test isolation with Python 3.12's sqlite3 ``autocommit`` connection attribute.

Python 3.12 added ``sqlite3.connect(autocommit=...)``. With ``False`` the driver keeps
a transaction open by itself, so isolation must not emit its own BEGIN; with ``True``
the driver's ``rollback()`` does nothing, so isolation must end the transaction with a
ROLLBACK statement. ``make test-py312`` runs these on Python 3.12.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from flask_typed_db import Database

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="sqlite3's autocommit attribute is Python 3.12+"
)


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "autocommit_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str]


def count_notes(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        (count,) = connection.execute(f"SELECT count(*) FROM {Note.__tablename__}").fetchone()
    assert isinstance(count, int)
    return count


@pytest.mark.parametrize("autocommit", [False, True])
def test_isolation_rolls_back_with_the_drivers_autocommit_attribute(
    tmp_path: Path, autocommit: bool
) -> None:
    path = tmp_path / "notes.db"
    db = Database(Base)
    app = Flask(__name__, instance_path=str(tmp_path / "instance"))
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{path}"
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"autocommit": autocommit}}
    db.init_app(app)
    with app.app_context():
        db.create_all()
        db.engine.dispose()

    with db.test_isolation(app), app.app_context():
        db.session.add(Note(text="kept inside"))
        db.session.commit()
        nested = db.session.begin_nested()
        db.session.add(Note(text="rolled back to the savepoint"))
        db.session.flush()
        nested.rollback()
        texts = db.session.scalars(sa.select(Note.text)).all()

    assert texts == ["kept inside"]
    # The pooled connection is back to normal: a commit after the block is durable,
    # and nothing from inside it is.
    with app.app_context():
        db.session.add(Note(text="after"))
        db.session.commit()
    assert count_notes(path) == 1
    with app.app_context():
        db.engine.dispose()
