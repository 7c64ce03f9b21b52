"""Core pagination: Flask-SQLAlchemy 3.1's page arithmetic, and the SQL that fills a page."""

from __future__ import annotations

from collections.abc import Generator
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import cast

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Session
from sqlalchemy.orm import joinedload
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import Pagination
from flask_typed_db.core import paginate


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "pagination_author"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(sa.String(50))
    nickname: Mapped[str | None] = mapped_column(sa.String(50))
    books: Mapped[list[Book]] = relationship(back_populates="author", order_by="Book.id")


class Book(Base):
    __tablename__ = "pagination_book"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("pagination_author.id"))
    author: Mapped[Author] = relationship(back_populates="books")


class StatementRecorder:
    """A ``before_cursor_execute`` listener keeping each statement sent to the database."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, object]] = []

    def __call__(
        self, conn: sa.Connection, cursor: object, statement: str, parameters: object, *_: object
    ) -> None:
        self.statements.append((statement, parameters))

    @property
    def counts(self) -> list[str]:
        return [statement for statement, _ in self.statements if "count(" in statement.lower()]

    @property
    def selects(self) -> list[tuple[str, object]]:
        """The statements that are not a COUNT: those fetching items."""
        return [(s, p) for s, p in self.statements if "count(" not in s.lower()]


@contextmanager
def recording(engine: sa.Engine) -> Generator[StatementRecorder]:
    recorder = StatementRecorder()
    event.listen(engine, "before_cursor_execute", recorder)
    try:
        yield recorder
    finally:
        event.remove(engine, "before_cursor_execute", recorder)


def parameter_values(parameters: object) -> list[object]:
    """The bound values of one statement, whatever the driver's paramstyle."""
    if isinstance(parameters, dict):
        return list(cast("dict[str, object]", parameters).values())
    return list(cast("Sequence[object]", parameters))


@pytest.fixture
def core(database_url: str, tmp_path: Path) -> Iterator[DatabaseCore]:
    with DatabaseCore({"SQLALCHEMY_DATABASE_URI": database_url}, Base, root_path=tmp_path) as core:
        core.create_all()
        yield core


@pytest.fixture
def session(core: DatabaseCore) -> Iterator[Session]:
    with core.sessionmaker() as session:
        yield session


def add_authors(session: Session, count: int, books_each: int = 0) -> None:
    """Authors 1..count named a1, a2, ..., each with ``books_each`` books."""
    book_id = 0
    for author_id in range(1, count + 1):
        author = Author(id=author_id, name=f"a{author_id}")
        for _ in range(books_each):
            book_id += 1
            author.books.append(Book(id=book_id))
        session.add(author)
    session.commit()
    session.expunge_all()


AUTHORS = sa.select(Author).order_by(Author.id)


def ids(pagination: Pagination[Author]) -> list[int]:
    return [author.id for author in pagination.items]


# Pagination's arithmetic, without a database


def page_of(page: int, per_page: int, total: int | None, length: int) -> Pagination[int]:
    first = (page - 1) * per_page + 1
    return Pagination(
        items=list(range(first, first + length)), page=page, per_page=per_page, total=total
    )


def test_middle_page_knows_its_neighbours_and_item_positions() -> None:
    pagination = page_of(page=2, per_page=10, total=25, length=10)
    assert pagination.pages == 3
    assert (pagination.first, pagination.last) == (11, 20)
    assert (pagination.has_prev, pagination.prev_num) == (True, 1)
    assert (pagination.has_next, pagination.next_num) == (True, 3)


def test_first_page_has_no_previous_page() -> None:
    pagination = page_of(page=1, per_page=10, total=25, length=10)
    assert (pagination.has_prev, pagination.prev_num) == (False, None)
    assert (pagination.first, pagination.last) == (1, 10)


def test_last_page_has_no_next_page_and_ends_at_the_total() -> None:
    pagination = page_of(page=3, per_page=10, total=25, length=5)
    assert pagination.pages == 3
    assert (pagination.has_next, pagination.next_num) == (False, None)
    assert (pagination.first, pagination.last) == (21, 25)


def test_pages_rounds_a_partial_page_up_and_an_exact_multiple_not() -> None:
    assert page_of(page=1, per_page=10, total=21, length=10).pages == 3
    assert page_of(page=1, per_page=10, total=20, length=10).pages == 2


def test_single_page_has_neither_neighbour() -> None:
    pagination = page_of(page=1, per_page=10, total=3, length=3)
    assert pagination.pages == 1
    assert (pagination.has_prev, pagination.has_next) == (False, False)
    assert (pagination.first, pagination.last) == (1, 3)
    assert list(pagination.iter_pages()) == [1]


def test_no_items_means_no_pages_and_zero_positions() -> None:
    pagination = page_of(page=1, per_page=10, total=0, length=0)
    assert pagination.pages == 0
    assert (pagination.first, pagination.last) == (0, 0)
    assert (pagination.has_prev, pagination.has_next) == (False, False)
    assert list(pagination.iter_pages()) == []


def test_without_a_total_there_are_no_pages_and_no_next_page() -> None:
    pagination = page_of(page=2, per_page=10, total=None, length=10)
    assert pagination.pages == 0
    assert (pagination.has_next, pagination.next_num) == (False, None)
    assert (pagination.has_prev, pagination.prev_num) == (True, 1)
    assert (pagination.first, pagination.last) == (11, 20)
    assert list(pagination.iter_pages()) == []


def test_iterating_a_page_iterates_its_items() -> None:
    pagination = page_of(page=2, per_page=3, total=9, length=3)
    assert list(pagination) == [4, 5, 6]


def test_an_empty_page_is_still_true_as_in_flask_sqlalchemy() -> None:
    # Templates written for Flask-SQLAlchemy test "{% if pagination %}" for presence.
    assert bool(page_of(page=1, per_page=10, total=0, length=0)) is True


@pytest.mark.parametrize("attribute", ["items", "page", "per_page", "total"])
def test_pagination_is_immutable(attribute: str) -> None:
    pagination = page_of(page=1, per_page=10, total=3, length=3)
    with pytest.raises(FrozenInstanceError):
        setattr(pagination, attribute, 2)


# iter_pages: Flask-SQLAlchemy 3.1's exact output


@pytest.mark.parametrize(
    ("pages", "page", "expected"),
    [
        # The example in Flask-SQLAlchemy 3.1's iter_pages docstring.
        (20, 7, [1, 2, None, 5, 6, 7, 8, 9, 10, 11, None, 19, 20]),
        (20, 10, [1, 2, None, 8, 9, 10, 11, 12, 13, 14, None, 19, 20]),
        (20, 1, [1, 2, 3, 4, 5, None, 19, 20]),
        (20, 4, [1, 2, 3, 4, 5, 6, 7, 8, None, 19, 20]),
        # A single hidden page still becomes a None.
        (20, 6, [1, 2, None, 4, 5, 6, 7, 8, 9, 10, None, 19, 20]),
        (20, 13, [1, 2, None, 11, 12, 13, 14, 15, 16, 17, None, 19, 20]),
        (20, 14, [1, 2, None, 12, 13, 14, 15, 16, 17, 18, 19, 20]),
        (20, 20, [1, 2, None, 18, 19, 20]),
        (5, 3, [1, 2, 3, 4, 5]),
        (1, 1, [1]),
        (2, 1, [1, 2]),
    ],
)
def test_iter_pages_matches_flask_sqlalchemy(
    pages: int, page: int, expected: list[int | None]
) -> None:
    pagination = Pagination(items=[0], page=page, per_page=1, total=pages)
    assert list(pagination.iter_pages()) == expected


@pytest.mark.parametrize(
    ("pages", "page", "edges", "expected"),
    [
        (20, 10, (1, 1, 1, 1), [1, None, 9, 10, 11, None, 20]),
        (20, 10, (0, 2, 4, 2), [None, 8, 9, 10, 11, 12, 13, 14, None, 19, 20]),
        (20, 10, (2, 2, 4, 0), [1, 2, None, 8, 9, 10, 11, 12, 13, 14, None]),
        (20, 10, (3, 0, 0, 3), [1, 2, 3, None, 10, None, 18, 19, 20]),
        # Flask-SQLAlchemy's own quirk: a middle window inside the left edge still
        # leaves a None before the right edge.
        (3, 1, (2, 0, 0, 1), [1, 2, None, 3]),
    ],
)
def test_iter_pages_takes_flask_sqlalchemy_edge_and_window_sizes(
    pages: int, page: int, edges: tuple[int, int, int, int], expected: list[int | None]
) -> None:
    left_edge, left_current, right_current, right_edge = edges
    pagination = Pagination(items=[0], page=page, per_page=1, total=pages)
    shown = pagination.iter_pages(
        left_edge=left_edge,
        left_current=left_current,
        right_current=right_current,
        right_edge=right_edge,
    )
    assert list(shown) == expected


def expected_page_numbers(pages: int, page: int) -> list[int | None]:
    """The default widget by definition: two pages at each edge, two before and four
    after the current one, and one None for each run of pages left out.
    """
    shown: list[int | None] = []
    skipping = False
    for number in range(1, pages + 1):
        if number <= 2 or page - 2 <= number <= page + 4 or number > pages - 2:
            if skipping:
                shown.append(None)
            skipping = False
            shown.append(number)
        else:
            skipping = True
    return shown


def test_iter_pages_shows_the_edges_and_window_for_every_page_of_up_to_40() -> None:
    for pages in range(1, 41):
        for page in range(1, pages + 1):
            pagination = Pagination(items=[0], page=page, per_page=1, total=pages)
            assert list(pagination.iter_pages()) == expected_page_numbers(pages, page), (
                pages,
                page,
            )


def test_iter_pages_past_the_last_page_shows_the_left_edge_like_flask_sqlalchemy() -> None:
    pagination: Pagination[int] = Pagination(items=[], page=9, per_page=1, total=5)
    assert list(pagination.iter_pages()) == [1, 2, None]


# paginate(): the SQL behind a page


def test_page_holds_its_slice_of_the_ordered_results(session: Session) -> None:
    add_authors(session, 23)
    pagination = paginate(session, AUTHORS, page=3, per_page=5)
    assert ids(pagination) == [11, 12, 13, 14, 15]
    assert (pagination.page, pagination.per_page, pagination.total) == (3, 5, 23)
    assert (pagination.pages, pagination.first, pagination.last) == (5, 11, 15)
    assert (pagination.prev_num, pagination.next_num) == (2, 4)


def test_short_last_page_holds_the_remaining_items_and_the_total(session: Session) -> None:
    add_authors(session, 23)
    pagination = paginate(session, AUTHORS, page=5, per_page=5)
    assert ids(pagination) == [21, 22, 23]
    assert (pagination.total, pagination.pages, pagination.has_next) == (23, 5, False)
    assert (pagination.first, pagination.last) == (21, 23)


def test_full_last_page_has_the_counted_total_and_no_next_page(session: Session) -> None:
    add_authors(session, 20)
    pagination = paginate(session, AUTHORS, page=2, per_page=10)
    assert ids(pagination) == list(range(11, 21))
    assert (pagination.total, pagination.pages, pagination.has_next) == (20, 2, False)


def test_empty_results_give_an_empty_first_page(session: Session) -> None:
    pagination = paginate(session, AUTHORS, page=1, per_page=10)
    assert pagination.items == []
    assert (pagination.total, pagination.pages, pagination.first, pagination.last) == (0, 0, 0, 0)


def test_page_past_the_last_is_empty_and_keeps_the_total(session: Session) -> None:
    add_authors(session, 23)
    pagination = paginate(session, AUTHORS, page=9, per_page=5)
    assert pagination.items == []
    assert (pagination.page, pagination.total, pagination.pages) == (9, 23, 5)
    assert (pagination.has_prev, pagination.has_next) == (True, False)


def test_count_false_leaves_total_none_and_still_fetches_the_page(session: Session) -> None:
    add_authors(session, 23)
    pagination = paginate(session, AUTHORS, page=2, per_page=5, count=False)
    assert ids(pagination) == [6, 7, 8, 9, 10]
    assert (pagination.total, pagination.pages) == (None, 0)
    assert (pagination.has_next, pagination.next_num) == (False, None)
    assert (pagination.has_prev, pagination.prev_num) == (True, 1)


def test_count_false_sends_no_count_query(core: DatabaseCore, session: Session) -> None:
    add_authors(session, 23)
    with recording(core.engine) as recorder:
        paginate(session, AUTHORS, page=1, per_page=5, count=False)
    assert recorder.counts == []
    assert len(recorder.statements) == 1


def test_short_last_page_derives_the_total_without_a_count_query(
    core: DatabaseCore, session: Session
) -> None:
    add_authors(session, 23)
    with recording(core.engine) as recorder:
        pagination = paginate(session, AUTHORS, page=5, per_page=5)
    assert pagination.total == 23
    assert recorder.counts == []
    assert len(recorder.statements) == 1


def test_empty_first_page_derives_a_zero_total_without_a_count_query(
    core: DatabaseCore, session: Session
) -> None:
    with recording(core.engine) as recorder:
        pagination = paginate(session, AUTHORS, page=1, per_page=5)
    assert pagination.total == 0
    assert recorder.counts == []
    assert len(recorder.statements) == 1


def test_full_page_counts_the_total_with_one_count_query(
    core: DatabaseCore, session: Session
) -> None:
    add_authors(session, 23)
    with recording(core.engine) as recorder:
        pagination = paginate(session, AUTHORS, page=2, per_page=5)
    assert pagination.total == 23
    assert len(recorder.counts) == 1
    assert len(recorder.statements) == 2


def test_page_past_the_last_counts_the_total(core: DatabaseCore, session: Session) -> None:
    add_authors(session, 3)
    with recording(core.engine) as recorder:
        pagination = paginate(session, AUTHORS, page=4, per_page=5)
    assert pagination.total == 3
    assert len(recorder.counts) == 1


def test_items_are_fetched_with_limit_and_offset_in_sql(
    core: DatabaseCore, session: Session
) -> None:
    add_authors(session, 23)
    with recording(core.engine) as recorder:
        paginate(session, AUTHORS, page=3, per_page=7)
    [(statement, parameters)] = recorder.selects
    assert "LIMIT" in statement.upper()
    # MariaDB spells it 'LIMIT offset, count'; the others 'LIMIT count OFFSET offset'.
    assert {7, 14} <= set(parameter_values(parameters))


def test_joined_select_pages_every_row_of_the_join(session: Session) -> None:
    add_authors(session, 4, books_each=3)
    joined = sa.select(Author).join(Author.books).order_by(Author.id, Book.id)
    first = paginate(session, joined, page=1, per_page=5)
    last = paginate(session, joined, page=3, per_page=5)
    assert ids(first) == [1, 1, 1, 2, 2]
    assert ids(last) == [4, 4]
    assert (first.total, first.pages, last.total) == (12, 3, 12)


def test_distinct_select_counts_distinct_rows(session: Session) -> None:
    add_authors(session, 7, books_each=2)
    distinct = sa.select(Author).join(Author.books).distinct().order_by(Author.id)
    pagination = paginate(session, distinct, page=1, per_page=3)
    assert ids(pagination) == [1, 2, 3]
    assert (pagination.total, pagination.pages) == (7, 3)


def test_distinct_column_select_counts_distinct_values(session: Session) -> None:
    add_authors(session, 7, books_each=2)
    author_ids = sa.select(Book.author_id).distinct().order_by(Book.author_id)
    pagination = paginate(session, author_ids, page=1, per_page=2)
    assert pagination.items == [1, 2]
    assert pagination.total == 7


def test_grouped_select_counts_groups(session: Session) -> None:
    add_authors(session, 5, books_each=2)
    per_author = (
        sa.select(Book.author_id, sa.func.count())
        .group_by(Book.author_id)
        .order_by(Book.author_id)
    )
    pagination = paginate(session, per_author, page=1, per_page=2)
    assert [tuple(row) for row in pagination.items] == [(1, 2), (2, 2)]
    assert pagination.total == 5


def test_join_selecting_two_columns_of_the_same_name_counts(session: Session) -> None:
    add_authors(session, 3, books_each=2)
    pairs = sa.select(Author.id, Book.id).join(Author.books).order_by(Book.id)
    pagination = paginate(session, pairs, page=1, per_page=4)
    assert [tuple(row) for row in pagination.items] == [(1, 1), (1, 2), (2, 3), (2, 4)]
    assert pagination.total == 6


def test_joinedload_collection_pages_parents_with_all_their_children(session: Session) -> None:
    add_authors(session, 7, books_each=3)
    eager = AUTHORS.options(joinedload(Author.books))
    first = paginate(session, eager, page=1, per_page=3)
    last = paginate(session, eager, page=3, per_page=3)
    assert ids(first) == [1, 2, 3]
    assert ids(last) == [7]
    assert (first.total, first.pages, last.total) == (7, 3, 7)
    for author in first.items:
        assert "books" not in sa.inspect(author).unloaded
        assert [book.id for book in author.books] == [
            3 * author.id - 2,
            3 * author.id - 1,
            3 * author.id,
        ]


def test_joined_select_with_joinedload_collection_still_has_a_next_page(
    session: Session,
) -> None:
    add_authors(session, 5, books_each=3)
    statement = (
        sa.select(Author)
        .join(Author.books)
        .options(joinedload(Author.books))
        .order_by(Author.id, Book.id)
    )
    pagination = paginate(session, statement, page=1, per_page=3)
    assert pagination.has_next
    assert pagination.total == 15


def test_count_does_not_join_eagerly_loaded_relationships(
    core: DatabaseCore, session: Session
) -> None:
    add_authors(session, 7, books_each=3)
    with recording(core.engine) as recorder:
        pagination = paginate(
            session, AUTHORS.options(joinedload(Author.books)), page=1, per_page=3
        )
    [count] = recorder.counts
    assert Book.__tablename__ not in count
    assert pagination.total == 7


def test_multi_column_select_pages_rows(session: Session) -> None:
    add_authors(session, 5)
    pagination = paginate(
        session, sa.select(Author.id, Author.name).order_by(Author.id), page=2, per_page=2
    )
    assert [tuple(row) for row in pagination.items] == [(3, "a3"), (4, "a4")]
    assert pagination.items[0].name == "a3"
    assert pagination.total == 5


def test_single_column_select_pages_values_including_null(session: Session) -> None:
    add_authors(session, 3)
    pagination = paginate(
        session, sa.select(Author.nickname).order_by(Author.id), page=1, per_page=2
    )
    assert pagination.items == [None, None]
    assert pagination.total == 3


@pytest.mark.parametrize("page", [2**62, 2**63, 10**30])
def test_huge_page_number_is_an_empty_page_not_a_database_error(
    session: Session, page: int
) -> None:
    add_authors(session, 3)
    pagination = paginate(session, AUTHORS, page=page, per_page=2)
    assert pagination.items == []
    assert (pagination.page, pagination.total, pagination.has_next) == (page, 3, False)


@pytest.mark.parametrize("per_page", [2**63, 2**64, 10**30])
def test_huge_per_page_returns_every_row_not_a_database_error(
    session: Session, per_page: int
) -> None:
    add_authors(session, 3)
    pagination = paginate(session, AUTHORS, page=1, per_page=per_page)
    assert len(pagination.items) == 3
    assert (pagination.total, pagination.pages, pagination.has_next) == (3, 1, False)


@pytest.mark.parametrize(("page", "per_page"), [(0, 10), (-1, 10), (1, 0), (1, -5)])
def test_page_and_per_page_below_one_are_a_value_error(
    session: Session, page: int, per_page: int
) -> None:
    with pytest.raises(ValueError, match="must be 1 or more"):
        paginate(session, AUTHORS, page=page, per_page=per_page)


def test_items_and_total_agree_with_the_unpaged_results_on_every_page(
    session: Session,
) -> None:
    add_authors(session, 11, books_each=2)
    joined = sa.select(Author.id, Book.id).join(Author.books).order_by(Book.id)
    everything = [tuple(row) for row in session.execute(joined)]
    seen: list[tuple[int, ...]] = []
    for page in range(1, 6):
        pagination = paginate(session, joined, page=page, per_page=5)
        assert pagination.total == len(everything)
        assert len(pagination.items) == min(5, len(everything) - (page - 1) * 5)
        seen.extend(tuple(row) for row in pagination.items)
    assert seen == everything
