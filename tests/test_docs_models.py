"""The examples of docs/models.md run, and do what the page says."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import ModuleType
from typing import cast

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_alembic import Alembic
from sqlalchemy.orm import DeclarativeBase

from flask_typed_db import Database

PAGE = Path(__file__).parent.parent / "docs" / "models.md"
CODE_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


@pytest.fixture
def namespace(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """The page's examples, run in order as one module."""
    # A registered module: SQLAlchemy resolves Mapped[...] annotations through it.
    module = ModuleType("docs_models")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for number, block in enumerate(CODE_BLOCK.findall(PAGE.read_text("utf-8")), start=1):
        exec(compile(block, f"models.md, example {number}", "exec"), module.__dict__)
    return module.__dict__


def base_named(namespace: dict[str, object], name: str) -> type[DeclarativeBase]:
    base = namespace[name]
    assert isinstance(base, type)
    assert issubclass(base, DeclarativeBase)
    return base


def test_two_bases_on_one_bind_are_created_and_dropped_together(
    namespace: dict[str, object], tmp_path: Path
) -> None:
    db = namespace["db"]
    assert isinstance(db, Database)
    db = cast("Database", db)  # isinstance() leaves its session class unknown
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'blog.sqlite'}"
    db.init_app(app)

    with app.app_context():
        db.create_all()
        inspector = sa.inspect(db.engine)
        assert set(inspector.get_table_names()) == {"tag", "post"}
        # Each base's naming convention named its own constraints.
        assert [uq["name"] for uq in inspector.get_unique_constraints("tag")] == ["tags_uq_name"]
        db.drop_all()
        assert sa.inspect(db.engine).get_table_names() == []


def test_flask_alembic_gets_every_metadata_of_the_bind(namespace: dict[str, object]) -> None:
    alembic = namespace["alembic"]
    assert isinstance(alembic, Alembic)

    assert alembic.metadatas == {
        "default": [
            base_named(namespace, "TagBase").metadata,
            base_named(namespace, "Base").metadata,
        ]
    }


def test_auto_table_names_are_given(namespace: dict[str, object]) -> None:
    tables = base_named(namespace, "NamedBase").metadata.tables

    assert set(tables) == {"http_response", "o_auth2_token"}
