"""db.on_commit() in views: with commit-on-success, db.transaction(), db.savepoint(),
teardown, test isolation and captured callbacks, on every backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask import abort
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from tests.test_async_views import dispose_async_engines

from flask_typed_db import Database


class Base(DeclarativeBase):
    pass


class Loan(Base):
    __tablename__ = "on_commit_loan"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    borrower: Mapped[str] = mapped_column(sa.String(50), unique=True)


class Outbox:
    """Stands in for a job queue: what was sent, and what the database held then."""

    def __init__(self, app: Flask, db: Database) -> None:
        self.app = app
        self.db = db
        self.sent: list[tuple[str, list[str]]] = []

    def stored(self) -> list[str]:
        """The committed rows: read on a connection of its own (outside test
        isolation, which would show the test's own uncommitted rows).
        """
        with self.app.app_context(), self.db.engine.connect() as connection:
            return list(connection.scalars(sa.select(Loan.borrower).order_by(Loan.id)))

    def job(self, name: str) -> Callable[[], None]:
        def send() -> None:
            self.sent.append((name, self.stored()))

        return send

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.sent]


def make_app(database_url: str, instance_path: Path, **config: object) -> tuple[Flask, Database]:
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    app.config.from_mapping(config)
    db = Database(Base, app=app)
    with app.app_context():
        db.create_all()
    return app, db


def add_loan(db: Database, outbox: Outbox, loan_id: int, borrower: str) -> None:
    db.session.add(Loan(id=loan_id, borrower=borrower))
    db.on_commit(outbox.job(borrower))


@pytest.fixture
def app_db_outbox(database_url: str, instance_path: Path) -> tuple[Flask, Database, Outbox]:
    app, db = make_app(database_url, instance_path)
    outbox = Outbox(app, db)

    @app.post("/commit")
    def commit() -> ResponseReturnValue:
        add_loan(db, outbox, 1, "ada")
        db.session.commit()
        return "saved"

    @app.post("/forget")
    def forget() -> ResponseReturnValue:
        add_loan(db, outbox, 1, "ada")
        return "not committed"

    @app.post("/on-success/<int:status>")
    @db.commit_on_success
    def on_success(status: int) -> ResponseReturnValue:
        add_loan(db, outbox, 1, "ada")
        if status >= 400:
            abort(status)
        return "", status

    @app.post("/transactions")
    def transactions() -> ResponseReturnValue:
        with db.transaction():
            add_loan(db, outbox, 1, "outer")
            with db.transaction():
                add_loan(db, outbox, 2, "inner")
            add_loan(db, outbox, 3, "after inner")
        return "done"

    @app.post("/savepoints")
    def savepoints() -> ResponseReturnValue:
        add_loan(db, outbox, 1, "ada")
        with db.savepoint():
            add_loan(db, outbox, 2, "released")
        try:
            with db.savepoint():
                add_loan(db, outbox, 3, "ada")  # the same borrower: unique
                db.session.flush()
        except IntegrityError:
            pass
        db.session.commit()
        return "done"

    return app, db, outbox


def test_a_view_that_commits(app_db_outbox: tuple[Flask, Database, Outbox]) -> None:
    app, _, outbox = app_db_outbox
    assert app.test_client().post("/commit").status_code == 200
    assert outbox.sent == [("ada", ["ada"])]


def test_teardown_rollback_drops_them(app_db_outbox: tuple[Flask, Database, Outbox]) -> None:
    app, _, outbox = app_db_outbox
    assert app.test_client().post("/forget").status_code == 200
    assert outbox.sent == []
    assert outbox.stored() == []


@pytest.mark.parametrize(
    ("status", "sent"), [(201, True), (302, True), (404, False), (503, False)]
)
def test_commit_on_success_runs_them_after_the_response_time_commit(
    app_db_outbox: tuple[Flask, Database, Outbox], status: int, sent: bool
) -> None:
    app, _, outbox = app_db_outbox
    assert app.test_client().post(f"/on-success/{status}").status_code == status
    assert outbox.sent == ([("ada", ["ada"])] if sent else [])


def test_the_config_key_commit_on_success(database_url: str, instance_path: Path) -> None:
    app, db = make_app(database_url, instance_path, SQLALCHEMY_COMMIT_ON_SUCCESS=True)
    outbox = Outbox(app, db)

    @app.post("/loans/<borrower>")
    def lend(borrower: str) -> ResponseReturnValue:
        add_loan(db, outbox, len(outbox.sent) + 1, borrower)
        if borrower == "nobody":
            abort(422)
        return "", 201

    client = app.test_client()
    assert client.post("/loans/ada").status_code == 201
    assert client.post("/loans/nobody").status_code == 422
    assert outbox.sent == [("ada", ["ada"])]


def test_nested_transactions_run_each_commits_callbacks(
    app_db_outbox: tuple[Flask, Database, Outbox],
) -> None:
    app, _, outbox = app_db_outbox
    assert app.test_client().post("/transactions").status_code == 200
    # The inner block's commit commits the whole session, and so runs what was
    # registered before it; the outer block's commit runs the rest.
    assert outbox.sent == [
        ("outer", ["outer", "inner"]),
        ("inner", ["outer", "inner"]),
        ("after inner", ["outer", "inner", "after inner"]),
    ]


def test_savepoints(app_db_outbox: tuple[Flask, Database, Outbox]) -> None:
    app, _, outbox = app_db_outbox
    assert app.test_client().post("/savepoints").status_code == 200
    assert outbox.names == ["ada", "released"]
    assert outbox.stored() == ["ada", "released"]


def test_under_test_isolation_they_run_when_the_code_commits(
    app_db_outbox: tuple[Flask, Database, Outbox],
) -> None:
    app, db, outbox = app_db_outbox
    with db.test_isolation(app):
        client = app.test_client()
        assert client.post("/forget").status_code == 200
        assert outbox.sent == []
        assert client.post("/commit").status_code == 200
        assert outbox.names == ["ada"]
        assert client.post("/on-success/404").status_code == 404
        assert outbox.names == ["ada"]
    assert outbox.names == ["ada"]
    assert outbox.stored() == []  # isolation rolled the commit back


def test_captured_callbacks(app_db_outbox: tuple[Flask, Database, Outbox]) -> None:
    app, db, outbox = app_db_outbox
    with db.test_isolation(app), db.captured_on_commit() as captured:
        client = app.test_client()
        client.post("/forget")
        client.post("/on-success/503")
        client.post("/commit")
        assert outbox.sent == []
        assert len(captured) == 1
        captured[0]()  # the test may run them itself
        assert outbox.names == ["ada"]
    assert outbox.stored() == []


def test_a_raising_callback_does_not_fail_the_request(
    database_url: str, instance_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app, db = make_app(database_url, instance_path)
    outbox = Outbox(app, db)

    def send_receipt() -> None:
        raise ConnectionError("mail server down")

    @app.post("/lend")
    def lend() -> ResponseReturnValue:
        db.session.add(Loan(id=1, borrower="ada"))
        db.on_commit(send_receipt)
        db.on_commit(outbox.job("after"))
        db.session.commit()
        return "saved"

    with caplog.at_level(logging.ERROR, logger="flask_typed_db"):
        response = app.test_client().post("/lend")
    assert response.status_code == 200
    assert outbox.sent == [("after", ["ada"])]
    assert any("send_receipt" in record.getMessage() for record in caplog.records)


def test_raise_errors_fails_the_request_for_saved_data(
    database_url: str, instance_path: Path
) -> None:
    app, db = make_app(database_url, instance_path)
    outbox = Outbox(app, db)

    def must_reach_the_ledger() -> None:
        raise ConnectionError("ledger down")

    @app.post("/lend")
    @db.commit_on_success
    def lend() -> ResponseReturnValue:
        db.session.add(Loan(id=1, borrower="ada"))
        db.on_commit(must_reach_the_ledger, raise_errors=True)
        return "saved"

    assert app.test_client().post("/lend").status_code == 500
    assert outbox.stored() == ["ada"]


def test_outside_an_app_context_the_error_says_so(database_url: str, instance_path: Path) -> None:
    _, db = make_app(database_url, instance_path)
    with pytest.raises(RuntimeError, match=r"'db\.on_commit\(\)' needs the current app"):
        db.on_commit(lambda: None)


def test_async_views(database_url: str, instance_path: Path) -> None:
    app, db = make_app(database_url, instance_path)
    outbox = Outbox(app, db)

    @app.post("/lend")
    async def lend() -> ResponseReturnValue:
        db.async_session.add(Loan(id=1, borrower="ada"))

        async def enqueue() -> None:
            loan = await db.async_session.get(Loan, 1)
            outbox.sent.append((loan.borrower if loan else "missing", outbox.stored()))

        await db.async_on_commit(enqueue)
        await db.async_session.commit()
        return "saved"

    @app.post("/forget")
    async def forget() -> ResponseReturnValue:
        db.async_session.add(Loan(id=2, borrower="brian"))
        await db.async_on_commit(outbox.job("forgotten"))
        return "not committed"

    client = app.test_client()
    try:
        assert client.post("/lend").status_code == 200
        assert client.post("/forget").status_code == 200
    finally:
        dispose_async_engines(app)
    assert outbox.sent == [("ada", ["ada"])]


def test_async_views_with_commit_on_success(database_url: str, instance_path: Path) -> None:
    app, db = make_app(database_url, instance_path)
    outbox = Outbox(app, db)

    @app.post("/lend/<int:status>")
    @db.commit_on_success
    async def lend(status: int) -> ResponseReturnValue:
        db.async_session.add(Loan(id=status, borrower=f"borrower {status}"))

        async def enqueue() -> None:
            outbox.sent.append((f"sent {status}", outbox.stored()))

        await db.async_on_commit(enqueue)
        return "", status

    client = app.test_client()
    try:
        assert client.post("/lend/201").status_code == 201
        assert client.post("/lend/409").status_code == 409
    finally:
        dispose_async_engines(app)
    assert outbox.sent == [("sent 201", ["borrower 201"])]
