"""A pooled connection that the server ended while it sat idle never fails a request."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.typing import ResponseReturnValue
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from tests.server_sessions import end_server_session

from flask_typed_db import Database


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "dead_connection_item"
    id: Mapped[int] = mapped_column(primary_key=True)


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    url: str = request.getfixturevalue(f"{backend}_url")
    return url


def backend_id(connection: sa.Connection) -> int:
    query = "SELECT pg_backend_pid()" if connection.dialect.name == "postgresql" else None
    value: int = connection.execute(sa.text(query or "SELECT CONNECTION_ID()")).scalar_one()
    return value


def make_app(url: str, instance_path: Path, **engine_options: object) -> tuple[Flask, Database]:
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    # One pooled connection, so the next request gets the one that was ended.
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_size": 1, **engine_options}
    db = Database(Base, app=app)
    with app.app_context():
        db.create_all()

    @app.get("/server-id")
    def server_id() -> ResponseReturnValue:
        return str(backend_id(db.session.connection()))

    @app.get("/count")
    def count() -> ResponseReturnValue:
        return str(db.session.scalar(sa.select(sa.func.count(Item.id))))

    return app, db


def test_request_after_the_server_ended_the_idle_pooled_connection_succeeds(
    server_url: str, instance_path: Path
) -> None:
    app, _ = make_app(server_url, instance_path)
    client = app.test_client()
    first = client.get("/server-id")
    assert first.status_code == 200
    end_server_session(server_url, int(first.get_data(as_text=True)))

    assert client.get("/count").get_data(as_text=True) == "0"
    second = client.get("/server-id")
    assert second.status_code == 200
    # A new server session: the dead one was replaced, not retried.
    assert second.get_data(as_text=True) != first.get_data(as_text=True)


def test_live_idle_connections_are_checked_without_a_round_trip(
    server_url: str, instance_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, db = make_app(server_url, instance_path)
    client = app.test_client()
    first = client.get("/server-id")
    with app.app_context():
        dialect = db.engine.dialect
    pings: list[DBAPIConnection] = []
    real_ping = dialect.do_ping

    def counting_ping(dbapi_connection: DBAPIConnection) -> bool:
        pings.append(dbapi_connection)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counting_ping)
    assert client.get("/count").status_code == 200
    assert pings == []  # a live, quiet connection is not pinged

    end_server_session(server_url, int(first.get_data(as_text=True)))
    assert client.get("/count").status_code == 200
    assert len(pings) == 1  # an ended one is, and fails it


def test_pool_pre_ping_false_turns_the_check_off(server_url: str, instance_path: Path) -> None:
    app, _ = make_app(server_url, instance_path, pool_pre_ping=False)
    client = app.test_client()
    first = client.get("/server-id")
    end_server_session(server_url, int(first.get_data(as_text=True)))

    assert client.get("/count").status_code == 500


def test_pool_pre_ping_true_keeps_sqlalchemys_own_ping(
    server_url: str, instance_path: Path
) -> None:
    app, _ = make_app(server_url, instance_path, pool_pre_ping=True)
    client = app.test_client()
    first = client.get("/server-id")
    end_server_session(server_url, int(first.get_data(as_text=True)))

    assert client.get("/count").status_code == 200
