"""Concurrent requests in threads never share a session."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Session
from sqlalchemy.orm import mapped_column
from sqlalchemy.pool import QueuePool

from flask_typed_db import Database

THREADS = 8
#: Only a safety net against a hang: a correct run never waits this long.
BARRIER_TIMEOUT = 60


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "thread_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(sa.String(100))


def checked_out(engine: sa.Engine) -> int:
    """How many of ``engine``'s pooled connections are in use."""
    assert isinstance(engine.pool, QueuePool)
    return engine.pool.checkedout()


def make_app(db: Database, url: str, instance_path: Path) -> Flask:
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    db.init_app(app)
    with app.app_context():
        db.create_all()
    return app


def test_concurrent_requests_each_get_their_own_session_and_connection(
    database_url: str, instance_path: Path
) -> None:
    # database_url's SQLite is a file: ":memory:" has one shared connection by design.
    db = Database(Base)
    app = make_app(db, database_url, instance_path)
    barrier = threading.Barrier(THREADS, timeout=BARRIER_TIMEOUT)
    lock = threading.Lock()
    sessions: list[Session] = []
    checked_out_while_all_wait: list[int] = []

    @app.get("/<int:number>")
    def index(number: int) -> dict[str, object]:
        session = db.session
        session.info["owner"] = number
        with lock:
            sessions.append(session)
        session.execute(sa.select(Note)).all()
        # Every request holds its connection here, until all eight have one.
        barrier.wait()
        checked_out_while_all_wait.append(checked_out(db.engine))
        barrier.wait()
        return {"owner": session.info["owner"], "same_session": db.session is session}

    def request(number: int) -> dict[str, object]:
        response = app.test_client().get(f"/{number}")
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json or {}
        return body

    with ThreadPoolExecutor(max_workers=THREADS) as executor:
        bodies = list(executor.map(request, range(THREADS)))

    assert bodies == [{"owner": n, "same_session": True} for n in range(THREADS)]
    assert len({id(session) for session in sessions}) == THREADS
    assert checked_out_while_all_wait == [THREADS] * THREADS
    with app.app_context():
        assert checked_out(db.engine) == 0


def test_in_memory_sqlite_is_one_database_shared_by_every_thread(instance_path: Path) -> None:
    db = Database(Base)
    app = make_app(db, "sqlite://", instance_path)

    @app.post("/")
    def add() -> str:
        db.session.add(Note(text="from a thread"))
        db.session.commit()
        return "ok"

    with ThreadPoolExecutor(max_workers=1) as executor:
        status = executor.submit(lambda: app.test_client().post("/").status_code).result()
    assert status == 200
    with app.app_context():
        assert db.session.scalars(sa.select(Note.text)).all() == ["from a thread"]
