"""Read replicas on SQLite: which statements each session sends where, replicas that
cannot be reached, health, test isolation, the Flask adapter's per-request rules and
its read-your-writes cookie, and the configuration's errors.

Each "server" is a SQLite file of its own whose one row says which it is, so that a read
shows where it went. The same rules against a real primary and a streaming replica are
in ``test_replicas_servers.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.typing import ResponseReturnValue
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Session
from sqlalchemy.orm import mapped_column

from flask_typed_db import Database
from flask_typed_db._replica_requests import WROTE_COOKIE
from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import _replicas  # pyright: ignore[reportPrivateUsage]  # its retry interval, shortened

PASSWORD = "replica-secret"


class Base(DeclarativeBase):
    pass


class AuthBase(DeclarativeBase):
    metadata = sa.MetaData(info={"bind_key": "auth"})


class Place(Base):
    """One row per database: where it is."""

    __tablename__ = "replica_place"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))


class Grant(AuthBase):
    __tablename__ = "replica_grant"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))


def make_database(path: Path, name: str) -> str:
    url = f"sqlite:///{path}"
    engine = sa.create_engine(url)
    for base in (Base, AuthBase):
        base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.insert(Place), [{"id": 1, "name": name}])
        connection.execute(sa.insert(Grant), [{"id": 1, "name": name}])
    engine.dispose()
    return url


@pytest.fixture
def urls(tmp_path: Path) -> dict[str, str]:
    return {
        name: make_database(tmp_path / f"{name}.db", name)
        for name in ("primary", "replica-1", "replica-2", "auth", "auth-replica")
    }


#: A SQLite URL that cannot be opened: a read-only file in a folder that is not there.
UNREACHABLE = "sqlite:///file:/nonexistent-folder/replica.db?mode=ro&uri=true"


@pytest.fixture
def core(urls: dict[str, str]) -> Iterator[DatabaseCore]:
    config = {
        "SQLALCHEMY_DATABASE_URI": urls["primary"],
        "SQLALCHEMY_REPLICAS": {None: [urls["replica-1"]]},
    }
    core = DatabaseCore(config, Base)
    yield core
    core.dispose()


def where(session: Session) -> str:
    """Which database the session's next read of the row goes to."""
    name = session.scalar(sa.select(Place.name).where(Place.id == 1))
    assert name is not None
    return name


# -- Which statement goes where --------------------------------------------------------


def test_reads_go_to_the_replica_until_the_session_writes(core: DatabaseCore) -> None:
    with core.sessionmaker() as session:
        assert where(session) == "replica-1"
        place = session.get(Place, 1)
        assert place is not None
        assert place.name == "replica-1"
        session.add(Place(id=2, name="new"))
        session.flush()
        # The flush went to the primary: so does everything after it.
        assert where(session) == "primary"
        assert session.get(Place, 2) is not None
        session.commit()
        # Refreshed after the commit, from the primary, where the row is.
        assert session.scalars(sa.select(Place.id).order_by(Place.id)).all() == [1, 2]
        assert where(session) == "primary"
    # A new session starts on the replica again: nothing leaks from the last one.
    with core.sessionmaker() as session:
        assert where(session) == "replica-1"


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(sa.update(Place).values(name="changed").where(Place.id == 0), id="update"),
        pytest.param(sa.delete(Place).where(Place.id == 0), id="delete"),
        pytest.param(
            sa.insert(Place).from_select(
                ["id", "name"], sa.select(Place.id, Place.name).where(Place.id == 0)
            ),
            id="insert",
        ),
        pytest.param(sa.text("SELECT 1"), id="text"),
        pytest.param(sa.select(Place).with_for_update(), id="for-update"),
    ],
)
def test_statements_that_may_write_or_lock_pin_the_session_to_the_primary(
    core: DatabaseCore, statement: sa.Executable
) -> None:
    with core.sessionmaker() as session:
        assert where(session) == "replica-1"
        session.execute(statement)
        assert where(session) == "primary"


def test_session_connection_without_a_statement_is_the_primarys(core: DatabaseCore) -> None:
    with core.sessionmaker() as session:
        assert session.connection().scalar(sa.select(Place.name)) == "primary"
        assert where(session) == "primary"


def test_a_lock_alone_does_not_count_as_a_committed_write(core: DatabaseCore) -> None:
    with core.sessionmaker() as session:
        session.execute(sa.select(Place).with_for_update())
        session.commit()
        assert not session.committed_write
        session.add(Place(id=3, name="written"))
        session.commit()
        assert session.committed_write


def test_primary_block_forces_the_primary_without_pinning(core: DatabaseCore) -> None:
    with core.sessionmaker() as session:
        with core.primary():
            assert where(session) == "primary"
            with core.primary():
                assert where(session) == "primary"
            assert where(session) == "primary"
        assert not session.on_primary
        assert where(session) == "replica-1"


def test_primary_decorates_sync_and_async_functions(core: DatabaseCore) -> None:
    import asyncio

    @core.primary()
    def read(session: Session) -> str:
        return where(session)

    @core.primary()
    async def read_async(session: Session) -> str:
        await asyncio.sleep(0)
        return where(session)

    with core.sessionmaker() as session:
        assert read(session) == "primary"
        assert asyncio.run(read_async(session)) == "primary"
        assert where(session) == "replica-1"


def test_sessions_take_turns_over_the_replicas(urls: dict[str, str]) -> None:
    config = {
        "SQLALCHEMY_DATABASE_URI": urls["primary"],
        "SQLALCHEMY_REPLICAS": {None: [urls["replica-1"], {"url": urls["replica-2"]}]},
    }
    with DatabaseCore(config, Base) as core:
        seen: list[str] = []
        for _ in range(4):
            with core.sessionmaker() as session:
                # A session keeps to one replica: its reads see one server's data.
                first = where(session)
                assert where(session) == first
                seen.append(first)
    assert sorted(seen) == ["replica-1", "replica-1", "replica-2", "replica-2"]


def test_binds_have_replicas_of_their_own(urls: dict[str, str]) -> None:
    config = {
        "SQLALCHEMY_DATABASE_URI": urls["primary"],
        "SQLALCHEMY_BINDS": {"auth": urls["auth"]},
        "SQLALCHEMY_REPLICAS": {"auth": [urls["auth-replica"]]},
    }
    with DatabaseCore(config, Base, AuthBase) as core, core.sessionmaker() as session:
        # The default bind has no replica: its reads stay on its primary.
        assert where(session) == "primary"
        assert session.scalar(sa.select(Grant.name)) == "auth-replica"
        session.add(Grant(id=2, name="new"))
        session.flush()
        assert session.scalar(sa.select(Grant.name).where(Grant.id == 1)) == "auth"


def test_get_or_404s_id_conversion_does_not_pin_the_session(urls: dict[str, str]) -> None:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = urls["primary"]
    app.config["SQLALCHEMY_REPLICAS"] = {None: [urls["replica-1"]]}
    db = Database(Base)
    db.init_app(app)

    @app.get("/places/<ident>")
    def place(ident: str) -> ResponseReturnValue:
        found = db.get_or_404(Place, ident)
        return f"{found.name} {where(db.session)}"

    assert app.test_client().get("/places/1").text == "replica-1 replica-1"


# -- Replicas that cannot be reached ---------------------------------------------------


def test_a_replica_that_cannot_be_reached_is_skipped_with_one_warning(
    urls: dict[str, str], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_typed_db")
    # Nothing listens on port 1: refused at once, as by a replica that is down.
    down = f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:1/app"
    config = {
        "SQLALCHEMY_DATABASE_URI": urls["primary"],
        "SQLALCHEMY_REPLICAS": {None: [down, urls["replica-1"]]},
    }
    with DatabaseCore(config, Base) as core:
        for _ in range(4):
            with core.sessionmaker() as session:
                assert where(session) == "replica-1"
        warnings = [record for record in caplog.records if "cannot be reached" in record.message]
        assert len(warnings) == 1
        assert PASSWORD not in caplog.text
        assert "postgresql+psycopg://app:***@127.0.0.1:1/app" in warnings[0].message
        # Tried again once its time is up: still down, so skipped again, without a
        # second warning for the same outage.
        monkeypatch.setattr(_replicas, "RETRY_AFTER", 0.0)
        replicas = core._replicas[None]  # pyright: ignore[reportPrivateUsage]  # what the sessions share
        tried: list[sa.Engine] = []

        def note_try(*args: object) -> None:
            tried.append(replicas.engines[0])

        event.listen(replicas.engines[0], "do_connect", note_try)
        replicas._down_until[0] = time.monotonic() - 1  # pyright: ignore[reportPrivateUsage]  # its time is up
        with core.sessionmaker() as session, core.sessionmaker() as other:
            assert {where(session), where(other)} == {"replica-1"}
        assert tried
        assert len([r for r in caplog.records if "cannot be reached" in r.message]) == 1


def test_reads_go_to_the_primary_when_no_replica_can_be_reached(urls: dict[str, str]) -> None:
    config = {
        "SQLALCHEMY_DATABASE_URI": urls["primary"],
        "SQLALCHEMY_REPLICAS": {None: [UNREACHABLE]},
    }
    with DatabaseCore(config, Base) as core, core.sessionmaker() as session:
        assert where(session) == "primary"
        assert not session.on_primary


def test_a_replica_back_up_serves_reads_again(
    urls: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_typed_db")
    later = tmp_path / "later.db"
    later_url = f"sqlite:///file:{later}?mode=ro&uri=true"
    config = {
        "SQLALCHEMY_DATABASE_URI": urls["primary"],
        "SQLALCHEMY_REPLICAS": {None: [later_url]},
    }
    with DatabaseCore(config, Base) as core:
        with core.sessionmaker() as session:
            assert where(session) == "primary"
        make_database(later, "later")
        replicas = core._replicas[None]  # pyright: ignore[reportPrivateUsage]  # what the sessions share
        replicas._down_until[0] = time.monotonic() - 1  # pyright: ignore[reportPrivateUsage]  # its time is up
        with core.sessionmaker() as session:
            assert where(session) == "later"
        assert not replicas.is_down(replicas.engines[0])
    assert "answers again" in caplog.text


# -- Health and test isolation ---------------------------------------------------------


def test_health_reports_each_replica_without_failing_for_one(urls: dict[str, str]) -> None:
    config = {
        "SQLALCHEMY_DATABASE_URI": urls["primary"],
        "SQLALCHEMY_REPLICAS": {None: [urls["replica-1"], UNREACHABLE]},
    }
    with DatabaseCore(config, Base) as core:
        report = core.check_health()
    assert report.ok
    assert [(replica.replica, replica.ok) for replica in report.replicas] == [
        (0, True),
        (1, False),
    ]
    as_dict = report.as_dict()
    replicas: Any = as_dict["replicas"]
    assert [(entry["replica"], entry["ok"], entry["error"]) for entry in replicas] == [
        (0, True, None),
        (1, False, "OperationalError"),
    ]
    assert "url" not in replicas[0]
    assert "url" in report.as_dict(detail=True)["replicas"][0]  # type: ignore[index]  # a list of dicts


def test_test_isolation_reads_the_tests_own_writes(core: DatabaseCore) -> None:
    with core.test_isolation():
        with core.transaction() as session:
            session.add(Place(id=5, name="written in the test"))
        with core.sessionmaker() as session:
            assert session.get(Place, 5) is not None
            assert where(session) == "primary"
    with core.sessionmaker() as session:
        assert where(session) == "replica-1"
        assert session.get(Place, 5) is None


# -- The Flask adapter: requests and read-your-writes ----------------------------------


@pytest.fixture
def app(urls: dict[str, str]) -> tuple[Flask, Database]:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = urls["primary"]
    app.config["SQLALCHEMY_REPLICAS"] = {None: [urls["replica-1"]]}
    db = Database(Base)
    db.init_app(app)

    @app.route("/where", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def read() -> ResponseReturnValue:
        return where(db.session)

    @app.get("/where-primary")
    @db.primary()
    def read_primary() -> ResponseReturnValue:
        return where(db.session)

    @app.route("/write", methods=["GET", "POST"])
    def write() -> ResponseReturnValue:
        db.session.add(Place(name="written"))
        db.session.commit()
        return where(db.session)

    @app.post("/write-then-roll-back")
    def write_then_roll_back() -> ResponseReturnValue:
        db.session.add(Place(name="dropped"))
        db.session.flush()
        db.session.rollback()
        return "rolled back"

    return app, db


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("GET", "replica-1"),
        ("POST", "primary"),
        ("PUT", "primary"),
        ("PATCH", "primary"),
        ("DELETE", "primary"),
    ],
)
def test_requests_that_may_change_data_read_from_the_primary(
    app: tuple[Flask, Database], method: str, expected: str
) -> None:
    flask_app, _ = app
    assert flask_app.test_client().open("/where", method=method).text == expected


def test_primary_decorates_a_view(app: tuple[Flask, Database]) -> None:
    flask_app, _ = app
    client = flask_app.test_client()
    assert client.get("/where-primary").text == "primary"
    assert client.get("/where").text == "replica-1"


def test_a_client_that_wrote_reads_from_the_primary_for_the_delay(
    app: tuple[Flask, Database],
) -> None:
    flask_app, _ = app
    client = flask_app.test_client()
    response = client.post("/write")
    assert response.text == "primary"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{WROTE_COOKIE}=")
    assert {"Max-Age=2", "HttpOnly", "SameSite=Lax"} <= set(cookie.split("; "))
    # The test client sends the cookie back: this client reads from the primary.
    assert client.get("/where").text == "primary"
    # Another client does not.
    assert flask_app.test_client().get("/where").text == "replica-1"


def test_a_write_in_a_get_request_marks_the_client_too(app: tuple[Flask, Database]) -> None:
    flask_app, _ = app
    client = flask_app.test_client()
    assert client.get("/write").text == "primary"
    assert client.get("/where").text == "primary"


def test_no_cookie_without_a_committed_write(app: tuple[Flask, Database]) -> None:
    flask_app, _ = app
    client = flask_app.test_client()
    for response in (
        client.get("/where"),
        client.post("/where"),
        client.post("/write-then-roll-back"),
    ):
        assert "Set-Cookie" not in response.headers
    assert client.get("/where").text == "replica-1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(lambda: f"{time.time() + 60:.3f}", "primary", id="not-expired"),
        pytest.param(lambda: f"{time.time() - 1:.3f}", "replica-1", id="expired"),
        pytest.param(lambda: "9" * 400, "primary", id="forged-far-future"),
        pytest.param(lambda: "garbled\x7f", "primary", id="garbled"),
        pytest.param(lambda: "nan", "primary", id="nan"),
        pytest.param(lambda: "-inf", "replica-1", id="minus-infinity"),
    ],
)
def test_the_cookie_can_only_send_reads_to_the_primary(
    app: tuple[Flask, Database], value: Any, expected: str
) -> None:
    flask_app, _ = app
    client = flask_app.test_client()
    client.set_cookie(WROTE_COOKIE, value())
    response = client.get("/where")
    assert (response.status_code, response.text) == (200, expected)


def test_replica_delay_zero_sets_no_cookie(urls: dict[str, str]) -> None:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = urls["primary"]
    app.config["SQLALCHEMY_REPLICAS"] = {None: [urls["replica-1"]]}
    app.config["SQLALCHEMY_REPLICA_DELAY"] = 0
    db = Database(Base)
    db.init_app(app)

    @app.post("/write")
    def write() -> ResponseReturnValue:
        db.session.add(Place(name="written"))
        db.session.commit()
        return "ok"

    assert "Set-Cookie" not in app.test_client().post("/write").headers


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (
            "2",
            TypeError,
            "'SQLALCHEMY_REPLICA_DELAY' must be a number of seconds (int or float), not str.",
        ),
        (
            True,
            TypeError,
            "'SQLALCHEMY_REPLICA_DELAY' must be a number of seconds (int or float), not bool.",
        ),
        (
            -1,
            ValueError,
            "'SQLALCHEMY_REPLICA_DELAY' must be a finite number of seconds, 0 or more, not -1.",
        ),
        (
            float("inf"),
            ValueError,
            "'SQLALCHEMY_REPLICA_DELAY' must be a finite number of seconds, 0 or more, not inf.",
        ),
    ],
)
def test_bad_replica_delay_is_an_error_naming_the_key(
    urls: dict[str, str], value: object, error: type[Exception], message: str
) -> None:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = urls["primary"]
    app.config["SQLALCHEMY_REPLICAS"] = {None: [urls["replica-1"]]}
    app.config["SQLALCHEMY_REPLICA_DELAY"] = value
    with pytest.raises(error) as raised:
        Database(Base).init_app(app)
    assert str(raised.value) == message


def test_an_app_without_replicas_sets_no_cookie_and_no_hook(urls: dict[str, str]) -> None:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = urls["primary"]
    db = Database(Base)
    db.init_app(app)
    assert app.after_request_funcs == {}

    @app.post("/write")
    def write() -> ResponseReturnValue:
        db.session.add(Place(name="written"))
        db.session.commit()
        return where(db.session)

    response = app.test_client().post("/write")
    assert (response.text, "Set-Cookie" in response.headers) == ("primary", False)


# -- Configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replicas", "error", "message"),
    [
        (
            {"auth": ["sqlite:///r.db"]},
            RuntimeError,
            "'SQLALCHEMY_REPLICAS['auth']' lists replicas of a bind that is not configured:"
            " set 'SQLALCHEMY_BINDS['auth']' to its primary's URL, or remove the entry.",
        ),
        (
            {None: "sqlite:///r.db"},
            TypeError,
            "'SQLALCHEMY_REPLICAS[None]' must be a list of replica URLs (or dicts with a"
            " 'url'), not str.",
        ),
        (
            {None: [{"pool_size": 2}]},
            RuntimeError,
            "'SQLALCHEMY_REPLICAS[None][0][\"url\"]' must be defined.",
        ),
        (
            {None: [42]},
            TypeError,
            "'SQLALCHEMY_REPLICAS[None][0]' must be a URL string, a sqlalchemy.URL or a dict"
            " of engine options with a 'url', not int.",
        ),
        (
            {None: [{"url": "sqlite:///r.db", "pool_size": "5"}]},
            TypeError,
            "'SQLALCHEMY_REPLICAS[None][0][\"pool_size\"]' must be an int, not str.",
        ),
        (
            {1: ["sqlite:///r.db"]},
            TypeError,
            "'SQLALCHEMY_REPLICAS' keys must be bind keys (strings), or None for the default"
            " bind, not int.",
        ),
        (
            ["sqlite:///r.db"],
            TypeError,
            "'SQLALCHEMY_REPLICAS' must be a dict of bind keys (None for the default bind)"
            " to lists of replica URLs, not list.",
        ),
    ],
)
def test_bad_replica_config_is_an_error_naming_the_key(
    replicas: object, error: type[Exception], message: str
) -> None:
    config = {"SQLALCHEMY_DATABASE_URI": "sqlite:///p.db", "SQLALCHEMY_REPLICAS": replicas}
    with pytest.raises(error) as raised:
        DatabaseCore(config, Base)
    assert str(raised.value) == message


def test_a_replica_url_with_an_unescaped_at_sign_names_its_key_not_the_password() -> None:
    config = {
        "SQLALCHEMY_DATABASE_URI": "sqlite:///p.db",
        "SQLALCHEMY_REPLICAS": {None: [f"postgresql://app:{PASSWORD}@x@db/app"]},
    }
    with pytest.raises(
        ValueError, match=r"'SQLALCHEMY_REPLICAS\[None\]\[0\]' has an '@'"
    ) as raised:
        DatabaseCore(config, Base)
    assert PASSWORD not in str(raised.value)


def test_replica_engines_take_the_binds_options_under_their_own(urls: dict[str, str]) -> None:
    config = {
        "SQLALCHEMY_DATABASE_URI": urls["primary"],
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 7, "pool_recycle": 30},
        "SQLALCHEMY_REPLICAS": {
            None: [urls["replica-1"], {"url": urls["replica-2"], "pool_size": 2}]
        },
    }
    with DatabaseCore(config, Base) as core:
        pools = [engine.pool for engine in core.replica_engines[None]]
        assert [(pool.size(), pool._recycle) for pool in pools] == [(7, 30), (2, 30)]  # type: ignore[attr-defined]  # QueuePool's  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
        assert PASSWORD not in repr(core)
