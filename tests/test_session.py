"""One session per app context: made lazily, shared within the context, closed at teardown."""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Any
from typing import ClassVar

import pytest
import sqlalchemy as sa
from flask import Flask
from flask import abort
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Session
from sqlalchemy.orm import mapped_column
from sqlalchemy.pool import QueuePool

from flask_typed_db import Database
from flask_typed_db.core import RoutingSession


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "session_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(sa.String(100))


class EventCounter:
    """A SQLAlchemy event listener that counts how often its event fires."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *args: object) -> None:
        self.count += 1


def checked_out(engine: sa.Engine) -> int:
    """How many of ``engine``'s pooled connections are in use."""
    assert isinstance(engine.pool, QueuePool)
    return engine.pool.checkedout()


def count_events(engine: sa.Engine, name: str) -> EventCounter:
    counter = EventCounter()
    event.listen(engine, name, counter)
    return counter


class RecordingSession(RoutingSession):
    """Keeps every session made, so that tests can tell when one was made."""

    made: ClassVar[list[Session]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        type(self).made.append(self)


def recording_session_class() -> type[RecordingSession]:
    """A fresh subclass per test, so that no test sees another's sessions."""

    class Recording(RecordingSession):
        made: ClassVar[list[Session]] = []

    return Recording


def make_app(db: Database, url: str, instance_path: Path) -> Flask:
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    db.init_app(app)
    with app.app_context():
        db.create_all()
    return app


def count_notes(app: Flask, db: Database) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Note)) or 0


@pytest.fixture
def db() -> Database:
    return Database(Base)


@pytest.fixture
def app(db: Database, database_url: str, instance_path: Path) -> Flask:
    return make_app(db, database_url, instance_path)


# Per-context identity and laziness


def test_request_that_does_not_touch_the_session_makes_no_session_and_no_connection(
    database_url: str, instance_path: Path
) -> None:
    session_class = recording_session_class()
    db = Database(Base, session_options={"class_": session_class})
    app = make_app(db, database_url, instance_path)
    session_class.made.clear()
    with app.app_context():
        checkouts = count_events(db.engine, "checkout")
        connects = count_events(db.engine, "connect")

    @app.get("/")
    def index() -> str:
        return "no database here"

    for _ in range(3):
        assert app.test_client().get("/").status_code == 200
    assert session_class.made == []
    assert checkouts.count == 0
    assert connects.count == 0


def test_session_is_made_on_first_use_and_connects_on_first_query(
    database_url: str, instance_path: Path
) -> None:
    session_class = recording_session_class()
    db = Database(Base, session_options={"class_": session_class})
    app = make_app(db, database_url, instance_path)
    session_class.made.clear()
    with app.app_context():
        checkouts = count_events(db.engine, "checkout")
        assert session_class.made == []
        session = db.session
        assert session_class.made == [session]
        assert checkouts.count == 0
        session.execute(sa.select(Note))
        assert checkouts.count == 1


def test_session_is_the_same_object_for_a_whole_request_and_new_in_the_next(
    app: Flask, db: Database
) -> None:
    seen: list[list[Session]] = []

    @app.before_request
    def remember_session() -> None:
        seen.append([db.session])

    @app.get("/")
    def index() -> str:
        seen[-1].append(db.session)
        db.session.execute(sa.select(Note))
        seen[-1].append(db.session)
        return "ok"

    client = app.test_client()
    client.get("/")
    client.get("/")
    first, second = seen
    assert first[0] is first[1] is first[2]
    assert second[0] is second[1] is second[2]
    assert first[0] is not second[0]


def test_each_request_checks_out_one_connection_for_all_its_queries(
    app: Flask, db: Database
) -> None:
    with app.app_context():
        checkouts = count_events(db.engine, "checkout")

    @app.get("/")
    def index() -> str:
        for _ in range(3):
            db.session.execute(sa.select(Note))
        return "ok"

    client = app.test_client()
    for _ in range(4):
        client.get("/")
    assert checkouts.count == 4


def test_session_is_the_same_object_for_a_whole_cli_command_and_new_in_the_next(
    app: Flask, db: Database
) -> None:
    seen: list[tuple[Session, Session]] = []

    @app.cli.command("touch")
    def touch() -> None:
        first = db.session
        first.execute(sa.select(Note))
        seen.append((first, db.session))

    runner = app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["touch"])
        assert result.exit_code == 0, result.output
    (first_a, first_b), (second_a, second_b) = seen
    assert first_a is first_b
    assert second_a is second_b
    assert first_a is not second_a


def test_session_is_the_same_object_within_an_app_context_and_new_in_the_next(
    app: Flask, db: Database
) -> None:
    with app.app_context():
        first = db.session
        assert db.session is first
    with app.app_context():
        second = db.session
        assert db.session is second
    assert second is not first


def test_two_databases_on_one_app_have_separate_sessions(
    database_url: str, instance_path: Path
) -> None:
    db = Database(Base)
    other = Database(Base)
    app = make_app(db, database_url, instance_path)
    other.init_app(app)
    with app.app_context():
        assert db.session is not other.session
        assert db.session is db.session


# Teardown


def test_uncommitted_work_rolled_back_after_view_returns(app: Flask, db: Database) -> None:
    @app.post("/")
    def add() -> str:
        db.session.add(Note(text="never committed"))
        db.session.flush()
        return "ok"

    assert app.test_client().post("/").status_code == 200
    assert count_notes(app, db) == 0


def test_session_rolled_back_when_view_raises(app: Flask, db: Database) -> None:
    @app.post("/")
    def add() -> str:
        db.session.add(Note(text="never committed"))
        db.session.flush()
        raise ValueError("the view failed")

    assert app.test_client().post("/").status_code == 500
    assert count_notes(app, db) == 0


def test_committed_work_persists_after_request(app: Flask, db: Database) -> None:
    @app.post("/")
    def add() -> str:
        db.session.add(Note(text="committed"))
        db.session.commit()
        return "ok"

    assert app.test_client().post("/").status_code == 200
    assert count_notes(app, db) == 1


def test_uncommitted_work_rolled_back_at_end_of_app_context(app: Flask, db: Database) -> None:
    with app.app_context():
        db.session.add(Note(text="never committed"))
        db.session.flush()
    assert count_notes(app, db) == 0


def test_loaded_objects_stay_readable_detached_after_request(app: Flask, db: Database) -> None:
    with app.app_context():
        db.session.add(Note(text="kept"))
        db.session.commit()
    loaded: list[Note] = []

    @app.get("/")
    def index() -> str:
        loaded.append(db.session.execute(sa.select(Note)).scalar_one())
        return "ok"

    app.test_client().get("/")
    (note,) = loaded
    assert sa.inspect(note).detached
    assert note.text == "kept"


def test_no_connection_checked_out_after_many_requests(app: Flask, db: Database) -> None:
    @app.get("/read")
    def read() -> str:
        db.session.execute(sa.select(Note)).all()
        return "ok"

    @app.post("/write")
    def write() -> str:
        db.session.add(Note(text="written"))
        db.session.commit()
        db.session.execute(sa.select(Note)).all()
        return "ok"

    @app.get("/fail")
    def fail() -> str:
        db.session.execute(sa.select(Note)).all()
        raise ValueError("the view failed")

    @app.get("/abort")
    def not_found() -> str:
        db.session.execute(sa.select(Note)).all()
        abort(404)

    client = app.test_client()
    for _ in range(5):
        assert client.get("/read").status_code == 200
        assert client.post("/write").status_code == 200
        assert client.get("/fail").status_code == 500
        assert client.get("/abort").status_code == 404
    with app.app_context():
        assert checked_out(db.engine) == 0
    assert count_notes(app, db) == 5


class CloseFails(RoutingSession):
    def close(self) -> None:
        super().close()
        raise OSError("the connection broke while closing")


def close_failure_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.exc_info is not None and isinstance(record.exc_info[1], OSError)
    ]


def test_failure_closing_the_session_does_not_hide_the_view_error_and_is_logged(
    database_url: str, instance_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(Base, session_options={"class_": CloseFails})
    app = make_app(db, database_url, instance_path)
    app.testing = True  # let the view's error reach the test

    @app.get("/")
    def index() -> str:
        db.session.execute(sa.select(Note))
        raise LookupError("the view's own error")

    with pytest.raises(LookupError, match="the view's own error"):
        app.test_client().get("/")
    (record,) = close_failure_records(caplog)
    assert record.levelno == logging.ERROR
    assert "closing the session failed" in record.getMessage()


def test_failure_closing_the_session_after_a_successful_view_is_logged_not_raised(
    database_url: str, instance_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(Base, session_options={"class_": CloseFails})
    app = make_app(db, database_url, instance_path)
    app.testing = True

    @app.get("/")
    def index() -> str:
        db.session.execute(sa.select(Note))
        return "ok"

    assert app.test_client().get("/").status_code == 200
    assert len(close_failure_records(caplog)) == 1


class KeepRecords(logging.Handler):
    """Keeps every record, and so its exception and traceback, as a MemoryHandler or
    pytest's log capture does.
    """

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class CloseFailsBeforeReleasing(RoutingSession):
    def close(self) -> None:
        raise OSError("closing failed before anything was released")


def idle_in_transaction(engine: sa.Engine) -> int:
    """How many server sessions on ``engine``'s PostgreSQL database are idle in a
    transaction; 0 on the other backends, which do not say.
    """
    if engine.dialect.name != "postgresql":
        return 0
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND state = 'idle in transaction'"
    )
    with engine.connect() as connection:
        count: int = connection.execute(query).scalar_one()
    return count


@pytest.mark.parametrize("failure", ["rollback listener", "custom close"])
def test_connection_is_released_when_close_fails_even_if_the_log_keeps_the_error(
    database_url: str, instance_path: Path, failure: str
) -> None:
    options = {"class_": CloseFailsBeforeReleasing} if failure == "custom close" else {}
    db = Database(Base, session_options=options)
    app = make_app(db, database_url, instance_path)
    handler = KeepRecords()
    app.logger.addHandler(handler)
    with app.app_context():
        engine = db.engine

    def fail_rollback(_connection: sa.Connection) -> None:
        raise OSError("a rollback listener failed")

    if failure == "rollback listener":
        event.listen(engine, "rollback", fail_rollback)

    @app.get("/")
    def read() -> str:
        db.session.execute(sa.select(Note)).all()
        return "ok"

    gc_was_enabled = gc.isenabled()
    gc.disable()  # the connection must be released without the garbage collector
    try:
        assert app.test_client().get("/").status_code == 200
        assert checked_out(engine) == 0
    finally:
        app.logger.removeHandler(handler)
        if failure == "rollback listener":
            event.remove(engine, "rollback", fail_rollback)
    try:
        assert idle_in_transaction(engine) == 0
    finally:
        if gc_was_enabled:
            gc.enable()
    [record] = [record for record in handler.records if record.exc_info is not None]
    assert "closing the session failed" in record.getMessage()
    with app.app_context():
        db.drop_all()  # would wait forever for a connection left in its transaction
