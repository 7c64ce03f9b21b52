"""The ``SQLALCHEMY_*`` keys mean what they mean in Flask-SQLAlchemy 3.1."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import QueuePool

from flask_typed_db import Database
from flask_typed_db.core import ConfigWarning
from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import read_config


class Base(DeclarativeBase):
    pass


class AuthBase(DeclarativeBase):
    metadata = sa.MetaData(info={"bind_key": "auth"})


def make_app(
    tmp_path: Path,
    instance_path: Path,
    *,
    engine_options: dict[str, Any] | None = None,
    **config: Any,
) -> tuple[Flask, Database]:
    """An app with a default and an ``auth`` SQLite file bind, plus ``config``."""
    db = Database(Base, AuthBase, engine_options=engine_options)
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'default.db'}"
    app.config["SQLALCHEMY_BINDS"] = {"auth": f"sqlite:///{tmp_path / 'auth.db'}"}
    for key, value in config.items():
        app.config[key] = value
    db.init_app(app)
    return app, db


def queue_pool(engine: sa.Engine) -> QueuePool:
    assert isinstance(engine.pool, QueuePool)
    return engine.pool


# Engine options


def test_engine_options_apply_to_the_default_bind_only(
    tmp_path: Path, instance_path: Path
) -> None:
    app, db = make_app(tmp_path, instance_path, SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 3})
    with app.app_context():
        assert queue_pool(db.engine).size() == 3
        assert queue_pool(db.engines["auth"]).size() == 5  # SQLAlchemy's default


def test_bind_options_come_from_its_binds_dict(tmp_path: Path, instance_path: Path) -> None:
    app, db = make_app(
        tmp_path,
        instance_path,
        SQLALCHEMY_BINDS={"auth": {"url": f"sqlite:///{tmp_path / 'auth.db'}", "pool_size": 7}},
        SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 3},
    )
    with app.app_context():
        assert queue_pool(db.engines["auth"]).size() == 7
        assert queue_pool(db.engine).size() == 3


def test_database_engine_options_apply_to_every_engine_below_the_config(
    tmp_path: Path, instance_path: Path
) -> None:
    app, db = make_app(
        tmp_path,
        instance_path,
        engine_options={"pool_size": 2, "pool_timeout": 11},
        SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 3},
    )
    with app.app_context():
        assert queue_pool(db.engine).size() == 3
        assert queue_pool(db.engine).timeout() == 11
        assert queue_pool(db.engines["auth"]).size() == 2
        assert queue_pool(db.engines["auth"]).timeout() == 11


def test_url_in_engine_options_is_the_default_bind(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'from-options.db'}"
    specs = read_config({"SQLALCHEMY_ENGINE_OPTIONS": {"url": url}})
    assert specs[None].url == sa.make_url(url)
    assert specs[None].config_key == """'SQLALCHEMY_ENGINE_OPTIONS["url"]'"""


def test_urls_may_be_url_objects(tmp_path: Path) -> None:
    url = sa.make_url(f"sqlite:///{tmp_path / 'default.db'}")
    specs = read_config({"SQLALCHEMY_DATABASE_URI": url, "SQLALCHEMY_BINDS": {"auth": url}})
    assert specs[None].url == url
    assert specs["auth"].url == url


# The default bind under the None key of SQLALCHEMY_BINDS, as in Flask-SQLAlchemy 3.1:
# "The None key can be used to configure the default bind, but
# SQLALCHEMY_ENGINE_OPTIONS and SQLALCHEMY_DATABASE_URI take precedence."


def default_engine(config: dict[str, Any], **engine_options: Any) -> sa.Engine:
    with DatabaseCore(config, Base, engine_options=engine_options) as core:
        return core.engine


def test_none_key_of_binds_is_the_default_bind(tmp_path: Path, instance_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'default.db'}"
    db = Database(Base, AuthBase)
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_BINDS"] = {None: url, "auth": f"sqlite:///{tmp_path / 'auth.db'}"}
    db.init_app(app)
    with app.app_context():
        assert db.engine.url == sa.make_url(url)
        assert db.session.get_bind() is db.engine
        assert set(db.engines) == {None, "auth"}
    assert read_config(app.config)[None].config_key == "'SQLALCHEMY_BINDS[None]'"


def test_database_uri_wins_over_the_none_key(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'uri.db'}"
    config = {"SQLALCHEMY_DATABASE_URI": uri, "SQLALCHEMY_BINDS": {None: "sqlite:///none.db"}}
    assert default_engine(config).url == sa.make_url(uri)
    assert read_config(config)[None].config_key == "'SQLALCHEMY_DATABASE_URI'"


def test_none_key_options_are_below_engine_options_and_uri(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'uri.db'}"
    config = {
        "SQLALCHEMY_DATABASE_URI": uri,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 3},
        "SQLALCHEMY_BINDS": {
            None: {"url": "sqlite:///none.db", "pool_size": 7, "pool_timeout": 9}
        },
    }
    engine = default_engine(config)
    assert engine.url == sa.make_url(uri)
    assert (queue_pool(engine).size(), queue_pool(engine).timeout()) == (3, 9)


def test_none_key_dict_may_leave_the_url_to_database_uri(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'uri.db'}"
    config = {"SQLALCHEMY_DATABASE_URI": uri, "SQLALCHEMY_BINDS": {None: {"pool_size": 7}}}
    engine = default_engine(config)
    assert engine.url == sa.make_url(uri)
    assert queue_pool(engine).size() == 7


def test_engine_options_win_over_the_none_key_without_database_uri(tmp_path: Path) -> None:
    # As documented. Flask-SQLAlchemy 3.1's code drops SQLALCHEMY_ENGINE_OPTIONS here.
    url = f"sqlite:///{tmp_path / 'none.db'}"
    config = {
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 3},
        "SQLALCHEMY_BINDS": {None: {"url": url, "pool_size": 7, "pool_timeout": 9}},
    }
    engine = default_engine(config)
    assert engine.url == sa.make_url(url)
    assert (queue_pool(engine).size(), queue_pool(engine).timeout()) == (3, 9)
    assert read_config(config)[None].config_key == """'SQLALCHEMY_BINDS[None]["url"]'"""


def test_engine_options_argument_is_below_the_none_key(tmp_path: Path) -> None:
    # As documented: the argument gives defaults. Flask-SQLAlchemy 3.1's code lets it
    # override the None key's options when SQLALCHEMY_DATABASE_URI is set.
    config = {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'uri.db'}",
        "SQLALCHEMY_BINDS": {None: {"pool_size": 7}},
    }
    engine = default_engine(config, pool_size=2, pool_timeout=11)
    assert (queue_pool(engine).size(), queue_pool(engine).timeout()) == (7, 11)


def test_url_in_engine_options_wins_over_the_none_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'options.db'}"
    config = {
        "SQLALCHEMY_ENGINE_OPTIONS": {"url": url},
        "SQLALCHEMY_BINDS": {None: "sqlite:///none.db"},
    }
    assert default_engine(config).url == sa.make_url(url)


def test_none_key_echo_wins_over_sqlalchemy_echo(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    config = {"SQLALCHEMY_ECHO": False, "SQLALCHEMY_BINDS": {None: {"url": url, "echo": True}}}
    assert default_engine(config).echo is True


def test_none_key_without_any_url_names_both_keys() -> None:
    with pytest.raises(RuntimeError) as info:
        DatabaseCore({"SQLALCHEMY_BINDS": {None: {"pool_size": 7}}})
    assert str(info.value) == (
        """Either 'SQLALCHEMY_DATABASE_URI' or 'SQLALCHEMY_BINDS[None]["url"]' must be set."""
    )


def test_bad_option_under_the_none_key_is_named() -> None:
    config = {"SQLALCHEMY_BINDS": {None: {"url": "sqlite://", "pool_recycle": "3600"}}}
    with pytest.raises(TypeError, match=re.escape("""'SQLALCHEMY_BINDS[None]["pool_recycle"]'""")):
        DatabaseCore(config)


def test_other_bind_keys_must_be_strings() -> None:
    with pytest.raises(TypeError) as info:
        DatabaseCore({"SQLALCHEMY_BINDS": {1: "sqlite://"}})
    assert str(info.value) == (
        "'SQLALCHEMY_BINDS' keys must be strings, or None for the default bind, not int."
    )


# Echo


def test_echo_applies_to_every_engine_and_its_pool(tmp_path: Path, instance_path: Path) -> None:
    app, db = make_app(tmp_path, instance_path, SQLALCHEMY_ECHO=True)
    with app.app_context():
        for engine in db.engines.values():
            assert engine.echo is True
            assert engine.pool.echo is True


def test_echo_is_off_by_default(tmp_path: Path, instance_path: Path) -> None:
    app, db = make_app(tmp_path, instance_path)
    with app.app_context():
        for engine in db.engines.values():
            assert not engine.echo
            assert not engine.pool.echo


def test_echo_in_engine_options_wins_over_sqlalchemy_echo(
    tmp_path: Path, instance_path: Path
) -> None:
    app, db = make_app(
        tmp_path, instance_path, SQLALCHEMY_ECHO=True, SQLALCHEMY_ENGINE_OPTIONS={"echo": False}
    )
    with app.app_context():
        assert not db.engine.echo
        assert db.engines["auth"].echo is True


def test_echo_logs_statements(
    tmp_path: Path, instance_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app, db = make_app(tmp_path, instance_path, SQLALCHEMY_ECHO=True)
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"), app.app_context():
        db.session.execute(sa.text("SELECT 42"))
    assert any(record.getMessage() == "SELECT 42" for record in caplog.records)


# Warnings about keys


def test_unknown_key_warns_naming_it_and_the_close_match(
    tmp_path: Path, instance_path: Path
) -> None:
    with pytest.warns(ConfigWarning) as records:
        make_app(tmp_path, instance_path, SQLALCHEMY_DATABASE_URL="sqlite://")
    (record,) = records
    message = str(record.message)
    assert "'SQLALCHEMY_DATABASE_URL'" in message
    assert "Did you mean 'SQLALCHEMY_DATABASE_URI'?" in message


def test_config_warning_points_at_the_callers_line(tmp_path: Path) -> None:
    config: dict[str, object] = {"SQLALCHEMY_DATABASE_URI": "sqlite://", "SQLALCHEMY_BIND": {}}
    with pytest.warns(ConfigWarning, match="'SQLALCHEMY_BIND'") as records:
        DatabaseCore(config, Base).dispose()
    assert records[0].filename == __file__


def test_unknown_key_without_close_match_warns_without_a_suggestion() -> None:
    # Only the shared "SQLALCHEMY_" is like a supported key.
    config = {"SQLALCHEMY_DATABASE_URI": "sqlite://", "SQLALCHEMY_XYZZY": 5}
    with pytest.warns(ConfigWarning, match="'SQLALCHEMY_XYZZY'") as records:
        read_config(config)
    assert "Did you mean" not in str(records[0].message)


@pytest.mark.parametrize(
    ("key", "value", "advice"),
    [
        ("SQLALCHEMY_POOL_SIZE", 5, """set 'SQLALCHEMY_ENGINE_OPTIONS["pool_size"]' instead"""),
        ("SQLALCHEMY_MAX_OVERFLOW", 0, """'SQLALCHEMY_ENGINE_OPTIONS["max_overflow"]'"""),
        ("SQLALCHEMY_ENGINES", {"default": "sqlite://"}, "Flask-SQLAlchemy-Lite's key; set"),
        ("SQLALCHEMY_NATIVE_UNICODE", False, "always returns str"),
    ],
)
def test_keys_of_other_versions_and_extensions_warn_with_what_to_set(
    key: str, value: object, advice: str
) -> None:
    with pytest.warns(ConfigWarning) as records:
        read_config({"SQLALCHEMY_DATABASE_URI": "sqlite://", key: value})
    (record,) = records
    message = str(record.message)
    assert message.startswith(f"{key!r} is ignored: ")
    assert advice in message


def test_unsupported_flask_sqlalchemy_key_warns_only_when_switched_on() -> None:
    with pytest.warns(ConfigWarning, match="'SQLALCHEMY_TRACK_MODIFICATIONS' has no effect"):
        read_config(
            {"SQLALCHEMY_DATABASE_URI": "sqlite://", "SQLALCHEMY_TRACK_MODIFICATIONS": True}
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_config(
            {"SQLALCHEMY_DATABASE_URI": "sqlite://", "SQLALCHEMY_TRACK_MODIFICATIONS": False}
        )


def test_keys_of_other_extensions_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_config({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "x", "DEBUG": True})
