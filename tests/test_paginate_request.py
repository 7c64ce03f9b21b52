"""db.paginate(): page and per_page from the query string, their limits, and 404s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from werkzeug.exceptions import NotFound
from werkzeug.test import EnvironBuilder

from flask_typed_db import Database
from flask_typed_db.core import Pagination


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "paginate_request_item"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)


ITEMS = sa.select(Item).order_by(Item.id)

db = Database(Base)


def make_app(url: str, instance_path: Path, count: int, **config: Any) -> Flask:
    """An app whose database holds items 1..count."""
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    for key, value in config.items():
        app.config[key] = value
    db.init_app(app)
    with app.app_context():
        db.create_all()
        db.session.add_all(Item(id=item_id) for item_id in range(1, count + 1))
        db.session.commit()
    return app


@pytest.fixture
def app(tmp_path: Path, instance_path: Path) -> Flask:
    """Fifty items in SQLite: for the parsing of arguments, which no backend changes."""
    return make_app(f"sqlite:///{tmp_path / 'items.db'}", instance_path, 50)


def paginate_at(app: Flask, query_string: str, **kwargs: Any) -> Pagination[Item]:
    """``db.paginate(ITEMS, **kwargs)`` in a request to ``/?{query_string}``."""
    with app.test_request_context(f"/?{query_string}"):
        return db.paginate(ITEMS, **kwargs)


def ids(pagination: Pagination[Item]) -> list[int]:
    return [item.id for item in pagination.items]


# Valid numbers


def test_page_and_per_page_come_from_the_query_string(app: Flask) -> None:
    pagination = paginate_at(app, "page=2&per_page=5")
    assert (pagination.page, pagination.per_page) == (2, 5)
    assert ids(pagination) == [6, 7, 8, 9, 10]
    assert pagination.total == 50


def test_missing_arguments_default_to_page_1_of_20(app: Flask) -> None:
    pagination = paginate_at(app, "")
    assert (pagination.page, pagination.per_page) == (1, 20)
    assert ids(pagination) == list(range(1, 21))


def test_last_page_from_the_query_string_is_not_a_404(app: Flask) -> None:
    pagination = paginate_at(app, "page=3")
    assert ids(pagination) == list(range(41, 51))
    assert pagination.has_next is False


def test_explicit_arguments_win_over_the_query_string(app: Flask) -> None:
    pagination = paginate_at(app, "page=3&per_page=2", page=2, per_page=4)
    assert (pagination.page, pagination.per_page) == (2, 4)
    assert ids(pagination) == [5, 6, 7, 8]


def test_outside_a_request_paginate_uses_the_defaults(app: Flask) -> None:
    with app.app_context():
        pagination = db.paginate(ITEMS)
    assert (pagination.page, pagination.per_page) == (1, 20)
    assert ids(pagination) == list(range(1, 21))


def test_outside_a_request_explicit_arguments_are_used(app: Flask) -> None:
    with app.app_context():
        pagination = db.paginate(ITEMS, page=2, per_page=7)
    assert ids(pagination) == list(range(8, 15))


# Invalid numbers

#: Not plain ASCII digits, though int() takes some: Arabic-Indic one, fullwidth three, ...
INVALID = ["abc", "1.5", "0", "-1", "\u0661", "\uff13", "+1", " 1", "1 ", "", "1e3", "0x10"]


@pytest.mark.parametrize("value", INVALID)
@pytest.mark.parametrize("name", ["page", "per_page"])
def test_invalid_number_in_the_query_string_is_a_404(app: Flask, name: str, value: str) -> None:
    with pytest.raises(NotFound):
        paginate_at(app, f"{name}={value}")


@pytest.mark.parametrize("value", INVALID)
def test_invalid_page_without_error_out_falls_back_to_page_1(app: Flask, value: str) -> None:
    pagination = paginate_at(app, f"page={value}&per_page=5", error_out=False)
    assert pagination.page == 1
    assert ids(pagination) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("value", INVALID)
def test_invalid_per_page_without_error_out_falls_back_to_20(app: Flask, value: str) -> None:
    pagination = paginate_at(app, f"page=2&per_page={value}", error_out=False)
    assert pagination.per_page == 20
    assert ids(pagination) == list(range(21, 41))


@pytest.mark.parametrize(("page", "per_page"), [(0, 10), (-3, 10), (1, 0), (1, -1)])
def test_explicit_number_below_one_is_a_404(app: Flask, page: int, per_page: int) -> None:
    with app.app_context(), pytest.raises(NotFound):
        db.paginate(ITEMS, page=page, per_page=per_page)


def test_explicit_numbers_below_one_without_error_out_fall_back(app: Flask) -> None:
    with app.app_context():
        pagination = db.paginate(ITEMS, page=0, per_page=-1, error_out=False)
    assert (pagination.page, pagination.per_page) == (1, 20)


def test_query_string_404_is_the_response_of_a_view(app: Flask) -> None:
    @app.get("/items")
    def items() -> list[int]:
        return ids(db.paginate(ITEMS))

    client = app.test_client()
    assert client.get("/items?page=2&per_page=3").json == [4, 5, 6]
    assert client.get("/items?page=abc").status_code == 404
    assert client.get("/items?page=9").status_code == 404


def raw_query_string_request(app: Flask, query_string: bytes) -> Any:
    """A request context whose query string holds raw bytes, not percent-encoded, as a
    careless client or an attacker sends them; WSGI carries them as latin-1.
    """
    environ = EnvironBuilder(path="/items").get_environ()
    environ["QUERY_STRING"] = query_string.decode("latin-1")
    return app.request_context(environ)


@pytest.mark.parametrize("query_string", [b"page=\xff\xfe", b"per_page=\xc3", b"x=\x80&page=2"])
def test_query_string_that_is_not_utf8_is_a_400(app: Flask, query_string: bytes) -> None:
    @app.get("/items")
    def items() -> list[int]:
        return ids(db.paginate(ITEMS))

    with raw_query_string_request(app, query_string):
        response = app.full_dispatch_request()
    assert response.status_code == 400
    assert "not valid UTF-8" in response.get_data(as_text=True)


def test_query_string_that_is_not_utf8_without_error_out_uses_the_defaults(app: Flask) -> None:
    with raw_query_string_request(app, b"page=\xff\xfe"):
        pagination = db.paginate(ITEMS, error_out=False)
    assert (pagination.page, pagination.per_page) == (1, 20)


# Pages past the last


def test_page_past_the_last_is_a_404(app: Flask) -> None:
    with pytest.raises(NotFound):
        paginate_at(app, "page=4")


def test_page_past_the_last_without_error_out_is_empty(app: Flask) -> None:
    pagination = paginate_at(app, "page=4", error_out=False)
    assert (pagination.page, pagination.items, pagination.total) == (4, [], 50)


def test_page_past_the_last_without_count_is_still_a_404(app: Flask) -> None:
    with pytest.raises(NotFound):
        paginate_at(app, "page=4", count=False)


def test_huge_page_is_a_404(app: Flask) -> None:
    with pytest.raises(NotFound):
        paginate_at(app, f"page={'9' * 18}")
    with pytest.raises(NotFound):
        paginate_at(app, f"page={'9' * 40}")


def test_huge_page_without_error_out_is_empty(app: Flask) -> None:
    pagination = paginate_at(app, f"page={'9' * 18}", error_out=False)
    assert (pagination.page, pagination.items, pagination.total) == (10**18 - 1, [], 50)


def test_page_of_more_than_18_digits_without_error_out_is_empty(app: Flask) -> None:
    pagination = paginate_at(app, f"page={'9' * 40}", error_out=False)
    assert pagination.items == []


# max_per_page


@pytest.mark.parametrize(("asked", "given"), [(100, 100), (101, 100), (500, 100)])
def test_per_page_is_capped_at_100_by_default(app: Flask, asked: int, given: int) -> None:
    pagination = paginate_at(app, f"per_page={asked}", error_out=False)
    assert pagination.per_page == given


def test_per_page_from_the_call_is_capped_too(app: Flask) -> None:
    with app.app_context():
        assert db.paginate(ITEMS, per_page=1000).per_page == 100


def test_max_per_page_argument_overrides_the_default(app: Flask) -> None:
    assert paginate_at(app, "per_page=50", max_per_page=5).per_page == 5
    assert paginate_at(app, "per_page=150", max_per_page=200).per_page == 150


def test_app_config_sets_max_per_page(tmp_path: Path, instance_path: Path) -> None:
    app = make_app(
        f"sqlite:///{tmp_path / 'items.db'}", instance_path, 30, SQLALCHEMY_MAX_PER_PAGE=10
    )
    pagination = paginate_at(app, "per_page=25")
    assert pagination.per_page == 10
    assert ids(pagination) == list(range(1, 11))
    assert paginate_at(app, "per_page=25", max_per_page=25).per_page == 25


def test_app_config_none_means_no_cap(tmp_path: Path, instance_path: Path) -> None:
    app = make_app(
        f"sqlite:///{tmp_path / 'items.db'}", instance_path, 120, SQLALCHEMY_MAX_PER_PAGE=None
    )
    pagination = paginate_at(app, "per_page=500")
    assert pagination.per_page == 500
    assert len(pagination.items) == 120


def test_per_page_of_more_than_18_digits_is_capped(app: Flask) -> None:
    assert paginate_at(app, f"per_page={'9' * 19}").per_page == 100


@pytest.mark.parametrize("value", [0, -5, "100", 1.5, True, "none"])
def test_invalid_max_per_page_config_is_a_value_error_at_init_app(
    instance_path: Path, value: object
) -> None:
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    app.config["SQLALCHEMY_MAX_PER_PAGE"] = value
    with pytest.raises(ValueError, match="'SQLALCHEMY_MAX_PER_PAGE'"):
        db.init_app(app)


# The page itself, on every backend


def test_query_string_page_is_fetched_and_counted_on_every_backend(
    database_url: str, instance_path: Path
) -> None:
    app = make_app(database_url, instance_path, 45)
    pagination = paginate_at(app, "page=2&per_page=20")
    assert ids(pagination) == list(range(21, 41))
    assert (pagination.total, pagination.pages, pagination.next_num) == (45, 3, 3)
    last = paginate_at(app, "page=3&per_page=20")
    assert ids(last) == list(range(41, 46))
    assert last.total == 45


def test_page_past_the_last_is_a_404_or_empty_on_every_backend(
    database_url: str, instance_path: Path
) -> None:
    app = make_app(database_url, instance_path, 5)
    with pytest.raises(NotFound):
        paginate_at(app, "page=2&per_page=5")
    with pytest.raises(NotFound):
        paginate_at(app, f"page={'9' * 18}")
    empty = paginate_at(app, f"page={'9' * 18}&per_page=100", error_out=False)
    assert (empty.items, empty.total) == ([], 5)


def test_empty_table_first_page_is_not_a_404_on_every_backend(
    database_url: str, instance_path: Path
) -> None:
    app = make_app(database_url, instance_path, 0)
    pagination = paginate_at(app, "page=1")
    assert (pagination.items, pagination.total, pagination.pages) == ([], 0, 0)
