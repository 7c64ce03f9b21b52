"""Per-request cost of flask-typed-db against a hand-written baseline and the field.

Five apps serve the same requests on the same two tables, each contender through its own
models:

- ``baseline``: what a careful team writes by hand: one engine, a ``sessionmaker``,
  a session made on first use, kept on ``flask.g`` and closed at teardown.
- ``twin``: a second app built by the baseline's own factory, on model classes of its
  own: the control. Its ratio to the baseline is what the measurement's noise alone
  makes of identical code.
- ``typed-db``: ``flask_typed_db.Database``, with ``db.session``, ``db.get_or_404``
  and ``db.paginate``.
- ``fsa``: Flask-SQLAlchemy, in its own idioms: ``db.Model``, ``db.session``,
  ``db.get_or_404`` and ``db.paginate``.
- ``fsa-lite``: Flask-SQLAlchemy-Lite, with ``db.session`` and ``db.get_or_abort``;
  it has no pagination, so its page is written the way the baseline's is.

Each kind of request (a workload) is a call of the app's WSGI callable with an
environ built once by Werkzeug's ``EnvironBuilder``, so the harness adds the same
little to every app. Rounds are interleaved: every round times a batch of each
workload on each app, so drift on the machine hits them alike, and the apps' order
changes from round to round so that each comes first, and right after each other
one, equally often. The rounds run in several fresh processes in turn, each with its
own hash seed and memory layout: where CPython's type attribute cache happens to
collide differs from process to process, and moves one app's time against another's
by a few percent for the life of a process, which no number of rounds in one process
averages out. Reported: the median time per request over all rounds, and each app's
ratio to the baseline (and typed-db's to Flask-SQLAlchemy) as the median of the
per-round ratios, the baseline timed in the same round; and, for typed-db and the
twin, the lowest and highest of the processes' own ratios.

Besides time: SQL statements per request (cursor executes, counted with engine
events) and commit/rollback calls; pool checkouts and Sessions created by the
request that does not touch the database; connections still checked out after the
run; and memory growth per request after warm-up, measured with tracemalloc.
Backends: SQLite (a file) always; PostgreSQL and MariaDB when ``TEST_POSTGRES_URL``
/ ``TEST_MARIADB_URL`` are set. The tables are named ``bench_*``; they are dropped
before and after.

    .venv/bin/python benchmarks/requests_bench.py [--processes 8] [--rounds 4] [--batch 40]
        [--quick]
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from collections.abc import Generator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import ExitStack
from contextlib import contextmanager
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar
from typing import Protocol
from typing import TypeVar
from unittest import mock

import flask_sqlalchemy
import flask_sqlalchemy_lite
import sqlalchemy as sa
from flask import Flask
from flask import abort
from flask import g
from flask import request
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Session
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import sessionmaker
from werkzeug.test import EnvironBuilder
from werkzeug.test import run_wsgi_app

from flask_typed_db import Database

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

#: Flask-SQLAlchemy's and our default page size, which the baseline uses too.
PER_PAGE = 20
#: Rows in every app's book table: 50 full pages of 20 and a last page of 10.
BOOKS = 1010


# -- One schema, two tables, four sets of models -------------------------------------
# Every app maps the same two tables, each through its own models: the same rows in the
# same places in the file or server. (Each app on tables of its own measured up to 1%
# slower than the baseline on its, with the same hand-written code.)


class BookColumns:
    """Every app's book table: read by the get, 404 and page workloads."""

    __tablename__ = "bench_book"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(100))
    year: Mapped[int]


class NoteColumns:
    """Every app's note table: written by the write workload."""

    __tablename__ = "bench_note"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(sa.String(100))


class BaselineBase(DeclarativeBase):
    pass


class BaselineBook(BookColumns, BaselineBase):
    pass


class BaselineNote(NoteColumns, BaselineBase):
    pass


class TwinBase(DeclarativeBase):
    pass


class TwinBook(BookColumns, TwinBase):
    pass


class TwinNote(NoteColumns, TwinBase):
    pass


class TypedBase(DeclarativeBase):
    pass


class TypedBook(BookColumns, TypedBase):
    pass


class TypedNote(NoteColumns, TypedBase):
    pass


class LiteBase(DeclarativeBase):
    pass


class LiteBook(BookColumns, LiteBase):
    pass


class LiteNote(NoteColumns, LiteBase):
    pass


class FsaBase(DeclarativeBase):
    pass


typed_db = Database(TypedBase)
fsa_db = flask_sqlalchemy.SQLAlchemy(model_class=FsaBase)
lite_db = flask_sqlalchemy_lite.SQLAlchemy()


class FsaBook(BookColumns, fsa_db.Model):  # type: ignore[name-defined, misc]  # db.Model is an attribute to type checkers
    pass


class FsaNote(NoteColumns, fsa_db.Model):  # type: ignore[name-defined, misc]  # db.Model is an attribute to type checkers
    pass


# -- The four apps ------------------------------------------------------------------
# Each serves GET /ping (no database), GET /books/<id> (a get by primary key, or a
# 404), GET /books?page=N (a page of 20 and the total) and POST /notes (a write
# with commit), in its own idioms.


def _new_app() -> Flask:
    return Flask(__name__)


def _ping() -> str:
    return "ok"


def _note_text() -> str:
    payload: dict[str, str] = request.get_json()
    return payload["text"]


def baseline_app(
    url: str,
    book_model: type[BookColumns] = BaselineBook,
    note_model: type[BaselineNote | TwinNote] = BaselineNote,
) -> tuple[Flask, sa.Engine]:
    """The hand-written baseline on ``book_model`` and ``note_model``, and its engine."""
    app = _new_app()
    engine = sa.create_engine(url)
    make_session = sessionmaker(engine)

    def session() -> Session:
        if "db_session" not in g:
            g.db_session = make_session()
        current: Session = g.db_session
        return current

    @app.teardown_appcontext
    def close_session(exc: BaseException | None) -> None:
        current: Session | None = g.pop("db_session", None)
        if current is not None:
            current.close()

    @app.get("/books/<int:book_id>")
    def get_book(book_id: int) -> dict[str, object]:
        book = session().get(book_model, book_id)
        if book is None:
            abort(404)
        return {"id": book.id, "title": book.title}

    @app.get("/books")
    def list_books() -> dict[str, object]:
        page = request.args.get("page", 1, type=int)
        if page < 1:
            abort(404)
        books = session().scalars(
            sa.select(book_model)
            .order_by(book_model.id)
            .limit(PER_PAGE)
            .offset((page - 1) * PER_PAGE)
        )
        titles = [book.title for book in books]
        if not titles and page != 1:
            abort(404)
        total = session().scalar(sa.select(sa.func.count()).select_from(book_model))
        return {"titles": titles, "total": total}

    @app.post("/notes")
    def add_note() -> tuple[dict[str, object], int]:
        note = note_model(text=_note_text())
        session().add(note)
        session().commit()
        return {"id": note.id}, 201

    app.get("/ping")(_ping)
    return app, engine


def twin_app(url: str) -> tuple[Flask, sa.Engine]:
    """The baseline's code again, on model classes of its own, and its engine."""
    return baseline_app(url, TwinBook, TwinNote)


def typed_db_app(url: str) -> tuple[Flask, sa.Engine]:
    """flask-typed-db, and its engine."""
    app = _new_app()
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    typed_db.init_app(app)

    @app.get("/books/<int:book_id>")
    def get_book(book_id: int) -> dict[str, object]:
        book = typed_db.get_or_404(TypedBook, book_id)
        return {"id": book.id, "title": book.title}

    @app.get("/books")
    def list_books() -> dict[str, object]:
        page = typed_db.paginate(sa.select(TypedBook).order_by(TypedBook.id))
        return {"titles": [book.title for book in page.items], "total": page.total}

    @app.post("/notes")
    def add_note() -> tuple[dict[str, object], int]:
        note = TypedNote(text=_note_text())
        typed_db.session.add(note)
        typed_db.session.commit()
        return {"id": note.id}, 201

    app.get("/ping")(_ping)
    with app.app_context():
        return app, typed_db.engine


def fsa_app(url: str) -> tuple[Flask, sa.Engine]:
    """Flask-SQLAlchemy, and its engine."""
    app = _new_app()
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    fsa_db.init_app(app)

    @app.get("/books/<int:book_id>")
    def get_book(book_id: int) -> dict[str, object]:
        book = fsa_db.get_or_404(FsaBook, book_id)
        return {"id": book.id, "title": book.title}

    @app.get("/books")
    def list_books() -> dict[str, object]:
        page = fsa_db.paginate(sa.select(FsaBook).order_by(FsaBook.id))
        return {"titles": [book.title for book in page.items], "total": page.total}

    @app.post("/notes")
    def add_note() -> tuple[dict[str, object], int]:
        note = FsaNote(text=_note_text())  # pyright: ignore[reportCallIssue]  # db.Model hides the mapped constructor
        fsa_db.session.add(note)
        fsa_db.session.commit()
        return {"id": note.id}, 201

    app.get("/ping")(_ping)
    with app.app_context():
        return app, fsa_db.engine


def lite_app(url: str) -> tuple[Flask, sa.Engine]:
    """Flask-SQLAlchemy-Lite, and its engine."""
    app = _new_app()
    app.config["SQLALCHEMY_ENGINES"] = {"default": url}
    lite_db.init_app(app)

    @app.get("/books/<int:book_id>")
    def get_book(book_id: int) -> dict[str, object]:
        book = lite_db.get_or_abort(LiteBook, book_id)
        return {"id": book.id, "title": book.title}

    @app.get("/books")
    def list_books() -> dict[str, object]:
        page = request.args.get("page", 1, type=int)
        if page < 1:
            abort(404)
        books = lite_db.session.scalars(
            sa.select(LiteBook).order_by(LiteBook.id).limit(PER_PAGE).offset((page - 1) * PER_PAGE)
        )
        titles = [book.title for book in books]
        if not titles and page != 1:
            abort(404)
        total = lite_db.session.scalar(sa.select(sa.func.count()).select_from(LiteBook))
        return {"titles": titles, "total": total}

    @app.post("/notes")
    def add_note() -> tuple[dict[str, object], int]:
        note = LiteNote(text=_note_text())
        lite_db.session.add(note)
        lite_db.session.commit()
        return {"id": note.id}, 201

    app.get("/ping")(_ping)
    with app.app_context():
        return app, lite_db.engine


#: Each contender's app factory, baseline first.
CONTENDERS: dict[str, Callable[[str], tuple[Flask, sa.Engine]]] = {
    "baseline": baseline_app,
    "twin": twin_app,
    "typed-db": typed_db_app,
    "fsa": fsa_app,
    "fsa-lite": lite_app,
}


# -- Workloads and the harness ------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One kind of request, and the status every app must answer it with."""

    name: str
    method: str
    path: str
    status: str
    body: bytes = b""


WORKLOADS = (
    Workload("no-db", "GET", "/ping", "200 OK"),
    Workload("get", "GET", f"/books/{BOOKS // 2}", "200 OK"),
    Workload("404", "GET", f"/books/{BOOKS * 10}", "404 NOT FOUND"),
    Workload("page", "GET", "/books?page=3", "200 OK"),
    Workload("last-page", "GET", f"/books?page={BOOKS // PER_PAGE + 1}", "200 OK"),
    Workload("write", "POST", "/notes", "201 CREATED", json.dumps({"text": "read"}).encode()),
)


@dataclass(frozen=True)
class Request:
    """A workload's environ, built once; only the body stream is new for each call."""

    workload: Workload
    environ: WSGIEnvironment

    @classmethod
    def build(cls, workload: Workload) -> Request:
        builder = EnvironBuilder(
            path=workload.path,
            method=workload.method,
            data=workload.body,
            content_type="application/json" if workload.body else None,
        )
        return cls(workload, builder.get_environ())

    def send(self, app: Flask) -> None:
        """Call the app once; raise if it answers with another status."""
        environ = {**self.environ, "wsgi.input": io.BytesIO(self.workload.body)}
        _, status, _ = run_wsgi_app(app, environ, buffered=True)
        if status != self.workload.status:
            raise RuntimeError(
                f"{self.workload.method} {self.workload.path} answered {status!r},"
                f" not {self.workload.status!r}."
            )


@dataclass
class Counts:
    """What one request did to the database."""

    statements: int = 0
    transaction_ends: int = 0
    checkouts: int = 0
    sessions: int = 0


@contextmanager
def counting(engine: sa.Engine, counts: Counts) -> Generator[None, None, None]:
    """Count ``engine``'s cursor executes, commits, rollbacks and pool checkouts, and
    every Session created anywhere, while the block runs.
    """

    def statement(*args: object) -> None:
        counts.statements += 1

    def transaction_end(*args: object) -> None:
        counts.transaction_ends += 1

    def checkout(*args: object) -> None:
        counts.checkouts += 1

    session_init = Session.__init__

    def counted_init(self: Session, *args: Any, **kwargs: Any) -> None:
        counts.sessions += 1
        session_init(self, *args, **kwargs)

    listeners: list[tuple[str, Callable[..., None]]] = [
        ("before_cursor_execute", statement),
        ("commit", transaction_end),
        ("rollback", transaction_end),
        ("checkout", checkout),
    ]
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        # SQLAlchemy has no event for a new Session; every Session class calls this.
        with mock.patch.object(Session, "__init__", counted_init):
            yield
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)


# -- Measuring -----------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """How much to measure."""

    #: Fresh processes the rounds are spread over, one after another.
    processes: int
    #: Timed rounds in each process.
    rounds: int
    batch: int
    warmup_rounds: int
    #: Cycles of every workload for the memory growth (in the first process only).
    memory_cycles: int


FULL = Settings(processes=8, rounds=4, batch=40, warmup_rounds=2, memory_cycles=150)
#: Every how many cycles (one request of each workload) memory is sampled.
MEMORY_STEP = 10
QUICK = Settings(processes=2, rounds=3, batch=3, warmup_rounds=1, memory_cycles=20)
#: The environment variable that makes this script a worker: its settings and URL, as
#: JSON. Not an argument: a URL's password does not belong on a command line.
WORKER_VARIABLE = "REQUESTS_BENCH_WORKER"


@dataclass(frozen=True)
class Result:
    """Everything measured on one backend."""

    #: Per contender and workload, the milliseconds per request of each round.
    times: dict[str, dict[str, list[float]]]
    #: Per contender and workload, what one request did.
    counts: dict[str, dict[str, Counts]]
    #: Per contender, bytes per request by which live Python allocations grow.
    memory_growth: dict[str, float]
    #: Per contender, its pool's checked-out connections after everything ran.
    checked_out: dict[str, int]


def measure_in_processes(url: str, settings: Settings) -> Result:
    """Measure on ``url`` in ``settings.processes`` fresh processes, one after another,
    each with its own hash seed: every process times its rounds and counts the
    statements, the first also measures memory growth.
    """
    results = [
        _run_worker(url, replace(settings, memory_cycles=settings.memory_cycles * (index == 0)))
        for index in range(settings.processes)
    ]
    first = results[0]
    if any(result.counts != first.counts for result in results):
        raise RuntimeError("The statements a request runs differ between processes.")
    times = {
        name: {
            workload: [time for result in results for time in result.times[name][workload]]
            for workload in by_workload
        }
        for name, by_workload in first.times.items()
    }
    checked_out = {
        name: max(result.checked_out[name] for result in results) for name in first.checked_out
    }
    return Result(times, first.counts, first.memory_growth, checked_out)


class Sizes(Protocol):
    """What :func:`settings_from_command_line` sets of a bench's frozen ``Settings``."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def processes(self) -> int: ...
    @property
    def rounds(self) -> int: ...
    @property
    def batch(self) -> int: ...


SizesT = TypeVar("SizesT", bound=Sizes)


def sizes_parser(description: str, full: Sizes) -> argparse.ArgumentParser:
    """The command line every per-request bench takes: how much to measure."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--processes", type=int, default=full.processes)
    parser.add_argument("--rounds", type=int, default=full.rounds, help="rounds per process")
    parser.add_argument("--batch", type=int, default=full.batch, help="requests per timing")
    parser.add_argument("--quick", action="store_true", help="a few rounds, to smoke-test")
    return parser


def settings_from_command_line(
    parser: argparse.ArgumentParser, args: argparse.Namespace, full: SizesT, quick: SizesT
) -> SizesT:
    """``quick`` for ``--quick``, else ``full`` with the sizes the command line gave."""
    if min(args.processes, args.rounds, args.batch) < 1:
        parser.error("--processes, --rounds and --batch must be 1 or more")
    if args.quick:
        return quick
    return replace(full, processes=args.processes, rounds=args.rounds, batch=args.batch)


def run_worker(script: str, variable: str, job: Mapping[str, object]) -> Any:
    """Run ``script`` in a new Python process, with ``job`` as JSON in the environment
    variable ``variable`` (not an argument: a URL's password does not belong on a command
    line), and return the JSON of the last line it printed.
    """
    # PYTHONHASHSEED unset: each process draws its own seed, as a deployment's would.
    environ = {key: value for key, value in os.environ.items() if key != "PYTHONHASHSEED"}
    finished = subprocess.run(
        [sys.executable, script],
        env={**environ, variable: json.dumps(job)},
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return json.loads(finished.stdout.splitlines()[-1])


def _run_worker(url: str, settings: Settings) -> Result:
    """Run :func:`measure` in a new Python process, and return what it measured."""
    data = run_worker(__file__, WORKER_VARIABLE, {"url": url, "settings": asdict(settings)})
    return Result(
        times=data["times"],
        counts={
            name: {workload: Counts(**counts) for workload, counts in by_workload.items()}
            for name, by_workload in data["counts"].items()
        },
        memory_growth=data["memory_growth"],
        checked_out=data["checked_out"],
    )


def _work(job: str) -> None:
    """The worker's side of :func:`_run_worker`: measure, and print the result as JSON."""
    data = json.loads(job)
    result = measure(data["url"], Settings(**data["settings"]))
    print(json.dumps(asdict(result)))


def measure(url: str, settings: Settings) -> Result:
    """Build every contender's app on ``url`` and measure them in this process."""
    apps: dict[str, tuple[Flask, sa.Engine]] = {}
    # Every engine is disposed of and the tables dropped, even if something fails.
    with ExitStack() as cleanup:
        for name, factory in CONTENDERS.items():
            app, engine = factory(url)
            cleanup.callback(engine.dispose)
            apps[name] = app, engine
        # Made and dropped through the baseline's models; every app maps the same tables.
        engine = apps["baseline"][1]
        cleanup.callback(BaselineBase.metadata.drop_all, engine)
        create_tables(engine, BaselineBase.metadata)
        return _measure(apps, [Request.build(workload) for workload in WORKLOADS], settings)


def create_tables(engine: sa.Engine, metadata: sa.MetaData) -> None:
    """Make ``metadata``'s tables anew, and give the book table its rows."""
    metadata.drop_all(engine)
    metadata.create_all(engine)
    book = next(table for table in metadata.sorted_tables if table.name.endswith("_book"))
    rows = [
        {"id": number, "title": f"Book {number:04}", "year": 1900 + number % 120}
        for number in range(1, BOOKS + 1)
    ]
    with engine.begin() as connection:
        connection.execute(book.insert(), rows)


def _measure(
    apps: Mapping[str, tuple[Flask, sa.Engine]], requests: Sequence[Request], settings: Settings
) -> Result:
    times = _time_rounds(apps, requests, settings)
    # After the timing: an engine that ever had a connection event listener runs every
    # statement through SQLAlchemy's event dispatch, even once the listener is removed.
    counts = {name: _count(app, engine, requests) for name, (app, engine) in apps.items()}
    memory_growth = {
        name: _memory_growth(app, requests, settings.memory_cycles)
        for name, (app, _) in apps.items()
        if settings.memory_cycles
    }
    checked_out = {name: _checked_out(engine) for name, (_, engine) in apps.items()}
    return Result(times, counts, memory_growth, checked_out)


def _count(app: Flask, engine: sa.Engine, requests: Sequence[Request]) -> dict[str, Counts]:
    """What one warm request of each workload does."""
    counts: dict[str, Counts] = {}
    for sent in requests:
        sent.send(app)  # connect, compile and cache first
        counts[sent.workload.name] = Counts()
        with counting(engine, counts[sent.workload.name]):
            sent.send(app)
    return counts


def _checked_out(engine: sa.Engine) -> int:
    pool = engine.pool
    return pool.checkedout() if isinstance(pool, sa.QueuePool) else 0


def _time_rounds(
    apps: Mapping[str, tuple[Flask, sa.Engine]], requests: Sequence[Request], settings: Settings
) -> dict[str, dict[str, list[float]]]:
    names = list(apps)
    times: dict[str, dict[str, list[float]]] = {
        name: {sent.workload.name: [] for sent in requests} for name in names
    }
    # Keep the objects made so far out of the collector's way: a full collection
    # then costs every app alike, not whichever app happens to trigger it.
    gc.collect()
    gc.freeze()
    orders = balanced_orders(len(names))
    try:
        for round_number in range(settings.warmup_rounds + settings.rounds):
            order = [names[index] for index in orders[round_number % len(orders)]]
            for sent in requests:
                for name in order:
                    app = apps[name][0]
                    start = time.perf_counter()
                    for _ in range(settings.batch):
                        sent.send(app)
                    elapsed = time.perf_counter() - start
                    if round_number >= settings.warmup_rounds:
                        times[name][sent.workload.name].append(elapsed * 1000 / settings.batch)
    finally:
        gc.unfreeze()
    return times


def balanced_orders(count: int) -> list[list[int]]:
    """Orders of ``count`` contenders, one per round in turn, in which each comes first
    equally often and right after each other one equally often (a Williams design).

    What an app leaves behind slows down whichever app runs next: Flask-SQLAlchemy-
    Lite's teardown starts a thread per request, and the app after it measured 3%
    slower than its own twin. A rotation would always put the same app after it.
    """
    first = [0]
    for step in range(1, count):
        first.append(step // 2 + 1 if step % 2 else count - step // 2)
    orders = [[(index + shift) % count for index in first] for shift in range(count)]
    if count % 2:
        orders += [order[::-1] for order in orders]
    return orders


def _memory_growth(app: Flask, requests: Sequence[Request], cycles: int) -> float:
    """Bytes per request by which live Python allocations grow over ``cycles`` of every
    workload, once the timed rounds have warmed everything up: the least-squares slope
    through a sample taken every ``MEMORY_STEP`` cycles. A slope over many samples, not
    the difference of two: sqlite3 frees its cursors' bookkeeping every 200 cursors, a
    saw-tooth two samples could catch at any phase. tracemalloc, not RSS: RSS moves by
    whole pages and keeps the arenas the allocator holds on to, whoever filled them;
    tracemalloc counts the live Python allocations exactly. (The drivers' own C
    allocations are not in it.)
    """
    requests_sent: list[int] = []
    sizes: list[int] = []
    tracemalloc.start()
    try:
        # tracemalloc sees only what is allocated after it starts: let the long-lived
        # objects that requests replace (caches, pooled cursors) be replaced once first.
        for _ in range(cycles // 3):
            for sent in requests:
                sent.send(app)
        for cycle in range(cycles + 1):
            if cycle % MEMORY_STEP == 0:
                gc.collect()
                requests_sent.append(cycle * len(requests))
                sizes.append(tracemalloc.get_traced_memory()[0])
            for sent in requests:
                sent.send(app)
    finally:
        tracemalloc.stop()
    return statistics.linear_regression(requests_sent, sizes).slope


# -- Reporting -----------------------------------------------------------------------


def ratio(times: Mapping[str, Sequence[float]], name: str, over: str) -> float:
    """The median of the per-round ratios of ``name``'s time to ``over``'s."""
    return statistics.median(a / b for a, b in zip(times[name], times[over], strict=True))


def process_range(
    times: Mapping[str, Sequence[float]], name: str, over: str, rounds: int
) -> tuple[float, float]:
    """The lowest and highest of the processes' own ratios, each process having run
    ``rounds`` rounds: how far the layout of one process can move a ratio.
    """
    count = len(times[over])
    ratios = [
        ratio({key: times[key][start : start + rounds] for key in (name, over)}, name, over)
        for start in range(0, count, rounds)
    ]
    return min(ratios), max(ratios)


def report(backend: str, result: Result, settings: Settings) -> None:
    """Print one backend's tables."""
    names = list(result.times)
    processes = len(result.times["baseline"][WORKLOADS[0].name]) // settings.rounds
    print(
        f"\n{backend}: median µs per request, {processes} processes x {settings.rounds}"
        f" interleaved rounds of {settings.batch} requests; in brackets, the lowest and"
        " highest of the processes' own ratios"
    )
    print(
        f"{'workload':<10}"
        + "".join(f"{name:>10}" for name in names)
        + f"{'typed-db/base':>26}{'twin/base':>26}{'fsa/base':>10}"
        + f"{'lite/base':>10}{'typed-db/fsa':>13}"
    )
    for workload in WORKLOADS:
        times = {name: result.times[name][workload.name] for name in names}
        ratio_cells = "".join(
            f"{ratio(times, name, 'baseline'):>10.3f}"
            + " ({:.3f}-{:.3f})".format(*process_range(times, name, "baseline", settings.rounds))
            for name in ("typed-db", "twin")
        )
        print(
            f"{workload.name:<10}"
            + "".join(f"{statistics.median(times[name]) * 1000:>10.1f}" for name in names)
            + ratio_cells
            + f"{ratio(times, 'fsa', 'baseline'):>10.3f}"
            + f"{ratio(times, 'fsa-lite', 'baseline'):>10.3f}"
            + f"{ratio(times, 'typed-db', 'fsa'):>13.3f}"
        )
    print("SQL statements per request (cursor executes) + commit/rollback calls")
    print(f"{'workload':<10}" + "".join(f"{name:>10}" for name in names))
    for workload in WORKLOADS:
        cells = (result.counts[name][workload.name] for name in names)
        print(
            f"{workload.name:<10}"
            + "".join(f"{f'{c.statements} + {c.transaction_ends}':>10}" for c in cells)
        )
    rows: dict[str, Callable[[str], object]] = {
        "no-db request: pool checkouts": lambda name: result.counts[name]["no-db"].checkouts,
        "no-db request: Sessions created": lambda name: result.counts[name]["no-db"].sessions,
        "connections checked out after the run": lambda name: result.checked_out[name],
        "memory growth, bytes per request": lambda name: f"{result.memory_growth[name]:.1f}",
    }
    print(f"{'':<40}" + "".join(f"{name:>10}" for name in names))
    for label, cell in rows.items():
        print(f"{label:<40}" + "".join(f"{cell(name)!s:>10}" for name in names))


def backends(directory: Path) -> dict[str, str]:
    """SQLite in ``directory``, and the servers whose URL variables are set."""
    urls = {"sqlite": f"sqlite:///{directory / 'bench.db'}"}
    for name, variable in (("postgresql", "TEST_POSTGRES_URL"), ("mariadb", "TEST_MARIADB_URL")):
        if os.environ.get(variable):
            urls[name] = os.environ[variable]
    return urls


def main(argv: Sequence[str] | None = None) -> None:
    parser = sizes_parser("Per-request cost against the field.", FULL)
    settings = settings_from_command_line(parser, parser.parse_args(argv), FULL, QUICK)
    packages = ("flask", "werkzeug", "sqlalchemy", "flask-sqlalchemy", "flask-sqlalchemy-lite")
    print(
        f"Python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs; "
        + ", ".join(f"{package} {version(package)}" for package in packages)
    )
    print(
        "baseline: hand-written; twin: the baseline again on its own models, the control;"
        " typed-db:"
        " flask-typed-db; fsa: Flask-SQLAlchemy; fsa-lite / lite: Flask-SQLAlchemy-Lite."
        " Ratios: medians of per-round ratios."
    )
    with tempfile.TemporaryDirectory() as directory:
        for backend, url in backends(Path(directory)).items():
            report(backend, measure_in_processes(url, settings), settings)


if __name__ == "__main__":
    if WORKER_VARIABLE in os.environ:
        _work(os.environ[WORKER_VARIABLE])
    else:
        main()
