"""The Python examples in the docs run, and do what the text around them says."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from flask import Flask

from flask_typed_db import Database

DOCS = Path(__file__).parent.parent / "docs"
CODE_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def run_examples(page: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Run every ``python`` block of ``page`` in order, as one module."""
    # A registered module: SQLAlchemy resolves Mapped[...] annotations through it.
    module = ModuleType(f"docs_{Path(page).stem}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    blocks = CODE_BLOCK.findall((DOCS / page).read_text(encoding="utf-8"))
    assert blocks, f"no python examples in {page}"
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"{page}, example {number}", "exec"), module.__dict__)
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
