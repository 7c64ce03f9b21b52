"""The bookshelf web app: an HTML catalogue page and a small JSON API.

Run it with ``flask --app bookshelf.app init-db --seed`` then
``flask --app bookshelf.app run`` (``make demo`` does both).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from typing import cast

import click
import sqlalchemy as sa
from flask import Blueprint
from flask import Flask
from flask import abort
from flask import current_app
from flask import jsonify
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_migrate import Migrate
from flask_migrate import upgrade
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import HTTPException

from flask_typed_db import Database
from flask_typed_db import ModelJSONProvider
from flask_typed_db.core import Pagination

from .models import Author
from .models import Base
from .models import Book
from .models import Loan
from .models import utcnow
from .seed import seed
from .settings import INSTANCE_PATH
from .settings import database_settings

db = Database(Base)

#: The schema's history, made by 'flask db migrate' from the models: after changing
#: them, run 'flask --app bookshelf.app db migrate -m "..."' and review the new file.
MIGRATIONS_PATH = Path(__file__).resolve().parent / "migrations"
#: Adds the 'flask db' commands; an absolute directory, so they work from any folder.
migrate = Migrate(directory=MIGRATIONS_PATH)

#: How long a loan lasts when the client does not say.
DEFAULT_LOAN_DAYS = 14
MAX_LOAN_DAYS = 60
_ISBN13 = re.compile(r"97[89]\d{10}")

#: The catalogue's order, with what book_json() reads: each book's author and current
#: loan, loaded in two queries (plus the count when a page of the API is full). The id
#: makes the order unique, as keyset pagination needs.
BOOKS_BY_TITLE = (
    sa.select(Book)
    .options(joinedload(Book.author), selectinload(Book.current_loan))
    .order_by(Book.title, Book.id)
)

catalogue = Blueprint("catalogue", __name__)
api = Blueprint("api", __name__, url_prefix="/api")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Make the app.

    :param config: Overrides for ``app.config``, applied last. The database URL is
        otherwise ``$BOOKSHELF_DATABASE_URL``, or SQLite in the instance folder.
    """
    app = Flask(__name__, instance_path=str(INSTANCE_PATH))
    # jsonify() writes models and pages: what the query loaded, never a lazy load.
    app.json = ModelJSONProvider(app)
    if app.logger.level == logging.NOTSET:
        # The app's own news (a loan confirmed) shows in 'flask run', as warnings do.
        app.logger.setLevel(logging.INFO)
    app.config.from_mapping(database_settings())
    if config is not None:
        app.config.from_mapping(config)
    db.init_app(app)
    migrate.init_app(app, db)
    app.register_blueprint(catalogue)
    app.register_blueprint(api)
    app.register_error_handler(HTTPException, http_error)
    app.cli.add_command(init_db_command)
    return app


# -- HTML ------------------------------------------------------------------------------


@catalogue.get("/")
def index() -> ResponseReturnValue:
    # Keyset pagination: "Next" and "Previous" links carry a cursor (?after=, ?before=)
    # instead of a page number, so a page deep in a big catalogue costs what the first
    # does, and a book added meanwhile never shifts a title onto two pages.
    page = db.keyset_paginate(BOOKS_BY_TITLE)
    return render_template("index.html", page=page, today=utcnow().date())


# -- JSON API --------------------------------------------------------------------------


def http_error(error: HTTPException) -> ResponseReturnValue:
    """Answer errors under ``/api/`` in JSON, ``{"error": "..."}``, with the status.

    Registered on the app, not the blueprint, so that unknown ``/api/`` URLs, which
    match no blueprint, are answered in JSON too.
    """
    if not request.path.startswith(api.url_prefix or "/api"):
        return error
    # Keep the error's own headers (Retry-After on a 503, Allow on a 405); the body is new.
    headers = [
        (name, value)
        for name, value in error.get_headers()  # pyright: ignore[reportUnknownMemberType]  # Werkzeug 3.0.0 leaves a parameter untyped
        if name.lower() != "content-type"
    ]
    return {"error": error.description}, error.code or 500, headers


@api.get("/books")
def list_books() -> ResponseReturnValue:
    """A page of books: ``?page=`` and ``?per_page=`` (at most 100) pick it."""
    page = books_page()
    return {
        "books": [book_json(book) for book in page],
        "page": page.page,
        "pages": page.pages,
        "total": page.total,
    }


@api.get("/books/<int:book_id>")
def get_book(book_id: int) -> ResponseReturnValue:
    book = db.get_or_404(
        Book,
        book_id,
        # The author and the current loan in the same query: book_json() reads both.
        options=[joinedload(Book.author), joinedload(Book.current_loan)],
        description=f"Book {book_id} does not exist.",
    )
    return book_json(book)


# The same two reads, as async views: they await db.async_session, whose connections
# live on the process's one event loop (see docs/async.md), and answer the same JSON.


@api.get("/async/books")
async def list_books_async() -> ResponseReturnValue:
    """:func:`list_books`, awaited: the same page, the same ``?page=`` and ``?per_page=``."""
    page = await db.async_paginate(BOOKS_BY_TITLE)
    return {
        "books": [book_json(book) for book in page],
        "page": page.page,
        "pages": page.pages,
        "total": page.total,
    }


@api.get("/async/books/<int:book_id>")
async def get_book_async(book_id: int) -> ResponseReturnValue:
    """:func:`get_book`, awaited. An async session cannot load lazily: what
    :func:`book_json` reads is loaded with the book.
    """
    book = await db.async_get_or_404(
        Book,
        book_id,
        options=[joinedload(Book.author), joinedload(Book.current_loan)],
        description=f"Book {book_id} does not exist.",
    )
    return book_json(book)


@api.post("/books")
def create_book() -> ResponseReturnValue:
    """Add a book. Body: ``{"title", "isbn", "author", "year"?}``; ``author`` is a
    name, and an author not in the catalogue yet is added with the book.
    """
    data = json_body()
    title = required_text(data, "title", 300)
    author_name = required_text(data, "author", 200)
    isbn = required_text(data, "isbn", 17).replace("-", "")
    if not _ISBN13.fullmatch(isbn):
        abort(400, description="'isbn' must be an ISBN-13: 13 digits starting with 978 or 979.")
    year = data.get("year")
    if year is not None and (type(year) is not int or year <= 0):
        abort(400, description="'year' must be a positive integer.")

    author = db.session.scalars(sa.select(Author).where(Author.name == author_name)).first()
    if author is None:
        author = Author(name=author_name)
        db.session.add(author)
    book = Book(title=title, isbn=isbn, year=year, author=author)
    db.session.add(book)
    try:
        db.session.commit()
    except IntegrityError:
        # Also undoes the new author: nothing of a failed request is kept.
        db.session.rollback()
        if db.session.scalar(sa.select(Book.id).where(Book.isbn == isbn)) is None:
            # Not the ISBN: another request added the same new author at this moment.
            abort(409, description=f"Author {author_name!r} was just added; try again.")
        abort(409, description=f"A book with ISBN {isbn} is already in the catalogue.")
    return book_json(book), 201, {"Location": url_for(".get_book", book_id=book.id)}


@api.post("/books/<int:book_id>/loans")
def lend_book(book_id: int) -> ResponseReturnValue:
    """Lend a book. Body: ``{"borrower", "days"?}``; 409 if it is already on loan."""
    data = json_body()
    borrower = required_text(data, "borrower", 200)
    days = data.get("days", DEFAULT_LOAN_DAYS)
    if type(days) is not int or not 1 <= days <= MAX_LOAN_DAYS:
        abort(400, description=f"'days' must be an integer from 1 to {MAX_LOAN_DAYS}.")
    # Lock the book's row so that two requests cannot lend it at once.
    book = db.get_or_404(
        Book, book_id, with_for_update=True, description=f"Book {book_id} does not exist."
    )
    if book.current_loan is not None:
        abort(409, description=f"{book.title!r} is already on loan.")
    now = utcnow()
    loan = Loan(book=book, borrower=borrower, lent_at=now, due_on=now.date() + timedelta(days))
    db.session.add(loan)
    db.session.flush()  # gives the loan its id
    # Confirmed once the loan is saved, never for a loan a failed commit did not save.
    # In a real app this enqueues a job (send_confirmation.delay(loan.id) with Celery),
    # which then cannot run before the loan is visible to the worker.
    db.on_commit(functools.partial(confirm_loan, loan.id))
    db.session.commit()
    # commit() expired the loan: reload its columns in one query to write them.
    db.session.refresh(loan)
    return jsonify(loan), 201


@api.post("/loans/<int:loan_id>/return")
def return_loan(loan_id: int) -> ResponseReturnValue:
    loan = db.get_or_404(
        Loan, loan_id, with_for_update=True, description=f"Loan {loan_id} does not exist."
    )
    if not loan.is_open:
        abort(409, description=f"Loan {loan_id} was already returned.")
    loan.returned_at = utcnow()
    db.session.commit()
    db.session.refresh(loan)
    return jsonify(loan)


@api.get("/authors/<int:author_id>")
def get_author(author_id: int) -> ResponseReturnValue:
    """An author with their books; each book's ``author``, the same author, is left out."""
    author = db.get_or_404(
        Author,
        author_id,
        options=[selectinload(Author.books)],
        description=f"Author {author_id} does not exist.",
    )
    return jsonify(author)


# -- Operations ------------------------------------------------------------------------


@catalogue.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Readiness, for a load balancer: 200 when every database answers within a second,
    else 503. The body says which did not, naming no file, host or user, since anyone
    may reach it; the log has the URL and the driver's error, for the operators.
    """
    report = db.check_health(timeout=1.0)
    if not report.ok:
        current_app.logger.warning("Database check failed: %s", report.as_dict(detail=True))
    return report.as_dict(), 200 if report.ok else 503


# -- CLI -------------------------------------------------------------------------------


# Click shows the docstring as the command's help, in a terminal: plain text, no markup.
@click.command("init-db")
@click.option("--seed", "with_seed", is_flag=True, help="Add the sample authors, books, loans.")
def init_db_command(with_seed: bool) -> None:
    """Apply the migrations the database lacks; with --seed, add sample data.

    Migrations rather than create_all(): the database records its revision, so
    'flask db upgrade' brings it up to date after the models change.
    """
    # This command says what it did below; alembic's step-by-step INFO lines are for
    # 'flask db upgrade'. Warnings and errors still show: the migrations' env.py keeps
    # the logging of a process that configured its own.
    logging.basicConfig(format="%(levelname)s [%(name)s] %(message)s")
    # The flask command pushes the app context, so db.session is this command's own.
    tables = set(sa.inspect(db.engine).get_table_names())
    if tables & set(Base.metadata.tables) and "alembic_version" not in tables:
        raise click.ClickException(
            f"{db.engine.url.render_as_string(hide_password=True)} has the bookshelf"
            " tables but no migration revision: an older 'init-db' made them with"
            " create_all(). If they match the models, record that with 'flask --app"
            " bookshelf.app db stamp head'; otherwise delete the database and run"
            " 'init-db' again."
        )
    upgrade()
    click.echo(f"Tables ready in {db.engine.url.render_as_string(hide_password=True)}")
    if with_seed:
        added = seed(db.session, utcnow())
        db.session.commit()
        if added.authors or added.books or added.loans:
            click.echo(
                f"Added {added.authors} authors, {added.books} books and {added.loans} loans."
            )
        else:
            click.echo("The sample data is already there; nothing added.")


# -- Helpers ---------------------------------------------------------------------------


def books_page() -> Pagination[Book]:
    """The page of :data:`BOOKS_BY_TITLE` the query string asks for."""
    return db.paginate(BOOKS_BY_TITLE)


def confirm_loan(loan_id: int) -> None:
    """Tell the borrower their loan is saved: here, a line in the app's log. Runs after
    the commit, so the loan it reads is the saved one.
    """
    loan = db.session.get(Loan, loan_id)
    if loan is None:  # deleted since: nothing to confirm
        return
    current_app.logger.info(
        "Loan %d confirmed: %r to %s, due %s.",
        loan.id,
        loan.book.title,
        loan.borrower,
        loan.due_on.isoformat(),
    )


def json_body() -> Mapping[str, object]:
    data: object = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400, description="The request body must be a JSON object.")
    # A JSON object's keys are strings; its values are checked by the caller.
    return cast("dict[str, object]", data)


def required_text(data: Mapping[str, object], key: str, max_length: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        abort(400, description=f"{key!r} is required and must be a non-empty string.")
    value = value.strip()
    if len(value) > max_length:
        abort(400, description=f"{key!r} must be at most {max_length} characters.")
    return value


def book_json(book: Book) -> dict[str, object]:
    loan = book.current_loan
    return {
        "id": book.id,
        "title": book.title,
        "isbn": book.isbn,
        "year": book.year,
        "author": {"id": book.author.id, "name": book.author.name},
        "available": loan is None,
        "due_on": None if loan is None else loan.due_on.isoformat(),
    }
