"""The bookshelf example as gunicorn serves it in the load and fault tests.

gunicorn makes the app once, in its master (``--preload``), and forks its workers from
it: ``gunicorn --chdir <repo> --pythonpath examples
'tests.load.served_app:create_served_app()'``.
It is configured through the environment, as a deployed app is: the example's own
``BOOKSHELF_DATABASE_URL``, and ``LOAD_APP_*`` variables that Flask's
``Config.from_prefixed_env`` reads as JSON, e.g.
``LOAD_APP_SQLALCHEMY_ENGINE_OPTIONS='{"pool_size": 1, "pool_timeout": 1}'``.

Besides the example's views it has a few under ``/load/`` that the faults need, and
those of ``served_hardening`` and ``served_async`` when a test switches them on.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
from collections.abc import Mapping

import sqlalchemy as sa
from flask import Blueprint
from flask import Config
from flask import Flask
from flask import Response
from flask.typing import ResponseReturnValue
from sqlalchemy.pool import QueuePool
from tests.load.served_async import ASYNC_BEFORE_FORK_SWITCH
from tests.load.served_async import ASYNC_SWITCH
from tests.load.served_async import connect_before_fork
from tests.load.served_async import serve_async_views
from tests.load.served_hardening import CLOSE_FAILS_SWITCH
from tests.load.served_hardening import FORK_SWITCH
from tests.load.served_hardening import fail_closing_sessions
from tests.load.served_hardening import forking

from bookshelf.app import create_app
from bookshelf.app import db
from bookshelf.app import json_body
from bookshelf.app import required_text
from bookshelf.models import Author
from flask_typed_db import get_recorded_queries

#: The prefix of the environment variables read into ``app.config``.
CONFIG_PREFIX = "LOAD_APP"
#: Response headers, when ``SQLALCHEMY_RECORD_QUERIES`` is on: how many statements the
#: request sent, and the LIMIT of each that had one (so no page is unbounded).
STATEMENTS_HEADER = "X-Load-Statements"
LIMITS_HEADER = "X-Load-Limits"
#: Start of the line each process writes to stderr as it exits.
POOL_REPORT = "served_app: pool at exit:"

#: A LIMIT as psycopg's statements carry it: a named parameter.
_LIMIT = re.compile(r"\bLIMIT %\((\w+)\)s")

load = Blueprint("load", __name__, url_prefix="/load")


class IntendedFailure(Exception):
    """What the failing view raises: the tests expect its traceback in the log."""


@load.get("/no-db")
def no_db() -> ResponseReturnValue:
    """A view that needs no connection: it must answer while the pool is exhausted."""
    return {"pid": os.getpid()}


@load.get("/hold/<int:lock_key>")
def hold(lock_key: int) -> ResponseReturnValue:
    """Hold a pooled connection until the test releases PostgreSQL's advisory lock
    ``lock_key``: the pool stays exhausted exactly as long as the test needs, with no
    sleep to tune.
    """
    db.session.execute(sa.select(sa.func.pg_advisory_xact_lock(lock_key)))
    return {"held": lock_key}


@load.post("/fail")
def fail() -> ResponseReturnValue:
    """Write an author, then fail: the teardown's rollback must leave no trace of it."""
    name = required_text(json_body(), "author", 200)
    db.session.add(Author(name=name))
    db.session.flush()
    raise IntendedFailure(f"failing on purpose after adding the author {name!r}")


def report_queries(response: Response) -> Response:
    """Add :data:`STATEMENTS_HEADER` and :data:`LIMITS_HEADER` for this request."""
    queries = get_recorded_queries()
    limits = [
        str(query.parameters[name])
        for query in queries
        for name in _LIMIT.findall(query.statement)
    ]
    response.headers[STATEMENTS_HEADER] = str(len(queries))
    response.headers[LIMITS_HEADER] = ",".join(limits)
    return response


def report_pool(app: Flask) -> None:
    """Write how many connections each pool still has checked out: a leaked session
    keeps its connection checked out until the process ends.
    """
    with app.app_context():
        for bind_key, engine in db.engines.items():
            pool = engine.pool
            checked_out = pool.checkedout() if isinstance(pool, QueuePool) else "n/a"
            # One write, newline included: every worker exits at once onto the same log,
            # and print() writes the text and its newline apart (unbuffered, as under
            # PYTHONUNBUFFERED), so two reports could share a line.
            sys.stderr.write(
                f"{POOL_REPORT} pid={os.getpid()} bind={bind_key} checked_out={checked_out}\n"
            )
            sys.stderr.flush()


def is_set(config: Mapping[str, object], key: str) -> bool:
    """Whether ``key`` is the JSON ``true``: anything else, a typo included, is off."""
    return config.get(key) is True


def create_served_app() -> Flask:
    """The example app, configured from the environment, with the ``/load/`` views."""
    config = Config(os.getcwd())
    config.from_prefixed_env(CONFIG_PREFIX)
    app = create_app(config)
    app.register_blueprint(load)
    if is_set(config, "SQLALCHEMY_RECORD_QUERIES"):
        app.after_request(report_queries)
    if is_set(config, "CONNECT_BEFORE_FORK"):
        # As an app that checks its schema at start-up does: the master's pool then
        # holds an open connection when gunicorn forks, which no worker may share.
        with app.app_context():
            db.session.execute(sa.select(sa.literal(1)))
    if is_set(config, ASYNC_SWITCH):
        serve_async_views(app)
    if is_set(config, ASYNC_BEFORE_FORK_SWITCH):
        connect_before_fork(app)
    if is_set(config, FORK_SWITCH):
        app.register_blueprint(forking)
    if is_set(config, CLOSE_FAILS_SWITCH):
        fail_closing_sessions(app)
    atexit.register(report_pool, app)
    return app
