"""A config value of the wrong type or out of range fails at init_app, naming its key.

Engine options are SQLAlchemy's ``create_engine()`` arguments. Left alone, a wrong one
fails at the first query with an error that names no config key (``'>' not supported
between instances of 'str' and 'int'``), or never fails at all (``pool_size=True``).
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import NullPool
from sqlalchemy.pool import QueuePool

from flask_typed_db import Database
from flask_typed_db.core import DatabaseCore

#: Distinctive, so that an error repeating a value is found verbatim.
SECRET = "Pw-5b03d1-never-shown"


class Base(DeclarativeBase):
    pass


class AuthBase(DeclarativeBase):
    metadata = sa.MetaData(info={"bind_key": "auth"})


def init_app(
    config: dict[str, Any], instance_path: Path, engine_options: dict[str, Any] | None = None
) -> Database:
    db = Database(Base, AuthBase, engine_options=engine_options)
    app = Flask(__name__, instance_path=str(instance_path))
    for key, value in config.items():
        app.config[key] = value
    db.init_app(app)
    return db


#: (option, bad value, the exception, what the message says is expected, the type named)
BAD_OPTIONS: list[tuple[str, object, type[Exception], str, str]] = [
    ("pool_size", "5", TypeError, "must be an int", "not str"),
    ("pool_size", True, TypeError, "must be an int", "not bool"),
    ("pool_size", 5.0, TypeError, "must be an int", "not float"),
    ("max_overflow", None, TypeError, "must be an int", "not None"),
    ("pool_recycle", "3600", TypeError, "must be a number of seconds (int or float)", "not str"),
    ("pool_recycle", False, TypeError, "must be a number of seconds", "not bool"),
    ("pool_timeout", "30", TypeError, "must be a number of seconds (int or float)", "not str"),
    ("query_cache_size", None, TypeError, "must be an int", "not None"),
    ("insertmanyvalues_page_size", "100", TypeError, "must be an int", "not str"),
    ("label_length", "30", TypeError, "must be an int or None", "not str"),
    ("pool_pre_ping", "yes", TypeError, "must be True or False", "not str"),
    ("pool_pre_ping", 1, TypeError, "must be True or False", "not int"),
    ("pool_use_lifo", "False", TypeError, "must be True or False", "not str"),
    ("hide_parameters", 0, TypeError, "must be True or False", "not int"),
    ("echo", "False", TypeError, 'must be True, False, None or "debug"', "not str"),
    ("echo_pool", 1, TypeError, 'must be True, False, None or "debug"', "not int"),
    ("connect_args", "x", TypeError, "must be a dict", "not str"),
    ("connect_args", [("timeout", 1)], TypeError, "must be a dict", "not list"),
    ("execution_options", "x", TypeError, "must be a dict", "not str"),
    ("isolation_level", 1, TypeError, "must be a str naming an isolation level", "not int"),
    ("isolation_level", "BOGUS", ValueError, "is not an isolation level of sqlite+pysqlite", ""),
    (
        "pool_reset_on_return",
        "sometimes",
        ValueError,
        'must be one of "rollback", "commit" or "none"',
        "",
    ),
    ("pool_reset_on_return", 2, TypeError, "must be", "not int"),
    ("paramstyle", "percent", ValueError, '"qmark", "numeric", "named"', ""),
    ("poolclass", "QueuePool", TypeError, "a subclass of sqlalchemy.pool.Pool", "not str"),
    ("poolclass", dict, TypeError, "a subclass of sqlalchemy.pool.Pool", "not the class dict"),
    ("pool", NullPool, TypeError, "a sqlalchemy.pool.Pool instance", "not the class NullPool"),
    ("creator", "connect", TypeError, "must be a callable", "not str"),
    ("json_serializer", "json.dumps", TypeError, "must be a callable", "not str"),
    ("logging_name", 1, TypeError, "must be a str", "not int"),
    ("plugins", "myplugin", TypeError, "must be a list of str", "not str"),
]


def bad_option_ids(case: tuple[str, object, type[Exception], str, str]) -> str:
    return f"{case[0]}={case[1]!r}"


def assert_names(error: BaseException, key: str, expected: str, type_named: str) -> None:
    message = str(error)
    assert message.startswith(key), message
    assert expected in message
    assert type_named in message


@pytest.mark.parametrize("case", BAD_OPTIONS, ids=bad_option_ids)
def test_bad_engine_option_fails_in_core_naming_its_key(
    case: tuple[str, object, type[Exception], str, str], tmp_path: Path
) -> None:
    option, value, error_type, expected, type_named = case
    config = {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'app.db'}",
        "SQLALCHEMY_ENGINE_OPTIONS": {option: value},
    }
    with pytest.raises(error_type) as info:
        DatabaseCore(config)
    assert_names(info.value, f"""'SQLALCHEMY_ENGINE_OPTIONS["{option}"]'""", expected, type_named)


@pytest.mark.parametrize("case", BAD_OPTIONS, ids=bad_option_ids)
def test_bad_bind_option_fails_at_init_app_naming_its_key(
    case: tuple[str, object, type[Exception], str, str], tmp_path: Path, instance_path: Path
) -> None:
    option, value, error_type, expected, type_named = case
    config = {
        "SQLALCHEMY_DATABASE_URI": "sqlite://",
        "SQLALCHEMY_BINDS": {"auth": {"url": f"sqlite:///{tmp_path / 'auth.db'}", option: value}},
    }
    with pytest.raises(error_type) as info:
        init_app(config, instance_path)
    assert_names(info.value, f"""'SQLALCHEMY_BINDS['auth']["{option}"]'""", expected, type_named)


@pytest.mark.parametrize("case", BAD_OPTIONS, ids=bad_option_ids)
def test_bad_engine_options_argument_fails_at_init_app_naming_it(
    case: tuple[str, object, type[Exception], str, str], tmp_path: Path, instance_path: Path
) -> None:
    option, value, error_type, expected, type_named = case
    config = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'app.db'}"}
    with pytest.raises(error_type) as info:
        init_app(config, instance_path, engine_options={option: value})
    assert_names(info.value, f'engine_options["{option}"]', expected, type_named)


def test_bad_engine_options_argument_of_core_is_named(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=re.escape('engine_options["pool_recycle"] must be')):
        DatabaseCore(
            {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'app.db'}"},
            engine_options={"pool_recycle": "3600"},
        )


def test_option_errors_show_the_type_not_the_value() -> None:
    options = {"pool_size": SECRET, "connect_args": SECRET, "isolation_level": SECRET}
    for name, value in options.items():
        with pytest.raises((TypeError, ValueError)) as info:
            DatabaseCore(
                {
                    "SQLALCHEMY_DATABASE_URI": "sqlite://",
                    "SQLALCHEMY_ENGINE_OPTIONS": {name: value},
                }
            )
        assert f'["{name}"]' in str(info.value)
        assert SECRET not in str(info.value)


def test_option_names_must_be_strings() -> None:
    with pytest.raises(TypeError, match=r"^'SQLALCHEMY_ENGINE_OPTIONS' keys must be option names"):
        DatabaseCore({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SQLALCHEMY_ENGINE_OPTIONS": {1: 2}})


def test_unknown_option_is_still_rejected_by_sqlalchemy_naming_the_bind(tmp_path: Path) -> None:
    config = {
        "SQLALCHEMY_DATABASE_URI": "sqlite://",
        "SQLALCHEMY_BINDS": {"auth": {"url": f"sqlite:///{tmp_path / 'a.db'}", "pool_sise": 3}},
    }
    with pytest.raises(TypeError, match="'pool_sise'") as info:
        DatabaseCore(config)
    assert """'SQLALCHEMY_BINDS['auth']["url"]'""" in "".join(info.value.__notes__)


def queue_pool(engine: sa.Engine) -> QueuePool:
    assert isinstance(engine.pool, QueuePool)
    return engine.pool


#: Options of the right types, and what each does to the engine.
GOOD_OPTIONS: list[tuple[dict[str, Any], Callable[[sa.Engine], bool]]] = [
    ({"pool_size": 3, "max_overflow": -1}, lambda e: queue_pool(e).size() == 3),
    ({"pool_timeout": 2.5, "pool_recycle": 1800}, lambda e: queue_pool(e).timeout() == 2.5),
    ({"pool_timeout": 2, "pool_recycle": 1800.0}, lambda e: queue_pool(e).timeout() == 2),
    ({"echo": "debug", "echo_pool": None}, lambda e: e.echo == "debug"),
    ({"pool_reset_on_return": None, "pool_pre_ping": True}, lambda e: True),
    ({"pool_reset_on_return": "commit", "pool_use_lifo": True}, lambda e: True),
    ({"poolclass": NullPool, "label_length": None}, lambda e: isinstance(e.pool, NullPool)),
    ({"execution_options": {"isolation_level": "serializable"}}, lambda e: True),
    ({"isolation_level": "read_uncommitted", "query_cache_size": 0}, lambda e: True),
    ({"connect_args": {"timeout": 3}, "hide_parameters": True}, lambda e: e.hide_parameters),
    ({"paramstyle": "named", "logging_name": "app", "plugins": []}, lambda e: True),
]


@pytest.mark.parametrize(("options", "check"), GOOD_OPTIONS)
def test_good_options_are_accepted(
    options: dict[str, Any], check: Callable[[sa.Engine], bool], tmp_path: Path
) -> None:
    config = {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'app.db'}",
        "SQLALCHEMY_ENGINE_OPTIONS": options,
    }
    with DatabaseCore(config) as core:
        assert check(core.engine)
        with core.engine.connect() as connection:
            assert connection.execute(sa.text("SELECT 1")).scalar() == 1


def test_every_checked_option_is_a_create_engine_parameter() -> None:
    from flask_typed_db.core._config import ENGINE_OPTION_TYPES

    # A misspelled name in our table would check an option nobody can set.
    signature = inspect.signature(typing.get_overloads(sa.create_engine)[0])
    parameters = set(signature.parameters) - {"url", "kwargs"}
    assert set(ENGINE_OPTION_TYPES) <= parameters
    # The options SQLAlchemy itself coerces from string config are all checked.
    assert set(DefaultDialect.engine_config_types) <= set(ENGINE_OPTION_TYPES)


# The config keys themselves


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("SQLALCHEMY_BINDS", [], "must be a dict, not list"),
        ("SQLALCHEMY_BINDS", 0, "must be a dict, not int"),
        ("SQLALCHEMY_BINDS", "", "must be a dict, not str"),
        ("SQLALCHEMY_ENGINE_OPTIONS", [], "must be a dict, not list"),
        ("SQLALCHEMY_ENGINE_OPTIONS", False, "must be a dict, not bool"),
        ("SQLALCHEMY_ECHO", "False", 'must be True, False or "debug", not str'),
        ("SQLALCHEMY_ECHO", 1, 'must be True, False or "debug", not int'),
    ],
)
def test_config_key_of_the_wrong_type_fails_at_init_app_naming_it(
    key: str, value: object, expected: str, instance_path: Path
) -> None:
    with pytest.raises(TypeError) as info:
        init_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", key: value}, instance_path)
    assert str(info.value) == f"{key!r} {expected}."


def test_none_is_the_same_as_unset(instance_path: Path) -> None:
    config = {
        "SQLALCHEMY_DATABASE_URI": "sqlite://",
        "SQLALCHEMY_BINDS": None,
        "SQLALCHEMY_ENGINE_OPTIONS": None,
        "SQLALCHEMY_ECHO": None,
    }
    with pytest.raises(RuntimeError, match="'SQLALCHEMY_BINDS\\['auth'\\]' must be set"):
        init_app(config, instance_path)
    with DatabaseCore(config, Base) as core:
        assert not core.engine.echo


@pytest.mark.parametrize("value", [["sqlite://"], 42, b"sqlite://"])
def test_bind_of_the_wrong_type_says_what_a_bind_can_be(value: object) -> None:
    with pytest.raises(TypeError) as info:
        DatabaseCore({"SQLALCHEMY_BINDS": {"auth": value}})
    assert str(info.value) == (
        "'SQLALCHEMY_BINDS['auth']' must be a URL string, a sqlalchemy.URL or a dict of"
        f" engine options with a 'url', not {type(value).__name__}."
    )


# Isolation levels, as each dialect lists them


@pytest.mark.parametrize(
    ("url", "good", "bad"),
    [
        ("sqlite:///app.db", ["READ UNCOMMITTED", "serializable", "AUTOCOMMIT"], "READ COMMITTED"),
        (
            "postgresql+psycopg://user@db.invalid/app",
            ["read_committed", "Repeatable Read", "autocommit"],
            "SNAPSHOT",
        ),
        (
            "mysql+pymysql://user@db.invalid/app",
            ["READ_COMMITTED", "serializable", "AUTOCOMMIT"],
            "SNAPSHOT",
        ),
    ],
)
def test_isolation_level_is_one_the_dialect_lists(url: str, good: list[str], bad: str) -> None:
    for level in good:
        for options in (
            {"isolation_level": level},
            {"execution_options": {"isolation_level": level}},
        ):
            DatabaseCore(
                {"SQLALCHEMY_DATABASE_URI": url, "SQLALCHEMY_ENGINE_OPTIONS": options}
            ).dispose()
    dialect = sa.make_url(url).get_dialect()
    with pytest.raises(ValueError, match="is not an isolation level") as info:
        DatabaseCore(
            {"SQLALCHEMY_DATABASE_URI": url, "SQLALCHEMY_ENGINE_OPTIONS": {"isolation_level": bad}}
        )
    message = str(info.value)
    assert message.startswith("""'SQLALCHEMY_ENGINE_OPTIONS["isolation_level"]' is not""")
    assert f"{dialect.name}+{dialect.driver}" in message
    assert bad not in message  # the value is not repeated; the levels that exist are
    with pytest.raises(ValueError, match="is not an isolation level") as info:
        DatabaseCore(
            {
                "SQLALCHEMY_DATABASE_URI": url,
                "SQLALCHEMY_ENGINE_OPTIONS": {"execution_options": {"isolation_level": bad}},
            }
        )
    assert str(info.value).startswith(
        """'SQLALCHEMY_ENGINE_OPTIONS["execution_options"]["isolation_level"]' is not"""
    )


def test_isolation_level_of_engine_options_is_checked_for_each_bind(tmp_path: Path) -> None:
    config = {
        "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://user@db.invalid/app",
        "SQLALCHEMY_BINDS": {"auth": f"sqlite:///{tmp_path / 'auth.db'}"},
    }
    with pytest.raises(ValueError, match="is not an isolation level") as info:
        DatabaseCore(config, engine_options={"isolation_level": "READ COMMITTED"})
    message = str(info.value)
    assert message.startswith('engine_options["isolation_level"] is not')
    assert "sqlite+pysqlite" in message
    assert "'SQLALCHEMY_BINDS['auth']'" in message


def test_bad_isolation_level_fails_before_connecting(database_url: str) -> None:
    # Before, the engine was made and the first query raised.
    config = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"isolation_level": "BOGUS"},
    }
    with pytest.raises(ValueError, match="is not an isolation level"):
        DatabaseCore(config)


@pytest.mark.parametrize("spelling", ["read_uncommitted", "READ UNCOMMITTED", "Read_Uncommitted"])
def test_isolation_level_in_any_case_reaches_the_database(
    database_url: str, spelling: str
) -> None:
    config = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"isolation_level": spelling},
    }
    with DatabaseCore(config) as core, core.engine.connect() as connection:
        assert connection.get_isolation_level() == "READ UNCOMMITTED"


def test_pool_options_reach_the_pool_on_every_backend(database_url: str) -> None:
    config = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 2, "max_overflow": 0, "pool_timeout": 1.5},
    }
    with DatabaseCore(config) as core:
        pool = core.engine.pool
        assert isinstance(pool, QueuePool)
        assert (pool.size(), pool.timeout()) == (2, 1.5)
        with core.engine.connect() as connection:
            assert connection.execute(sa.text("SELECT 1")).scalar() == 1
