"""``paginate(count="estimate")``: PostgreSQL's planner estimate of the total, made to
agree with the page; an exact count elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Session
from sqlalchemy.orm import mapped_column

from flask_typed_db import Database
from flask_typed_db.core import Pagination
from flask_typed_db.core import paginate
from flask_typed_db.core._explain import Explain
from flask_typed_db.core._replicas import only_reads


class Base(DeclarativeBase):
    pass


class Book(Base):
    __tablename__ = "estimate_book"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(sa.String(50))


ALL = sa.select(Book).order_by(Book.id)


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(database_url)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(postgresql_url: str) -> Iterator[sa.Engine]:
    """PostgreSQL with 1,000 analysed rows, and no autovacuum to change the statistics
    while a test relies on them being stale.
    """
    engine = sa.create_engine(postgresql_url)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE estimate_book SET (autovacuum_enabled = false)"))
        conn.execute(
            sa.text(
                "INSERT INTO estimate_book SELECT g, 'title ' || g"
                " FROM generate_series(1, 1000) AS g"
            )
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE estimate_book"))
    yield engine
    engine.dispose()


def _statements(engine: sa.Engine) -> list[str]:
    sent: list[str] = []

    def record(conn: sa.Connection, cursor: object, statement: str, *_: object) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    return sent


def _fill(engine: sa.Engine, rows: int) -> None:
    with Session(engine) as session:
        session.add_all(Book(id=i, title=f"title {i}") for i in range(1, rows + 1))
        session.commit()


def test_every_page_agrees_with_itself(engine: sa.Engine) -> None:
    """Walking the pages by has_next visits each row once, and stops at the last page
    whatever the estimate says; on the last page the estimate is exact.
    """
    _fill(engine, 23)
    seen: list[int] = []
    with Session(engine) as session:
        page = paginate(session, ALL, page=1, per_page=5, count="estimate")
        while True:
            assert page.total is None
            assert page.estimated_total is not None
            seen += [book.id for book in page.items]
            if not page.has_next:
                break
            assert page.estimated_total > page.page * page.per_page
            page = paginate(session, ALL, page=page.page + 1, per_page=5, count="estimate")
    assert seen == list(range(1, 24))
    assert page.page == 5
    assert page.estimated_total == 23
    assert page.pages == 5


def test_a_full_last_page_has_no_next(engine: sa.Engine) -> None:
    _fill(engine, 10)
    with Session(engine) as session:
        page = paginate(session, ALL, page=2, per_page=5, count="estimate")
    assert [book.id for book in page.items] == [6, 7, 8, 9, 10]
    assert not page.has_next
    assert page.estimated_total == 10


def test_no_rows(engine: sa.Engine) -> None:
    with Session(engine) as session:
        page = paginate(session, ALL, page=1, per_page=5, count="estimate")
    assert (page.items, page.estimated_total, page.pages, page.has_next) == ([], 0, 0, False)


def test_elsewhere_the_estimate_is_a_count(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'estimate.db'}")
    Base.metadata.create_all(engine)
    _fill(engine, 37)
    sent = _statements(engine)
    with Session(engine) as session:
        page = paginate(session, ALL.where(Book.id > 3), page=2, per_page=5, count="estimate")
    assert page.estimated_total == 34
    assert page.has_next
    assert any("count(*)" in statement for statement in sent)


def test_postgresql_asks_the_planner_and_counts_nothing(pg_engine: sa.Engine) -> None:
    sent = _statements(pg_engine)
    with Session(pg_engine) as session:
        page = paginate(session, ALL, page=3, per_page=10, count="estimate")
    assert [book.id for book in page.items] == list(range(21, 31))
    assert page.total is None
    # Freshly analysed, the planner knows the table has 1,000 rows.
    assert page.estimated_total == 1000
    assert page.pages == 100
    assert page.has_next
    assert not any("count(" in statement.lower() for statement in sent)
    (explain,) = [statement for statement in sent if statement.startswith("EXPLAIN")]
    assert "ORDER BY" not in explain


def test_postgresql_filters_are_bound_parameters(pg_engine: sa.Engine) -> None:
    sent: list[tuple[str, object]] = []

    def record(
        conn: sa.Connection, cursor: object, statement: str, parameters: object, *_: object
    ) -> None:
        sent.append((statement, parameters))

    event.listen(pg_engine, "before_cursor_execute", record)
    statement = ALL.where(Book.title.like("title 1%"))
    with Session(pg_engine) as session:
        page = paginate(session, statement, page=1, per_page=10, count="estimate")
    assert page.estimated_total is not None
    # 1, 10-19, 100-199, 1000: 112 rows; the planner's guess is near, not exact.
    assert 11 <= page.estimated_total <= 1000
    (explain, parameters) = next(item for item in sent if item[0].startswith("EXPLAIN"))
    assert "title 1%" not in explain
    assert "title 1%" in str(parameters)


def test_a_stale_estimate_is_made_to_agree_with_the_page(pg_engine: sa.Engine) -> None:
    """The statistics say 1,000 rows; 15 are left. The page that shows the end is
    exact; a page past it never claims more rows than come before it; a page with a
    next one claims at least one more row than it shows, whatever the planner says.
    """
    with pg_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM estimate_book WHERE id > 15"))
    with Session(pg_engine) as session:
        first = paginate(session, ALL, page=1, per_page=10, count="estimate")
        last = paginate(session, ALL, page=2, per_page=10, count="estimate")
        past = paginate(session, ALL, page=4, per_page=10, count="estimate")
        # Rows whose title the statistics have never seen: estimated at about one.
        rare = ALL.where(Book.title == "rare")
        session.add_all(Book(id=2000 + i, title="rare") for i in range(25))
        session.flush()
        rare_first = paginate(session, rare, page=1, per_page=10, count="estimate")
    assert first.has_next
    assert first.estimated_total is not None
    assert first.estimated_total > 15
    assert (last.estimated_total, last.has_next, last.pages) == (15, False, 2)
    assert past.items == []
    assert past.estimated_total is not None
    assert past.estimated_total <= 30
    assert rare_first.has_next
    assert rare_first.estimated_total is not None
    assert rare_first.estimated_total >= 11


def test_the_explain_goes_to_a_replica() -> None:
    assert only_reads(Explain(ALL))
    assert not only_reads(Explain(ALL.with_for_update()))


def test_asyncpg_and_the_adapter(postgresql_url: str) -> None:
    """asyncpg hands the plan back as text; the adapter's helpers pass the option on."""
    async_url = sa.make_url(postgresql_url).set(drivername="postgresql+asyncpg")
    sync_engine = sa.create_engine(postgresql_url)
    Base.metadata.create_all(sync_engine)
    _fill(sync_engine, 30)
    with sync_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE estimate_book"))
    sync_engine.dispose()

    async def async_page() -> Pagination[Book]:
        engine = create_async_engine(async_url)
        try:
            async with AsyncSession(engine) as session:
                return await session.run_sync(
                    lambda sync: paginate(sync, ALL, page=1, per_page=10, count="estimate")
                )
        finally:
            await engine.dispose()

    assert asyncio.run(async_page()).estimated_total == 30

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = postgresql_url
    db = Database(Base, app=app)

    @app.get("/books")
    def books() -> dict[str, object]:
        page = db.paginate(ALL, count="estimate")
        return {"ids": [book.id for book in page.items], "about": page.estimated_total}

    response = app.test_client().get("/books?page=2&per_page=20")
    assert response.json == {"ids": list(range(21, 31)), "about": 30}
    assert app.test_client().get("/books?page=3&per_page=20").status_code == 404
