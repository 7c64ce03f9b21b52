"""``db.keyset_paginate()`` in views: the query string's cursors and page size, and a
400 for any cursor that is not one of the listing's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import cast

import pytest
import sqlalchemy as sa
from flask import Flask
from flask import request
from flask.testing import FlaskClient
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from flask_typed_db import Database
from flask_typed_db._sessions import app_states


class Base(DeclarativeBase):
    pass


class Entry(Base):
    __tablename__ = "keyset_entry"
    id: Mapped[int] = mapped_column(primary_key=True)
    rank: Mapped[int]


ENTRIES = 23


@dataclass(frozen=True)
class Listing:
    client: FlaskClient
    #: Every entry's id, in the listing's order.
    expected: list[int]


@pytest.fixture
def listing_app(tmp_path: Path) -> Iterator[Listing]:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'keyset.db'}"
    app.config["SQLALCHEMY_MAX_PER_PAGE"] = 10
    db = Database(Base)
    db.init_app(app)

    def listing(error_out: bool = True) -> dict[str, Any]:
        page = db.keyset_paginate(
            sa.select(Entry).order_by(Entry.rank.desc(), Entry.id), error_out=error_out
        )
        return {
            "ids": [entry.id for entry in page.items],
            "next": page.next_cursor,
            "prev": page.prev_cursor,
            "per_page": page.per_page,
        }

    @app.get("/entries")
    def entries() -> ResponseReturnValue:
        return listing(error_out="lenient" not in request.args)

    @app.get("/other")
    def other() -> ResponseReturnValue:
        return listing()

    @app.get("/async-entries")
    async def async_entries() -> ResponseReturnValue:
        page = await db.async_keyset_paginate(
            sa.select(Entry).order_by(Entry.rank.desc(), Entry.id)
        )
        return {
            "ids": [entry.id for entry in page.items],
            "next": page.next_cursor,
            "prev": page.prev_cursor,
            "per_page": page.per_page,
        }

    with app.app_context():
        db.create_all()
        db.session.add_all(Entry(id=number, rank=number % 3) for number in range(1, ENTRIES + 1))
        db.session.commit()
        expected = db.session.scalars(
            sa.select(Entry.id).order_by(Entry.rank.desc(), Entry.id)
        ).all()
    yield Listing(app.test_client(), list(expected))
    # The async view's pooled connections, closed on the loop that made them.
    app.ensure_sync(app_states(app)[db].core.async_dispose)()
    with app.app_context():
        db.engine.dispose()


def page_of(client: FlaskClient, path: str, **query: object) -> dict[str, Any]:
    answer = client.get(path, query_string=query)
    assert answer.status_code == 200, answer.text
    found = answer.get_json()
    assert isinstance(found, dict)
    return cast("dict[str, Any]", found)


def test_walking_the_query_string_cursors_forward_and_back(listing_app: Listing) -> None:
    client = listing_app.client
    answer = page_of(client, "/entries", per_page=4)
    pages = [answer]
    while answer["next"] is not None:
        answer = page_of(client, "/entries", per_page=4, after=answer["next"])
        pages.append(answer)
    seen = [identity for page in pages for identity in page["ids"]]
    assert seen == listing_app.expected
    back = [pages[-1]["ids"]]
    answer = pages[-1]
    while answer["prev"] is not None:
        answer = page_of(client, "/entries", per_page=4, before=answer["prev"])
        back.append(answer["ids"])
    assert [identity for page in reversed(back) for identity in page] == listing_app.expected


def test_per_page_follows_paginates_rules(listing_app: Listing) -> None:
    client = listing_app.client
    assert page_of(client, "/entries", per_page=1000)["per_page"] == 10
    assert page_of(client, "/entries")["per_page"] == 10
    for bad in ("0", "-1", "abc", "1.5"):
        assert client.get(f"/entries?per_page={bad}").status_code == 404


def test_cursors_that_are_not_the_listings_are_400(listing_app: Listing) -> None:
    client = listing_app.client
    cursor = page_of(client, "/entries", per_page=4)["next"]
    foreign = page_of(client, "/other", per_page=4)["next"]
    for query in (
        {"after": "garbage"},
        {"before": "x" * 2000},
        {"after": foreign},
        {"after": cursor, "before": cursor},
    ):
        answer = client.get("/entries", query_string=query)
        assert answer.status_code == 400, query
    lenient = page_of(client, "/entries", after="garbage", lenient="1")
    assert lenient["ids"] == listing_app.expected[:10]


def test_async_views_walk_the_same_pages(listing_app: Listing) -> None:
    client = listing_app.client
    answer = page_of(client, "/async-entries", per_page=6)
    seen = list(answer["ids"])
    while answer["next"] is not None:
        answer = page_of(client, "/async-entries", per_page=6, after=answer["next"])
        seen += answer["ids"]
    assert seen == listing_app.expected
    # The sync endpoint's cursors are not the async one's.
    sync_cursor = page_of(client, "/entries", per_page=6)["next"]
    assert client.get("/async-entries", query_string={"after": sync_cursor}).status_code == 400
    assert client.get("/async-entries?per_page=0").status_code == 404
