"""Transaction policy: commit-on-success for views, and explicit units of work."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Blueprint
from flask import Flask
from flask import Response
from flask import abort
from flask import redirect
from flask import stream_with_context
from flask.typing import ResponseReturnValue
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Session
from sqlalchemy.orm import mapped_column

from flask_typed_db import Database


class Base(DeclarativeBase):
    pass


class Tag(Base):
    __tablename__ = "transaction_tag"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50), unique=True)


class Problem(Exception):
    """Raised by views; an error handler turns it into a 200 response."""


def make_app(database_url: str, instance_path: Path, **config: object) -> tuple[Flask, Database]:
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    app.config.from_mapping(config)
    db = Database(Base, app=app)
    with app.app_context():
        db.create_all()
    return app, db


def stored_names(app: Flask, db: Database) -> list[str]:
    """What is really in the table, read on a connection of its own."""
    with app.app_context(), db.engine.connect() as connection:
        return list(connection.scalars(sa.select(Tag.name).order_by(Tag.name)))


def add_tags(db: Database, *names: str) -> None:
    db.session.add_all([Tag(name=name) for name in names])
    db.session.flush()


@pytest.fixture
def app_and_db(database_url: str, instance_path: Path) -> tuple[Flask, Database]:
    """An app with one view per outcome, each adding tags under commit-on-success."""
    app, db = make_app(database_url, instance_path)

    @app.post("/ok")
    @db.commit_on_success
    def ok() -> ResponseReturnValue:
        add_tags(db, "ok")
        return "done"

    @app.post("/created")
    @db.commit_on_success
    def created() -> ResponseReturnValue:
        add_tags(db, "created")
        return {"id": 1}, 201

    @app.post("/redirect")
    @db.commit_on_success
    def redirects() -> ResponseReturnValue:
        add_tags(db, "redirected")
        return redirect("/ok")

    @app.post("/bad-request")
    @db.commit_on_success
    def bad_request() -> ResponseReturnValue:
        add_tags(db, "bad")
        return "invalid", 400

    @app.post("/abort")
    @db.commit_on_success
    def aborts() -> ResponseReturnValue:
        add_tags(db, "aborted")
        abort(404)

    @app.post("/handled")
    @db.commit_on_success
    def handled() -> ResponseReturnValue:
        add_tags(db, "handled")
        raise Problem

    @app.post("/unhandled")
    @db.commit_on_success
    def unhandled() -> ResponseReturnValue:
        add_tags(db, "unhandled")
        raise RuntimeError("the view failed")

    @app.post("/duplicate")
    @db.commit_on_success
    def duplicate() -> ResponseReturnValue:
        # Not flushed: the IntegrityError comes from the commit itself.
        db.session.add_all([Tag(name="fresh"), Tag(name="taken")])
        return "saved"

    @app.errorhandler(Problem)
    def problem(error: Problem) -> ResponseReturnValue:
        # An error handler that writes and commits: it must not commit the view's work.
        db.session.add(Tag(name="problem-logged"))
        db.session.commit()
        return "handled anyway"

    with app.app_context():
        db.session.add(Tag(name="taken"))
        db.session.commit()
    return app, db


@pytest.mark.parametrize(
    ("path", "status", "name"),
    [("/ok", 200, "ok"), ("/created", 201, "created"), ("/redirect", 302, "redirected")],
)
def test_a_successful_view_is_committed(
    app_and_db: tuple[Flask, Database], path: str, status: int, name: str
) -> None:
    app, db = app_and_db
    assert app.test_client().post(path).status_code == status
    assert name in stored_names(app, db)


@pytest.mark.parametrize(
    ("path", "status"), [("/bad-request", 400), ("/abort", 404), ("/unhandled", 500)]
)
def test_a_failing_view_is_rolled_back(
    app_and_db: tuple[Flask, Database], path: str, status: int
) -> None:
    app, db = app_and_db
    assert app.test_client().post(path).status_code == status
    assert stored_names(app, db) == ["taken"]


def test_a_view_that_raised_is_rolled_back_before_its_error_handler_runs(
    app_and_db: tuple[Flask, Database],
) -> None:
    app, db = app_and_db
    response = app.test_client().post("/handled")
    assert (response.status_code, response.text) == (200, "handled anyway")
    assert stored_names(app, db) == ["problem-logged", "taken"]


def test_a_failing_commit_is_a_500_and_keeps_nothing(
    app_and_db: tuple[Flask, Database],
) -> None:
    app, db = app_and_db
    response = app.test_client().post("/duplicate")
    assert response.status_code == 500
    assert "saved" not in response.text
    assert stored_names(app, db) == ["taken"]


def test_a_failing_commit_reaches_the_apps_error_handlers(
    app_and_db: tuple[Flask, Database],
) -> None:
    app, db = app_and_db
    seen: list[int] = []

    @app.errorhandler(IntegrityError)
    def conflict(error: IntegrityError) -> ResponseReturnValue:
        # The session was rolled back: it is usable here.
        seen.append(db.session.scalar(sa.select(sa.func.count()).select_from(Tag)) or 0)
        return {"error": "that tag exists"}, 409

    response = app.test_client().post("/duplicate")
    assert (response.status_code, response.json) == (409, {"error": "that tag exists"})
    assert seen == [1]
    assert stored_names(app, db) == ["taken"]


def test_commit_happens_before_a_streamed_body_and_writes_while_streaming_are_not_kept(
    database_url: str, instance_path: Path
) -> None:
    app, db = make_app(database_url, instance_path)

    @app.get("/stream")
    @db.commit_on_success
    def stream() -> ResponseReturnValue:
        add_tags(db, "before")

        def body() -> Iterator[str]:
            # Already committed when the first chunk is produced: another
            # connection sees it.
            yield ",".join(stored_names(app, db))
            add_tags(db, "while-streaming")
            yield "|end"

        return Response(stream_with_context(body()))

    assert app.test_client().get("/stream").text == "before|end"
    assert stored_names(app, db) == ["before"]


def test_a_view_that_uses_no_session_begins_nothing_and_checks_out_nothing(
    database_url: str, instance_path: Path
) -> None:
    app, db = make_app(database_url, instance_path, SQLALCHEMY_COMMIT_ON_SUCCESS=True)
    made: list[Session] = []

    @app.get("/")
    def index() -> ResponseReturnValue:
        return "no database here"

    def began(session: Session, *args: object) -> None:
        made.append(session)

    with app.app_context():
        event.listen(db.sessionmaker, "after_begin", began)
        engine = db.engine
    checkouts: list[object] = []
    event.listen(engine, "checkout", lambda *args: checkouts.append(args))
    assert app.test_client().get("/").text == "no database here"
    assert made == []
    assert checkouts == []


def test_app_config_commits_every_view_including_blueprints_registered_later(
    database_url: str, instance_path: Path
) -> None:
    app, db = make_app(database_url, instance_path, SQLALCHEMY_COMMIT_ON_SUCCESS=True)
    shop = Blueprint("shop", __name__)

    @app.post("/early")
    def early() -> ResponseReturnValue:
        add_tags(db, "early")
        return "ok"

    @shop.post("/late")
    def late() -> ResponseReturnValue:
        add_tags(db, "late")
        return "ok"

    @shop.post("/fails")
    def fails() -> ResponseReturnValue:
        add_tags(db, "fails")
        return "no", 422

    @shop.post("/manual")
    @db.manual_commit
    def manual() -> ResponseReturnValue:
        add_tags(db, "manual")
        return "not committed: this view commits by itself, and did not"

    app.register_blueprint(shop)
    client = app.test_client()
    for path in ["/early", "/late", "/fails", "/manual"]:
        client.post(path)
    assert stored_names(app, db) == ["early", "late"]


def test_app_config_wraps_each_view_once_and_commits_once(
    database_url: str, instance_path: Path
) -> None:
    app, db = make_app(database_url, instance_path, SQLALCHEMY_COMMIT_ON_SUCCESS=True)

    @app.post("/<name>")
    @db.commit_on_success
    def add(name: str) -> ResponseReturnValue:
        add_tags(db, name)
        return "ok"

    commits: list[Session] = []
    with app.app_context():
        event.listen(db.sessionmaker, "after_commit", commits.append)
    client = app.test_client()
    client.post("/a")
    wrapped = app.view_functions["add"]
    client.post("/b")
    assert app.view_functions["add"] is wrapped
    assert len(commits) == 2
    assert stored_names(app, db) == ["a", "b"]


def test_an_async_view_is_committed_on_success(database_url: str, instance_path: Path) -> None:
    app, db = make_app(database_url, instance_path)

    @app.post("/async/<name>")
    @db.commit_on_success
    async def add(name: str) -> ResponseReturnValue:
        add_tags(db, name)
        return ("ok", 200) if name == "good" else ("bad", 400)

    client = app.test_client()
    assert client.post("/async/good").status_code == 200
    assert client.post("/async/evil").status_code == 400
    assert stored_names(app, db) == ["good"]


@pytest.mark.parametrize("value", ["True", 1])
def test_commit_on_success_config_must_be_a_bool(instance_path: Path, value: object) -> None:
    with pytest.raises(ValueError, match=r"'SQLALCHEMY_COMMIT_ON_SUCCESS' must be True or False"):
        make_app("sqlite://", instance_path, SQLALCHEMY_COMMIT_ON_SUCCESS=value)


def test_transaction_block_commits_or_rolls_back_and_reraises(
    database_url: str, instance_path: Path
) -> None:
    app, db = make_app(database_url, instance_path)
    with app.app_context():
        with db.transaction() as session:
            assert session is db.session
            add_tags(db, "kept")

        def change_mind() -> None:
            with db.transaction():
                add_tags(db, "dropped")
                raise ValueError("changed my mind")

        with pytest.raises(ValueError, match="changed my mind"):
            change_mind()
        assert db.session.scalars(sa.select(Tag.name)).all() == ["kept"]
    assert stored_names(app, db) == ["kept"]


def test_savepoint_block_undoes_only_its_own_work(database_url: str, instance_path: Path) -> None:
    app, db = make_app(database_url, instance_path)
    with app.app_context():
        db.session.add(Tag(name="taken"))
        db.session.commit()
        # A read first: on SQLite the driver has no transaction open at this point.
        assert db.session.scalars(sa.select(Tag.name)).all() == ["taken"]
        add_tags(db, "outer")

        def add_taken() -> None:
            with db.savepoint() as session:
                session.add(Tag(name="taken"))
                session.flush()

        with pytest.raises(IntegrityError):
            add_taken()
        with db.savepoint():
            add_tags(db, "inner")
        assert db.session.scalars(sa.select(Tag.name).order_by(Tag.name)).all() == [
            "inner",
            "outer",
            "taken",
        ]
        # Nothing is committed until the session is: a released SAVEPOINT is not.
        assert stored_names(app, db) == ["taken"]
        db.session.rollback()
    assert stored_names(app, db) == ["taken"]


def test_savepoint_after_a_read_stays_inside_the_transaction_on_sqlite(tmp_path: Path) -> None:
    # pysqlite begins no transaction for a SELECT; without the engine's fix, the
    # SAVEPOINT would begin one and its RELEASE would commit.
    app, db = make_app(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path)
    with app.app_context():
        db.session.scalars(sa.select(Tag)).all()
        with db.session.begin_nested():
            add_tags(db, "inside")
        db.session.rollback()
    assert stored_names(app, db) == []
