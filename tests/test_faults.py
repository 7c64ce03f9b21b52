"""Faults: an exhausted pool, a database down at start-up, ids no column can hold."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from flask import Flask
from flask.typing import ResponseReturnValue
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Mapper
from sqlalchemy.orm import mapped_column
from werkzeug.exceptions import HTTPException

from flask_typed_db import Database
from flask_typed_db.core._identity import NO_ROW
from flask_typed_db.core._identity import identity_for


class Base(DeclarativeBase):
    pass


class Small(Base):
    __tablename__ = "fault_small"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)


class Big(Base):
    __tablename__ = "fault_big"
    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)


class Pair(Base):
    __tablename__ = "fault_pair"
    left: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    right: Mapped[str] = mapped_column(sa.String(10), primary_key=True)


class MySQLBase(DeclarativeBase):
    """Models of MySQL's own types: never created, only inspected."""


class Unsigned(MySQLBase):
    __tablename__ = "fault_unsigned"
    id: Mapped[int] = mapped_column(mysql.INTEGER(unsigned=True), primary_key=True)


def make_app(database_url: str, instance_path: Path, **config: object) -> tuple[Flask, Database]:
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    app.config.from_mapping(config)
    db = Database(Base, app=app)

    @app.get("/")
    def index() -> ResponseReturnValue:
        return "no database needed"

    @app.get("/count")
    def count() -> ResponseReturnValue:
        return str(db.session.scalar(sa.select(sa.func.count()).select_from(Small)))

    @app.get("/small/<int(signed=True):ident>")
    def small(ident: int) -> ResponseReturnValue:
        return str(db.get_or_404(Small, ident).id)

    @app.get("/big/<int(signed=True):ident>")
    def big(ident: int) -> ResponseReturnValue:
        return str(db.get_or_404(Big, ident).id)

    return app, db


def dialect(name: str) -> sa.Dialect:
    """A dialect as an engine of that URL has it; nothing is connected."""
    return sa.create_engine(f"{name}://").dialect


def exhausted_pool_app(database_url: str, instance_path: Path) -> tuple[Flask, Database]:
    app, db = make_app(
        database_url,
        instance_path,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 1, "max_overflow": 0, "pool_timeout": 0.2},
    )
    with app.app_context():
        db.create_all()
    return app, db


def test_a_request_that_gets_no_pooled_connection_in_time_is_a_503(
    database_url: str, instance_path: Path
) -> None:
    app, db = exhausted_pool_app(database_url, instance_path)
    client = app.test_client()
    with app.app_context():
        engine = db.engine
    with engine.connect():
        busy = client.get("/count")
        assert busy.status_code == 503
        assert busy.headers["Retry-After"] == "1"
        assert "The database is busy" in busy.text
        # A request that needs no connection is not held up.
        assert client.get("/").status_code == 200
    assert client.get("/count").text == "0"


def test_a_pool_timeout_is_answered_by_the_apps_own_503_handler(
    tmp_path: Path, instance_path: Path
) -> None:
    app, db = exhausted_pool_app(f"sqlite:///{tmp_path / 'db.sqlite'}", instance_path)

    @app.errorhandler(503)
    def unavailable(error: HTTPException) -> ResponseReturnValue:
        return {"error": error.description}, 503

    with app.app_context():
        engine = db.engine
    with engine.connect():
        response = app.test_client().get("/count")
    assert response.status_code == 503
    assert response.json is not None
    assert response.json["error"].startswith("The database is busy")


def test_a_pool_timeout_handler_of_the_app_is_kept(tmp_path: Path, instance_path: Path) -> None:
    app = Flask(__name__, instance_path=str(instance_path))

    @app.errorhandler(sa_exc.TimeoutError)
    def own(error: sa_exc.TimeoutError) -> ResponseReturnValue:
        return "mine", 504

    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'db.sqlite'}"
    Database(Base, app=app)
    assert app.error_handler_spec[None][None][sa_exc.TimeoutError] is own


def test_the_app_starts_with_its_database_down_and_says_so(instance_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    # Nothing listens on that port now: every connection is refused.
    app, db = make_app(f"postgresql+psycopg://app:s3cret@127.0.0.1:{port}/app", instance_path)

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        report = db.check_health(timeout=5)
        return report.as_dict(), 200 if report.ok else 503

    @app.get("/internal/healthz")
    def healthz_detail() -> ResponseReturnValue:
        report = db.check_health(timeout=5)
        return report.as_dict(detail=True), 200 if report.ok else 503

    client = app.test_client()
    assert client.get("/").status_code == 200
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.json is not None
    assert [bind["error"] for bind in health.json["binds"]] == ["OperationalError"]
    detail = client.get("/internal/healthz")
    assert detail.status_code == 503
    assert "Connection refused" in detail.text
    assert "s3cret" not in detail.text
    assert client.get("/count").status_code == 500


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/small/2147483647", 404),
        ("/small/2147483648", 404),
        ("/small/-2147483649", 404),
        ("/small/9223372036854775808", 404),
        ("/small/100000000000000000000000000000", 404),
        ("/big/9223372036854775807", 404),
        ("/big/9223372036854775808", 404),
        ("/big/-9223372036854775809", 404),
        ("/big/4294967296", 200),
    ],
)
def test_an_id_no_primary_key_column_can_hold_is_a_404_not_an_error(
    database_url: str, instance_path: Path, path: str, status: int
) -> None:
    app, db = make_app(database_url, instance_path)
    with app.app_context():
        db.create_all()
        db.session.add(Big(id=2**32))
        db.session.commit()
    assert app.test_client().get(path).status_code == status


def test_the_session_stays_usable_after_an_id_too_large(
    database_url: str, instance_path: Path
) -> None:
    app, db = make_app(database_url, instance_path)
    with app.app_context():
        db.create_all()
        db.session.add(Small(id=1))
        db.session.flush()
        with pytest.raises(HTTPException):
            db.get_or_404(Small, 2**40)
        # No error reached the database: the transaction goes on with its work.
        assert db.get_or_404(Small, 1).id == 1


@pytest.mark.parametrize(
    ("backend", "model", "ident", "fits"),
    [
        (dialect("postgresql+psycopg"), Small, 2**31 - 1, True),
        (dialect("postgresql+psycopg"), Small, 2**31, False),
        (dialect("sqlite"), Small, 2**31, True),
        (dialect("sqlite"), Small, 2**63, False),
        (dialect("mysql+pymysql"), Big, 2**63, False),
        (dialect("postgresql+psycopg"), Pair, (2**15, "a"), False),
        (dialect("postgresql+psycopg"), Pair, (2**15 - 1, "a"), True),
        (dialect("postgresql+psycopg"), Pair, {"left": -(2**15) - 1, "right": "a"}, False),
        (dialect("postgresql+psycopg"), Pair, {"right": "a", "left": 7}, True),
        (dialect("postgresql+psycopg"), Small, "2147483648", False),
        (dialect("postgresql+psycopg"), Small, "2147483647", True),
    ],
)
def test_identity_fits_its_primary_key_columns(
    backend: sa.Dialect, model: type[Base], ident: object, fits: bool
) -> None:
    assert identity_fits(sa.inspect(model), ident, backend) is fits


def identity_fits(mapper: Mapper[Any], ident: object, backend: sa.Dialect) -> bool:
    return identity_for(mapper, ident, backend) is not NO_ROW


def test_unsigned_mysql_integers_fit_up_to_their_own_maximum() -> None:
    mapper = sa.inspect(Unsigned)
    assert identity_fits(mapper, 2**32 - 1, dialect("mysql+pymysql"))
    assert not identity_fits(mapper, 2**32, dialect("mysql+pymysql"))
    assert not identity_fits(mapper, -1 - 2**15, dialect("mysql+pymysql"))
