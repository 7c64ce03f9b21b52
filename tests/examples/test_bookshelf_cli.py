"""The bookshelf app's ``init-db`` command and its sample data."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from click.testing import Result
from flask import Flask

from bookshelf.app import db
from bookshelf.models import Author
from bookshelf.models import Book
from bookshelf.models import Loan


def init_db(app: Flask, *args: str) -> Result:
    """Run ``flask init-db`` as the ``flask`` command does: in an app context."""
    with app.app_context():
        result: Result = app.test_cli_runner().invoke(args=["init-db", *args])
    assert result.exit_code == 0, result.output
    return result


def catalogue(app: Flask) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """Author names, book ISBNs and (ISBN, borrower) of loans, sorted."""
    with app.app_context():
        session = db.session
        authors = session.scalars(sa.select(Author.name).order_by(Author.name)).all()
        books = session.scalars(sa.select(Book.isbn).order_by(Book.isbn)).all()
        loans = session.execute(
            sa.select(Book.isbn, Loan.borrower).join(Loan.book).order_by(Book.isbn)
        ).all()
        return list(authors), list(books), [(isbn, borrower) for isbn, borrower in loans]


def test_init_db_creates_the_tables(app: Flask) -> None:
    # Outside test isolation: this test drops and recreates the package's tables.
    with app.app_context():
        db.drop_all()

    result = init_db(app)

    assert "Tables ready in" in result.output
    with app.app_context():
        tables = sa.inspect(db.engine).get_table_names()
    assert {"authors", "books", "loans"} <= set(tables)
    assert catalogue(app) == ([], [], [])


@pytest.mark.usefixtures("isolated_db")
def test_init_db_seed_adds_the_sample_catalogue(app: Flask) -> None:
    result = init_db(app, "--seed")

    assert "Added 4 authors, 7 books and 4 loans." in result.output
    authors, books, loans = catalogue(app)
    assert len(authors) == 4
    assert len(books) == 7
    assert len(loans) == 4
    with app.app_context():
        open_loans = db.session.scalars(sa.select(Loan).where(Loan.returned_at.is_(None))).all()
        assert len(open_loans) == 3


@pytest.mark.usefixtures("isolated_db")
def test_init_db_seed_twice_adds_nothing_the_second_time(app: Flask) -> None:
    init_db(app, "--seed")
    first = catalogue(app)

    result = init_db(app, "--seed")

    assert "nothing added" in result.output
    assert catalogue(app) == first


@pytest.mark.usefixtures("isolated_db")
def test_init_db_seed_completes_a_partly_seeded_catalogue(app: Flask) -> None:
    # An author and one of their books are there already, e.g. added through the API.
    with app.app_context():
        lem = Author(name="Stanisław Lem")
        db.session.add(Book(title="Solaris", isbn="9780156027601", author=lem))
        db.session.commit()

    result = init_db(app, "--seed")

    assert "Added 3 authors, 6 books and 3 loans." in result.output
    authors, books, loans = catalogue(app)
    assert authors.count("Stanisław Lem") == 1
    assert len(books) == 7
    # Solaris' sample loan belongs to the sample book, which was not added.
    assert "9780156027601" not in [isbn for isbn, _ in loans]
