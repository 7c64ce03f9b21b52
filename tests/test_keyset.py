"""Keyset pagination in the core (``flask_typed_db.core.keyset_paginate``), on every
backend: every page forward and back with ties, mixed directions, rows inserted and
deleted between pages, per_page's edges, the statement's rules and tampered cursors.
"""

from __future__ import annotations

import base64
import datetime
import itertools
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from typing import cast

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Session
from sqlalchemy.orm import mapped_column

from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import InvalidCursor
from flask_typed_db.core import KeysetPage
from flask_typed_db.core import keyset_paginate
from flask_typed_db.core._keyset import _seeks_by_row_values  # pyright: ignore[reportPrivateUsage]  # the decision alone, without a server of each kind


class Base(DeclarativeBase):
    pass


class Shelf(Base):
    __tablename__ = "keyset_shelf"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))


class Volume(Base):
    __tablename__ = "keyset_volume"
    __table_args__ = (sa.Index("keyset_volume_year_id", "year", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    # Few distinct years: many ties in the leading column.
    year: Mapped[int]
    title: Mapped[str] = mapped_column(sa.String(50))
    published: Mapped[datetime.date]
    shelf_id: Mapped[int] = mapped_column(sa.ForeignKey(Shelf.id))
    note: Mapped[str | None] = mapped_column(sa.String(50))
    code: Mapped[str] = mapped_column(sa.String(20), unique=True)


ROWS = 47


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    with DatabaseCore({"SQLALCHEMY_DATABASE_URI": database_url}, Base) as core:
        core.create_all()
        with core.transaction() as setup:
            setup.add_all([Shelf(id=1, name="A"), Shelf(id=2, name="B")])
            setup.flush()
            setup.add_all(
                Volume(
                    id=number,
                    year=2000 + number % 4,
                    title=f"T{number % 5}",
                    published=datetime.date(2020, 1, 1) + datetime.timedelta(days=number % 6),
                    shelf_id=1 + number % 2,
                    code=f"c{number:03d}",
                )
                for number in range(1, ROWS + 1)
            )
        with core.sessionmaker() as session:
            yield session
        core.drop_all()


def walk_forward(session: Session, statement: Any, per_page: int) -> list[list[Any]]:
    pages: list[list[Any]] = []
    cursor: str | None = None
    while True:
        page = keyset_paginate(session, statement, per_page=per_page, after=cursor)
        pages.append(list(page.items))
        assert page.has_prev == (cursor is not None)
        if not page.has_next:
            assert page.next_cursor is None
            return pages
        cursor = page.next_cursor
        assert len(pages) <= ROWS + 1


def walk_backward(session: Session, statement: Any, per_page: int, start: str) -> list[list[Any]]:
    pages: list[list[Any]] = []
    cursor: str | None = start
    while cursor is not None:
        page = keyset_paginate(session, statement, per_page=per_page, before=cursor)
        assert page.has_next
        pages.append(list(page.items))
        cursor = page.prev_cursor if page.has_prev else None
        assert len(pages) <= ROWS + 1
    return pages[::-1]


ORDERINGS = {
    "id": (Volume.id,),
    "year-id": (Volume.year, Volume.id),
    "year-desc-id": (Volume.year.desc(), Volume.id),
    "title-desc-year-id-desc": (Volume.title.desc(), Volume.year, Volume.id.desc()),
    "published-id-desc": (Volume.published, Volume.id.desc()),
    "code": (Volume.code,),
}


@pytest.mark.parametrize("ordering", list(ORDERINGS))
@pytest.mark.parametrize("per_page", [1, 5, 47, 100])
def test_every_page_forward_and_back_is_the_whole_ordered_result(
    session: Session, ordering: str, per_page: int
) -> None:
    statement = sa.select(Volume).order_by(*ORDERINGS[ordering])
    expected = [volume.id for volume in session.scalars(statement)]
    forward = walk_forward(session, statement, per_page)
    assert [volume.id for page in forward for volume in page] == expected
    assert all(len(page) == per_page for page in forward[:-1])
    # Back from the last page's first row: every page before it, the same ones.
    last = keyset_paginate(session, statement, per_page=per_page, after=None)
    cursor = None
    while last.has_next:
        cursor = last.next_cursor
        last = keyset_paginate(session, statement, per_page=per_page, after=cursor)
    if last.prev_cursor is not None:
        backward = walk_backward(session, statement, per_page, last.prev_cursor)
        ids = [volume.id for page in backward for volume in page] + [v.id for v in last.items]
        assert ids == expected


def test_columns_and_rows(session: Session) -> None:
    values = sa.select(Volume.id).order_by(Volume.id.desc())
    first = keyset_paginate(session, values, per_page=3)
    assert list(first.items) == [47, 46, 45]
    rows = sa.select(Volume.year, Volume.id).order_by(Volume.year, Volume.id)
    page = keyset_paginate(session, rows, per_page=2)
    assert [tuple(row) for row in page.items] == [(2000, 4), (2000, 8)]
    after = keyset_paginate(session, rows, per_page=2, after=page.next_cursor)
    assert [tuple(row) for row in after.items] == [(2000, 12), (2000, 16)]


def test_joins_and_filters(session: Session) -> None:
    statement = (
        sa.select(Volume, Shelf.name)
        .join(Shelf)
        .where(Shelf.name == "B", Volume.year >= 2001)
        .order_by(Volume.year.desc(), Volume.id)
    )
    expected = [(volume.id, name) for volume, name in session.execute(statement)]
    pages = walk_forward(session, statement, 4)
    assert [(row[0].id, row[1]) for page in pages for row in page] == expected


def test_rows_inserted_and_deleted_between_pages_skip_and_repeat_nothing_that_stayed(
    session: Session,
) -> None:
    statement = sa.select(Volume).order_by(Volume.year, Volume.id)
    before = {volume.id for volume in session.scalars(statement)}
    seen: list[int] = []
    page = keyset_paginate(session, statement, per_page=5)
    seen += [volume.id for volume in page.items]
    for step in itertools.count():
        if not page.has_next:
            break
        # Between pages: the page's last row goes, others come.
        session.delete(page.items[-1])
        session.add(
            Volume(
                id=1000 + step,
                year=2000 + step % 4,
                title="new",
                published=datetime.date(2021, 1, 1),
                shelf_id=1,
                code=f"n{step:03d}",
            )
        )
        session.flush()
        page = keyset_paginate(session, statement, per_page=5, after=page.next_cursor)
        seen += [volume.id for volume in page.items]
    # Each row is seen once: those deleted were seen before they went, and every row
    # that existed throughout was seen.
    assert len(seen) == len(set(seen))
    assert before <= set(seen)


def test_empty_result(session: Session) -> None:
    statement = sa.select(Volume).where(Volume.id < 0).order_by(Volume.id)
    page = keyset_paginate(session, statement, per_page=5)
    assert (list(page.items), page.has_next, page.has_prev) == ([], False, False)
    assert (page.next_cursor, page.prev_cursor) == (None, None)


def test_per_page_must_be_positive_and_one_cursor_at_most(session: Session) -> None:
    statement = sa.select(Volume).order_by(Volume.id)
    with pytest.raises(ValueError, match="per_page must be 1 or more, not 0"):
        keyset_paginate(session, statement, per_page=0)
    page = keyset_paginate(session, statement, per_page=5)
    with pytest.raises(ValueError, match="not both"):
        keyset_paginate(
            session, statement, per_page=5, after=page.next_cursor, before=page.next_cursor
        )


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (
            sa.select(Volume),
            "add .order_by(...) ending in a unique key, such as .order_by(Book.id)",
        ),
        (
            sa.select(Volume).order_by(Volume.year),
            "end the .order_by(...) with a unique key, such as keyset_volume.id",
        ),
        (sa.select(Volume).order_by(Volume.year, Volume.title), "with a unique key"),
        (sa.select(Volume).order_by(Volume.note, Volume.id), "keyset_volume.note may hold NULL"),
        (
            sa.select(Volume.title).order_by(Volume.id),
            "keyset_volume.id is not in the select's rows",
        ),
        (
            sa.select(Volume).order_by(sa.func.lower(Volume.title), Volume.id),
            "orders by table columns only",
        ),
        (sa.select(Volume).order_by(Volume.id.nulls_last()), "NULLS FIRST / NULLS LAST"),
    ],
)
def test_statements_that_cannot_be_paged_by_key(
    session: Session, statement: Any, message: str
) -> None:
    with pytest.raises(
        ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")
    ):
        keyset_paginate(session, statement, per_page=5)


def forge(values: list[Any], fingerprint: str) -> str:
    payload = json.dumps([fingerprint, values]).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def fingerprint_of(cursor: str) -> str:
    fingerprint: str = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))[0]
    return fingerprint


def test_tampered_cursors_are_invalid_never_sql(session: Session) -> None:
    statement = sa.select(Volume).order_by(Volume.year, Volume.id)
    page = keyset_paginate(session, statement, per_page=5)
    assert page.next_cursor is not None
    fingerprint = fingerprint_of(page.next_cursor)
    other = keyset_paginate(session, sa.select(Volume).order_by(Volume.id), per_page=5)
    endpoint = keyset_paginate(session, statement, per_page=5, context="another endpoint")
    bad = [
        "!!!not base64",
        "",
        page.next_cursor[:-3],
        "A" * 5000,
        other.next_cursor,
        endpoint.next_cursor,
        forge(["'; DROP TABLE keyset_volume; --", 1], fingerprint),
        forge([2000], fingerprint),
        forge([2000, 1, 2], fingerprint),
        forge([None, 1], fingerprint),
        forge([True, 1], fingerprint),
        forge([2000, {"dt": "2020-01-01T00:00:00"}], fingerprint),
        forge([2000, 2**70], fingerprint),
        forge([2000, {"x": "1"}], fingerprint),
        forge([2000, {"f": "nan", "g": 1}], fingerprint),
        forge({"a": 1}, fingerprint),  # type: ignore[arg-type]  # not even a list
    ]
    for cursor in bad:
        assert cursor is not None
        for direction in ("after", "before"):
            with pytest.raises(InvalidCursor):
                keyset_paginate(session, statement, per_page=5, **{direction: cursor})
    # An enormous one is refused before it is decoded.
    with pytest.raises(InvalidCursor, match="longer than 1024 characters"):
        keyset_paginate(
            session, statement, per_page=5, after=forge([2000, 1, "x" * 5000], fingerprint)
        )
    # A forged cursor of the right shape only seeks: to another place, safely.
    seeked = keyset_paginate(session, statement, per_page=2, after=forge([2001, 0], fingerprint))
    assert [volume.year for volume in seeked.items] == [2001, 2001]


def test_dates_in_cursors(session: Session) -> None:
    statement = sa.select(Volume).order_by(Volume.published, Volume.id)
    pages = walk_forward(session, statement, 7)
    assert [v.id for page in pages for v in page] == [v.id for v in session.scalars(statement)]


def test_a_page_iterates_over_its_items(session: Session) -> None:
    page: KeysetPage[Volume] = keyset_paginate(
        session, sa.select(Volume).order_by(Volume.id), per_page=2
    )
    assert [volume.id for volume in page] == [1, 2]


def test_the_seek_is_a_row_value_comparison_of_bound_parameters(session: Session) -> None:
    statements: list[str] = []

    def remember(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = session.get_bind()
    assert isinstance(engine, sa.Engine)
    event.listen(engine, "before_cursor_execute", remember)
    try:
        same_way = sa.select(Volume).order_by(Volume.year.desc(), Volume.id.desc())
        page = keyset_paginate(session, same_way, per_page=3)
        keyset_paginate(session, same_way, per_page=3, after=page.next_cursor)
        mixed = sa.select(Volume).order_by(Volume.year, Volume.id.desc())
        page = keyset_paginate(session, mixed, per_page=3)
        keyset_paginate(session, mixed, per_page=3, after=page.next_cursor)
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    seek_same, seek_mixed = statements[1], statements[3]
    if session.get_bind().dialect.name == "mysql":
        # MariaDB seeks an index with the expanded form only: see the next test.
        assert " OR " in seek_same
    else:
        assert "(keyset_volume.year, keyset_volume.id) <" in seek_same
    assert " OR " in seek_mixed
    for text in (seek_same, seek_mixed):
        assert "2003" not in text
        assert "2000" not in text


@pytest.mark.parametrize(
    ("name", "dbapi", "compares"),
    [
        ("postgresql", None, True),
        ("mysql", None, False),
        ("mssql", None, False),
        ("sqlite", SimpleNamespace(sqlite_version_info=(3, 45, 1)), True),
        ("sqlite", SimpleNamespace(sqlite_version_info=(3, 15, 0)), True),
        ("sqlite", SimpleNamespace(sqlite_version_info=(3, 14, 2)), False),
        ("sqlite", None, False),
    ],
)
def test_row_values_are_compared_where_the_sessions_database_seeks_with_them(
    name: str, dbapi: object, compares: bool
) -> None:
    """Decided by the dialect the statement runs on, and for SQLite by the library its
    driver uses: not by the Python process's own sqlite3 module.
    """
    dialect = cast("Dialect", SimpleNamespace(name=name, dbapi=dbapi))
    assert _seeks_by_row_values(dialect) is compares


def test_mariadb_seeks_the_index_past_the_cursor(mariadb_url: str) -> None:
    """MariaDB's plan for a deep page is a range scan of the ordering's index, not a
    scan of the index from its start (which a row-value comparison gets there).
    """
    with DatabaseCore({"SQLALCHEMY_DATABASE_URI": mariadb_url}, Base) as core:
        core.create_all()
        with core.sessionmaker() as session:
            session.execute(sa.insert(Shelf), [{"id": 1, "name": "s"}])
            session.execute(
                sa.insert(Volume),
                [
                    {
                        "id": i,
                        "year": 1900 + i % 100,
                        "title": f"v{i}",
                        "published": datetime.date(2000, 1, 1),
                        "shelf_id": 1,
                        "note": None,
                        "code": f"c{i}",
                    }
                    for i in range(1, 5001)
                ],
            )
            session.commit()
            session.execute(sa.text("ANALYZE TABLE keyset_volume"))
            statement = sa.select(Volume.year, Volume.id).order_by(Volume.year, Volume.id)
            page = keyset_paginate(session, statement.offset(2500), per_page=1)
            sent: list[tuple[str, Any]] = []

            def remember(conn: Any, cursor: Any, text: str, parameters: Any, *_: Any) -> None:
                sent.append((text, parameters))

            engine = session.get_bind()
            event.listen(engine, "before_cursor_execute", remember)
            keyset_paginate(session, statement, per_page=20, after=page.next_cursor)
            event.remove(engine, "before_cursor_execute", remember)
            text, parameters = sent[-1]
            plan = (
                session.connection()
                .exec_driver_sql("EXPLAIN " + text, parameters)
                .mappings()
                .all()
            )
    assert [row["type"] for row in plan] == ["range"]
