"""A database URL's password never shows in an error, a warning, a log line or a repr."""

from __future__ import annotations

import json
import logging
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from flask_typed_db import Database
from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import read_config

#: Distinctive, and unchanged by URL quoting, so that any leak is found verbatim.
SECRET = "Pw-7e1f9c-never-shown"
PG_URL = f"postgresql+psycopg://user:{SECRET}@db.invalid:5432/app"
MYSQL_URL = f"mysql+pymysql://user:{SECRET}@db.invalid:3306/app"


class Base(DeclarativeBase):
    pass


class AuthBase(DeclarativeBase):
    metadata = sa.MetaData(info={"bind_key": "auth"})


class Secretive(Base):
    __tablename__ = "secret_row"
    id: Mapped[int] = mapped_column(primary_key=True)


def make_app(instance_path: Path, **config: Any) -> tuple[Flask, Database]:
    db = Database(Base, AuthBase)
    app = Flask(__name__, instance_path=str(instance_path))
    for key, value in config.items():
        app.config[key] = value
    db.init_app(app)
    return app, db


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record as a handler would write it, tracebacks included."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


def test_reprs_hide_the_password(instance_path: Path) -> None:
    app, db = make_app(
        instance_path,
        SQLALCHEMY_DATABASE_URI=PG_URL,
        SQLALCHEMY_BINDS={"auth": {"url": MYSQL_URL, "pool_size": 2}},
    )
    with app.app_context():
        texts = [
            repr(db),
            repr(db.engine),
            repr(db.engines),
            repr(dict(db.engines)),
            str(db.engine.url),
            repr(db.engines["auth"].url),
            repr(db.engine.pool),
        ]
    with DatabaseCore(app.config, Base, AuthBase) as core:
        texts += [repr(core), repr(core.engines), str(core)]
    texts.append(repr(read_config(app.config)))
    for text in texts:
        assert "***" in text or "Database" in text or "Pool" in text
        assert SECRET not in text


@pytest.mark.parametrize(
    "url",
    [
        # An unescaped "@" and ":" in the password: SQLAlchemy reads part of it as the port.
        f"postgresql+psycopg://user:x@y:{SECRET}@db.invalid/app",
        f"postgresql+psycopg://user:{SECRET}@db.invalid:port/app",
        f"not a url, but a password: {SECRET}",
    ],
)
def test_unparsable_url_error_hides_the_password(url: str) -> None:
    with pytest.raises(ValueError, match="not a valid database URL") as info:
        DatabaseCore({"SQLALCHEMY_DATABASE_URI": url})
    assert SECRET not in str(info.value)
    # Nor in the exception a traceback would show as its context.
    assert info.value.__suppress_context__
    assert info.value.__cause__ is None


def test_url_of_the_wrong_type_error_hides_the_password() -> None:
    with pytest.raises(
        TypeError, match=re.escape("""'SQLALCHEMY_BINDS['auth']["url"]'""")
    ) as info:
        read_config({"SQLALCHEMY_BINDS": {"auth": {"url": PG_URL.encode()}}})
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "config",
    [
        # The URL under a misspelled key, in a bind dict without "url".
        {"SQLALCHEMY_DATABASE_URI": "sqlite://", "SQLALCHEMY_BINDS": {"auth": {"uri": PG_URL}}},
        # A bind with no URL while others carry passwords.
        {"SQLALCHEMY_DATABASE_URI": PG_URL},
        # No URL at all, with one in a misspelled key.
        {"SQLALCHEMY_DATABASE_URL": PG_URL},
    ],
)
def test_config_errors_and_warnings_hide_the_password(
    config: dict[str, Any], instance_path: Path
) -> None:
    app = Flask(__name__, instance_path=str(instance_path))
    for key, value in config.items():
        app.config[key] = value
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError) as info:
            Database(Base, AuthBase).init_app(app)
    assert SECRET not in str(info.value)
    assert all(SECRET not in str(warning.message) for warning in caught)


def test_unknown_key_warning_hides_the_password_in_its_value() -> None:
    config = {"SQLALCHEMY_DATABASE_URI": "sqlite://", "SQLALCHEMY_BINDZ": {"auth": PG_URL}}
    with pytest.warns(UserWarning, match="'SQLALCHEMY_BINDZ'") as records:
        read_config(config)
    assert all(SECRET not in str(record.message) for record in records)


@pytest.mark.parametrize(
    "config",
    [
        {"SQLALCHEMY_DATABASE_URI": PG_URL, "SQLALCHEMY_ENGINE_OPTIONS": {"no_such_option": 1}},
        {"SQLALCHEMY_DATABASE_URI": f"postgresql+nodriver://user:{SECRET}@db.invalid/app"},
    ],
)
def test_engine_creation_error_hides_the_password(config: dict[str, Any]) -> None:
    with pytest.raises(Exception) as info:  # noqa: PT011  # SQLAlchemy's own error types
        DatabaseCore(config)
    assert "'SQLALCHEMY_DATABASE_URI'" in "".join(getattr(info.value, "__notes__", []))
    assert SECRET not in str(info.value)
    assert all(SECRET not in note for note in getattr(info.value, "__notes__", []))


def test_failed_connection_in_a_view_logs_no_password(
    instance_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on port 1: the connection is refused at once.
    app, db = make_app(
        instance_path,
        SQLALCHEMY_DATABASE_URI=f"postgresql+psycopg://user:{SECRET}@127.0.0.1:1/app",
        SQLALCHEMY_BINDS={"auth": "sqlite://"},
        SQLALCHEMY_ECHO=True,
    )

    @app.get("/")
    def index() -> str:
        db.session.execute(sa.select(Secretive))
        return "unreachable"

    with caplog.at_level(logging.DEBUG):
        assert app.test_client().get("/").status_code == 500
    logged = everything_logged(caplog)
    assert "OperationalError" in logged
    assert SECRET not in logged


def test_echo_logs_no_password_on_a_live_database(
    postgresql_url: str, instance_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The test server trusts local connections, so any password is accepted.
    url = sa.make_url(postgresql_url).set(password=SECRET)
    app, db = make_app(
        instance_path,
        SQLALCHEMY_DATABASE_URI=url,
        SQLALCHEMY_BINDS={"auth": "sqlite://"},
        SQLALCHEMY_ECHO="debug",
    )
    with caplog.at_level(logging.DEBUG):
        with app.app_context():
            db.create_all()
            db.session.add(Secretive())
            db.session.commit()
            assert db.session.scalars(sa.select(Secretive.id)).all() == [1]
        with app.app_context():
            db.engine.dispose()
    logged = everything_logged(caplog)
    assert "secret_row" in logged
    assert SECRET not in logged


# Passwords SQLAlchemy's URL does not hide by itself


#: The password as a query parameter, which the drivers read as the password.
QUERY_PASSWORD_URLS = [
    f"postgresql+psycopg://user@127.0.0.1:1/app?password={SECRET}",
    f"postgresql+psycopg://user@127.0.0.1:1/app?sslmode=disable&password={SECRET}",
    f"mysql+pymysql://user@127.0.0.1:1/app?password={SECRET}",
    f"mysql+pymysql://user@127.0.0.1:1/app?passwd={SECRET}",
]


@pytest.mark.parametrize("url", QUERY_PASSWORD_URLS)
def test_password_in_the_query_is_hidden(
    url: str, instance_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        # Nothing listens on port 1: the health check is refused at once.
        app, db = make_app(
            instance_path,
            SQLALCHEMY_DATABASE_URI=url,
            SQLALCHEMY_BINDS={"auth": {"url": sa.make_url(url), "pool_size": 2}},
            SQLALCHEMY_ECHO="debug",
        )
        with app.app_context():
            report = db.check_health(timeout=5)
            texts = [
                repr(db),
                repr(db.engine),
                repr(db.engines["auth"]),
                str(db.engine.url),
                repr(db.engine.url),
                json.dumps(report.as_dict(detail=True)),
                repr(read_config(app.config)),
            ]
    assert not report.ok
    assert all("***" in bind.url for bind in report.binds)
    for text in [*texts, everything_logged(caplog)]:
        assert SECRET not in text


def test_password_in_the_query_keeps_the_rest_of_the_query() -> None:
    specs = read_config(
        {
            "SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://u@h/app?sslmode=disable&password={SECRET}"
        }
    )
    url = specs[None].url
    assert url.password == SECRET
    assert dict(url.query) == {"sslmode": "disable"}


def test_password_twice_is_an_error_naming_the_key() -> None:
    url = f"postgresql+psycopg://user:other@db.invalid/app?password={SECRET}"
    with pytest.raises(ValueError, match="'SQLALCHEMY_DATABASE_URI' has a password twice") as info:
        DatabaseCore({"SQLALCHEMY_DATABASE_URI": url})
    assert SECRET not in str(info.value)
    assert "other" not in str(info.value)


def test_password_in_the_query_reaches_the_driver(
    database_url: str, instance_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        pytest.skip("SQLite has no password")
    configured = url.update_query_dict({"password": SECRET}).render_as_string(hide_password=False)
    app, db = make_app(
        instance_path,
        SQLALCHEMY_DATABASE_URI=configured,
        SQLALCHEMY_BINDS={"auth": "sqlite://"},
        SQLALCHEMY_ECHO="debug",
    )
    connect_args: list[dict[str, Any]] = []

    def remember(dialect: object, record: object, cargs: object, cparams: dict[str, Any]) -> None:
        connect_args.append(dict(cparams))

    with caplog.at_level(logging.DEBUG), app.app_context():
        event.listen(db.engine, "do_connect", remember)
        report = db.check_health(timeout=5)
        texts = [repr(db.engine), json.dumps(report.as_dict(detail=True))]
    assert [args["password"] for args in connect_args] == [SECRET]
    if url.get_backend_name() == "postgresql":
        # The server trusts local connections, whatever the password.
        assert report.ok
    else:
        # MariaDB's root has no password: one is sent, and refused.
        (default,) = [bind for bind in report.binds if bind.bind_key is None]
        assert default.error is not None
        assert "using password: YES" in default.error
    for text in [*texts, everything_logged(caplog)]:
        assert SECRET not in text


def test_password_in_the_query_connects_on_postgresql(postgresql_url: str) -> None:
    configured = sa.make_url(postgresql_url).update_query_dict({"password": SECRET})
    with (
        DatabaseCore({"SQLALCHEMY_DATABASE_URI": configured.render_as_string(False)}) as core,
        core.engine.connect() as connection,
    ):
        dbapi_connection: Any = connection.connection.dbapi_connection
        assert dbapi_connection.info.password == SECRET
        assert SECRET not in repr(core.engine)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://user:Pw@{SECRET}@db.invalid/app",
        f"postgresql+psycopg://user:Pw@{SECRET}@db.invalid:5432/app",
        f"mysql+pymysql://user:{SECRET}@x@db.invalid/app",
        f"postgresql+psycopg://user:Pw@{SECRET}@/app?host=/tmp",
    ],
)
def test_unescaped_at_sign_in_the_password_is_an_error_saying_to_encode_it(
    url: str, instance_path: Path
) -> None:
    for config in (
        {"SQLALCHEMY_DATABASE_URI": url, "SQLALCHEMY_BINDS": {"auth": "sqlite://"}},
        {"SQLALCHEMY_DATABASE_URI": "sqlite://", "SQLALCHEMY_BINDS": {"auth": url}},
    ):
        with pytest.raises(ValueError, match="%40") as info:
            make_app(instance_path, **config)
        message = str(info.value)
        assert message.startswith(("'SQLALCHEMY_DATABASE_URI'", "'SQLALCHEMY_BINDS['auth']'"))
        assert SECRET not in message
        assert "Pw" not in message
        assert info.value.__cause__ is None


def test_escaped_at_sign_in_the_password_is_kept(instance_path: Path) -> None:
    url = f"postgresql+psycopg://user:Pw%40{SECRET}@db.invalid/app"
    app, db = make_app(
        instance_path, SQLALCHEMY_DATABASE_URI=url, SQLALCHEMY_BINDS={"auth": "sqlite://"}
    )
    with app.app_context():
        assert db.engine.url.password == f"Pw@{SECRET}"
        assert db.engine.url.host == "db.invalid"
        assert SECRET not in repr(db.engine)
