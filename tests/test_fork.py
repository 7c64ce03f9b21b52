"""Engines and sessions survive os.fork(): the child connects afresh and never touches
the parent's connections or transaction; the parent keeps its own."""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.context
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.pool import QueuePool

from flask_typed_db import Database

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="os.fork() is POSIX only")


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "fork_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(sa.String(100))


#: The query naming the server-side session a connection talks to, per backend.
BACKEND_ID_QUERIES = {
    "postgresql": "SELECT pg_backend_pid()",
    "mysql": "SELECT CONNECTION_ID()",
    "mariadb": "SELECT CONNECTION_ID()",
}


def backend_id(connection: sa.Connection) -> int | None:
    """The server's id for this connection; SQLite has none."""
    query = BACKEND_ID_QUERIES.get(connection.dialect.name)
    if query is None:
        return None
    value: int = connection.execute(sa.text(query)).scalar_one()
    return value


def run_in_child(work: Callable[[], dict[str, object]]) -> dict[str, object]:
    """Run ``work`` in a forked child and return what it reported through a pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running the parent's cleanup
        os.close(read_end)
        status = 1
        report: dict[str, object] = {"error": "no report"}
        try:
            report = work()
            status = 0
        except BaseException as error:
            report = {"error": repr(error)}
        finally:
            with os.fdopen(write_end, "w") as pipe:
                pipe.write(json.dumps(report))
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child_report: dict[str, object] = json.loads(pipe.read())
    _, wait_status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(wait_status) == 0, child_report
    return child_report


def test_forked_child_queries_on_a_fresh_connection_and_parent_keeps_its_own(
    database_url: str, instance_path: Path
) -> None:
    db = Database(Base)
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)
    connects_by_pid: list[int] = []

    with app.app_context():
        db.create_all()
        engine = db.engine
        event.listen(engine, "connect", lambda *_: connects_by_pid.append(os.getpid()))
        with engine.connect() as connection:
            parent_backend = backend_id(connection)
        parent_connects = len(connects_by_pid)
        assert isinstance(engine.pool, QueuePool)
        assert engine.pool.checkedin() == 1

    def child_work() -> dict[str, object]:
        with app.app_context():
            db.session.add(Note(text="written by the child"))
            db.session.commit()
            connection = db.session.connection()
            report: dict[str, object] = {
                "backend": backend_id(connection),
                "texts": db.session.scalars(sa.select(Note.text)).all(),
                "connects": connects_by_pid.count(os.getpid()),
            }
        return report

    report = run_in_child(child_work)

    assert report["texts"] == ["written by the child"]
    assert report["connects"] == 1
    if parent_backend is not None:
        assert report["backend"] != parent_backend
    with app.app_context():
        with engine.connect() as connection:
            assert backend_id(connection) == parent_backend
            texts = connection.execute(sa.select(Note.text)).scalars().all()
        assert texts == ["written by the child"]
        # The parent reused its pooled connection instead of making another.
        assert len(connects_by_pid) == parent_connects


def fork_context() -> multiprocessing.context.ForkContext:
    return multiprocessing.get_context("fork")


def test_child_forked_inside_a_request_never_touches_the_parents_transaction(
    database_url: str, instance_path: Path
) -> None:
    db = Database(Base)
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)
    with app.app_context():
        db.create_all()
    reports: list[dict[str, object]] = []

    @app.post("/notes")
    def add_note() -> str:
        parent_session = db.session
        parent_session.add(Note(text="uncommitted in the parent"))
        parent_session.flush()
        parent_backend = backend_id(parent_session.connection())
        queue: multiprocessing.SimpleQueue[dict[str, object]] = fork_context().SimpleQueue()

        def child() -> None:
            report: dict[str, object] = {}
            try:
                session = db.session
                report["same_session"] = session is parent_session
                report["backend"] = backend_id(session.connection())
                report["rows_seen"] = session.scalar(sa.select(sa.func.count(Note.id)))
                session.commit()
                # The parent's own session object, used in the child, must fail
                # rather than commit the parent's transaction.
                try:
                    parent_session.commit()
                    report["parent_session_commit"] = "committed"
                except SQLAlchemyError as error:
                    report["parent_session_commit"] = type(error).__name__
            except BaseException as error:
                report["error"] = repr(error)
            queue.put(report)

        process = fork_context().Process(target=child)
        process.start()
        reports.append(queue.get())
        process.join(timeout=60)
        assert process.exitcode == 0
        assert backend_id(parent_session.connection()) == parent_backend
        raise RuntimeError("the view fails after the child has run")

    app.testing = False
    response = app.test_client().post("/notes")

    assert response.status_code == 500
    [report] = reports
    assert "error" not in report, report
    assert report["same_session"] is False
    assert report["rows_seen"] == 0
    assert report["parent_session_commit"] == "InvalidRequestError"
    with app.app_context():
        # The parent's row went with its 500: the child committed nothing of it.
        assert db.session.scalars(sa.select(Note.text)).all() == []
