"""Per-request cost of an async view on ``db.async_session``, against the same view in
sync and against the async view people write today.

Four apps serve ``GET /items/<id>``, which reads one row by primary key and answers
with its name, each through model classes of its own on the same table:

- ``sync``: ``flask_typed_db.Database``, a plain view with ``db.session.get()``: the
  reference.
- ``async``: ``flask_typed_db.Database``, an ``async def`` view with
  ``await db.async_session.get()``. ``db.init_app()`` makes the app run its coroutines
  on the process's one long-lived event loop, so the async engine's pool lives across
  requests.
- ``nullpool``: no flask-typed-db, what works today: Flask's own way to run an async
  view (asgiref, a new event loop per request), an engine made with
  ``create_async_engine(url, poolclass=NullPool)`` (a pooled connection would belong
  to a loop that is gone by the next request) and an ``AsyncSession`` opened and
  closed in the view.
- ``async-twin``: the ``async`` app's code again, on a ``Database`` and model classes
  of its own: the control. Its ratio to ``async`` is what noise alone makes of
  identical code.

The method is ``requests_bench.py``'s, and so are its helpers: each request is a call
of the app's WSGI callable with an environ built once; rounds are interleaved, a
batch of each app per round, in orders in which each app comes first and right after
each other one equally often; the rounds run in several fresh processes, each with
its own hash seed and memory layout. Reported: the median time per request over all
rounds; the ratios async/sync, nullpool/async and async-twin/async as medians of the
per-round ratios, with the lowest and highest of the processes' own ratios; the
server connections each app opened while timed (counted with the pool's ``connect``
event: a pool that lives across requests opens none once warm; ``nullpool`` opens
one a request); and the connections still checked out after the run. Then, in the
first process, bursts of 50 requests sent at once from a pool of 8 threads to
``sync``, ``async`` and ``nullpool``: the time of a burst, the requests that failed,
and the connections opened.

With ``--breakdown``, four more apps take the async request apart, each a variant of
one above: ``sync-no-db`` and ``async-no-db`` answer with a constant from a sync and an
``async def`` view on a ``Database`` (the difference is the trip to the event loop's
thread and back); ``asgiref-no-db`` is the ``async def`` view without flask-typed-db
(Flask's default: a new thread and loop per call, what ``nullpool`` pays);
``async-no-ping`` is the ``async`` app with ``pool_pre_ping=False``. Reported: the
medians of the per-round differences of their times.

Backends: SQLite (a file, aiosqlite) always; PostgreSQL when ``TEST_POSTGRES_URL`` is
set, twice: with psycopg's async driver (flask-typed-db's default) and with asyncpg
(the app's ``SQLALCHEMY_ASYNC_DATABASE_URI`` set to the ``postgresql+asyncpg`` URL);
MariaDB (aiomysql) when ``TEST_MARIADB_URL`` is set. The ``nullpool`` app connects
to the URL of the ``async`` app's engine. The table is named ``bench_item``; it is
dropped before and after.

    .venv/bin/python benchmarks/async_bench.py [--processes 8] [--rounds 6] [--batch 50]
        [--breakdown] [--quick]
"""

from __future__ import annotations

import asyncio
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
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from flask import abort
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.pool import NullPool

# Run as a script, this file's directory is on the path, not the project's.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.requests_bench import Request
from benchmarks.requests_bench import Workload
from benchmarks.requests_bench import balanced_orders
from benchmarks.requests_bench import process_range
from benchmarks.requests_bench import ratio
from benchmarks.requests_bench import run_worker
from benchmarks.requests_bench import settings_from_command_line
from benchmarks.requests_bench import sizes_parser

from flask_typed_db import Database

#: Rows in the table; every request reads the one in the middle.
ITEMS = 1000
READ = Workload("get", "GET", f"/items/{ITEMS // 2}", "200 OK")
#: Requests in a burst sent at once, and the threads that send them.
BURST = 50
THREADS = 8


# -- One table, four sets of models --------------------------------------------------


class ItemColumns:
    """Every app's table."""

    __tablename__ = "bench_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))


class SyncBase(DeclarativeBase):
    pass


class SyncItem(ItemColumns, SyncBase):
    pass


class AsyncBase(DeclarativeBase):
    pass


class AsyncItem(ItemColumns, AsyncBase):
    pass


class TwinBase(DeclarativeBase):
    pass


class TwinItem(ItemColumns, TwinBase):
    pass


class NullPoolBase(DeclarativeBase):
    pass


class NullPoolItem(ItemColumns, NullPoolBase):
    pass


class NoPingBase(DeclarativeBase):
    pass


class NoPingItem(ItemColumns, NoPingBase):
    pass


class NoDbBase(DeclarativeBase):
    pass


sync_db = Database(SyncBase)
async_db = Database(AsyncBase)
twin_db = Database(TwinBase)
no_ping_db = Database(NoPingBase, engine_options={"pool_pre_ping": False})
#: On the apps whose views do not touch the database.
no_db = Database(NoDbBase)
#: What the views that do not touch the database answer: the row's name.
NAME = f"Item {ITEMS // 2:04}"


# -- The apps ------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """An app, and the pool its requests take connections from."""

    app: Flask
    #: The engine whose pool the requests use; an async engine's sync face, which
    #: carries its pool and the pool's events.
    engine: sa.Engine
    #: Closes the pool's connections, on the loop they were made on.
    dispose: Callable[[], None]


def sync_app(url: str, async_url: str | None) -> Served:
    """flask-typed-db, a sync view: the reference."""
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    sync_db.init_app(app)

    @app.get("/items/<int:item_id>")
    def get_item(item_id: int) -> str:
        item = sync_db.session.get(SyncItem, item_id)
        if item is None:
            abort(404)
        return item.name

    with app.app_context():
        engine = sync_db.engine
    return Served(app, engine, engine.dispose)


def typed_async_app(
    url: str, async_url: str | None, db: Database = async_db, model: type[ItemColumns] = AsyncItem
) -> Served:
    """flask-typed-db, an async view on ``db.async_session``."""
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    if async_url is not None:
        app.config["SQLALCHEMY_ASYNC_DATABASE_URI"] = async_url
    db.init_app(app)

    @app.get("/items/<int:item_id>")
    async def get_item(item_id: int) -> str:
        item = await db.async_session.get(model, item_id)
        if item is None:
            abort(404)
        return item.name

    with app.app_context():
        engine = db.async_engine
    # On the loop the app runs its coroutines on, which owns the pool's connections.
    return Served(app, engine.sync_engine, app.ensure_sync(engine.dispose))


def twin_app(url: str, async_url: str | None) -> Served:
    """The ``async`` app's code again, on a Database and models of its own."""
    return typed_async_app(url, async_url, twin_db, TwinItem)


def no_ping_app(url: str, async_url: str | None) -> Served:
    """The ``async`` app's code, its async engine without ``pool_pre_ping``."""
    return typed_async_app(url, async_url, no_ping_db, NoPingItem)


def no_db_app(url: str, *, is_async: bool, typed: bool = True) -> Served:
    """A view that answers :data:`NAME` without touching the database: sync or
    ``async def``, on an app with a ``Database`` or, if not ``typed``, without one.
    """
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    if typed:
        no_db.init_app(app)

    def get_item(item_id: int) -> str:
        return NAME

    async def get_item_async(item_id: int) -> str:
        return NAME

    app.get("/items/<int:item_id>")(get_item_async if is_async else get_item)
    # Never connected: the pool is there for the counts every app reports.
    engine = sa.create_engine(url)
    return Served(app, engine, engine.dispose)


def nullpool_app(async_url: URL) -> Served:
    """Written by hand without flask-typed-db: Flask's default async handling, a new
    connection and session per request.
    """
    app = Flask(__name__)
    engine = create_async_engine(async_url, poolclass=NullPool)

    @app.get("/items/<int:item_id>")
    async def get_item(item_id: int) -> str:
        async with AsyncSession(engine) as session:
            item = await session.get(NullPoolItem, item_id)
            if item is None:
                abort(404)
            return item.name

    return Served(app, engine.sync_engine, lambda: asyncio.run(engine.dispose()))


#: The apps, the reference first.
APPS = ("sync", "async", "nullpool", "async-twin")
#: With --breakdown, the variants that take the async request apart.
BREAKDOWN_APPS: dict[str, Callable[[str, str | None], Served]] = {
    "sync-no-db": lambda url, _: no_db_app(url, is_async=False),
    "async-no-db": lambda url, _: no_db_app(url, is_async=True),
    "asgiref-no-db": lambda url, _: no_db_app(url, is_async=True, typed=False),
    "async-no-ping": no_ping_app,
}
#: The apps sent bursts of concurrent requests.
BURST_APPS = ("sync", "async", "nullpool")


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
    #: Timed bursts of concurrent requests to each app (in the first process only).
    bursts: int
    #: Whether to time the variants of :data:`BREAKDOWN_APPS` too.
    breakdown: bool = False


FULL = Settings(processes=8, rounds=6, batch=50, warmup_rounds=2, bursts=8)
QUICK = Settings(processes=2, rounds=3, batch=4, warmup_rounds=1, bursts=1)
#: The environment variable that makes this script a worker: its settings and URLs, as
#: JSON. Not an argument: a URL's password does not belong on a command line.
WORKER_VARIABLE = "ASYNC_BENCH_WORKER"


@dataclass
class Bursts:
    """Bursts of :data:`BURST` requests at once to one app."""

    #: Milliseconds each burst took, start to last answer.
    times: list[float] = field(default_factory=list[float])
    #: Requests that raised or answered another status than 200, over all bursts.
    failures: int = 0
    #: Server connections the pool opened during the timed bursts.
    connections: int = 0


@dataclass(frozen=True)
class Result:
    """Everything measured on one backend."""

    #: Per app, the milliseconds per request of each round.
    times: dict[str, list[float]]
    #: Per app, the server connections its pool opened during the timed rounds.
    connections: dict[str, int]
    #: Requests each app served during the timed rounds.
    timed_requests: int
    #: Per app, connections checked out of its pool, or open, after everything ran.
    checked_out: dict[str, int]
    #: Per app of :data:`BURST_APPS`; empty but in the first process.
    bursts: dict[str, Bursts]


class Connections:
    """Counts what a pool's ``connect`` and ``close`` events report."""

    def __init__(self, engine: sa.Engine) -> None:
        self.opened = 0
        self.closed = 0
        event.listen(engine, "connect", self._connect)
        event.listen(engine, "close", self._close)

    def _connect(self, *args: object) -> None:
        self.opened += 1

    def _close(self, *args: object) -> None:
        self.closed += 1


def measure_in_processes(url: str, async_url: str | None, settings: Settings) -> Result:
    """Measure in ``settings.processes`` fresh processes, one after another, each with
    its own hash seed; the first also sends the bursts.
    """
    results = [
        _run_worker(url, async_url, replace(settings, bursts=settings.bursts * (index == 0)))
        for index in range(settings.processes)
    ]
    first = results[0]
    names = list(first.times)
    return Result(
        times={name: [t for result in results for t in result.times[name]] for name in names},
        connections={name: sum(result.connections[name] for result in results) for name in names},
        timed_requests=sum(result.timed_requests for result in results),
        checked_out={name: max(result.checked_out[name] for result in results) for name in names},
        bursts=first.bursts,
    )


def _run_worker(url: str, async_url: str | None, settings: Settings) -> Result:
    """Run :func:`measure` in a new Python process, and return what it measured."""
    job = {"url": url, "async_url": async_url, "settings": asdict(settings)}
    data = run_worker(__file__, WORKER_VARIABLE, job)
    return Result(
        times=data["times"],
        connections=data["connections"],
        timed_requests=data["timed_requests"],
        checked_out=data["checked_out"],
        bursts={name: Bursts(**bursts) for name, bursts in data["bursts"].items()},
    )


def _work(job: str) -> None:
    """The worker's side of :func:`_run_worker`: measure, and print the result as JSON."""
    data = json.loads(job)
    result = measure(data["url"], data["async_url"], Settings(**data["settings"]))
    print(json.dumps(asdict(result)))


def measure(url: str, async_url: str | None, settings: Settings) -> Result:
    """Build the apps on ``url`` and measure them in this process."""
    with ExitStack() as cleanup:
        served: dict[str, Served] = {}
        served["sync"] = sync_app(url, async_url)
        # Dropped last, once every pool is closed; every app maps the same table.
        cleanup.callback(SyncBase.metadata.drop_all, served["sync"].engine)
        cleanup.callback(served["sync"].dispose)
        for name, factory in (("async", typed_async_app), ("async-twin", twin_app)):
            served[name] = factory(url, async_url)
            cleanup.callback(served[name].dispose)
        served["nullpool"] = nullpool_app(served["async"].engine.url)
        cleanup.callback(served["nullpool"].dispose)
        served = {name: served[name] for name in APPS}
        if settings.breakdown:
            for name, variant in BREAKDOWN_APPS.items():
                served[name] = variant(url, async_url)
                cleanup.callback(served[name].dispose)
        create_table(served["sync"].engine)
        connections = {name: Connections(app.engine) for name, app in served.items()}
        request = Request.build(READ)
        times, opened = _time_rounds(served, connections, request, settings)
        bursts = _send_bursts(served, connections, request, settings.bursts)
        checked_out = {
            name: _checked_out(app.engine, connections[name]) for name, app in served.items()
        }
        return Result(times, opened, settings.rounds * settings.batch, checked_out, bursts)


def create_table(engine: sa.Engine) -> None:
    """Make the table anew, with its rows."""
    SyncBase.metadata.drop_all(engine)
    SyncBase.metadata.create_all(engine)
    rows = [{"id": number, "name": f"Item {number:04}"} for number in range(1, ITEMS + 1)]
    with engine.begin() as connection:
        connection.execute(sa.insert(SyncItem), rows)


def _checked_out(engine: sa.Engine, connections: Connections) -> int:
    pool = engine.pool
    if isinstance(pool, sa.QueuePool):
        return pool.checkedout()
    # A NullPool keeps nothing: a connection open is one checked out.
    return connections.opened - connections.closed


def _time_rounds(
    served: Mapping[str, Served],
    connections: Mapping[str, Connections],
    request: Request,
    settings: Settings,
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """The milliseconds per request of each timed round, and the connections each
    app opened during them.
    """
    names = list(served)
    times: dict[str, list[float]] = {name: [] for name in names}
    opened_before: dict[str, int] = {}
    # As requests_bench.py does: a full collection then costs every app alike.
    gc.collect()
    gc.freeze()
    orders = balanced_orders(len(names))
    try:
        for round_number in range(settings.warmup_rounds + settings.rounds):
            if round_number == settings.warmup_rounds:
                opened_before = {name: counts.opened for name, counts in connections.items()}
            for name in (names[index] for index in orders[round_number % len(orders)]):
                app = served[name].app
                start = time.perf_counter()
                for _ in range(settings.batch):
                    request.send(app)
                elapsed = time.perf_counter() - start
                if round_number >= settings.warmup_rounds:
                    times[name].append(elapsed * 1000 / settings.batch)
    finally:
        gc.unfreeze()
    opened = {name: counts.opened - opened_before[name] for name, counts in connections.items()}
    return times, opened


def _send_bursts(
    served: Mapping[str, Served],
    connections: Mapping[str, Connections],
    request: Request,
    bursts: int,
) -> dict[str, Bursts]:
    """Send ``bursts`` bursts of :data:`BURST` requests at once to each of
    :data:`BURST_APPS`, after one untimed burst each; the apps take turns.
    """
    if not bursts:
        return {}
    results = {name: Bursts() for name in BURST_APPS}
    with ThreadPoolExecutor(THREADS) as threads:
        for name in BURST_APPS:
            _burst(threads, served[name].app, request)
        for number in range(bursts):
            order = BURST_APPS if number % 2 == 0 else BURST_APPS[::-1]
            for name in order:
                result = results[name]
                opened = connections[name].opened
                start = time.perf_counter()
                result.failures += _burst(threads, served[name].app, request)
                result.times.append((time.perf_counter() - start) * 1000)
                result.connections += connections[name].opened - opened
    return results


def _burst(threads: ThreadPoolExecutor, app: Flask, request: Request) -> int:
    """Send :data:`BURST` requests to ``app`` at once; return how many failed."""

    def send(number: int) -> bool:
        try:
            request.send(app)
        except Exception:
            return False
        return True

    return sum(not sent for sent in threads.map(send, range(BURST)))


# -- Reporting -----------------------------------------------------------------------

#: Each ratio reported, the target it is held to, and what it says.
RATIOS: tuple[tuple[str, str, str], ...] = (
    ("async", "sync", "target: at most 2"),
    ("nullpool", "async", "target: at least 4"),
    ("async-twin", "async", "the control: identical code"),
)
#: With --breakdown, each difference reported and what it is.
DIFFERENCES: tuple[tuple[str, str, str], ...] = (
    ("async", "sync", "what the async view costs more"),
    ("async-no-db", "sync-no-db", "a trip to the loop thread and back, with Flask's async view"),
    ("async", "async-no-ping", "the pool's pre-ping at checkout"),
    ("async", "async-no-db", "the async view's database work, its close at teardown included"),
    ("sync", "sync-no-db", "the sync view's database work"),
    ("asgiref-no-db", "sync-no-db", "asgiref's new thread and loop per call (nullpool's)"),
)


def difference(times: Mapping[str, Sequence[float]], name: str, over: str) -> float:
    """The median of the per-round differences of ``name``'s time and ``over``'s, in µs."""
    pairs = zip(times[name], times[over], strict=True)
    return statistics.median((a - b) * 1000 for a, b in pairs)


def report(backend: str, result: Result, settings: Settings) -> None:
    """Print one backend's tables."""
    processes = len(result.times["sync"]) // settings.rounds
    print(
        f"\n{backend}: median µs per request, {processes} processes x {settings.rounds}"
        f" interleaved rounds of {settings.batch} requests"
    )
    print(f"{'app':<14}{'µs':>8}{'connections opened while timed':>34}{'checked out after':>20}")
    for name in result.times:
        median = statistics.median(result.times[name]) * 1000
        opened = f"{result.connections[name]} in {result.timed_requests} requests"
        print(f"{name:<14}{median:>8.1f}{opened:>34}{result.checked_out[name]:>20}")
    print(
        "ratios: medians of the per-round ratios; in brackets, the lowest and highest of"
        " the processes' own"
    )
    for name, over, target in RATIOS:
        low, high = process_range(result.times, name, over, settings.rounds)
        label = f"{name}/{over}"
        print(
            f"{label:<18}{ratio(result.times, name, over):>8.3f} ({low:.3f}-{high:.3f})  {target}"
        )
    if settings.breakdown:
        print("where the time goes: medians of the per-round differences, µs")
        for name, over, meaning in DIFFERENCES:
            label = f"diff {name} - {over}"
            print(f"{label:<33}{difference(result.times, name, over):>8.1f}  {meaning}")
    if result.bursts:
        bursts = len(result.bursts["sync"].times)
        print(
            f"{BURST} requests at once from {THREADS} threads, {bursts} bursts: median ms per"
            " burst, failed requests, connections opened"
        )
        for name, burst in result.bursts.items():
            print(
                f"burst {name:<10}{statistics.median(burst.times):>10.1f}"
                f"{burst.failures:>10}{burst.connections:>10}"
            )


def backends(directory: Path) -> dict[str, tuple[str, str | None]]:
    """Each backend and driver's sync URL and, where it is not the default driver's,
    async URL: SQLite in ``directory``, and the servers whose URL variables are set.
    """
    urls: dict[str, tuple[str, str | None]] = {
        "sqlite+aiosqlite": (f"sqlite:///{directory / 'bench.db'}", None)
    }
    postgresql = os.environ.get("TEST_POSTGRES_URL")
    if postgresql:
        asyncpg = make_url(postgresql).set(drivername="postgresql+asyncpg")
        urls["postgresql+psycopg_async"] = (postgresql, None)
        urls["postgresql+asyncpg"] = (postgresql, asyncpg.render_as_string(hide_password=False))
    mariadb = os.environ.get("TEST_MARIADB_URL")
    if mariadb:
        urls["mariadb+aiomysql"] = (mariadb, None)
    return urls


def main(argv: Sequence[str] | None = None) -> None:
    parser = sizes_parser("Per-request cost of async views.", FULL)
    parser.add_argument(
        "--breakdown", action="store_true", help="time variants that take the async request apart"
    )
    args = parser.parse_args(argv)
    settings = replace(
        settings_from_command_line(parser, args, FULL, QUICK), breakdown=args.breakdown
    )
    packages = (
        "flask",
        "werkzeug",
        "sqlalchemy",
        "greenlet",
        "asgiref",
        "aiosqlite",
        "psycopg",
        "asyncpg",
        "aiomysql",
    )
    print(
        f"Python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs; "
        + ", ".join(f"{package} {version(package)}" for package in packages)
    )
    print(
        "sync: flask-typed-db, a sync view; async: flask-typed-db, an async view on"
        " db.async_session; nullpool: by hand, asgiref and a NullPool engine; async-twin:"
        " the async app again, the control."
    )
    with tempfile.TemporaryDirectory() as directory:
        for backend, (url, async_url) in backends(Path(directory)).items():
            report(backend, measure_in_processes(url, async_url, settings), settings)


if __name__ == "__main__":
    if WORKER_VARIABLE in os.environ:
        _work(os.environ[WORKER_VARIABLE])
    else:
        main()
