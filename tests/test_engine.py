"""One engine per bind, made at init_app, with the defaults each backend needs."""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any
from typing import cast

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.pool import NullPool
from sqlalchemy.pool import QueuePool
from sqlalchemy.pool import SingletonThreadPool
from sqlalchemy.pool import StaticPool

from flask_typed_db import Database
from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import apply_backend_defaults


class Base(DeclarativeBase):
    pass


class Book(Base):
    __tablename__ = "engine_book"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(100))


def make_app(instance_path: Path, **config: Any) -> tuple[Flask, Database]:
    db = Database(Base)
    app = Flask(__name__, instance_path=str(instance_path))
    for key, value in config.items():
        app.config[key] = value
    db.init_app(app)
    return app, db


def defaults_for(url: str, **options: Any) -> tuple[sa.URL, dict[str, Any]]:
    """The URL and options :func:`apply_backend_defaults` makes of ``url``."""
    new_url = apply_backend_defaults(sa.make_url(url), options, None)
    return new_url, options


# One engine per bind, made once


def test_engines_are_made_once_per_app_not_per_context(
    database_url: str, instance_path: Path
) -> None:
    app, db = make_app(instance_path, SQLALCHEMY_DATABASE_URI=database_url)
    with app.app_context():
        engine = db.engine
        assert db.session.get_bind() is engine
    with app.test_request_context():
        assert db.engine is engine
        assert db.engines[None] is engine
        assert db.get_engine() is engine
        assert db.session.get_bind() is engine


def test_engines_do_not_connect_before_first_use(instance_path: Path) -> None:
    # Nothing listens there: any connection attempt would fail.
    app, db = make_app(
        instance_path, SQLALCHEMY_DATABASE_URI="postgresql+psycopg://user@db.invalid:1/app"
    )
    with app.app_context():
        assert db.engine.url.host == "db.invalid"
        assert db.session.get_bind() is db.engine


def test_engines_mapping_is_read_only(instance_path: Path) -> None:
    app, db = make_app(instance_path, SQLALCHEMY_DATABASE_URI="sqlite://")
    with app.app_context():
        engines = cast("MutableMapping[str | None, sa.Engine]", db.engines)
        with pytest.raises(TypeError):
            engines["other"] = db.engine
        assert list(db.engines) == [None]


def test_get_engine_of_unknown_bind_key_names_the_config_key(instance_path: Path) -> None:
    app, db = make_app(instance_path, SQLALCHEMY_DATABASE_URI="sqlite://")
    with (
        app.app_context(),
        pytest.raises(KeyError, match="Bind key 'nope' is not in 'SQLALCHEMY_BINDS'"),
    ):
        db.get_engine("nope")


def test_core_builds_the_same_engines_as_the_app(instance_path: Path) -> None:
    app, db = make_app(instance_path, SQLALCHEMY_DATABASE_URI="sqlite:///app.db")
    with DatabaseCore(app.config, Base, root_path=app.instance_path) as core, app.app_context():
        assert core.engine.url == db.engine.url
        assert type(core.engine.pool) is type(db.engine.pool)


# In-memory SQLite


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file::memory:"])
def test_in_memory_sqlite_uses_one_connection_usable_from_any_thread(url: str) -> None:
    _, options = defaults_for(url)
    assert options["poolclass"] is StaticPool
    assert options["connect_args"] == {"check_same_thread": False}


def test_in_memory_sqlite_keeps_user_pool_and_connect_args() -> None:
    _, options = defaults_for(
        "sqlite://",
        poolclass=SingletonThreadPool,
        connect_args={"timeout": 3, "check_same_thread": True},
    )
    assert options["poolclass"] is SingletonThreadPool
    assert options["connect_args"] == {"timeout": 3, "check_same_thread": True}


def test_in_memory_sqlite_engine_keeps_its_data_across_contexts(instance_path: Path) -> None:
    app, db = make_app(instance_path, SQLALCHEMY_DATABASE_URI="sqlite://")
    with app.app_context():
        assert isinstance(db.engine.pool, StaticPool)
        db.create_all()
        db.session.add(Book(title="kept"))
        db.session.commit()
    with app.app_context():
        assert db.session.scalars(sa.select(Book.title)).all() == ["kept"]


# SQLite files


def test_relative_sqlite_path_is_resolved_in_the_instance_folder(instance_path: Path) -> None:
    app, db = make_app(instance_path, SQLALCHEMY_DATABASE_URI="sqlite:///app.db")
    with app.app_context():
        assert db.engine.url.database == str(instance_path / "app.db")
        db.create_all()
    assert (instance_path / "app.db").is_file()


def test_relative_sqlite_uri_filename_is_resolved_in_the_instance_folder(
    instance_path: Path,
) -> None:
    app, db = make_app(instance_path, SQLALCHEMY_DATABASE_URI="sqlite:///file:app.db?uri=true")
    with app.app_context():
        assert db.engine.url.database == f"file:{instance_path / 'app.db'}"
        db.create_all()
    assert (instance_path / "app.db").is_file()


def test_relative_sqlite_path_of_a_bind_is_resolved_in_the_instance_folder(
    instance_path: Path,
) -> None:
    app, db = make_app(
        instance_path,
        SQLALCHEMY_DATABASE_URI="sqlite://",
        SQLALCHEMY_BINDS={"auth": {"url": "sqlite:///auth.db"}},
    )
    with app.app_context():
        assert db.engines["auth"].url.database == str(instance_path / "auth.db")


def test_absolute_sqlite_path_is_kept(tmp_path: Path, instance_path: Path) -> None:
    path = tmp_path / "elsewhere.db"
    app, db = make_app(instance_path, SQLALCHEMY_DATABASE_URI=f"sqlite:///{path}")
    with app.app_context():
        assert db.engine.url.database == str(path)
        assert isinstance(db.engine.pool, QueuePool)


def test_core_without_root_path_leaves_relative_sqlite_path_alone() -> None:
    with DatabaseCore({"SQLALCHEMY_DATABASE_URI": "sqlite:///app.db"}, Base) as core:
        assert core.engine.url.database == "app.db"


# MySQL and MariaDB


@pytest.mark.parametrize(
    "url", ["mysql+pymysql://user@db.invalid/app", "mariadb+pymysql://user@db.invalid/app"]
)
def test_mysql_gets_utf8mb4_and_pool_recycle(url: str) -> None:
    new_url, options = defaults_for(url)
    assert new_url.query["charset"] == "utf8mb4"
    assert options["pool_recycle"] == 7200


def test_mysql_keeps_user_charset_and_pool_recycle() -> None:
    new_url, options = defaults_for(
        "mysql+pymysql://user@db.invalid/app?charset=latin1", pool_recycle=60
    )
    assert new_url.query["charset"] == "latin1"
    assert options["pool_recycle"] == 60


def test_mysql_without_a_queue_pool_gets_no_pool_recycle() -> None:
    _, options = defaults_for("mysql+pymysql://user@db.invalid/app", poolclass=NullPool)
    assert "pool_recycle" not in options


def test_mysql_defaults_reach_the_engine(instance_path: Path) -> None:
    app, db = make_app(
        instance_path, SQLALCHEMY_DATABASE_URI="mysql+pymysql://user@db.invalid/app"
    )
    with app.app_context():
        assert db.engine.url.query["charset"] == "utf8mb4"


def test_mariadb_connection_stores_four_byte_characters(
    mariadb_url: str, instance_path: Path
) -> None:
    app, db = make_app(instance_path, SQLALCHEMY_DATABASE_URI=mariadb_url)
    with app.app_context():
        db.create_all()
        charset = db.session.execute(sa.text("SELECT @@character_set_connection")).scalar()
        assert charset == "utf8mb4"
        db.session.add(Book(title="Emoji \N{BOOKS}"))
        db.session.commit()
    with app.app_context():
        assert db.session.scalars(sa.select(Book.title)).one() == "Emoji \N{BOOKS}"


# PostgreSQL


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg://user@db.invalid/app", "postgresql+psycopg2://u@db.invalid/a"]
)
def test_postgresql_gets_a_connect_timeout_and_nothing_else(url: str) -> None:
    new_url, options = defaults_for(url, pool_size=3, connect_args={"sslmode": "require"})
    assert new_url == sa.make_url(url)
    assert options == {
        "pool_size": 3,
        "connect_args": {"connect_timeout": 10, "sslmode": "require"},
    }


def test_postgresql_keeps_a_connect_timeout_of_the_user() -> None:
    _, options = defaults_for(
        "postgresql+psycopg://user@db.invalid/app", connect_args={"connect_timeout": 3}
    )
    assert options["connect_args"] == {"connect_timeout": 3}
    in_url, options = defaults_for("postgresql+psycopg://user@db.invalid/app?connect_timeout=3")
    assert in_url.query["connect_timeout"] == "3"
    assert "connect_args" not in options
