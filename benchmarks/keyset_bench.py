"""What a deep page costs: OFFSET pagination against keyset pagination, on PostgreSQL
with a million rows, and what counting the total costs.

One table, ``bench_keyset_item`` (``id`` primary key, ``created`` with an index on
``(created, id)``, ``name``), filled in the database with ``generate_series``. The pages
are of ``select(Item).order_by(Item.created, Item.id)``, 20 rows each:

- ``offset`` pages: ``flask_typed_db.core.paginate(..., count=False)``, page 1, 1,000
  and 50,000 (``OFFSET 999,980``);
- ``keyset`` pages: ``flask_typed_db.core.keyset_paginate()``, the same pages, reached
  with the cursor of the row before each (taken once, before timing);
- the counts: ``paginate(..., count=True)`` of page 1 minus the page alone, i.e. an
  exact ``count(*)`` of the million rows; and ``paginate(..., count="estimate")`` of
  page 1 minus the page alone, i.e. one ``EXPLAIN`` (and the estimate it gave).

Each is timed as the median of several runs, in interleaved rounds (keyset's pages
first, then the others, whose deep OFFSET would evict keyset's index pages from the
buffers), on one warm session, and reported in ms and as ratios to keyset's page 1 in
the same run. The table is dropped at the end.

    TEST_POSTGRES_URL=postgresql+psycopg://... .venv/bin/python benchmarks/keyset_bench.py
        [--rows 1000000] [--rounds 7] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import statistics
import time
from collections.abc import Callable
from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Session
from sqlalchemy.orm import mapped_column

from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import keyset_paginate
from flask_typed_db.core import paginate

PER_PAGE = 20


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "bench_keyset_item"
    __table_args__ = (sa.Index("bench_keyset_item_created_id", "created", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    created: Mapped[datetime.datetime]
    name: Mapped[str] = mapped_column(sa.String(50))


STATEMENT = sa.select(Item).order_by(Item.created, Item.id)


def fill(session: Session, rows: int) -> None:
    session.execute(
        sa.text(
            "INSERT INTO bench_keyset_item (id, created, name)"
            " SELECT n, timestamp '2020-01-01' + (n / 3) * interval '1 second', 'item ' || n"
            " FROM generate_series(1, :rows) AS n"
        ),
        {"rows": rows},
    )
    session.commit()
    session.execute(sa.text("ANALYZE bench_keyset_item"))
    session.commit()


def cursor_before(session: Session, page: int) -> str | None:
    """The cursor whose next page is offset page ``page``: that of the row before it."""
    if page == 1:
        return None
    before = STATEMENT.offset((page - 1) * PER_PAGE - 1)
    found = keyset_paginate(session, before, per_page=1)
    return found.next_cursor


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) * 1000


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OFFSET against keyset pagination on PostgreSQL.")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="100,000 rows, 3 rounds")
    options = parser.parse_args(argv)
    rows, rounds = (100_000, 3) if options.quick else (options.rows, options.rounds)
    url = os.environ.get("TEST_POSTGRES_URL")
    if not url:
        print("keyset_bench: TEST_POSTGRES_URL is not set; nothing to measure.")
        return
    deepest = rows // PER_PAGE
    pages = [page for page in (1, 1_000, 50_000) if page <= deepest]
    with DatabaseCore({"SQLALCHEMY_DATABASE_URI": url}, Base) as core:
        core.drop_all()
        core.create_all()
        try:
            with core.sessionmaker() as session:
                started = time.perf_counter()
                fill(session, rows)
                print(
                    f"PostgreSQL, {rows:,} rows made in {time.perf_counter() - started:.1f} s;"
                    f" {PER_PAGE} rows a page; median of {rounds} rounds, ms"
                )
                cursors = {page: cursor_before(session, page) for page in pages}

                estimates: list[int | None] = []

                def offset_page(page: int, count: bool | Literal["estimate"] = False) -> list[int]:
                    found = paginate(session, STATEMENT, page=page, per_page=PER_PAGE, count=count)
                    if count == "estimate":
                        estimates.append(found.estimated_total)
                    return [item.id for item in found.items]

                def keyset_page(page: int) -> list[int]:
                    found = keyset_paginate(
                        session, STATEMENT, per_page=PER_PAGE, after=cursors[page]
                    )
                    return [item.id for item in found.items]

                runs: dict[str, Callable[[], list[int]]] = {}
                for page in pages:
                    runs[f"offset page {page:,}"] = functools.partial(offset_page, page)
                    runs[f"keyset page {page:,}"] = functools.partial(keyset_page, page)
                runs["offset page 1 with count"] = functools.partial(offset_page, 1, count=True)
                runs["offset page 1 with estimate"] = functools.partial(
                    offset_page, 1, count="estimate"
                )
                # The answers must agree: the same rows on the same page.
                for page in pages:
                    by_offset = runs[f"offset page {page:,}"]()
                    by_key = runs[f"keyset page {page:,}"]()
                    assert by_offset == by_key, (page, by_offset, by_key)
                # Keyset's pages in rounds of their own, then the others': a deep OFFSET
                # reads the whole index and table, and would evict the pages the next
                # keyset query needs from PostgreSQL's buffers.
                times: dict[str, list[float]] = {name: [] for name in runs}
                for kind in ("keyset", "offset"):
                    for _ in range(rounds):
                        for name, run in runs.items():
                            if name.startswith(kind):
                                times[name].append(timed(run))
                medians = {name: statistics.median(found) for name, found in times.items()}
        finally:
            core.drop_all()
    report(medians, rows, max(pages), estimates[-1])


def report(
    medians: dict[str, float], rows: int, deepest_page: int, estimate_given: int | None
) -> None:
    reference = medians["keyset page 1"]
    print(f"{'':28}{'ms':>10}{'/ keyset page 1':>18}")
    for name, value in medians.items():
        print(f"{name:28}{value:10.2f}{value / reference:18.2f}")
    count = medians["offset page 1 with count"] - medians["offset page 1"]
    print(f"{'the count alone':28}{count:10.2f}{count / reference:18.2f}")
    estimate = medians["offset page 1 with estimate"] - medians["offset page 1"]
    print(
        f"{'the estimate alone':28}{estimate:10.2f}{estimate / reference:18.2f}"
        f"  (estimated {estimate_given or 0:,} of {rows:,} rows)"
    )
    print(
        f"targets: keyset page {deepest_page:,} / keyset page 1 ="
        f" {medians[f'keyset page {deepest_page:,}'] / reference:.2f} (at most 1.5);"
        f" keyset page 1 / offset page 1 = {reference / medians['offset page 1']:.2f}"
        " (at most 1)"
    )


if __name__ == "__main__":
    main()
