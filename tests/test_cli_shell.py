"""``flask shell`` sees ``db`` and the models; CLI commands get a session each."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.pool import QueuePool

from flask_typed_db import Database


class Base(DeclarativeBase):
    pass


class AuthBase(DeclarativeBase):
    metadata = sa.MetaData(info={"bind_key": "auth"})


class Author(Base):
    __tablename__ = "shell_author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))


class Title(Base):
    __tablename__ = "shell_title"
    id: Mapped[int] = mapped_column(primary_key=True)


class Account(AuthBase):
    __tablename__ = "shell_account"
    id: Mapped[int] = mapped_column(primary_key=True)


def checked_out(engine: sa.Engine) -> int:
    """How many of ``engine``'s pooled connections are in use."""
    assert isinstance(engine.pool, QueuePool)
    return engine.pool.checkedout()


def make_app(database_url: str, tmp_path: Path, instance_path: Path) -> tuple[Flask, Database]:
    db = Database(Base, AuthBase)
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    app.config["SQLALCHEMY_BINDS"] = {"auth": f"sqlite:///{tmp_path / 'auth.db'}"}
    db.init_app(app)
    with app.app_context():
        db.create_all()
    return app, db


def test_shell_has_db_and_every_mapped_model(tmp_path: Path, instance_path: Path) -> None:
    app, db = make_app("sqlite://", tmp_path, instance_path)
    with app.app_context():
        namespace = app.make_shell_context()
    assert namespace["db"] is db
    assert namespace["Author"] is Author
    assert namespace["Title"] is Title
    assert namespace["Account"] is Account
    assert namespace["app"] is app


def test_cli_command_commits_through_the_session(
    database_url: str, tmp_path: Path, instance_path: Path
) -> None:
    app, db = make_app(database_url, tmp_path, instance_path)

    @app.cli.command("add-author")
    def add_author() -> None:
        db.session.add(Author(name="Le Guin"))
        db.session.commit()

    result = app.test_cli_runner().invoke(args=["add-author"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalars(sa.select(Author.name)).all() == ["Le Guin"]


def test_cli_command_uncommitted_work_is_rolled_back_and_connection_returned(
    database_url: str, tmp_path: Path, instance_path: Path
) -> None:
    app, db = make_app(database_url, tmp_path, instance_path)

    @app.cli.command("forget-author")
    def forget_author() -> None:
        db.session.add(Author(name="never committed"))
        db.session.flush()

    result = app.test_cli_runner().invoke(args=["forget-author"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert checked_out(db.engine) == 0
        assert db.session.scalars(sa.select(Author.name)).all() == []
