"""Misuse fails early, with a message that says what to do."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Session

from flask_typed_db import Database
from flask_typed_db.core import DatabaseCore


class Base(DeclarativeBase):
    pass


class AuthBase(DeclarativeBase):
    metadata = sa.MetaData(info={"bind_key": "auth"})


#: Each use of the app's state, by what the error message calls it.
USES: dict[str, Callable[[Database], object]] = {
    "'db.session'": lambda db: db.session,
    "'db.engine'": lambda db: db.engine,
    "'db.engines'": lambda db: db.engines,
    "'db.sessionmaker'": lambda db: db.sessionmaker,
    "'db.get_engine()'": lambda db: db.get_engine(),
    "'db.create_all()'": lambda db: db.create_all(),
    "'db.drop_all()'": lambda db: db.drop_all(),
}


def make_app(instance_path: Path, **config: object) -> Flask:
    app = Flask(__name__, instance_path=str(instance_path))
    for key, value in config.items():
        app.config[key] = value
    return app


@pytest.mark.parametrize("what", USES)
def test_use_outside_an_app_context_says_to_push_one(what: str) -> None:
    db = Database(Base)
    with pytest.raises(RuntimeError, match=re.escape(what)) as info:
        USES[what](db)
    assert "outside of application context" in str(info.value)
    assert "app.app_context()" in str(info.value)


@pytest.mark.parametrize("what", USES)
def test_use_on_an_app_without_init_app_says_to_call_it(what: str, instance_path: Path) -> None:
    db = Database(Base)
    registered = make_app(instance_path, SQLALCHEMY_DATABASE_URI="sqlite://")
    db.init_app(registered)
    app = Flask("unregistered", instance_path=str(instance_path))
    with app.app_context(), pytest.raises(RuntimeError, match=re.escape(what)) as info:
        USES[what](db)
    assert "'unregistered'" in str(info.value)
    assert "db.init_app(app)" in str(info.value)


def test_second_init_app_on_the_same_app_is_an_error(instance_path: Path) -> None:
    db = Database(Base)
    app = make_app(instance_path, SQLALCHEMY_DATABASE_URI="sqlite://")
    db.init_app(app)
    with app.app_context():
        engine = db.engine
    with pytest.raises(RuntimeError, match=r"already registered.*'db\.init_app\(app\)' once"):
        db.init_app(app)
    with app.app_context():
        assert db.engine is engine


def test_init_app_via_constructor_counts_as_the_first(instance_path: Path) -> None:
    app = make_app(instance_path, SQLALCHEMY_DATABASE_URI="sqlite://")
    db = Database(Base, app=app)
    with app.app_context():
        assert isinstance(db.session, Session)
    with pytest.raises(RuntimeError, match="already registered"):
        db.init_app(app)


def test_missing_database_uri_without_binds_is_an_error_at_init_app(instance_path: Path) -> None:
    app = make_app(instance_path)
    with pytest.raises(RuntimeError, match="'SQLALCHEMY_DATABASE_URI'"):
        Database(Base).init_app(app)


def test_bind_key_without_url_is_an_error_at_init_app(instance_path: Path) -> None:
    app = make_app(instance_path, SQLALCHEMY_DATABASE_URI="sqlite://")
    with pytest.raises(RuntimeError, match=r"bind key 'auth'.*'SQLALCHEMY_BINDS\['auth'\]'"):
        Database(Base, AuthBase).init_app(app)


def test_binds_dict_without_url_is_an_error_naming_the_key(instance_path: Path) -> None:
    app = make_app(
        instance_path,
        SQLALCHEMY_DATABASE_URI="sqlite://",
        SQLALCHEMY_BINDS={"auth": {"pool_size": 3}},
    )
    with pytest.raises(RuntimeError, match=re.escape("""'SQLALCHEMY_BINDS['auth']["url"]'""")):
        Database(Base, AuthBase).init_app(app)


def test_failed_init_app_leaves_the_app_unregistered(instance_path: Path) -> None:
    db = Database(Base)
    app = make_app(instance_path)
    with pytest.raises(RuntimeError, match="'SQLALCHEMY_DATABASE_URI'"):
        db.init_app(app)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    db.init_app(app)
    with app.app_context():
        assert db.engine.url.get_backend_name() == "sqlite"


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"SQLALCHEMY_DATABASE_URI": 42}, "'SQLALCHEMY_DATABASE_URI'"),
        ({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SQLALCHEMY_BINDS": "x"}, "'SQLALCHEMY_BINDS'"),
        (
            {"SQLALCHEMY_DATABASE_URI": "sqlite://", "SQLALCHEMY_ENGINE_OPTIONS": ["echo"]},
            "'SQLALCHEMY_ENGINE_OPTIONS'",
        ),
        ({"SQLALCHEMY_BINDS": {"auth": 42}}, "'SQLALCHEMY_BINDS['auth']'"),
    ],
)
def test_config_value_of_the_wrong_type_names_the_key(config: dict[str, object], key: str) -> None:
    with pytest.raises(TypeError, match=re.escape(key)):
        DatabaseCore(config)


def test_unparsable_url_names_the_key() -> None:
    with pytest.raises(ValueError, match="'SQLALCHEMY_DATABASE_URI' is not a valid database URL"):
        DatabaseCore({"SQLALCHEMY_DATABASE_URI": "not a url"})


def test_metadatas_of_a_bind_with_two_bases_points_to_metadatas_by_bind() -> None:
    class OtherAuthBase(DeclarativeBase):
        metadata = sa.MetaData(info={"bind_key": "auth"})

    db = Database(AuthBase, OtherAuthBase)
    with pytest.raises(RuntimeError, match=re.escape("""'metadatas_by_bind["auth"]'""")):
        _ = db.metadatas["auth"]


def test_metadata_without_a_default_base_points_to_metadatas() -> None:
    db = Database(AuthBase)
    assert db.metadatas["auth"] is AuthBase.metadata
    with pytest.raises(RuntimeError, match=re.escape("metadatas[key]")):
        _ = db.metadata


def test_metadatas_of_a_bind_no_base_declares_says_how_to_declare_it() -> None:
    db = Database(Base)
    with pytest.raises(KeyError) as info:
        _ = db.metadatas["reports"]
    assert str(info.value) == (
        """'No model base declares the bind key "reports", so it has no metadata: give a base"""
        """ metadata = MetaData(info={"bind_key": "reports"}) and pass it to Database or"""
        """ DatabaseCore.'"""
    )
    core = DatabaseCore({"SQLALCHEMY_DATABASE_URI": "sqlite://"}, Base)
    with pytest.raises(KeyError, match='No model base declares the bind key "reports"'):
        _ = core.metadatas["reports"]
    assert dict(db.metadatas) == dict(core.metadatas) == {None: Base.metadata}
    assert "reports" not in db.metadatas


def test_session_class_must_route_binds() -> None:
    # Refused where it is given, before any app.
    with pytest.raises(TypeError, match="RoutingSession"):
        Database(Base, session_options={"class_": Session})
