"""``create_all`` and ``drop_all`` take Flask-SQLAlchemy 3.1's ``bind_key`` values."""

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
from flask_typed_db.core import BindKeys


class Base(DeclarativeBase):
    pass


class AuthBase(DeclarativeBase):
    metadata = sa.MetaData(info={"bind_key": "auth"})


class Post(Base):
    __tablename__ = "create_post"
    id: Mapped[int] = mapped_column(primary_key=True)


class User(AuthBase):
    __tablename__ = "create_user"
    id: Mapped[int] = mapped_column(primary_key=True)


DEFAULT_TABLES = {"create_post"}
AUTH_TABLES = {"create_user"}


@pytest.fixture
def db() -> Database:
    return Database(Base, AuthBase)


@pytest.fixture
def app(db: Database, database_url: str, tmp_path: Path, instance_path: Path) -> Flask:
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    app.config["SQLALCHEMY_BINDS"] = {
        "auth": f"sqlite:///{tmp_path / 'auth.db'}",
        # Configured, but no base uses it: it has no tables to create.
        "spare": f"sqlite:///{tmp_path / 'spare.db'}",
    }
    db.init_app(app)
    return app


def tables(db: Database) -> tuple[set[str], set[str]]:
    """The table names on the default engine and on the auth engine."""
    return (
        set(sa.inspect(db.engine).get_table_names()),
        set(sa.inspect(db.engines["auth"]).get_table_names()),
    )


SELECTIONS: list[tuple[BindKeys, set[str], set[str]]] = [
    ("__all__", DEFAULT_TABLES, AUTH_TABLES),
    (None, DEFAULT_TABLES, set()),
    ("auth", set(), AUTH_TABLES),
    (["auth"], set(), AUTH_TABLES),
    ([None, "auth"], DEFAULT_TABLES, AUTH_TABLES),
    ("spare", set(), set()),
    ([], set(), set()),
]


@pytest.mark.parametrize(("bind_key", "default", "auth"), SELECTIONS)
def test_create_all_creates_the_tables_of_the_selected_binds(
    app: Flask, db: Database, bind_key: BindKeys, default: set[str], auth: set[str]
) -> None:
    with app.app_context():
        db.create_all(bind_key)
        assert tables(db) == (default, auth)


@pytest.mark.parametrize(("bind_key", "default", "auth"), SELECTIONS)
def test_drop_all_drops_the_tables_of_the_selected_binds(
    app: Flask, db: Database, bind_key: BindKeys, default: set[str], auth: set[str]
) -> None:
    with app.app_context():
        db.create_all()
        db.drop_all(bind_key)
        assert tables(db) == (DEFAULT_TABLES - default, AUTH_TABLES - auth)


def test_create_all_defaults_to_every_bind(app: Flask, db: Database) -> None:
    with app.app_context():
        db.create_all()
        assert tables(db) == (DEFAULT_TABLES, AUTH_TABLES)
        db.drop_all()
        assert tables(db) == (set(), set())


def test_create_all_is_idempotent(app: Flask, db: Database) -> None:
    with app.app_context():
        db.create_all()
        db.create_all()
        assert tables(db) == (DEFAULT_TABLES, AUTH_TABLES)


@pytest.mark.parametrize("bind_key", ["missing", ["auth", "missing"]])
def test_create_all_on_unconfigured_bind_key_raises_unbound_execution_error(
    app: Flask, db: Database, bind_key: BindKeys
) -> None:
    # Flask-SQLAlchemy 3.1 raises the same error type for a key it has no engine for.
    with app.app_context():
        with pytest.raises(
            sa_exc.UnboundExecutionError,
            match="Bind key 'missing' is not in 'SQLALCHEMY_BINDS' config",
        ):
            db.create_all(bind_key)
        with pytest.raises(
            sa_exc.UnboundExecutionError,
            match="Bind key 'missing' is not in 'SQLALCHEMY_BINDS' config",
        ):
            db.drop_all(bind_key)


def test_create_all_on_the_default_bind_without_uri_raises_unbound_execution_error(
    tmp_path: Path, instance_path: Path
) -> None:
    db = Database(AuthBase)
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_BINDS"] = {"auth": f"sqlite:///{tmp_path / 'auth.db'}"}
    db.init_app(app)
    with (
        app.app_context(),
        pytest.raises(sa_exc.UnboundExecutionError, match="'SQLALCHEMY_DATABASE_URI'"),
    ):
        db.create_all(None)
