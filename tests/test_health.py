"""Health checks: every bind answers, or the report says which does not and why."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from flask import Flask
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import QueuePool

from flask_typed_db import Database
from flask_typed_db.core import DatabaseCore


class Base(DeclarativeBase):
    pass


class AuthBase(DeclarativeBase):
    metadata = sa.MetaData(info={"bind_key": "auth"})


def health_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("flask-typed-db health check")]


@pytest.fixture
def silent_port() -> Iterator[tuple[int, socket.socket]]:
    """A port that accepts TCP connections and never answers: a hung database server.
    Closing the socket resets the waiting connections.
    """
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1], server


@pytest.fixture
def unreachable_sqlite(tmp_path: Path) -> str:
    # A directory that does not exist: SQLite cannot open the file.
    return f"sqlite:///{tmp_path / 'missing' / 'db.sqlite'}"


def test_healthy_binds_are_reported_ok_and_their_connections_returned(
    database_url: str, tmp_path: Path
) -> None:
    config = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_BINDS": {"auth": f"sqlite:///{tmp_path / 'auth.sqlite'}"},
    }
    with DatabaseCore(config, Base, AuthBase) as core:
        report = core.check_health(timeout=10)
        assert report.ok
        assert [bind.bind_key for bind in report.binds] == ["auth", None]
        for bind in report.binds:
            assert bind.ok
            assert bind.error is None
            assert 0 < bind.duration < 10
            assert bind.url == core.get_engine(bind.bind_key).url.render_as_string()
        default_pool = core.engine.pool
        if isinstance(default_pool, QueuePool):
            assert default_pool.checkedout() == 0


def test_a_failing_bind_is_reported_with_its_reason_and_the_others_stay_ok(
    tmp_path: Path, unreachable_sqlite: str
) -> None:
    config = {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'ok.sqlite'}",
        "SQLALCHEMY_BINDS": {"auth": unreachable_sqlite},
    }
    with DatabaseCore(config, Base, AuthBase) as core:
        report = core.check_health(timeout=10)
    assert not report.ok
    auth, default = report.binds
    assert (auth.bind_key, auth.ok) == ("auth", False)
    assert auth.error == "OperationalError: unable to open database file"
    assert default.ok
    # What a probe returns: the type of the driver's error, no URL.
    data = report.as_dict()
    assert data == {
        "ok": False,
        "binds": [
            {
                "bind_key": "auth",
                "ok": False,
                "duration": auth.duration,
                "error": "OperationalError",
            },
            {"bind_key": None, "ok": True, "duration": default.duration, "error": None},
        ],
    }
    json.dumps(data)  # ready for a JSON response as it is
    # What an operator asks for: the URLs and the driver's own words.
    assert report.as_dict(detail=True) == {
        "ok": False,
        "binds": [
            {
                "bind_key": "auth",
                "url": unreachable_sqlite,
                "ok": False,
                "duration": auth.duration,
                "error": "OperationalError: unable to open database file",
            },
            {
                "bind_key": None,
                "url": default.url,
                "ok": True,
                "duration": default.duration,
                "error": None,
            },
        ],
    }


def test_the_report_for_a_probe_names_no_file_host_or_user(
    tmp_path: Path, unreachable_sqlite: str
) -> None:
    # Nothing listens on this port: the driver's error names the host it tried.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"postgresql+psycopg://shopkeeper:hunter2@127.0.0.1:{port}/shop"
    config = {"SQLALCHEMY_DATABASE_URI": url, "SQLALCHEMY_BINDS": {"auth": unreachable_sqlite}}
    with DatabaseCore(config, Base, AuthBase) as core:
        report = core.check_health(timeout=10)
    auth, default = report.binds
    assert default.error is not None
    assert "127.0.0.1" in default.error  # psycopg says where it tried to connect

    public = report.as_dict()
    assert public["binds"] == [
        {"bind_key": "auth", "ok": False, "duration": auth.duration, "error": "OperationalError"},
        {"bind_key": None, "ok": False, "duration": default.duration, "error": "OperationalError"},
    ]
    for revealing in [str(tmp_path), "127.0.0.1", str(port), "shopkeeper", "shop", "sqlite"]:
        assert revealing not in json.dumps(public)
    # The operator's view has them all, but the password.
    detail = json.dumps(report.as_dict(detail=True))
    for revealing in [str(tmp_path), "127.0.0.1", str(port), "shopkeeper", "Connection refused"]:
        assert revealing in detail
    assert "hunter2" not in detail


def test_a_hung_server_fails_at_the_time_limit_without_piling_up_threads(
    silent_port: tuple[int, socket.socket],
) -> None:
    port, server = silent_port
    url = f"postgresql+psycopg://app:hunter2@127.0.0.1:{port}/app"
    core = DatabaseCore({"SQLALCHEMY_DATABASE_URI": url}, Base)

    (first,) = core.check_health(timeout=0.2).binds
    assert (first.ok, first.error, first.duration) == (False, "no answer within 0.2 s", 0.2)
    assert first.url == f"postgresql+psycopg://app:***@127.0.0.1:{port}/app"
    # Our own words name nothing of the server: a probe shows them in full.
    assert first.summary == first.error
    (stuck,) = health_threads()

    # The next probe does not start a second check on the server that hangs.
    (second,) = core.check_health(timeout=0.2).binds
    assert not second.ok
    assert second.error == "the previous check has not finished: the database does not answer"
    assert second.summary == second.error
    assert health_threads() == [stuck]

    # Once the server goes away, the stuck check ends, and the next probe checks anew.
    server.close()
    stuck.join(timeout=10)
    assert not stuck.is_alive()
    (third,) = core.check_health(timeout=10).binds
    assert not third.ok
    assert third.error is not None
    assert third.error.startswith("OperationalError: ")
    core.dispose()


def test_a_password_the_driver_repeats_is_hidden_in_the_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "hunter2-s3cret"
    url = f"postgresql+psycopg://app:{secret}@127.0.0.1:5432/app"
    core = DatabaseCore({"SQLALCHEMY_DATABASE_URI": url}, Base)

    def refuse() -> NoReturn:
        # What a driver may say; SQLAlchemy wraps it as it wraps every driver error.
        raise sa_exc.OperationalError(
            "SELECT 1", None, OSError(f"password {secret} rejected for user app")
        )

    monkeypatch.setattr(core.engine, "connect", refuse)
    report = core.check_health(timeout=10)
    (bind,) = report.binds
    assert bind.error == "OSError: password *** rejected for user app"
    assert secret not in json.dumps(report.as_dict(detail=True))
    assert secret not in repr(report)


def test_a_busy_pool_is_told_apart_from_a_silent_server(tmp_path: Path) -> None:
    config = {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'busy.sqlite'}",
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 1, "max_overflow": 0, "pool_timeout": 30},
    }
    with DatabaseCore(config, Base) as core:
        with core.engine.connect():
            (busy,) = core.check_health(timeout=0.2).binds
        assert busy.error == "no answer within 0.2 s: all 1 pooled connections are in use"
        assert busy.summary == busy.error
        # The connection is back: the waiting check gets it, and the next one is ok.
        for thread in health_threads():
            thread.join(timeout=10)
        assert core.check_health(timeout=10).ok


@pytest.mark.parametrize("timeout", [0, -1, float("nan")])
def test_check_health_needs_a_positive_timeout(timeout: float) -> None:
    with (
        DatabaseCore({"SQLALCHEMY_DATABASE_URI": "sqlite://"}, Base) as core,
        pytest.raises(ValueError, match="timeout must be a positive number of seconds"),
    ):
        core.check_health(timeout=timeout)


def test_health_endpoint_answers_503_when_a_bind_is_down(
    tmp_path: Path, unreachable_sqlite: str
) -> None:
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'ok.sqlite'}",
        SQLALCHEMY_BINDS={"auth": unreachable_sqlite},
    )
    db = Database(Base, AuthBase, app=app)

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        report = db.check_health(timeout=5)
        return report.as_dict(), 200 if report.ok else 503

    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json is not None
    assert [bind["ok"] for bind in response.json["binds"]] == [False, True]

    healthy = Flask(__name__, instance_path=str(tmp_path))
    healthy.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'ok.sqlite'}"
    healthy_db = Database(Base, app=healthy)
    with healthy.app_context():
        assert healthy_db.check_health().ok


def test_check_health_outside_an_app_context_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match=r"outside of application context"):
        Database(Base).check_health()
