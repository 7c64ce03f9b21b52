"""Bad numbers in the path and the query string, sent to the served app: huge,
negative, not numbers, other scripts' digits, empty. None gets a 500, and no page is
unbounded: the app reports the LIMIT of every statement it sent.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
import sqlalchemy as sa
from tests.load.harness import Answer
from tests.load.harness import Gunicorn
from tests.load.harness import Serve
from tests.load.harness import fetch
from tests.load.harness import served_app_environment
from tests.load.served_app import LIMITS_HEADER
from tests.load.served_app import STATEMENTS_HEADER

from bookshelf.models import Author
from bookshelf.models import Book

pytestmark = pytest.mark.load

#: The example's cap on ``per_page`` (flask-typed-db's default ``SQLALCHEMY_MAX_PER_PAGE``).
MAX_PER_PAGE = 100
#: Books added to the sample data, so that a page can be longer than the cap.
EXTRA_BOOKS = 150

HUGE = [
    # The first id a PostgreSQL INTEGER cannot hold, then 20 digits and more.
    str(2**31),
    "9" * 20,
    "1" + "0" * 30,
    # As long as gunicorn takes in a request line (4094 bytes), and close to the most
    # digits int() parses (4300).
    "9" * 4000,
]
BAD_NUMBERS = [
    *HUGE,
    "-1",
    "-" + "9" * 20,
    "0",
    "00",
    "",
    "abc",
    "1.5",
    "1e3",
    "0x10",
    "+1",
    " 1",
    "1 ",
    "\uff11\uff12",  # fullwidth 12
    "\u0661\u0662",  # Arabic-Indic 12
    "\u0967\u0968",  # Devanagari 12
    "\U0001d7cf",  # mathematical bold 1
    "\x00",
    "%",
    "1; DROP TABLE books",
]


@pytest.fixture
def more_books_than_a_page(database: sa.Engine) -> None:
    """Add books to the sample data, so that a page could be longer than the cap."""
    with database.begin() as connection:
        author_id = connection.scalar(sa.select(Author.id).limit(1))
        connection.execute(
            sa.insert(Book),
            [
                {"title": f"Extra {n}", "isbn": f"9790{n:09d}", "author_id": author_id}
                for n in range(EXTRA_BOOKS)
            ],
        )


def serve_recording(serve: Serve, url: str) -> Gunicorn:
    """The app, reporting the statements each request sends in its headers."""
    environment = served_app_environment(url, {}, SQLALCHEMY_RECORD_QUERIES=True)
    return serve(environment, workers=1, threads=4)


def limits(answer: Answer) -> list[int]:
    header = answer.headers.get(LIMITS_HEADER.lower(), "")
    return [int(limit) for limit in header.split(",") if limit]


@pytest.mark.parametrize(
    ("method", "route"),
    [
        pytest.param("GET", "/api/books/{}", id="book"),
        pytest.param("GET", "/api/authors/{}", id="author"),
        pytest.param("POST", "/api/books/{}/loans", id="lend"),
        pytest.param("POST", "/api/loans/{}/return", id="return"),
    ],
)
def test_bad_ids_in_the_path_never_get_a_500(
    serve: Serve, bookshelf_url: str, method: str, route: str
) -> None:
    server = serve_recording(serve, bookshelf_url)
    body = {"borrower": "Bad Input"} if method == "POST" else None
    answers = {
        value: fetch(server.port, method, route.format(quote(value, safe="")), body)
        for value in BAD_NUMBERS
    }

    assert {
        value: answer.status for value, answer in answers.items() if answer.status >= 500
    } == {}
    assert [
        value
        for value, answer in answers.items()
        if not answer.is_json_error() and answer.status >= 400
    ] == []
    if method == "GET":
        # An id no primary-key column can hold is a 404 with no query at all.
        assert {
            value: (answers[value].status, answers[value].headers[STATEMENTS_HEADER.lower()])
            for value in HUGE
        } == dict.fromkeys(HUGE, (404, "0"))


@pytest.mark.usefixtures("more_books_than_a_page")
def test_bad_page_numbers_never_get_a_500_nor_an_unbounded_page(
    serve: Serve, bookshelf_url: str
) -> None:
    server = serve_recording(serve, bookshelf_url)
    queries = [
        f"{name}={quote(value, safe='')}" for value in BAD_NUMBERS for name in ["page", "per_page"]
    ]
    # Both at once, within the length of a request line.
    queries += [
        f"page={quote(value, safe='')}&per_page={quote(value, safe='')}"
        for value in BAD_NUMBERS
        if len(value) < 100
    ]
    answers = {
        (path, query): fetch(server.port, "GET", f"{path}?{query}")
        for path in ["/api/books", "/"]
        for query in queries
    }
    # The list page is keyset-paginated: its cursors are bad input too, a 400.
    answers |= {
        ("/", query): fetch(server.port, "GET", f"/?{query}")
        for query in [
            f"{name}={quote(value, safe='')}"
            for value in BAD_NUMBERS
            for name in ["after", "before"]
        ]
    }

    assert {
        key: answer.status
        for key, answer in answers.items()
        if answer.status not in ({200, 404} if key[0] == "/api/books" else {200, 400, 404})
    } == {}
    # A keyset page reads one row more than it shows, to know whether a next one exists.
    most = {"/api/books": MAX_PER_PAGE, "/": MAX_PER_PAGE + 1}
    unbounded = {
        key: limits(answer)
        for key, answer in answers.items()
        if any(limit > most[key[0]] for limit in limits(answer))
        or (answer.status == 200 and not limits(answer))
    }
    assert unbounded == {}
    api_errors = [
        answer
        for (path, _), answer in answers.items()
        if path == "/api/books" and answer.status == 404
    ]
    assert all(answer.is_json_error() for answer in api_errors)
    # A huge per_page is lowered to the cap, not refused.
    for value in HUGE:
        answer = answers["/api/books", f"per_page={value}"]
        assert answer.status == 200
        assert limits(answer) == [MAX_PER_PAGE]
        assert len(answer.json()["books"]) == MAX_PER_PAGE
