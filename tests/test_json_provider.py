"""ModelJSONProvider: opt in, and views write instances, lists and pages without a lazy
load; Flask's own JSON is unchanged elsewhere. On every backend.

The models here are dataclass-mapped: Flask's default provider would hand them to
``dataclasses.asdict()``, which reads (and lazy-loads) every relationship.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask import current_app
from flask import jsonify
from flask.json.provider import DefaultJSONProvider
from flask.typing import ResponseReturnValue
from markupsafe import Markup
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import MappedAsDataclass
from sqlalchemy.orm import joinedload
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from flask_typed_db import Database
from flask_typed_db import ModelJSONProvider
from flask_typed_db.core import Pagination


class Base(MappedAsDataclass, DeclarativeBase):
    pass


class Shelf(Base):
    __tablename__ = "json_provider_shelf"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    label: Mapped[str] = mapped_column(sa.String(50))
    tomes: Mapped[list[Tome]] = relationship(
        back_populates="shelf", order_by="Tome.id", default_factory=list
    )


class Tome(Base):
    __tablename__ = "json_provider_tome"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(sa.String(50))
    published: Mapped[date]
    shelf_id: Mapped[int] = mapped_column(sa.ForeignKey("json_provider_shelf.id"), init=False)
    shelf: Mapped[Shelf | None] = relationship(back_populates="tomes", default=None)


db = Database(Base)

DUNE = {"id": 1, "title": "Dune", "published": "1965-08-01", "shelf_id": 1}
EMMA = {"id": 2, "title": "Emma", "published": "1815-12-23", "shelf_id": 1}
ULYSSES = {"id": 3, "title": "Ulysses", "published": "1922-02-02", "shelf_id": 2}


@dataclasses.dataclass
class Point:
    x: int
    y: int


@pytest.fixture
def app(database_url: str, instance_path: Path) -> Iterator[Flask]:
    """An app using the provider, with two shelves of tomes and a few views."""
    app = Flask(__name__, instance_path=str(instance_path))
    app.json = ModelJSONProvider(app)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    app.testing = True  # the view's exceptions reach the test
    db.init_app(app)
    with app.app_context():
        db.create_all()
        db.session.add_all(
            [
                Shelf(
                    id=1,
                    label="A",
                    tomes=[
                        Tome(id=1, title="Dune", published=date(1965, 8, 1)),
                        Tome(id=2, title="Emma", published=date(1815, 12, 23)),
                    ],
                ),
                Shelf(id=2, label="B", tomes=[Tome(3, "Ulysses", date(1922, 2, 2))]),
            ]
        )
        db.session.commit()

    @app.get("/tomes/<int:tome_id>")
    def get_tome(tome_id: int) -> ResponseReturnValue:
        return jsonify(db.get_or_404(Tome, tome_id, options=[joinedload(Tome.shelf)]))

    @app.get("/tomes")
    def list_tomes() -> ResponseReturnValue:
        return list(db.session.scalars(sa.select(Tome).order_by(Tome.id)))

    @app.get("/page")
    def page_of_tomes() -> ResponseReturnValue:
        return current_app.json.response(db.paginate(sa.select(Tome).order_by(Tome.id)))

    @app.post("/tomes/<int:tome_id>/rename")
    def rename_tome(tome_id: int) -> ResponseReturnValue:
        tome = db.get_or_404(Tome, tome_id)
        tome.title = "Renamed"
        db.session.commit()
        return jsonify(tome)  # expired by the commit

    yield app
    with app.app_context():
        db.engine.dispose()


@contextmanager
def counting_statements(app: Flask) -> Generator[list[str]]:
    """The statements sent to the app's database inside."""
    statements: list[str] = []

    def record(conn: sa.Connection, cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_jsonify_writes_an_instance_and_only_what_the_view_loaded(app: Flask) -> None:
    with counting_statements(app) as statements:
        response = app.test_client().get("/tomes/3")

    assert response.status_code == 200
    # The shelf was joined; its tomes were not loaded, so they are left out.
    assert response.get_json() == {**ULYSSES, "shelf": {"id": 2, "label": "B"}}
    assert len(statements) == 1


def test_view_returning_a_list_of_instances(app: Flask) -> None:
    with counting_statements(app) as statements:
        response = app.test_client().get("/tomes")

    assert response.get_json() == [DUNE, EMMA, ULYSSES]
    assert len(statements) == 1  # no lazy load of any shelf


def test_page_through_app_json_response(app: Flask) -> None:
    with counting_statements(app) as statements:
        response = app.test_client().get("/page?page=2&per_page=2")

    assert response.mimetype == "application/json"
    assert response.get_json() == {
        "items": [ULYSSES],
        "page": 2,
        "per_page": 2,
        "total": 3,
        "pages": 2,
        "has_prev": True,
        "has_next": False,
        "prev_num": 1,
        "next_num": None,
    }
    assert len(statements) == 1  # the last page, not full, gives the total: no count


def test_view_writing_an_instance_after_commit_fails_with_the_fix(app: Flask) -> None:
    with pytest.raises(ValueError, match=r"Tome \(1,\).*session.refresh\(\)"):
        app.test_client().post("/tomes/1/rename")


def test_provider_set_by_a_flask_subclass() -> None:
    class ModelJSONFlask(Flask):
        json_provider_class = ModelJSONProvider

    app = ModelJSONFlask(__name__)

    assert isinstance(app.json, ModelJSONProvider)
    assert app.json.dumps(datetime(2024, 5, 1, 9, 30)) == '"2024-05-01T09:30:00"'


def test_plain_app_keeps_flasks_json() -> None:
    app = Flask(__name__)
    page = Pagination(items=[1], page=1, per_page=5, total=1)

    assert type(app.json) is DefaultJSONProvider
    assert app.json.loads(app.json.dumps(date(2024, 5, 1))) == "Wed, 01 May 2024 00:00:00 GMT"
    # dataclasses.asdict(): the fields only, without pages, has_next and the others.
    assert app.json.loads(app.json.dumps(page)) == {
        "items": [1],
        "page": 1,
        "per_page": 5,
        "total": 1,
        "estimated_total": None,
    }


def test_types_the_provider_does_not_handle_fall_back_to_flasks() -> None:
    provider = ModelJSONProvider(Flask(__name__))

    assert provider.loads(provider.dumps(Markup("<b>x</b>"))) == "<b>x</b>"
    assert provider.loads(provider.dumps(Point(1, 2))) == {"x": 1, "y": 2}
    with pytest.raises(TypeError, match=r"^Object of type complex is not JSON serializable$"):
        provider.dumps(1j)
