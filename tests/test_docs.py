"""The Python examples in the docs run, and do what the text around them says."""

from __future__ import annotations

import io
import json
import logging.config
import re
import sys
import unittest
from pathlib import Path
from types import ModuleType
from typing import cast

import pytest
import sqlalchemy as sa
from flask import Flask

from bookshelf.models import Book
from flask_typed_db import Database
from flask_typed_db.core import RecordedQuery

DOCS = Path(__file__).parent.parent / "docs"
CODE_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
JSON_BLOCK = re.compile(r"^```json\n(.*?)^```", re.MULTILINE | re.DOTALL)
TEXT_BLOCK = re.compile(r"^```text\n(.*?)^```", re.MULTILINE | re.DOTALL)


def run_examples(page: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Run every ``python`` block of ``page`` in order, as one module."""
    # A registered module: SQLAlchemy resolves Mapped[...] annotations through it.
    module = ModuleType(f"docs_{Path(page).stem}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    blocks = CODE_BLOCK.findall((DOCS / page).read_text(encoding="utf-8"))
    assert blocks, f"no python examples in {page}"
    for number, block in enumerate(blocks, start=1):
        # dont_inherit: without this file's own __future__ import, an example's
        # annotations are evaluated, so a name it never defined fails.
        code = compile(block, f"{page}, example {number}", "exec", dont_inherit=True)
        exec(code, module.__dict__)
    return module.__dict__


def test_queries_page_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The examples' app finds its instance folder, and so its SQLite file, from here.
    monkeypatch.chdir(tmp_path)
    namespace = run_examples("queries.md", monkeypatch)
    app = namespace["app"]
    assert isinstance(app, Flask)
    assert namespace["names"] == []  # the worker example ran on the empty table

    db, user = namespace["db"], namespace["User"]
    assert isinstance(db, Database)
    db = cast("Database", db)  # isinstance() leaves its session class unknown
    assert isinstance(user, type)
    with app.app_context():
        db.session.add_all([user(name="ada", nickname=None), user(name="brian", nickname="b")])
        db.session.commit()

    client = app.test_client()
    assert client.get("/users/1").get_json() == {"id": 1, "name": "ada"}
    missing = client.get("/users/9")
    assert missing.status_code == 404
    assert "No such user." in missing.get_data(as_text=True)
    assert client.get("/users/by-name/brian").get_json() == {"id": 2}
    assert client.get("/users/by-name/nobody").status_code == 404
    assert client.get("/newest-name").get_data(as_text=True) == "brian"
    listing = client.get("/users?per_page=1&page=2").get_json()
    assert listing == {"users": [{"id": 2, "name": "brian"}], "page": 2, "pages": 2, "total": 2}
    assert client.get("/users?page=3&per_page=1").status_code == 404
    # SQLite has no planner estimate: the "estimate" is the count.
    about = client.get("/users/about?per_page=1").get_json()
    assert about == {"users": ["ada"], "about": 2}
    first = client.get("/users/by-key?per_page=1").get_json()
    assert (first["users"], first["prev"]) == (["ada"], None)
    second = client.get("/users/by-key", query_string={"per_page": 1, "after": first["next"]})
    assert (second.get_json()["users"], second.get_json()["next"]) == (["brian"], None)
    assert client.get("/users/by-key?after=forged").status_code == 400


def test_json_page_examples_run_and_show_what_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace = run_examples("json.md", monkeypatch)
    app = namespace["app"]
    assert isinstance(app, Flask)
    text = (DOCS / "json.md").read_text(encoding="utf-8")
    # The page's JSON blocks show the responses, in this order.
    shown = [json.loads(block) for block in JSON_BLOCK.findall(text)]
    client = app.test_client()

    assert [
        client.get("/books/1").get_json(),
        client.get("/authors/1").get_json(),
        client.get("/books?per_page=1").get_json(),
    ] == shown
    assert namespace["private_json"] == '{"email": "ada@example.org", "id": 1}'
    assert namespace["catalogue_json"] == '{"loan_period": 1209600.0}'
    # The worker loaded the books alone, by title: as the author's books are shown.
    assert json.loads(str(namespace["payload"])) == shown[1]["books"]
    reprinted = client.post("/books/2/reprint").get_json()
    assert reprinted == {**shown[1]["books"][0], "year": 2024}

    # The error the page shows, for the view without its refresh().
    db = namespace["db"]
    assert isinstance(db, Database)
    db = cast("Database", db)  # isinstance() leaves its session class unknown
    with app.app_context():
        book = db.session.get(Book, 1)
        db.session.commit()
        with pytest.raises(ValueError, match=r"^Cannot serialize Book") as info:
            app.json.dumps(book)
    shown_error = " ".join(TEXT_BLOCK.findall(text)[0].split())
    assert shown_error == f"ValueError: {info.value}"


def test_migrations_page_examples_run_with_both_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Flask-Migrate's env.py would reconfigure the logging of this test process.
    monkeypatch.setattr(logging.config, "fileConfig", _no_logging_config)
    namespace = run_examples("migrations.md", monkeypatch)

    def new_app(factory: str, folder: str) -> Flask:
        """An app from the page's ``factory``, its files (migrations, SQLite) in ``folder``."""
        monkeypatch.chdir(tmp_path / folder)
        make = namespace[factory]
        assert callable(make)
        app = make()
        assert isinstance(app, Flask)
        return app

    def tables(app: Flask, db_name: str, bind_key: str | None = None) -> set[str]:
        db = namespace[db_name]
        assert isinstance(db, Database)
        db = cast("Database", db)  # isinstance() leaves its session class unknown
        with app.app_context():
            return set(sa.inspect(db.get_engine(bind_key)).get_table_names())

    for folder in ("migrate", "migrate-multidb", "alembic", "alembic-multidb"):
        (tmp_path / folder).mkdir()

    # Flask-Migrate: each command with a new app, as each 'flask' run has.
    _flask_db(new_app("create_app", "migrate"), "init")
    _flask_db(new_app("create_app", "migrate"), "migrate", "-m", "Create users")
    deploy = namespace["deploy"]
    assert callable(deploy)
    app = new_app("create_app", "migrate")
    deploy(app)
    assert tables(app, "db") == {"user", "alembic_version"}
    _flask_db(new_app("create_app", "migrate"), "check")

    _flask_db(new_app("create_audited_app", "migrate-multidb"), "init", "--multidb")
    _flask_db(new_app("create_audited_app", "migrate-multidb"), "migrate", "-m", "Create all")
    app = new_app("create_audited_app", "migrate-multidb")
    _flask_db(app, "upgrade")
    assert tables(app, "audited_db") == {"user", "alembic_version"}
    assert tables(app, "audited_db", "audit") == {"audit_entry", "alembic_version"}

    # Flask-Alembic: its init_app made the migrations folder.
    app = new_app("create_alembic_app", "alembic")
    _flask_db(app, "revision", "Create users")
    _flask_db(app, "upgrade")
    assert tables(app, "db") == {"user", "alembic_version"}

    app = new_app("create_audited_alembic_app", "alembic-multidb")
    _flask_db(app, "revision", "Create all")
    _flask_db(app, "upgrade")
    assert tables(app, "audited_db") == {"user", "alembic_version"}
    assert tables(app, "audited_db", "audit") == {"audit_entry", "alembic_version"}


def _no_logging_config(*args: object, **kwargs: object) -> None:
    """Stands in for ``logging.config.fileConfig``."""


def _flask_db(app: Flask, *args: str) -> None:
    """Run ``flask db ARGS...`` as the ``flask`` command does, in an app context."""
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["db", *args])
    assert result.exit_code == 0, result.output


def test_recording_page_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = run_examples("recording.md", monkeypatch)
    # The page's own asserts ran: one query for the view, located in show_book.
    queries = namespace["queries"]
    assert isinstance(queries, list)
    assert [type(query) for query in cast("list[object]", queries)] == [RecordedQuery]


def test_health_page_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = run_examples("health.md", monkeypatch)
    response = namespace["response"]
    assert getattr(response, "status_code", None) == 503


def test_transactions_page_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = run_examples("transactions.md", monkeypatch)
    assert namespace["names"] == ["Poetry", "Essays", "Drama"]


def test_after_commit_page_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = run_examples("after-commit.md", monkeypatch)
    confirmed = namespace["confirmed"]
    # The worker's order, then the one the test ran itself from the captured list.
    assert confirmed == [1, 1]
    app = namespace["app"]
    assert isinstance(app, Flask)
    client = app.test_client()
    assert client.post("/orders", data={"item": "nothing"}).status_code == 422
    assert confirmed == [1, 1]
    created = client.post("/orders", data={"item": "kettle"})
    assert created.status_code == 201
    assert confirmed == [1, 1, created.get_json()["id"]]


def test_migrating_page_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The app's SQLite files go to its instance folder, found from here.
    monkeypatch.chdir(tmp_path)
    namespace = run_examples("migrating.md", monkeypatch)
    db = namespace["db"]
    assert isinstance(db, Database)
    db = cast("Database", db)  # isinstance() leaves its session class unknown
    app = namespace["app"]
    assert isinstance(app, Flask)
    with app.app_context():
        # Each base's table is in its own bind's database.
        assert sa.inspect(db.engine).get_table_names() == ["book"]
        assert sa.inspect(db.get_engine("auth")).get_table_names() == ["user"]

    # The unittest case of the tearDown section passes, and its tearDown dropped the tables.
    case = cast("type[unittest.TestCase]", namespace["BookTestCase"])
    result = unittest.TextTestRunner(stream=io.StringIO()).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(case)
    )
    assert result.wasSuccessful(), result.errors + result.failures
    assert result.testsRun == 1
    with app.app_context():
        assert sa.inspect(db.engine).get_table_names() == []


def test_async_page_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace = run_examples("async.md", monkeypatch)
    app, db = namespace["app"], namespace["db"]
    assert isinstance(app, Flask)
    assert isinstance(db, Database)
    db = cast("Database", db)  # isinstance() leaves its session classes unknown
    client = app.test_client()
    try:
        # The worker example added a book through the core's async session, to the
        # same file the app reads.
        assert client.get("/books/1").json == {"id": 1, "title": "Solaris"}
        created = client.post("/books")
        assert created.status_code == 201
        book_id = created.json["id"] if created.json else None
        # commit_on_success committed the async view's session.
        assert client.get(f"/books/{book_id}").json == {"id": book_id, "title": "Dune"}
        assert client.get("/books/99").status_code == 404
    finally:
        with app.app_context():
            app.ensure_sync(db.async_engine.dispose)()
