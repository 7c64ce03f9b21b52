"""What read-replica routing costs a request: the same app with and without
``SQLALCHEMY_REPLICAS``.

Three apps serve the same requests on the same two tables, each a
``flask_typed_db.Database`` on model classes of its own:

- ``typed-db``: no replicas: the reference.
- ``replicas``: the same code and primary URL, with one replica of the default bind in
  ``SQLALCHEMY_REPLICAS``: its ``GET`` requests read from the replica, its ``POST``
  requests go to the primary.
- ``replicas-twin``: the ``replicas`` app's code again: the control. Its ratio to
  ``replicas`` is what the measurement's noise alone makes of identical code.

Workloads, ``requests_bench.py``'s: ``get`` (``db.get_or_404`` of one row by primary
key: the replica), ``page`` (``db.paginate`` of a select, its rows and their count: the
replica) and ``write`` (a ``POST`` that adds a row and commits: the primary, and the
response sets the read-your-writes cookie).

The method is ``requests_bench.py``'s, and so are its helpers: each request is a call of
the app's WSGI callable with an environ built once; rounds are interleaved, a batch of
each workload on each app per round, in orders in which each app comes first and right
after each other one equally often; the rounds run in several fresh processes, each
with its own hash seed and memory layout. Reported: the median time per request over
all rounds; ``replicas/typed-db`` (the routing's cost, target: under 1.02) and
``replicas-twin/replicas`` (the control) as medians of the per-round ratios, with the
lowest and highest of the processes' own ratios. Then what makes the numbers
trustworthy: the SQL statements one request of each workload runs on the primary and on
the replica (a ``GET`` from a client that has just written included: the primary's),
whether the write's response sets the cookie, and the connections still checked out of
the pools after the run. Every request must answer its expected status: one that does
not stops the run.

Backends: SQLite always, the replica a second file with the same rows; PostgreSQL when
``TEST_POSTGRES_URL`` is set, its replica the same URL (a second engine: this measures
the routing, not replication); and a primary with a streaming replica when
``TEST_PRIMARY_URL`` and ``TEST_REPLICA_URL`` are set (``tests/servers/scale_out.sh``),
the rows written to the primary only and awaited on the replica. The tables are named
``bench_*``; they are dropped before and after.

    .venv/bin/python benchmarks/replicas_bench.py [--processes 8] [--rounds 6] [--batch 40]
        [--quick]
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from flask import Flask
from flask import request
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import DeclarativeBase

# Run as a script, this file's directory is on the path, not the project's.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.requests_bench import BOOKS
from benchmarks.requests_bench import WORKLOADS as REQUESTS_WORKLOADS
from benchmarks.requests_bench import BookColumns
from benchmarks.requests_bench import NoteColumns
from benchmarks.requests_bench import Request
from benchmarks.requests_bench import balanced_orders
from benchmarks.requests_bench import create_tables
from benchmarks.requests_bench import process_range
from benchmarks.requests_bench import ratio
from benchmarks.requests_bench import run_worker
from benchmarks.requests_bench import settings_from_command_line
from benchmarks.requests_bench import sizes_parser

from flask_typed_db import Database

#: The workloads timed, requests_bench.py's: a get by primary key, a page, a write.
WORKLOADS = tuple(
    workload for workload in REQUESTS_WORKLOADS if workload.name in {"get", "page", "write"}
)
#: The read-your-writes cookie, as docs/scaling.md names it.
WROTE_COOKIE = "flask_typed_db_wrote"
#: Counted, not timed: the ``get`` of a client whose write moments ago set the cookie.
AFTER_WRITE = "get-after-write"


# -- One schema, three sets of models -------------------------------------------------


class PlainBase(DeclarativeBase):
    pass


class PlainBook(BookColumns, PlainBase):
    pass


class PlainNote(NoteColumns, PlainBase):
    pass


class ReplicaBase(DeclarativeBase):
    pass


class ReplicaBook(BookColumns, ReplicaBase):
    pass


class ReplicaNote(NoteColumns, ReplicaBase):
    pass


class TwinBase(DeclarativeBase):
    pass


class TwinBook(BookColumns, TwinBase):
    pass


class TwinNote(NoteColumns, TwinBase):
    pass


plain_db = Database(PlainBase)
replica_db = Database(ReplicaBase)
twin_db = Database(TwinBase)


# -- The apps -------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """A primary and its replica."""

    name: str
    primary: str
    replica: str
    #: How the replica gets the rows: ``same`` is the primary's own URL (a second
    #: engine on it); a ``copy`` is seeded as the primary is; a ``streaming`` replica
    #: follows the primary, and is waited for.
    kind: Literal["same", "copy", "streaming"]

    def describe(self) -> str:
        """What the replica is, with no password and no temporary path in it."""
        if self.kind == "copy":
            return "the replica a second file with the same rows"
        primary = make_url(self.primary).render_as_string(hide_password=True)
        if self.kind == "same":
            return f"the replica the primary's own URL ({primary}), a second engine"
        replica = make_url(self.replica).render_as_string(hide_password=True)
        return f"primary {primary}, streaming replica {replica}"


@dataclass(frozen=True)
class Served:
    """An app, and the engines its requests use."""

    app: Flask
    primary: sa.Engine
    #: Its replica's engine; ``None`` for the app without replicas.
    replica: sa.Engine | None

    def engines(self) -> list[sa.Engine]:
        return [self.primary] + ([self.replica] if self.replica is not None else [])


def typed_app(
    backend: Backend,
    db: Database,
    book_model: type[BookColumns],
    note_model: type[PlainNote | ReplicaNote | TwinNote],
    *,
    replicas: bool,
) -> Served:
    """``db`` on an app of its own, with the backend's replica if ``replicas``."""
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = backend.primary
    if replicas:
        app.config["SQLALCHEMY_REPLICAS"] = {None: [backend.replica]}
    db.init_app(app)

    @app.get("/books/<int:book_id>")
    def get_book(book_id: int) -> dict[str, object]:
        book = db.get_or_404(book_model, book_id)
        return {"id": book.id, "title": book.title}

    @app.get("/books")
    def list_books() -> dict[str, object]:
        page = db.paginate(sa.select(book_model).order_by(book_model.id))
        return {"titles": [book.title for book in page.items], "total": page.total}

    @app.post("/notes")
    def add_note() -> tuple[dict[str, object], int]:
        payload: dict[str, str] = request.get_json()
        note = note_model(text=payload["text"])
        db.session.add(note)
        db.session.commit()
        return {"id": note.id}, 201

    with app.app_context():
        engine = db.engine
        replica = db.replica_engines[None][0] if replicas else None
    return Served(app, engine, replica)


#: Each app's factory, the reference first.
APPS: dict[str, Callable[[Backend], Served]] = {
    "typed-db": lambda backend: typed_app(backend, plain_db, PlainBook, PlainNote, replicas=False),
    "replicas": lambda backend: typed_app(
        backend, replica_db, ReplicaBook, ReplicaNote, replicas=True
    ),
    "replicas-twin": lambda backend: typed_app(
        backend, twin_db, TwinBook, TwinNote, replicas=True
    ),
}


# -- Measuring ------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """How much to measure."""

    #: Fresh processes the rounds are spread over, one after another.
    processes: int
    #: Timed rounds in each process.
    rounds: int
    batch: int
    warmup_rounds: int


FULL = Settings(processes=8, rounds=6, batch=40, warmup_rounds=2)
QUICK = Settings(processes=2, rounds=3, batch=4, warmup_rounds=1)
#: The environment variable that makes this script a worker: its settings and URLs, as
#: JSON. Not an argument: a URL's password does not belong on a command line.
WORKER_VARIABLE = "REPLICAS_BENCH_WORKER"
#: Seconds a streaming replica is given to receive the rows.
REPLICA_WAIT = 30.0


@dataclass(frozen=True)
class Result:
    """Everything measured on one backend."""

    #: Per app and workload, the milliseconds per request of each round.
    times: dict[str, dict[str, list[float]]]
    #: Per app and workload (and :data:`AFTER_WRITE`), the statements one warm request
    #: runs on the primary and on the replica.
    statements: dict[str, dict[str, tuple[int, int]]]
    #: Per app, whether the write's response sets the read-your-writes cookie.
    sets_cookie: dict[str, bool]
    #: Per app, the connections checked out of its pools after everything ran.
    checked_out: dict[str, int]


def measure_in_processes(backend: Backend, settings: Settings) -> Result:
    """Measure in ``settings.processes`` fresh processes, one after another."""
    results = [_run_worker(backend, settings) for _ in range(settings.processes)]
    first = results[0]
    if any(result.statements != first.statements for result in results):
        raise RuntimeError("The statements a request runs differ between processes.")
    return Result(
        times={
            name: {
                workload: [t for result in results for t in result.times[name][workload]]
                for workload in by_workload
            }
            for name, by_workload in first.times.items()
        },
        statements=first.statements,
        sets_cookie={name: all(result.sets_cookie[name] for result in results) for name in APPS},
        checked_out={name: max(result.checked_out[name] for result in results) for name in APPS},
    )


def _run_worker(backend: Backend, settings: Settings) -> Result:
    """Run :func:`measure` in a new Python process, and return what it measured."""
    job = {"backend": asdict(backend), "settings": asdict(settings)}
    data = run_worker(__file__, WORKER_VARIABLE, job)
    return Result(
        times=data["times"],
        statements={
            name: {workload: (counts[0], counts[1]) for workload, counts in by_workload.items()}
            for name, by_workload in data["statements"].items()
        },
        sets_cookie=data["sets_cookie"],
        checked_out=data["checked_out"],
    )


def _work(job: str) -> None:
    """The worker's side of :func:`_run_worker`: measure, and print the result as JSON."""
    data = json.loads(job)
    result = measure(Backend(**data["backend"]), Settings(**data["settings"]))
    print(json.dumps(asdict(result)))


def measure(backend: Backend, settings: Settings) -> Result:
    """Build the apps on ``backend`` and measure them in this process."""
    with ExitStack() as cleanup:
        served: dict[str, Served] = {}
        for name, factory in APPS.items():
            served[name] = factory(backend)
        primary = served["typed-db"].primary
        replica = served["replicas"].replica
        assert replica is not None
        # Dropped last, once every pool is closed; every app maps the same tables.
        cleanup.callback(PlainBase.metadata.drop_all, primary)
        if backend.kind == "copy":
            cleanup.callback(PlainBase.metadata.drop_all, replica)
        for app in served.values():
            for engine in app.engines():
                cleanup.callback(engine.dispose)
        create_tables(primary, PlainBase.metadata)
        if backend.kind == "copy":
            create_tables(replica, PlainBase.metadata)
        elif backend.kind == "streaming":
            _wait_for_rows(replica)
        requests = [Request.build(workload) for workload in WORKLOADS]
        times = _time_rounds(served, requests, settings)
        # After the timing: an engine that ever had an event listener runs every
        # statement through SQLAlchemy's event dispatch, even once it is removed.
        statements = {name: _count(app, requests) for name, app in served.items()}
        sets_cookie = {name: _sets_cookie(app.app) for name, app in served.items()}
        checked_out = {
            name: sum(_checked_out(engine) for engine in app.engines())
            for name, app in served.items()
        }
        return Result(times, statements, sets_cookie, checked_out)


def _wait_for_rows(replica: sa.Engine) -> None:
    """Wait until a streaming replica has the book table's rows."""
    book = PlainBook.__table__
    deadline = time.monotonic() + REPLICA_WAIT
    while True:
        try:
            with replica.connect() as connection:
                if connection.scalar(sa.select(sa.func.count()).select_from(book)) == BOOKS:
                    return
        except ProgrammingError:
            pass  # the table is not there yet
        if time.monotonic() > deadline:
            raise RuntimeError(f"The replica has not received the rows in {REPLICA_WAIT} s.")
        time.sleep(0.05)


def _time_rounds(
    served: Mapping[str, Served], requests: Sequence[Request], settings: Settings
) -> dict[str, dict[str, list[float]]]:
    """The milliseconds per request of each timed round, per app and workload."""
    names = list(served)
    times: dict[str, dict[str, list[float]]] = {
        name: {sent.workload.name: [] for sent in requests} for name in names
    }
    # As requests_bench.py does: a full collection then costs every app alike.
    gc.collect()
    gc.freeze()
    orders = balanced_orders(len(names))
    try:
        for round_number in range(settings.warmup_rounds + settings.rounds):
            order = [names[index] for index in orders[round_number % len(orders)]]
            for sent in requests:
                for name in order:
                    app = served[name].app
                    start = time.perf_counter()
                    for _ in range(settings.batch):
                        sent.send(app)
                    elapsed = time.perf_counter() - start
                    if round_number >= settings.warmup_rounds:
                        times[name][sent.workload.name].append(elapsed * 1000 / settings.batch)
    finally:
        gc.unfreeze()
    return times


def _after_write(get: Request) -> Request:
    """``get`` from a client that wrote moments ago: with the cookie, for an hour."""
    cookie = f"{WROTE_COOKIE}={time.time() + 3600:.3f}"
    return Request(get.workload, {**get.environ, "HTTP_COOKIE": cookie})


def _count(served: Served, requests: Sequence[Request]) -> dict[str, tuple[int, int]]:
    """The statements one warm request of each workload runs on the primary, and on
    the replica.
    """
    counted = [(sent.workload.name, sent) for sent in requests]
    get = next(sent for sent in requests if sent.workload.name == "get")
    counted.append((AFTER_WRITE, _after_write(get)))
    counts: dict[str, tuple[int, int]] = {}
    for name, sent in counted:
        sent.send(served.app)  # connect, compile and cache first
        on_primary = _Statements(served.primary)
        on_replica = _Statements(served.replica)
        try:
            sent.send(served.app)
        finally:
            on_primary.remove()
            on_replica.remove()
        counts[name] = (on_primary.count, on_replica.count)
    return counts


class _Statements:
    """Counts an engine's cursor executes until removed."""

    def __init__(self, engine: sa.Engine | None) -> None:
        self.engine = engine
        self.count = 0
        if engine is not None:
            event.listen(engine, "before_cursor_execute", self._executed)

    def _executed(self, *args: object) -> None:
        self.count += 1

    def remove(self) -> None:
        if self.engine is not None:
            event.remove(self.engine, "before_cursor_execute", self._executed)


def _sets_cookie(app: Flask) -> bool:
    """Whether the write's response sets the read-your-writes cookie."""
    write = next(workload for workload in WORKLOADS if workload.name == "write")
    response = app.test_client().post(write.path, data=write.body, content_type="application/json")
    return any(
        header.startswith(f"{WROTE_COOKIE}=") for header in response.headers.getlist("Set-Cookie")
    )


def _checked_out(engine: sa.Engine) -> int:
    pool = engine.pool
    return pool.checkedout() if isinstance(pool, sa.QueuePool) else 0


# -- Reporting ------------------------------------------------------------------------

#: Each ratio reported, and the target it is held to or what it says.
RATIOS: tuple[tuple[str, str, str], ...] = (
    ("replicas", "typed-db", "target: under 1.02"),
    ("replicas-twin", "replicas", "the control: identical code"),
)


def report(backend: Backend, result: Result, settings: Settings) -> None:
    """Print one backend's tables."""
    names = list(result.times)
    processes = len(result.times[names[0]][WORKLOADS[0].name]) // settings.rounds
    print(
        f"\n{backend.name}, {backend.describe()}: median µs per request, {processes}"
        f" processes x {settings.rounds} interleaved rounds of {settings.batch} requests"
    )
    print(f"{'workload':<16}" + "".join(f"{name:>15}" for name in names))
    for workload in WORKLOADS:
        cells = (statistics.median(result.times[name][workload.name]) * 1000 for name in names)
        print(f"{workload.name:<16}" + "".join(f"{cell:>15.1f}" for cell in cells))
    print(
        "ratios: medians of the per-round ratios; in brackets, the lowest and highest of"
        " the processes' own"
    )
    for name, over, note in RATIOS:
        for workload in WORKLOADS:
            times = {key: result.times[key][workload.name] for key in (name, over)}
            low, high = process_range(times, name, over, settings.rounds)
            label = f"{name}/{over}"
            print(
                f"{label:<24}{workload.name:<8}{ratio(times, name, over):>7.3f}"
                f" ({low:.3f}-{high:.3f})  {note}"
            )
    print("SQL statements one request runs: on the primary + on the replica")
    print(f"{'workload':<16}" + "".join(f"{name:>15}" for name in names))
    for counted in (*(workload.name for workload in WORKLOADS), AFTER_WRITE):
        counts = (result.statements[name][counted] for name in names)
        print(
            f"{counted:<16}"
            + "".join(f"{f'{primary} + {replica}':>15}" for primary, replica in counts)
        )
    rows: dict[str, Callable[[str], object]] = {
        "cookie set by the write": lambda name: "yes" if result.sets_cookie[name] else "no",
        "checked out after": lambda name: result.checked_out[name],
    }
    for label, cell in rows.items():
        print(f"{label:<24}" + "".join(f"{cell(name)!s:>15}" for name in names))
    print("every request answered with its expected status (one that does not stops the run)")


def backends(directory: Path) -> list[Backend]:
    """SQLite in ``directory``, and the servers whose URL variables are set."""
    found = [
        Backend(
            "sqlite",
            f"sqlite:///{directory / 'primary.db'}",
            f"sqlite:///{directory / 'replica.db'}",
            "copy",
        )
    ]
    postgresql = os.environ.get("TEST_POSTGRES_URL")
    if postgresql:
        found.append(Backend("postgresql", postgresql, postgresql, "same"))
    primary, replica = os.environ.get("TEST_PRIMARY_URL"), os.environ.get("TEST_REPLICA_URL")
    if primary and replica:
        found.append(Backend("postgresql-streaming", primary, replica, "streaming"))
    return found


def main(argv: Sequence[str] | None = None) -> None:
    parser = sizes_parser("Per-request cost of read-replica routing.", FULL)
    settings = settings_from_command_line(parser, parser.parse_args(argv), FULL, QUICK)
    packages = ("flask", "werkzeug", "sqlalchemy", "psycopg")
    print(
        f"Python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs; "
        + ", ".join(f"{package} {version(package)}" for package in packages)
    )
    print(
        "typed-db: flask-typed-db without replicas; replicas: the same app with one replica"
        " in SQLALCHEMY_REPLICAS; replicas-twin: the replicas app again, the control."
    )
    with tempfile.TemporaryDirectory() as directory:
        for backend in backends(Path(directory)):
            report(backend, measure_in_processes(backend, settings), settings)


if __name__ == "__main__":
    if WORKER_VARIABLE in os.environ:
        _work(os.environ[WORKER_VARIABLE])
    else:
        main()
