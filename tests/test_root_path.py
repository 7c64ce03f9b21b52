"""Relative SQLite paths: resolved against an absolute root, whose folder is made only
when the database is first connected to.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import DeclarativeBase

from flask_typed_db import Database
from flask_typed_db.core import DatabaseCore


class Base(DeclarativeBase):
    pass


SETTINGS = {"SQLALCHEMY_DATABASE_URI": "sqlite:///data/app.sqlite"}


def test_relative_root_path_is_an_error_that_says_what_to_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"root_path must be an absolute path.*__file__"):
        DatabaseCore(SETTINGS, Base, root_path="instance")
    assert list(tmp_path.iterdir()) == []


def test_core_makes_the_folder_on_first_connect_not_when_built(tmp_path: Path) -> None:
    root = tmp_path / "srv" / "instance"
    with DatabaseCore(SETTINGS, Base, root_path=root) as core:
        assert not root.exists()
        with core.engine.connect() as connection:
            connection.execute(sa.text("CREATE TABLE t (x INTEGER)"))
            connection.commit()
        assert (root / "data" / "app.sqlite").is_file()


def test_app_instance_folder_is_made_on_first_connect_not_at_init_app(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    app = Flask(__name__, instance_path=str(instance))
    app.config["SQLALCHEMY_DATABASE_URI"] = SETTINGS["SQLALCHEMY_DATABASE_URI"]
    db = Database(Base, app=app)
    assert not instance.exists()
    with app.app_context():
        db.session.execute(sa.text("SELECT 1"))
    assert (instance / "data" / "app.sqlite").is_file()
