"""A base's ``metadata.info["bind_key"]`` routes its models and tables to that bind."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from flask import Flask
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from flask_typed_db import Database


class Base(DeclarativeBase):
    pass


class AuthBase(DeclarativeBase):
    metadata = sa.MetaData(info={"bind_key": "auth"})


class Post(Base):
    __tablename__ = "bind_post"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(100))


class User(AuthBase):
    __tablename__ = "bind_user"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))


users = AuthBase.metadata.tables["bind_user"]

#: A Core-only table of the auth bind, mapped by no class.
audit = sa.Table(
    "bind_audit",
    AuthBase.metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("action", sa.String(100)),
)


@pytest.fixture
def db() -> Database:
    return Database(Base, AuthBase)


@pytest.fixture
def app(db: Database, database_url: str, tmp_path: Path, instance_path: Path) -> Flask:
    # The auth bind is a second SQLite file whatever the default backend is.
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    app.config["SQLALCHEMY_BINDS"] = {"auth": f"sqlite:///{tmp_path / 'auth.db'}"}
    db.init_app(app)
    with app.app_context():
        db.create_all()
    return app


def rows(engine: sa.Engine, table: sa.Table) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.select(table).order_by(table.c.id))]


def table_names(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_tables_are_created_on_their_own_bind(app: Flask, db: Database) -> None:
    with app.app_context():
        assert {"bind_user", "bind_audit"} <= table_names(db.engines["auth"])
        assert "bind_user" not in table_names(db.engine)
        assert "bind_post" in table_names(db.engine)
        assert "bind_post" not in table_names(db.engines["auth"])


def test_orm_entity_of_bound_base_is_written_and_read_on_its_engine(
    app: Flask, db: Database
) -> None:
    with app.app_context():
        db.session.add(User(name="ada"))
        db.session.add(Post(title="hello"))
        db.session.commit()
        assert rows(db.engines["auth"], users) == [(1, "ada")]
        assert rows(db.engine, Base.metadata.tables["bind_post"]) == [(1, "hello")]
        assert db.session.scalars(sa.select(User.name)).all() == ["ada"]
        assert db.session.get(User, 1) is not None


def test_core_insert_and_select_on_bound_table_go_to_its_engine(app: Flask, db: Database) -> None:
    with app.app_context():
        db.session.execute(sa.insert(audit).values(action="login"))
        db.session.execute(sa.insert(users).values(name="grace"))
        db.session.commit()
        assert rows(db.engines["auth"], audit) == [(1, "login")]
        assert rows(db.engines["auth"], users) == [(1, "grace")]
        assert db.session.execute(sa.select(audit.c.action)).scalars().all() == ["login"]
        count = sa.select(sa.func.count()).select_from(audit)
        assert db.session.execute(count).scalar_one() == 1


def test_get_bind_without_argument_is_the_default_engine(app: Flask, db: Database) -> None:
    with app.app_context():
        assert db.session.get_bind() is db.engine
        assert db.session.get_bind(Post) is db.engine
        assert db.session.get_bind(User) is db.engines["auth"]
        assert db.session.get_bind(clause=sa.select(audit)) is db.engines["auth"]
        assert db.session.get_bind(clause=sa.text("SELECT 1")) is db.engine


def test_table_added_to_bound_metadata_after_init_app_is_routed(app: Flask, db: Database) -> None:
    late = sa.Table(
        "bind_late", sa.MetaData(info={"bind_key": "auth"}), sa.Column("id", sa.Integer)
    )
    with app.app_context():
        assert db.session.get_bind(clause=sa.select(late)) is db.engines["auth"]


def test_bind_only_config_has_no_default_engine(tmp_path: Path, instance_path: Path) -> None:
    db = Database(AuthBase)
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_BINDS"] = {"auth": f"sqlite:///{tmp_path / 'auth.db'}"}
    db.init_app(app)
    with app.app_context():
        db.create_all()
        db.session.add(User(name="ada"))
        db.session.commit()
        assert list(db.engines) == ["auth"]
        with pytest.raises(sa_exc.UnboundExecutionError, match="'SQLALCHEMY_DATABASE_URI'"):
            db.session.execute(sa.text("SELECT 1"))
        with pytest.raises(KeyError, match="'SQLALCHEMY_DATABASE_URI'"):
            db.get_engine()


def test_bind_key_without_url_is_an_error_at_init_app_naming_the_key(
    database_url: str, instance_path: Path
) -> None:
    db = Database(Base, AuthBase)
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    with pytest.raises(RuntimeError, match=r"SQLALCHEMY_BINDS\['auth'\]"):
        db.init_app(app)


def test_bind_options_come_from_its_binds_entry(tmp_path: Path, instance_path: Path) -> None:
    db = Database(Base, AuthBase)
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'default.db'}"
    app.config["SQLALCHEMY_BINDS"] = {
        "auth": {"url": f"sqlite:///{tmp_path / 'auth.db'}", "echo": True}
    }
    db.init_app(app)
    with app.app_context():
        assert db.engines["auth"].url.database == str(tmp_path / "auth.db")
        assert db.engines["auth"].echo is True
        assert db.engine.echo is False
