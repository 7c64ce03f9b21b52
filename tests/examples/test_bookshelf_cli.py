"""The bookshelf app's ``init-db`` command and its sample data."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import Result
from flask import Flask
from flask_migrate import downgrade
from flask_migrate import stamp

from bookshelf.app import MIGRATIONS_PATH
from bookshelf.app import create_app
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


def revision_of(app: Flask) -> str | None:
    """The migration revision the app's database records."""
    with app.app_context(), db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_init_db_applies_the_migrations(app: Flask) -> None:
    # Outside test isolation: this test drops and recreates the package's tables.
    with app.app_context():
        downgrade(revision="base")
    assert revision_of(app) is None

    result = init_db(app)

    assert "Tables ready in" in result.output
    with app.app_context():
        tables = sa.inspect(db.engine).get_table_names()
    assert {"authors", "books", "loans"} <= set(tables)
    assert revision_of(app) == ScriptDirectory(str(MIGRATIONS_PATH)).get_current_head()
    assert catalogue(app) == ([], [], [])


def test_init_db_on_tables_made_without_migrations_says_how_to_stamp(tmp_path: Path) -> None:
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'old.sqlite'}"})
    with app.app_context():
        db.create_all()  # what 'init-db' did before the example had migrations
        refused = app.test_cli_runner().invoke(args=["init-db"])

    assert refused.exit_code == 1
    assert "no migration revision" in refused.output
    assert "'flask --app bookshelf.app db stamp head'" in refused.output

    with app.app_context():
        stamp()
    assert "Tables ready in" in init_db(app).output


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


@pytest.mark.usefixtures("isolated_db")
def test_init_db_leaves_the_logging_of_its_process_alone(app: Flask) -> None:
    # The migrations' env.py configures logging only for the 'flask db' command line.
    earlier = logging.getLogger("bookshelf.tests.made-before-init-db")
    root_handlers = list(logging.getLogger().handlers)

    init_db(app)

    assert logging.getLogger().handlers == root_handlers
    assert not earlier.disabled
