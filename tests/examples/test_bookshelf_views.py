"""The bookshelf app's HTML page and JSON API, on every backend."""

from __future__ import annotations

import functools
import html as html_module
import logging
import re
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from bookshelf.app import confirm_loan
from bookshelf.app import create_app
from bookshelf.app import db
from bookshelf.models import Author
from bookshelf.models import Base
from bookshelf.models import Book
from bookshelf.models import Loan
from bookshelf.models import utcnow

# Every test here runs in test isolation, through the package's pytest plugin.
pytestmark = pytest.mark.usefixtures("isolated_db")

DUNE = {"title": "Dune", "author": "Frank Herbert", "isbn": "978-0441172719", "year": 1965}


def count_rows(app: Flask, model: type[Base]) -> int:
    """How many rows ``model``'s table holds, read in a new app context."""
    with app.app_context():
        return db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


def add_book(app: Flask, title: str = "Solaris", isbn: str = "9780156027601") -> int:
    with app.app_context():
        book = Book(title=title, isbn=isbn, year=1961, author=Author(name="Stanisław Lem"))
        db.session.add(book)
        db.session.commit()
        return book.id


def json_of(response: TestResponse) -> dict[str, Any]:
    data = response.get_json()
    assert isinstance(data, dict), response.data
    return data  # pyright: ignore[reportUnknownVariableType]  # JSON from our own API


def test_index_lists_books_with_author_and_availability(seeded_app: Flask) -> None:
    response = seeded_app.test_client().get("/")

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.index("A Wizard of Earthsea") < html.index("Beloved") < html.index("Solaris")
    assert "Ursula K. Le Guin" in html
    assert html.count('class="overdue"') == 2
    assert html.count("On loan until") == 1
    assert html.count('class="available"') == 4


def test_index_escapes_catalogue_text(app: Flask, client: FlaskClient) -> None:
    add_book(app, title="<script>alert(1)</script>")

    html = client.get("/").get_data(as_text=True)

    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_index_of_empty_catalogue_says_how_to_seed(client: FlaskClient) -> None:
    assert "init-db --seed" in client.get("/").get_data(as_text=True)


def test_list_books_sorted_by_title_with_availability(seeded_app: Flask) -> None:
    books = json_of(seeded_app.test_client().get("/api/books"))["books"]

    assert [book["title"] for book in books] == sorted(book["title"] for book in books)
    assert len(books) == 7
    on_loan = {book["title"]: book["due_on"] for book in books if not book["available"]}
    assert set(on_loan) == {"A Wizard of Earthsea", "Invisible Cities", "Beloved"}
    assert all(book["due_on"] is None for book in books if book["available"])


def test_list_books_pages_through_the_catalogue(seeded_app: Flask) -> None:
    client = seeded_app.test_client()
    all_titles = [book["title"] for book in json_of(client.get("/api/books"))["books"]]

    second = json_of(client.get("/api/books?page=2&per_page=3"))

    assert [book["title"] for book in second["books"]] == all_titles[3:6]
    assert (second["page"], second["pages"], second["total"]) == (2, 3, 7)
    last = json_of(client.get("/api/books?page=3&per_page=3"))
    assert [book["title"] for book in last["books"]] == all_titles[6:]


@pytest.mark.parametrize("query", ["page=4&per_page=3", "page=abc", "per_page=0"])
def test_list_books_answers_a_bad_page_with_json_404(seeded_app: Flask, query: str) -> None:
    response = seeded_app.test_client().get(f"/api/books?{query}")

    assert response.status_code == 404
    assert "error" in json_of(response)


def _link(html: str, rel: str) -> str | None:
    found = re.search(rf'<a rel="{rel}" href="([^"]+)">', html)
    return html_module.unescape(found.group(1)) if found else None


def _titles(html: str) -> list[str]:
    return re.findall(r"<tr>\s*<td>([^<]+)</td>", html)


def test_index_walks_the_catalogue_by_cursor(seeded_app: Flask) -> None:
    """The list page is keyset-paginated: following "Next" from the first page shows
    every book once, in the API's order; "Previous" walks back the same pages.
    """
    client = seeded_app.test_client()
    in_order = [book["title"] for book in json_of(client.get("/api/books"))["books"]]
    pages: list[list[str]] = []
    html = ""
    url: str | None = "/?per_page=3"
    while url is not None:
        html = client.get(url).get_data(as_text=True)
        pages.append([html_module.unescape(title) for title in _titles(html)])
        assert (_link(html, "prev") is None) == (len(pages) == 1)
        url = _link(html, "next")
        if url is not None:
            assert "after=" in url
            assert "page=" not in url.replace("per_page=", "")
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [title for page in pages for title in page] == in_order
    back: list[list[str]] = []
    url = _link(html, "prev")
    while url is not None:
        html = client.get(url).get_data(as_text=True)
        back.append([html_module.unescape(title) for title in _titles(html)])
        url = _link(html, "prev")
    assert back == pages[-2::-1]


def test_index_answers_a_tampered_cursor_with_400(seeded_app: Flask) -> None:
    response = seeded_app.test_client().get("/?after=not-a-cursor")

    assert response.status_code == 400


def test_get_book(app: Flask, client: FlaskClient) -> None:
    book_id = add_book(app)

    response = client.get(f"/api/books/{book_id}")

    assert response.status_code == 200
    assert json_of(response) == {
        "id": book_id,
        "title": "Solaris",
        "isbn": "9780156027601",
        "year": 1961,
        "author": {"id": json_of(response)["author"]["id"], "name": "Stanisław Lem"},
        "available": True,
        "due_on": None,
    }


def test_get_book_loads_its_author_and_loan_in_one_query(app: Flask, client: FlaskClient) -> None:
    book_id = add_book(app)
    assert client.post(f"/api/books/{book_id}/loans", json={"borrower": "Ada"}).status_code == 201

    with db.record_queries(app) as queries:
        book = json_of(client.get(f"/api/books/{book_id}"))

    assert (book["author"]["name"], book["available"]) == ("Stanisław Lem", False)
    assert len(queries) == 1


def test_api_errors_keep_the_errors_own_headers(client: FlaskClient) -> None:
    response = client.delete("/api/books/1")

    assert response.status_code == 405
    assert json_of(response) == {"error": "The method is not allowed for the requested URL."}
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_missing_book_is_a_json_404(client: FlaskClient) -> None:
    response = client.get("/api/books/404")

    assert response.status_code == 404
    assert json_of(response) == {"error": "Book 404 does not exist."}


def test_unknown_api_url_is_a_json_404_and_other_urls_are_not(client: FlaskClient) -> None:
    assert "error" in json_of(client.get("/api/nothing-here"))
    response = client.get("/nothing-here")
    assert response.status_code == 404
    assert response.mimetype == "text/html"


def test_create_book_adds_the_book_and_its_new_author(app: Flask, client: FlaskClient) -> None:
    response = client.post("/api/books", json=DUNE)

    assert response.status_code == 201
    created = json_of(response)
    assert created["isbn"] == "9780441172719"
    assert created["author"]["name"] == "Frank Herbert"
    assert response.headers["Location"] == f"/api/books/{created['id']}"
    # Committed: a new context, with a new session, sees it.
    assert json_of(client.get(response.headers["Location"])) == created


def test_create_book_reuses_an_existing_author(app: Flask, client: FlaskClient) -> None:
    client.post("/api/books", json=DUNE)
    second = {**DUNE, "title": "Dune Messiah", "isbn": "9780593098233", "year": 1969}

    response = client.post("/api/books", json=second)

    assert response.status_code == 201
    assert count_rows(app, Author) == 1
    author_id = json_of(response)["author"]["id"]
    titles = [book["title"] for book in json_of(client.get(f"/api/authors/{author_id}"))["books"]]
    assert titles == ["Dune", "Dune Messiah"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**DUNE, "title": "  "}, "'title' is required"),
        ({**DUNE, "title": 42}, "'title' is required"),
        ({k: v for k, v in DUNE.items() if k != "author"}, "'author' is required"),
        ({**DUNE, "isbn": "0441172717"}, "'isbn' must be an ISBN-13"),
        ({**DUNE, "isbn": "97804411727X9"}, "'isbn' must be an ISBN-13"),
        ({**DUNE, "year": -5}, "'year' must be a positive integer"),
        ({**DUNE, "year": "1965"}, "'year' must be a positive integer"),
        ({**DUNE, "year": True}, "'year' must be a positive integer"),
        ({**DUNE, "title": "x" * 301}, "'title' must be at most 300 characters"),
        ([DUNE], "must be a JSON object"),
    ],
)
def test_create_book_rejects_invalid_input_with_400(
    app: Flask, client: FlaskClient, body: object, message: str
) -> None:
    response = client.post("/api/books", json=body)

    assert response.status_code == 400
    assert message in json_of(response)["error"]
    assert count_rows(app, Book) == 0
    assert count_rows(app, Author) == 0


def test_create_book_rejects_a_body_that_is_not_json(client: FlaskClient) -> None:
    response = client.post("/api/books", data="title=Dune")

    assert response.status_code == 400
    assert json_of(response) == {"error": "The request body must be a JSON object."}


def test_duplicate_isbn_is_a_409_and_rolls_back_the_new_author(
    app: Flask, client: FlaskClient
) -> None:
    add_book(app, isbn="9780441172719")

    response = client.post("/api/books", json=DUNE)

    assert response.status_code == 409
    assert "9780441172719" in json_of(response)["error"]
    # The author was added in the same failed transaction: it must be gone too.
    with app.app_context():
        assert db.session.scalars(sa.select(Author.name)).all() == ["Stanisław Lem"]


def test_an_author_added_by_another_request_meanwhile_is_a_409_that_says_so(
    tmp_path: Path,
) -> None:
    # An app of its own, outside test isolation: another connection must commit.
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'race.sqlite'}"})
    with app.app_context():
        db.create_all()
        engine = db.engine

    def add_the_same_author_first(session: Session, *args: object) -> None:
        # Between the view's lookup of the author and its commit.
        with engine.begin() as other:
            other.execute(sa.insert(Author).values(name=DUNE["author"]))

    with app.app_context():
        event.listen(db.sessionmaker, "before_flush", add_the_same_author_first, once=True)
    response = app.test_client().post("/api/books", json=DUNE)

    assert response.status_code == 409
    assert json_of(response) == {"error": "Author 'Frank Herbert' was just added; try again."}
    assert count_rows(app, Book) == 0
    with app.app_context():
        engine.dispose()


def test_lend_book(app: Flask, client: FlaskClient) -> None:
    book_id = add_book(app)
    # Whole seconds: MariaDB keeps no fraction of a second.
    before = utcnow().replace(microsecond=0)

    response = client.post(f"/api/books/{book_id}/loans", json={"borrower": "Ada", "days": 7})

    assert response.status_code == 201
    loan = json_of(response)
    assert loan == {
        "id": loan["id"],
        "book_id": book_id,
        "borrower": "Ada",
        "lent_at": loan["lent_at"],
        "due_on": loan["due_on"],
        "returned_at": None,
        "reminded_at": None,
    }
    lent_at = datetime.fromisoformat(loan["lent_at"])
    assert before <= lent_at <= utcnow()
    assert loan["due_on"] == (lent_at.date() + timedelta(days=7)).isoformat()
    book = json_of(client.get(f"/api/books/{book_id}"))
    assert book["available"] is False
    assert book["due_on"] == loan["due_on"]


def test_a_loan_is_confirmed_once_saved(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    book_id = add_book(app)

    with caplog.at_level(logging.INFO, logger=app.logger.name):
        response = client.post(f"/api/books/{book_id}/loans", json={"borrower": "Ada"})
        refused = client.post(f"/api/books/{book_id}/loans", json={"borrower": "Grace"})

    loan = json_of(response)
    assert refused.status_code == 409
    confirmations = [r.getMessage() for r in caplog.records if "confirmed" in r.getMessage()]
    assert confirmations == [
        f"Loan {loan['id']} confirmed: 'Solaris' to Ada, due {loan['due_on']}."
    ]


def test_the_confirmations_show_in_flask_run(app: Flask) -> None:
    """Flask's logger passes only warnings unless told otherwise: the example tells it."""
    assert app.logger.isEnabledFor(logging.INFO)


def test_the_confirmation_waits_for_the_commit(app: Flask, client: FlaskClient) -> None:
    """Captured, the confirmation is due only once the view committed the loan."""
    book_id = add_book(app)

    with db.captured_on_commit() as due:
        response = client.post(f"/api/books/{book_id}/loans", json={"borrower": "Ada"})

    assert response.status_code == 201
    assert [
        (callback.func, callback.args)
        for callback in due
        if isinstance(callback, functools.partial)
    ] == [(confirm_loan, (json_of(response)["id"],))]
    assert len(due) == 1


def test_lend_book_for_the_default_period(app: Flask, client: FlaskClient) -> None:
    book_id = add_book(app)
    response = client.post(f"/api/books/{book_id}/loans", json={"borrower": "Ada"})
    with app.app_context():
        loan = db.session.get(Loan, json_of(response)["id"])
        assert loan is not None
        assert loan.due_on - loan.lent_at.date() == timedelta(days=14)


def test_lending_a_book_on_loan_is_a_409_and_writes_nothing(
    app: Flask, client: FlaskClient
) -> None:
    book_id = add_book(app)
    first = json_of(client.post(f"/api/books/{book_id}/loans", json={"borrower": "Ada"}))

    response = client.post(f"/api/books/{book_id}/loans", json={"borrower": "Grace"})

    assert response.status_code == 409
    assert json_of(response) == {"error": "'Solaris' is already on loan."}
    assert count_rows(app, Loan) == 1
    assert json_of(client.get(f"/api/books/{book_id}"))["due_on"] == first["due_on"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "'borrower' is required"),
        ({"borrower": "Ada", "days": 0}, "'days' must be an integer from 1 to 60"),
        ({"borrower": "Ada", "days": 61}, "'days' must be an integer from 1 to 60"),
        ({"borrower": "Ada", "days": 1.5}, "'days' must be an integer from 1 to 60"),
    ],
)
def test_lend_book_rejects_invalid_input_with_400(
    app: Flask, client: FlaskClient, body: dict[str, object], message: str
) -> None:
    book_id = add_book(app)

    response = client.post(f"/api/books/{book_id}/loans", json=body)

    assert response.status_code == 400
    assert message in json_of(response)["error"]
    assert count_rows(app, Loan) == 0


def test_lending_a_missing_book_is_a_404(app: Flask, client: FlaskClient) -> None:
    response = client.post("/api/books/404/loans", json={"borrower": "Ada"})

    assert response.status_code == 404
    assert json_of(response) == {"error": "Book 404 does not exist."}
    assert count_rows(app, Loan) == 0


def test_return_loan_makes_the_book_available_again(app: Flask, client: FlaskClient) -> None:
    book_id = add_book(app)
    loan = json_of(client.post(f"/api/books/{book_id}/loans", json={"borrower": "Ada"}))

    response = client.post(f"/api/loans/{loan['id']}/return")

    assert response.status_code == 200
    returned = json_of(response)
    assert returned == {**loan, "returned_at": returned["returned_at"]}
    assert datetime.fromisoformat(returned["returned_at"]) >= datetime.fromisoformat(
        loan["lent_at"]
    )
    assert json_of(client.get(f"/api/books/{book_id}"))["available"] is True
    # Available means it can be lent again.
    again = client.post(f"/api/books/{book_id}/loans", json={"borrower": "Grace"})
    assert again.status_code == 201


def test_returning_a_returned_loan_is_a_409(app: Flask, client: FlaskClient) -> None:
    book_id = add_book(app)
    loan = json_of(client.post(f"/api/books/{book_id}/loans", json={"borrower": "Ada"}))
    returned = json_of(client.post(f"/api/loans/{loan['id']}/return"))

    response = client.post(f"/api/loans/{loan['id']}/return")

    assert response.status_code == 409
    assert json_of(response) == {"error": f"Loan {loan['id']} was already returned."}
    with app.app_context():
        stored = db.session.get(Loan, loan["id"])
        assert stored is not None
        assert stored.returned_at is not None
        assert stored.returned_at.isoformat() == returned["returned_at"]


def test_returning_a_missing_loan_is_a_404(client: FlaskClient) -> None:
    response = client.post("/api/loans/404/return")

    assert response.status_code == 404
    assert json_of(response) == {"error": "Loan 404 does not exist."}


def test_author_detail_lists_their_books_by_title(seeded_app: Flask) -> None:
    client = seeded_app.test_client()
    books = json_of(client.get("/api/books"))["books"]
    author_id = next(b["author"]["id"] for b in books if b["title"] == "The Dispossessed")

    author = json_of(client.get(f"/api/authors/{author_id}"))

    ids = {book["title"]: book["id"] for book in books}
    # The provider writes what the view loaded: each book's author is the author
    # being written, so it is left out; loans were not loaded, so neither are they.
    assert author == {
        "id": author_id,
        "name": "Ursula K. Le Guin",
        "born": 1929,
        "books": [
            {"id": ids[title], "title": title, "isbn": isbn, "year": year, "author_id": author_id}
            for title, isbn, year in [
                ("A Wizard of Earthsea", "9780547773742", 1968),
                ("The Dispossessed", "9780060512750", 1974),
                ("The Left Hand of Darkness", "9780441478125", 1969),
            ]
        ],
    }


def test_missing_author_is_a_json_404(client: FlaskClient) -> None:
    response = client.get("/api/authors/404")

    assert response.status_code == 404
    assert json_of(response) == {"error": "Author 404 does not exist."}


def test_write_that_a_failing_view_did_not_commit_is_discarded(package_database_url: str) -> None:
    # An app of its own: it gets a route, and lets the 500 through instead of raising.
    app = create_app({"SQLALCHEMY_DATABASE_URI": package_database_url})

    @app.post("/api/broken")
    def broken() -> str:
        db.session.add(Author(name="Never committed"))
        db.session.flush()
        raise RuntimeError("the view fails after writing")

    try:
        response = app.test_client().post("/api/broken")

        assert response.status_code == 500
        assert count_rows(app, Author) == 0
    finally:
        with app.app_context():
            db.engine.dispose()


def test_health_endpoint_reports_the_database(client: FlaskClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert json_of(response) == {
        "ok": True,
        "binds": [
            {
                "bind_key": None,
                "ok": True,
                "duration": json_of(response)["binds"][0]["duration"],
                "error": None,
            }
        ],
    }


def test_health_endpoint_is_a_503_that_names_no_file_and_logs_the_detail(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "missing" / "db.sqlite"
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}"})

    response = app.test_client().get("/healthz")

    assert response.status_code == 503
    (bind,) = json_of(response)["binds"]
    assert bind["error"] == "OperationalError"
    # The endpoint may be public: the file's path is for the operators, in the log.
    assert str(tmp_path) not in response.get_data(as_text=True)
    (record,) = [r for r in caplog.records if r.name == app.logger.name]
    assert record.levelname == "WARNING"
    assert f"sqlite:///{path}" in record.getMessage()
    assert "OperationalError: unable to open database file" in record.getMessage()
