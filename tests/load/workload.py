"""The mix of requests the load tests send, and the checks of what it left behind.

Every request states the statuses it may get and, for a success, what its JSON must
contain; every write it acknowledged, and every write of a request that failed, is
then looked up in the database.
"""

from __future__ import annotations

import http.client
import itertools
import random
import threading
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field
from typing import TypeVar

import sqlalchemy as sa
from tests.load.harness import Answer
from tests.load.harness import fetch
from tests.load.served_app import IntendedFailure

from bookshelf.models import Author
from bookshelf.models import Book
from bookshelf.models import Loan

R = TypeVar("R")

#: A request body: sent as JSON, ``bytes`` as they are.
Body = Mapping[str, object] | Sequence[object] | bytes | None

#: An id no row has: the seed data and a load add a few thousand rows at most.
MISSING_ID = 10**6

#: The exceptions the workload provokes, by their name in a traceback: the failing view's.
INTENDED_ERRORS = (f"{IntendedFailure.__module__}.{IntendedFailure.__qualname__}",)

#: Scenario names and how often each is picked, out of the sum of the weights.
WEIGHTS: Mapping[str, int] = {
    "page": 18,
    "html": 4,
    "get": 14,
    "author": 5,
    "missing": 10,
    "create": 15,
    "duplicate": 6,
    "invalid": 6,
    "lend": 10,
    "fail": 5,
    "no-db": 4,
    "health": 3,
}
#: The async views' scenarios: reads through ``db.async_session``.
ASYNC_WEIGHTS: Mapping[str, int] = {
    "async-page": 30,
    "async-get": 50,
    "async-missing": 20,
}


@dataclass(frozen=True)
class Call:
    """One request and what it may get back."""

    #: The scenario that sent it, then the step: ``lend``, ``lend/return``...
    kind: str
    method: str
    path: str
    body: Body = None
    expected: frozenset[int] = frozenset({200})
    #: Items the JSON body must contain when the answer is a 2xx.
    contains: Mapping[str, object] = field(default_factory=dict[str, object])


@dataclass(frozen=True)
class Outcome:
    call: Call
    #: ``None`` when no answer came: a client timeout or a dropped connection.
    answer: Answer | None
    error: str | None = None

    @property
    def status(self) -> int | None:
        return None if self.answer is None else self.answer.status

    def problem(self) -> str | None:
        """Why this outcome is not one the call allows, or ``None``."""
        call, answer = self.call, self.answer
        if answer is None:
            return f"{call.method} {call.path}: no answer ({self.error})"
        if answer.status not in call.expected:
            return f"{call.method} {call.path}: {answer.status} {answer.body[:300]!r}"
        if 200 <= answer.status < 300 and call.contains:
            payload = answer.json()
            wrong = {k: payload.get(k) for k, v in call.contains.items() if payload.get(k) != v}
            if wrong:
                return f"{call.method} {call.path}: got {wrong}, expected {call.contains}"
        return None


@dataclass(frozen=True)
class Catalogue:
    """What the database holds before the load: the scenarios read and lend it."""

    books: Sequence[tuple[int, str]]  # (id, isbn)
    authors: Sequence[tuple[int, str]]  # (id, name)

    @classmethod
    def read(cls, engine: sa.Engine) -> Catalogue:
        with engine.connect() as connection:
            books = connection.execute(sa.select(Book.id, Book.isbn).order_by(Book.id))
            authors = connection.execute(sa.select(Author.id, Author.name).order_by(Author.id))
            return cls(
                [(row.id, row.isbn) for row in books],
                [(row.id, row.name) for row in authors],
            )


class Workload:
    """Sends a seeded-random mix of scenarios to a server: those of :data:`WEIGHTS`, or
    of the ``weights`` given (:data:`ASYNC_WEIGHTS`).

    Scenario ``n`` is the same in every run; names and ISBNs it creates carry ``n`` and
    the workload's ``seed`` (below 100), so every write can be looked up afterwards;
    workloads sent to the same database need different seeds.
    """

    def __init__(
        self,
        port: int,
        catalogue: Catalogue,
        *,
        seed: int = 0,
        weights: Mapping[str, int] = WEIGHTS,
    ) -> None:
        self.port = port
        self.catalogue = catalogue
        self.seed = seed
        self.weights = weights
        self._numbers = itertools.count()
        self._scenarios: Mapping[str, Callable[[int, random.Random], list[Outcome]]] = {
            "page": self._page,
            "html": self._html,
            "get": self._get,
            "author": self._author,
            "missing": self._missing,
            "create": self._create,
            "duplicate": self._duplicate,
            "invalid": self._invalid,
            "lend": self._lend,
            "fail": self._fail,
            "no-db": self._no_db,
            "health": self._health,
            "async-page": self._async_page,
            "async-get": self._async_get,
            "async-missing": self._async_missing,
        }

    def run(self, scenarios: int, threads: int) -> list[Outcome]:
        """Run ``scenarios`` scenarios from ``threads`` client threads."""
        with ThreadPoolExecutor(threads, thread_name_prefix="load-client") as pool:
            batches = [pool.submit(self.scenario) for _ in range(scenarios)]
            return [outcome for batch in batches for outcome in batch.result()]

    def run_until(self, stop: threading.Event, threads: int) -> list[Outcome]:
        """Run scenarios from ``threads`` client threads until ``stop`` is set."""
        outcomes: list[list[Outcome]] = [[] for _ in range(threads)]

        def client(mine: list[Outcome]) -> None:
            while not stop.is_set():
                mine.extend(self.scenario())

        clients = [
            threading.Thread(target=client, args=(mine,), name=f"load-client-{index}")
            for index, mine in enumerate(outcomes)
        ]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        return [outcome for mine in outcomes for outcome in mine]

    def alongside(self, work: Callable[[], R], threads: int) -> tuple[R, list[Outcome]]:
        """Run scenarios from ``threads`` client threads for as long as ``work`` runs;
        return what ``work`` returned and the scenarios' outcomes.
        """
        stop = threading.Event()
        with ThreadPoolExecutor(1) as background:
            running = background.submit(self.run_until, stop, threads)
            try:
                result = work()
            finally:
                stop.set()
            return result, running.result()

    def scenario(self) -> list[Outcome]:
        """Run the next scenario; return the outcome of each of its requests."""
        number = next(self._numbers)
        rng = random.Random(f"{self.seed}-{number}")
        kind = rng.choices(list(self.weights), weights=list(self.weights.values()))[0]
        return self._scenarios[kind](number, rng)

    def name(self, number: int) -> str:
        """A new author's name, unique to scenario ``number`` of this workload."""
        return f"Load author {self.seed}-{number}"

    def isbn(self, number: int) -> str:
        """An ISBN unique to scenario ``number``: 979 (the seed data's are all 978),
        this workload's seed, the scenario number.
        """
        return f"979{self.seed:02d}{number:08d}"

    def send(self, call: Call) -> Outcome:
        try:
            return Outcome(call, fetch(self.port, call.method, call.path, call.body))
        except (OSError, http.client.HTTPException) as error:
            return Outcome(call, None, f"{type(error).__name__}: {error}")

    # -- Scenarios ---------------------------------------------------------------------

    def _page(self, number: int, rng: random.Random) -> list[Outcome]:
        # The seed data has 7 books: two pages of 5 always exist.
        page = rng.choice([1, 2])
        return [self.send(Call("page", "GET", f"/api/books?page={page}&per_page=5"))]

    def _html(self, number: int, rng: random.Random) -> list[Outcome]:
        return [self.send(Call("html", "GET", "/?page=1&per_page=5"))]

    def _get(self, number: int, rng: random.Random) -> list[Outcome]:
        book_id, isbn = rng.choice(self.catalogue.books)
        contains = {"id": book_id, "isbn": isbn}
        return [self.send(Call("get", "GET", f"/api/books/{book_id}", contains=contains))]

    def _author(self, number: int, rng: random.Random) -> list[Outcome]:
        author_id, name = rng.choice(self.catalogue.authors)
        contains = {"id": author_id, "name": name}
        return [self.send(Call("author", "GET", f"/api/authors/{author_id}", contains=contains))]

    def _missing(self, number: int, rng: random.Random) -> list[Outcome]:
        ident = MISSING_ID + number
        method, path = rng.choice(
            [
                ("GET", f"/api/books/{ident}"),
                ("GET", f"/api/authors/{ident}"),
                ("POST", f"/api/loans/{ident}/return"),
                ("GET", "/api/no-such-thing"),
            ]
        )
        return [self.send(Call("missing", method, path, expected=frozenset({404})))]

    def _create(self, number: int, rng: random.Random) -> list[Outcome]:
        author = self.name(number) if rng.random() < 0.5 else rng.choice(self.catalogue.authors)[1]
        body = {
            "title": f"Load book {number}",
            "isbn": self.isbn(number),
            "author": author,
            "year": rng.choice([None, rng.randint(1800, 2025)]),
        }
        contains = {"title": body["title"], "isbn": body["isbn"], "year": body["year"]}
        call = Call("create", "POST", "/api/books", body, frozenset({201}), contains)
        return [self.send(call)]

    def _duplicate(self, number: int, rng: random.Random) -> list[Outcome]:
        """A new author with a book already there: 409, and the author is not kept."""
        body = {
            "title": f"Duplicate {number}",
            "isbn": rng.choice(self.catalogue.books)[1],
            "author": self.name(number),
        }
        return [self.send(Call("duplicate", "POST", "/api/books", body, frozenset({409})))]

    def _invalid(self, number: int, rng: random.Random) -> list[Outcome]:
        valid: dict[str, object] = {
            "title": f"Invalid {number}",
            "isbn": self.isbn(number),
            "author": self.name(number),
        }
        bodies: list[Body] = [
            b"{not json",
            [valid],
            {**valid, "title": "  "},
            {**valid, "isbn": "12345"},
            {**valid, "year": -1},
            {**valid, "author": "x" * 201},
        ]
        body = rng.choice(bodies)
        return [self.send(Call("invalid", "POST", "/api/books", body, frozenset({400})))]

    def _lend(self, number: int, rng: random.Random) -> list[Outcome]:
        """Lend a book (201, or 409 if it is out); return it (200), and again (409)."""
        book_id = rng.choice(self.catalogue.books)[0]
        borrower = f"Load borrower {self.seed}-{number}"
        body = {"borrower": borrower, "days": rng.randint(1, 60)}
        contains = {"book_id": book_id, "borrower": borrower, "returned_at": None}
        path = f"/api/books/{book_id}/loans"
        lend = Call("lend", "POST", path, body, frozenset({201, 409}), contains)
        lent = self.send(lend)
        if lent.answer is None or lent.answer.status != 201:
            return [lent]
        loan_id = lent.answer.json()["id"]
        path = f"/api/loans/{loan_id}/return"
        returned = self.send(Call("lend/return", "POST", path, contains={"id": loan_id}))
        again = self.send(Call("lend/return-again", "POST", path, expected=frozenset({409})))
        return [lent, returned, again]

    def _fail(self, number: int, rng: random.Random) -> list[Outcome]:
        """A view that adds an author and then raises: 500, and the author is not kept."""
        body = {"author": self.name(number)}
        return [self.send(Call("fail", "POST", "/load/fail", body, frozenset({500})))]

    def _no_db(self, number: int, rng: random.Random) -> list[Outcome]:
        return [self.send(Call("no-db", "GET", "/load/no-db"))]

    def _health(self, number: int, rng: random.Random) -> list[Outcome]:
        return [self.send(Call("health", "GET", "/healthz", contains={"ok": True}))]

    def _async_page(self, number: int, rng: random.Random) -> list[Outcome]:
        page = rng.choice([1, 2])
        call = Call("async-page", "GET", f"/api/async/books?page={page}&per_page=5")
        return [self.send(call)]

    def _async_get(self, number: int, rng: random.Random) -> list[Outcome]:
        book_id, isbn = rng.choice(self.catalogue.books)
        contains = {"id": book_id, "isbn": isbn}
        call = Call("async-get", "GET", f"/api/async/books/{book_id}", contains=contains)
        return [self.send(call)]

    def _async_missing(self, number: int, rng: random.Random) -> list[Outcome]:
        path = f"/api/async/books/{MISSING_ID + number}"
        return [self.send(Call("async-missing", "GET", path, expected=frozenset({404})))]


def problems(outcomes: Iterable[Outcome]) -> list[str]:
    return [problem for outcome in outcomes if (problem := outcome.problem()) is not None]


def tally(outcomes: Iterable[Outcome]) -> dict[str, int]:
    """How many answers of each status each kind of call got: ``{"create 201": 90}``."""
    counts = Counter(f"{outcome.call.kind} {outcome.status}" for outcome in outcomes)
    return dict(sorted(counts.items()))


def write_problems(engine: sa.Engine, outcomes: Sequence[Outcome]) -> list[str]:
    """What the database lacks of the acknowledged writes, or keeps of failed ones.

    A write that got no answer, or a 500 or 503 (a commit whose answer was lost, when
    the database goes away), proves nothing either way and is left out; a request that
    cannot have committed (a duplicate, an invalid body, the failing view) is checked
    whatever its answer.
    """
    found: list[str] = []
    with engine.connect() as connection:
        for outcome in outcomes:
            answer, body = outcome.answer, outcome.call.body
            if answer is None:
                continue
            kind = outcome.call.kind
            if kind == "create" and answer.status == 201 and isinstance(body, Mapping):
                row = connection.execute(
                    sa.select(Book.title, Book.isbn, Book.year, Author.name)
                    .join(Book.author)
                    .where(Book.id == answer.json()["id"])
                ).one_or_none()
                book = (body["title"], body["isbn"], body["year"], body["author"])
                if row is None or tuple(row) != book:
                    found.append(f"created book {book} is stored as {row}")
            elif kind in {"duplicate", "invalid", "fail"}:
                name = new_author_of(body)
                if name is not None and connection.scalar(
                    sa.select(sa.func.count()).select_from(Author).where(Author.name == name)
                ):
                    found.append(f"{kind} request answered {answer.status} kept author {name!r}")
            elif kind == "lend" and answer.status == 201:
                loan = connection.execute(
                    sa.select(Loan.book_id, Loan.borrower).where(Loan.id == answer.json()["id"])
                ).one_or_none()
                lent = (outcome.call.contains["book_id"], outcome.call.contains["borrower"])
                if loan is None or tuple(loan) != lent:
                    found.append(f"acknowledged loan {answer.json()} is stored as {loan}")
            elif kind == "lend/return" and answer.status == 200:
                returned = connection.scalar(
                    sa.select(Loan.returned_at).where(Loan.id == answer.json()["id"])
                )
                if returned is None:
                    found.append(f"acknowledged return {answer.json()} is not stored")
        doubly_lent = connection.execute(
            sa.select(Loan.book_id)
            .where(Loan.returned_at.is_(None))
            .group_by(Loan.book_id)
            .having(sa.func.count() > 1)
        ).all()
        if doubly_lent:
            found.append(f"books on loan twice at once: {[row.book_id for row in doubly_lent]}")
    return found


def new_author_of(body: Body) -> str | None:
    """The author name a request body asked to add, if it was a JSON object."""
    name = body.get("author") if isinstance(body, Mapping) else None
    return name if isinstance(name, str) else None


def app_connections(engine: sa.Engine, application_name: str) -> list[tuple[str, ...]]:
    """The served app's connections in ``pg_stat_activity``: (state, wait, query)."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT coalesce(state, ''), coalesce(wait_event_type, ''), query"
                " FROM pg_stat_activity WHERE application_name = :name"
            ),
            {"name": application_name},
        )
        return [tuple(row) for row in rows]


def busy_connections(engine: sa.Engine, application_name: str) -> list[tuple[str, ...]]:
    """The app's connections that are running a query or sit in a transaction: once
    no request is in flight, each is a connection some session never gave back.
    """
    return [
        connection
        for connection in app_connections(engine, application_name)
        if connection[0] != "idle"
    ]
