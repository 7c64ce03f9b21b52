"""Query recording: SQLALCHEMY_RECORD_QUERIES per app context, and record_queries() blocks."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from flask_typed_db import Database
from flask_typed_db import get_recorded_queries
from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import RecordedQuery


class Base(DeclarativeBase):
    pass


class AuthBase(DeclarativeBase):
    metadata = sa.MetaData(info={"bind_key": "auth"})


class Item(Base):
    __tablename__ = "recorded_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))


class Account(AuthBase):
    __tablename__ = "recorded_account"
    id: Mapped[int] = mapped_column(primary_key=True)


def make_app(
    database_url: str, instance_path: Path, *, record: object = None, **config: object
) -> tuple[Flask, Database]:
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    if record is not None:
        app.config["SQLALCHEMY_RECORD_QUERIES"] = record
    app.config.from_mapping(config)
    db = Database(Base, app=app)
    with app.app_context():
        db.create_all()
        db.session.add(Item(id=1, name="first"))
        db.session.commit()
    return app, db


def has_listeners(engine: sa.Engine) -> bool:
    return bool(
        list(engine.dispatch.before_cursor_execute) or list(engine.dispatch.after_cursor_execute)
    )


def values(parameters: object) -> list[object]:
    """The bound values of one statement, whatever the driver's paramstyle."""
    if isinstance(parameters, dict):
        return list(parameters.values())  # pyright: ignore[reportUnknownArgumentType, reportUnknownMemberType]  # a driver's dict
    assert isinstance(parameters, tuple | list)
    return list(parameters)  # pyright: ignore[reportUnknownArgumentType]  # a driver's tuple


def test_queries_of_a_request_are_recorded_with_statement_parameters_and_location(
    database_url: str, instance_path: Path
) -> None:
    app, db = make_app(database_url, instance_path, record=True)
    seen: list[RecordedQuery] = []

    @app.get("/")
    def view() -> str:
        item = db.session.get(Item, 1)
        db.session.scalars(sa.select(Item).where(Item.name == "nobody")).all()
        seen.extend(get_recorded_queries())
        return item.name if item else ""

    assert app.test_client().get("/").text == "first"
    by_pk, by_name = seen
    assert "recorded_item" in by_pk.statement
    assert 1 in values(by_pk.parameters)
    assert "nobody" in values(by_name.parameters)
    for query in seen:
        assert query.start_time <= query.end_time
        assert query.duration == query.end_time - query.start_time
        # The line in this module that ran it, in the view, not in SQLAlchemy or Flask.
        assert query.location.startswith(f"{__file__}:")
        assert query.location.endswith(" (view)")
    assert by_pk.location != by_name.location


def test_location_is_in_the_apps_package_even_when_a_library_ran_the_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, db = make_app(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path, record=True)
    # A function of another package, between the view and SQLAlchemy.
    library = ModuleType("some_library")
    monkeypatch.setitem(sys.modules, library.__name__, library)
    exec("def fetch(session, model):\n    return session.get(model, 1)\n", library.__dict__)
    locations: list[str] = []

    @app.get("/")
    def view() -> str:
        library.fetch(db.session, Item)
        locations.extend(query.location for query in get_recorded_queries())
        return ""

    app.test_client().get("/")
    (location,) = locations
    assert location.startswith(f"{__file__}:")
    assert location.endswith(" (view)")


def test_each_app_context_starts_with_no_recorded_queries(tmp_path: Path) -> None:
    app, db = make_app(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path, record=True)
    counts: list[int] = []

    @app.get("/")
    def view() -> str:
        counts.append(len(get_recorded_queries()))
        db.session.get(Item, 1)
        counts.append(len(get_recorded_queries()))
        return ""

    client = app.test_client()
    client.get("/")
    client.get("/")
    assert counts == [0, 1, 0, 1]


def test_recorded_queries_stay_readable_after_the_request_in_a_preserved_context(
    tmp_path: Path,
) -> None:
    app, db = make_app(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path, record=True)

    @app.get("/")
    def view() -> str:
        db.session.get(Item, 1)
        return ""

    with app.test_client() as client:
        client.get("/")
        (query,) = get_recorded_queries()
    assert "recorded_item" in query.statement


def test_queries_on_every_bind_are_recorded(tmp_path: Path) -> None:
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'default.sqlite'}",
        SQLALCHEMY_BINDS={"auth": f"sqlite:///{tmp_path / 'auth.sqlite'}"},
        SQLALCHEMY_RECORD_QUERIES=True,
    )
    db = Database(Base, AuthBase, app=app)
    with app.app_context():
        db.create_all()
        get_recorded_queries().clear()
        db.session.get(Item, 1)
        db.session.get(Account, 1)
        statements = [query.statement for query in get_recorded_queries()]
    assert len(statements) == 2
    assert "recorded_item" in statements[0]
    assert "recorded_account" in statements[1]


def test_recording_is_off_by_default_and_attaches_no_listener(tmp_path: Path) -> None:
    app, db = make_app(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path)
    with app.app_context():
        db.session.get(Item, 1)
        assert get_recorded_queries() == []
        assert not any(has_listeners(engine) for engine in db.engines.values())


def test_recording_switched_off_explicitly_attaches_no_listener(tmp_path: Path) -> None:
    app, db = make_app(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path, record=False)
    with app.app_context():
        db.session.get(Item, 1)
        assert get_recorded_queries() == []
        assert not has_listeners(db.engine)


def test_queries_outside_an_app_context_are_not_recorded(tmp_path: Path) -> None:
    app, db = make_app(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path, record=True)
    with app.app_context():
        engine = db.engine
    errors: list[BaseException] = []

    def outside() -> None:
        try:
            with engine.connect() as connection:
                connection.execute(sa.select(Item.id)).all()
        except BaseException as error:  # reported to the test's thread below
            errors.append(error)

    with app.app_context():
        # Another thread has no app context, so its query goes nowhere, and fails nothing.
        thread = threading.Thread(target=outside)
        thread.start()
        thread.join()
        assert get_recorded_queries() == []
    assert errors == []


def test_get_recorded_queries_outside_an_app_context_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match=r"outside of application context.*app_context\(\)"):
        get_recorded_queries()


@pytest.mark.parametrize("value", ["False", 1, None])
def test_record_queries_config_must_be_a_bool(tmp_path: Path, value: object) -> None:
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.from_mapping(SQLALCHEMY_DATABASE_URI="sqlite://", SQLALCHEMY_RECORD_QUERIES=value)
    with pytest.raises(ValueError, match=r"'SQLALCHEMY_RECORD_QUERIES' must be True or False"):
        Database(Base, app=app)


def test_record_queries_block_counts_the_queries_of_a_request(
    database_url: str, instance_path: Path
) -> None:
    app, db = make_app(database_url, instance_path)

    @app.get("/<int:item_id>")
    def view(item_id: int) -> str:
        item = db.session.get(Item, item_id)
        return item.name if item else "-"

    client = app.test_client()
    with db.record_queries(app) as queries:
        assert client.get("/1").text == "first"
    assert len(queries) == 1
    assert 1 in values(queries[0].parameters)
    assert queries[0].location.endswith(" (view)")

    with db.record_queries(app) as queries:
        client.get("/1")
        client.get("/2")
    assert len(queries) == 2

    # Nothing recorded, and nothing listening, once the block is over.
    client.get("/1")
    assert len(queries) == 2
    with app.app_context():
        assert not has_listeners(db.engine)


def test_record_queries_block_uses_the_current_app_without_an_argument(tmp_path: Path) -> None:
    app, db = make_app(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path)
    with app.app_context(), db.record_queries() as queries:
        db.session.get(Item, 1)
    assert len(queries) == 1


def test_record_queries_block_on_an_unregistered_app_says_what_to_do(tmp_path: Path) -> None:
    db = Database(Base)
    with pytest.raises(RuntimeError, match=r"call 'db\.init_app\(app\)' before"):
        db.record_queries(Flask(__name__, instance_path=str(tmp_path)))


def test_record_queries_block_and_config_recording_both_see_a_query(tmp_path: Path) -> None:
    app, db = make_app(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path, record=True)
    with app.app_context():
        with db.record_queries() as queries:
            db.session.get(Item, 1)
        assert len(queries) == 1
        assert len(get_recorded_queries()) == 1


def test_core_record_queries_finds_the_callers_line_without_flask(database_url: str) -> None:
    with DatabaseCore({"SQLALCHEMY_DATABASE_URI": database_url}, Base) as core:
        core.create_all()
        with core.record_queries() as queries, core.transaction() as session:
            session.add(Item(id=7, name="seventh"))
        assert not has_listeners(core.engine)
    inserts = [query for query in queries if query.statement.lstrip().upper().startswith("INSERT")]
    (insert,) = inserts
    assert "seventh" in values(insert.parameters)
    # The innermost frame outside SQLAlchemy, this package and the standard library
    # (contextlib runs the commit): this test.
    assert insert.location.startswith(f"{__file__}:")
    assert insert.location.endswith(
        " (test_core_record_queries_finds_the_callers_line_without_flask)"
    )


def test_isolation_savepoints_are_not_counted_but_the_codes_own_are_outside_it(
    database_url: str, instance_path: Path
) -> None:
    app, db = make_app(database_url, instance_path)

    @app.post("/")
    def view() -> str:
        db.session.get(Item, 1)
        with db.savepoint():
            db.session.add(Item(id=2, name="second"))
        db.session.commit()
        return ""

    client = app.test_client()
    with db.test_isolation(app), db.record_queries(app) as isolated:
        client.post("/")
    with db.record_queries(app) as plain:
        client.post("/")

    def kinds(queries: Sequence[RecordedQuery]) -> list[str]:
        return [query.statement.split()[0].upper() for query in queries]

    # Inside isolation every session joins it with a SAVEPOINT of its own, which the
    # view does not send outside it: none is recorded there, the view's own included.
    assert kinds(isolated) == ["SELECT", "INSERT"]
    assert kinds(plain) == ["SELECT", "SAVEPOINT", "INSERT", "RELEASE"]
