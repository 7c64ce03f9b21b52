"""One Database serves many apps, each with its own config, engines and sessions."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from flask_typed_db import Database


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "multi_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))


db = Database(Base)


def create_app(url: str, instance_path: Path) -> Flask:
    """An app factory, as users write one: the module-level ``db`` is shared."""
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = url

    @app.post("/<name>")
    def add(name: str) -> str:
        db.session.add(Item(name=name))
        db.session.commit()
        return "ok"

    @app.get("/")
    def names() -> list[str]:
        return list(db.session.scalars(sa.select(Item.name).order_by(Item.name)))

    db.init_app(app)
    with app.app_context():
        db.create_all()
    return app


def test_each_app_uses_its_own_configured_database(database_url: str, tmp_path: Path) -> None:
    first = create_app(database_url, tmp_path / "first")
    second = create_app(f"sqlite:///{tmp_path / 'second.db'}", tmp_path / "second")
    with first.app_context():
        first_engine = db.engine
        configured = sa.make_url(database_url)
        assert (first_engine.url.host, first_engine.url.database) == (
            configured.host,
            configured.database,
        )
    with second.app_context():
        second_engine = db.engine
        assert second_engine.url.database == str(tmp_path / "second.db")
    assert first_engine is not second_engine

    assert first.test_client().post("/one").status_code == 200
    assert second.test_client().post("/two").status_code == 200
    assert first.test_client().get("/").json == ["one"]
    assert second.test_client().get("/").json == ["two"]


def test_each_app_gets_its_own_engine_options(tmp_path: Path) -> None:
    quiet = create_app(f"sqlite:///{tmp_path / 'quiet.db'}", tmp_path / "quiet")
    loud = Flask(__name__, instance_path=str(tmp_path / "loud"))
    loud.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'loud.db'}"
    loud.config["SQLALCHEMY_ECHO"] = True
    db.init_app(loud)
    with quiet.app_context():
        quiet_engine = db.engine
    with loud.app_context():
        loud_engine = db.engine
    assert not quiet_engine.echo
    assert loud_engine.echo is True


def test_sessions_of_nested_contexts_of_two_apps_are_separate(
    database_url: str, tmp_path: Path
) -> None:
    first = create_app(database_url, tmp_path / "first")
    second = create_app(f"sqlite:///{tmp_path / 'second.db'}", tmp_path / "second")
    with first.app_context():
        outer = db.session
        with second.app_context():
            inner = db.session
            assert inner.get_bind() is db.engine
        assert db.session is outer
    assert inner is not outer
    assert outer.get_bind() is not inner.get_bind()
