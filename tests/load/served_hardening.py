"""What the served app adds for the hardening load tests, each only when a test switches
it on (a ``LOAD_APP_*`` variable set to ``true``):

- :data:`FORK_SWITCH`: ``POST /load/fork``, a view that writes, forks a child
  (``multiprocessing``'s ``fork`` start method) that works with ``db.session``, then
  commits or fails;
- :data:`CLOSE_FAILS_SWITCH`: ``POST /load/close-fails``, a view whose session cannot
  be closed at teardown, as when an engine ``rollback`` listener raises; a log handler
  keeps every error record, as an error reporter that queues them does, so the failed
  session stays referenced by the logged traceback.
"""

from __future__ import annotations

import logging
import multiprocessing
from multiprocessing.connection import Connection

import sqlalchemy as sa
from flask import Blueprint
from flask import Flask
from flask import g
from flask import has_app_context
from flask.typing import ResponseReturnValue
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from werkzeug.exceptions import InternalServerError

from bookshelf.app import db
from bookshelf.app import json_body
from bookshelf.app import required_text
from bookshelf.models import Author
from bookshelf.models import Book

#: The ``app.config`` keys (``LOAD_APP_<key>`` in the environment) that switch them on.
FORK_SWITCH = "FORK_IN_REQUEST"
CLOSE_FAILS_SWITCH = "FAIL_CLOSE_AT_TEARDOWN"
#: Seconds the forking view waits for its child's report, then for it to exit.
CHILD_TIMEOUT = 10.0
#: The ``g`` attribute that makes the rollback listener fail in this request.
_FAIL_ROLLBACK = "load_fail_rollback"

forking = Blueprint("forking", __name__, url_prefix="/load")
closing = Blueprint("closing", __name__, url_prefix="/load")


class ParentFailure(Exception):
    """What the forking view raises, after its child ran, when asked to fail. Its
    argument is the report the 500 answer carries.
    """


class RollbackListenerFailure(Exception):
    """What the rollback listener raises in a request of ``/load/close-fails``."""


def child_author(name: str) -> str:
    """The author the forked child of the request that added ``name`` commits."""
    return f"{name} (forked child)"


def backend_pid(session: Session) -> int:
    pid: int = session.execute(sa.select(sa.func.pg_backend_pid())).scalar_one()
    return pid


@forking.post("/fork")
def fork_in_request() -> ResponseReturnValue:
    """Add the author ``"author"`` and flush it, so the parent's transaction holds an
    uncommitted row; fork a child that reports on its own ``db.session``; then commit
    (201) if ``"commit"`` is ``true``, else fail (500). Both answers carry the report.
    """
    data = json_body()
    name = required_text(data, "author", 200)
    parent_session = db.session
    parent_session.add(Author(name=name))
    parent_session.flush()
    report: dict[str, object] = {"parent_backend": backend_pid(parent_session)}
    report.update(run_forked_child(name, parent_session))
    # The parent's own connection and transaction, untouched by the child.
    report["parent_backend_after"] = backend_pid(parent_session)
    report["parent_rows_after"] = parent_session.scalar(
        sa.select(sa.func.count()).select_from(Author).where(Author.name == name)
    )
    if data.get("commit") is not True:
        raise ParentFailure(report)
    parent_session.commit()
    return report, 201


def run_forked_child(name: str, parent_session: Session) -> dict[str, object]:
    """Fork a child that runs :func:`child_work`; return its report and exit code, or
    ``"child_error"`` if it sent none or did not exit in time.
    """
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=child_work, args=(name, parent_session, sender))
    child.start()
    sender.close()
    with receiver:
        report: dict[str, object] = (
            receiver.recv()
            if receiver.poll(CHILD_TIMEOUT)
            else {"child_error": f"no report within {CHILD_TIMEOUT:g} s"}
        )
    child.join(CHILD_TIMEOUT)
    if child.exitcode is None:
        child.kill()
        child.join()
        report["child_error"] = f"still running {CHILD_TIMEOUT:g} s after its report"
    # Not checked: on Python 3.11 a process forked from a ThreadPoolExecutor's thread
    # (a gthread worker's) exits with 1 once its work is done, as concurrent.futures'
    # exit hook then tries to join that very thread.
    report["exitcode"] = child.exitcode
    return report


def child_work(name: str, parent_session: Session, sender: Connection) -> None:
    """In the forked child: read, write and commit through ``db.session``, try the
    parent's session, and send what happened.
    """
    report: dict[str, object] = {}
    try:
        session = db.session
        report["new_session"] = session is not parent_session
        report["child_backend"] = backend_pid(session)
        # The parent's flushed row is not committed: another connection cannot see it.
        report["parent_rows_seen"] = session.scalar(
            sa.select(sa.func.count()).select_from(Author).where(Author.name == name)
        )
        session.add(Author(name=child_author(name)))
        session.commit()
        # The parent's session, used here, must refuse rather than commit its work.
        try:
            parent_session.commit()
            report["parent_session_commit"] = "committed"
        except SQLAlchemyError as error:
            report["parent_session_commit"] = type(error).__name__
        session.close()
    except Exception as error:
        report["child_error"] = repr(error)
    sender.send(report)
    sender.close()


@forking.errorhandler(InternalServerError)
def report_parent_failure(error: InternalServerError) -> ResponseReturnValue:
    """Answer the forking view's intended failure with its report. Flask has logged
    the failure and the teardown closes the session as for any unhandled error.
    """
    original = error.original_exception
    if isinstance(original, ParentFailure):
        return {"error": str(error.description), **original.args[0]}, 500
    return error


@closing.post("/close-fails")
def close_fails() -> ResponseReturnValue:
    """Read books and add the author ``"author"`` (flushed, never committed), so the
    transaction holds locks; closing the session at teardown then fails.
    """
    name = required_text(json_body(), "author", 200)
    books = db.session.scalars(sa.select(Book).order_by(Book.id).limit(5)).all()
    db.session.add(Author(name=name))
    db.session.flush()
    setattr(g, _FAIL_ROLLBACK, True)
    return {"books": len(books), "backend": backend_pid(db.session)}


def fail_rollback_in_marked_requests(_connection: sa.Connection) -> None:
    if has_app_context() and g.get(_FAIL_ROLLBACK, False):
        raise RollbackListenerFailure("a rollback listener failed on purpose")


class KeepErrorRecords(logging.Handler):
    """Keeps every record with an exception, and so its traceback and the frames'
    locals, for the life of the process.
    """

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info is not None:
            self.records.append(record)


def fail_closing_sessions(app: Flask) -> None:
    """Serve ``/load/close-fails``, make its rollbacks fail, and keep the error records."""
    app.register_blueprint(closing)
    with app.app_context():
        for engine in db.engines.values():
            event.listen(engine, "rollback", fail_rollback_in_marked_requests)
    app.logger.addHandler(KeepErrorRecords())
