"""What the served app adds for the async load tests, when a test switches it on (a
``LOAD_APP_*`` variable set to ``true``):

- :data:`ASYNC_SWITCH`: views under ``/load/async/`` that use ``db.async_session`` (which
  worker and which server connection answered; a query timed out, or cancelled, mid-way),
  and at exit, the async pools' report (:data:`ASYNC_POOL_REPORT`), one line per bind of
  each process that ran async code;
- :data:`ASYNC_BEFORE_FORK_SWITCH`: an async query in gunicorn's master before it forks,
  as an app that checks its schema at start-up from async code: the master's loop thread
  runs, and its pool holds a connection, when the workers are forked from it. The master
  writes that connection's backend pid (:data:`MASTER_BACKEND`) to the log.

The example's own async views, ``/api/async/books`` and ``/api/async/books/<id>``, are
served whatever the switches.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import threading

import sqlalchemy as sa
from flask import Blueprint
from flask import Flask
from flask.typing import ResponseReturnValue
from sqlalchemy.pool import QueuePool

from bookshelf.app import db

#: The ``app.config`` keys (``LOAD_APP_<key>`` in the environment) that switch them on.
ASYNC_SWITCH = "ASYNC_VIEWS"
ASYNC_BEFORE_FORK_SWITCH = "ASYNC_CONNECT_BEFORE_FORK"
#: Start of the line each process that ran async code writes to stderr as it exits.
ASYNC_POOL_REPORT = "served_app: async pool at exit:"
#: Start of the line the master writes after its async query before the fork.
MASTER_BACKEND = "served_app: master's async backend:"
#: Seconds the slow views' query would take, and the seconds they let it run: far
#: apart, so a query left running on the server shows in ``pg_stat_activity``.
SLOW_QUERY_SECONDS = 30
VIEW_TIME_LIMIT = 0.2

asynchronous = Blueprint("asynchronous", __name__, url_prefix="/load/async")


class QueryNotInterrupted(Exception):
    """What a slow view raises if its query ran to the end: never, if the test passes."""


@asynchronous.get("/backend")
async def backend() -> ResponseReturnValue:
    """Which worker answered, on which server connection (``pg_backend_pid()``)."""
    backend_pid = await db.async_session.scalar(sa.select(sa.func.pg_backend_pid()))
    return {"pid": os.getpid(), "backend": backend_pid}


@asynchronous.get("/timeout")
async def timeout() -> ResponseReturnValue:
    """A query that outlasts the view's time limit: ``asyncio.timeout`` cancels it
    mid-query, and the view answers 504 itself.
    """
    try:
        async with asyncio.timeout(VIEW_TIME_LIMIT):
            await db.async_session.execute(slow_query())
    except TimeoutError:
        return {"error": f"The query took more than {VIEW_TIME_LIMIT:g} s."}, 504
    raise QueryNotInterrupted("the query was not timed out")


@asynchronous.get("/cancel")
async def cancel() -> ResponseReturnValue:
    """A view whose own task is cancelled mid-query, as when whatever runs it gives
    up: the cancellation ends the view, a 500 whose traceback is in the log.
    """
    task = asyncio.current_task()
    assert task is not None  # a coroutine run by the loop runs in a task
    asyncio.get_running_loop().call_later(VIEW_TIME_LIMIT, task.cancel)
    await db.async_session.execute(slow_query())
    raise QueryNotInterrupted("the query was not cancelled")


def slow_query() -> sa.Select[tuple[None]]:
    return sa.select(sa.func.pg_sleep(SLOW_QUERY_SECONDS))


def serve_async_views(app: Flask) -> None:
    """Register the ``/load/async/`` views, and the async pools' report at exit."""
    app.register_blueprint(asynchronous)
    # The loop's module registers the engines' disposal at exit on import; hooks run
    # in the reverse order, so the report, registered after it, sees the pools first.
    importlib.import_module("flask_typed_db.core._loop")

    threading._register_atexit(report_async_pools, app)  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]  # atexit runs after the disposal, which empties the pools


def report_async_pools(app: Flask) -> None:
    """Write how many connections each async pool still has checked out, in a
    process that ran async code: a session never closed keeps its connection.
    """
    from flask_typed_db.core._loop import loop_started

    if not loop_started():
        return
    with app.app_context():
        for bind_key, engine in db.async_engines.items():
            pool = engine.pool
            checked_out = pool.checkedout() if isinstance(pool, QueuePool) else "n/a"
            # One write, newline included, as served_app's report_pool does.
            sys.stderr.write(
                f"{ASYNC_POOL_REPORT} pid={os.getpid()} bind={bind_key}"
                f" checked_out={checked_out}\n"
            )
            sys.stderr.flush()


def connect_before_fork(app: Flask) -> None:
    """Run an async query in this process (gunicorn's master), and log its backend."""

    async def probe() -> int | None:
        return await db.async_session.scalar(sa.select(sa.func.pg_backend_pid()))

    with app.app_context():
        backend_pid = app.ensure_sync(probe)()
    sys.stderr.write(f"{MASTER_BACKEND} {backend_pid}\n")
    sys.stderr.flush()
