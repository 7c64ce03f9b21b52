"""Per-test cost of database isolation: rolled-back transactions vs recreating tables.

Each "test" is the same small piece of work on the bookshelf example: two requests
through the test client (add a book, read the catalogue back). It is run three ways,
interleaved round by round so that drift on the machine hits each way alike:

- ``bare``: the work alone, with nothing cleaned up; the floor.
- ``recreate``: ``create_all()`` before and ``drop_all()`` after, the usual way to
  give each test an empty database.
- ``isolation``: inside ``db.test_isolation(app)``.

Reports the median milliseconds per test, each way's overhead over ``bare`` (within
noise, it can come out slightly negative), and how many times longer a test takes
with ``recreate`` than with ``isolation``. Backends: SQLite (a file) always; PostgreSQL and
MariaDB when ``TEST_POSTGRES_URL`` / ``TEST_MARIADB_URL`` are set.

    .venv/bin/python benchmarks/isolation.py [--rounds 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from flask import Flask

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

from bookshelf.app import create_app
from bookshelf.app import db
from bookshelf.models import Base

BOOK = {"title": "Solaris", "author": "Stanisław Lem", "isbn": "9780156027601", "year": 1961}


def work(app: Flask) -> None:
    client = app.test_client()
    assert client.post("/api/books", json=BOOK).status_code == 201
    assert client.get("/api/books").get_json()["total"] == 1


def bare(app: Flask) -> None:
    work(app)
    # Not timed as cleanup: emptying the table is this way's own business.


def recreate(app: Flask) -> None:
    with app.app_context():
        db.create_all()
    work(app)
    with app.app_context():
        db.drop_all()


def isolation(app: Flask) -> None:
    with db.test_isolation(app):
        work(app)


def empty_tables(app: Flask) -> None:
    with app.app_context(), db.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


def measure(url: str, rounds: int) -> dict[str, list[float]]:
    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        db.drop_all()
    ways: dict[str, Callable[[Flask], None]] = {
        "bare": bare,
        "recreate": recreate,
        "isolation": isolation,
    }
    timings: dict[str, list[float]] = {name: [] for name in ways}
    for round_number in range(rounds + 3):
        for name, run in ways.items():
            if name != "recreate":
                with app.app_context():
                    db.create_all()
            start = time.perf_counter()
            run(app)
            elapsed = time.perf_counter() - start
            if name == "bare":
                empty_tables(app)
            if name != "recreate":
                with app.app_context():
                    db.drop_all()
            if round_number >= 3:  # the first rounds warm up pools and caches
                timings[name].append(elapsed * 1000)
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description="Per-test cost of database isolation.")
    parser.add_argument("--rounds", type=int, default=40)
    rounds: int = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as directory:
        backends = {"sqlite": f"sqlite:///{Path(directory) / 'bench.db'}"}
        for name, variable in (
            ("postgresql", "TEST_POSTGRES_URL"),
            ("mariadb", "TEST_MARIADB_URL"),
        ):
            if os.environ.get(variable):
                backends[name] = os.environ[variable]
        print(f"median ms per test over {rounds} interleaved rounds, SQLAlchemy {sa.__version__}")
        print(
            f"{'backend':<11} {'bare':>7} {'recreate':>9} {'isolation':>10}"
            f" {'recreate +':>11} {'isolation +':>12} {'recreate/isolation':>19}"
        )
        for name, url in backends.items():
            medians = {way: statistics.median(ms) for way, ms in measure(url, rounds).items()}
            print(
                f"{name:<11} {medians['bare']:>7.2f} {medians['recreate']:>9.2f}"
                f" {medians['isolation']:>10.2f}"
                f" {medians['recreate'] - medians['bare']:>11.2f}"
                f" {medians['isolation'] - medians['bare']:>12.2f}"
                f" {medians['recreate'] / medians['isolation']:>18.1f}x"
            )
    print("(+ = overhead over bare, in ms)")


if __name__ == "__main__":
    main()
