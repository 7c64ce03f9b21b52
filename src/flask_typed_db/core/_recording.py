"""Record the SQL an engine sends: the statement, its parameters, when, and from where.

Listeners are attached only while something records, so an engine that never records
pays nothing. (One that did keeps a small cost after the listeners are removed:
SQLAlchemy sends its statements through event dispatch for good.) Where the records go
is the caller's choice: a list for a block of code here, the current app context in the
Flask adapter.
"""

from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Callable
from collections.abc import Collection
from collections.abc import Generator
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.engine import ExecutionContext

from ._isolation import ISOLATION_OPTION

#: Where a recorder puts each query: a function returning the list to append to, or
#: ``None`` when nothing should be recorded right now (no app context, say).
Sink = Callable[[], list["RecordedQuery"] | None]

#: The attribute of an ExecutionContext holding when its statement was sent.
_START = "_flask_typed_db_query_start"

#: SAVEPOINT statements: inside test isolation, the bookkeeping of the sessions joining
#: its transaction, which the code under test does not send outside isolation.
_SAVEPOINT_STATEMENTS = frozenset({"savepoint", "release_savepoint", "rollback_to_savepoint"})

#: Packages that are never the "location" of a query: the machinery between the
#: user's code and the database.
_MACHINERY = frozenset({"sqlalchemy", "flask_typed_db", "flask", "werkzeug", "click"})


@dataclass(frozen=True, slots=True)
class RecordedQuery:
    """One statement sent to the database, with Flask-SQLAlchemy 3.1's attribute names,
    so code written for its ``get_recorded_queries()`` keeps working.
    """

    #: The SQL as sent, with the driver's parameter placeholders.
    statement: str
    #: The parameters sent with it, in the driver's form: a tuple or dict, or a list of
    #: them for ``executemany``.
    parameters: Any
    #: :func:`time.perf_counter` values around the call to the driver.
    start_time: float
    end_time: float
    #: ``"path/to/file.py:42 (function)"``: the innermost frame of the code that ran the
    #: query, outside SQLAlchemy, Flask, this package and the standard library;
    #: ``"<unknown>"`` if there is none.
    location: str

    @property
    def duration(self) -> float:
        """How long the statement took, in seconds."""
        return self.end_time - self.start_time


class QueryRecorder:
    """Appends a :class:`RecordedQuery` to ``sink()`` for every statement the engines it
    is attached to send.

    :param sink: Returns the list to append to, or ``None`` to record nothing.
    :param packages: Top-level packages of the user's code (the app's package): the
        location is the innermost frame in one of them, else the innermost frame
        outside the machinery.
    """

    def __init__(self, sink: Sink, packages: Collection[str] = ()) -> None:
        self._sink = sink
        self._packages = frozenset(packages)

    def attach(self, engines: Iterable[sa.Engine]) -> None:
        for engine in engines:
            event.listen(engine, "before_cursor_execute", self._before, named=True)
            event.listen(engine, "after_cursor_execute", self._after, named=True)

    def detach(self, engines: Iterable[sa.Engine]) -> None:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", self._before)
            event.remove(engine, "after_cursor_execute", self._after)

    def _before(self, context: ExecutionContext | None, **_: Any) -> None:
        if context is not None:
            setattr(context, _START, time.perf_counter())

    def _after(
        self,
        conn: Connection,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        **_: Any,
    ) -> None:
        end_time = time.perf_counter()
        queries = self._sink()
        if queries is None or _is_isolation_savepoint(conn, context):
            return
        start_time: float = getattr(context, _START, end_time)
        location = _location(inspect.currentframe(), self._packages)
        queries.append(RecordedQuery(statement, parameters, start_time, end_time, location))


@contextmanager
def recording(engines: Iterable[sa.Engine]) -> Generator[list[RecordedQuery], None, None]:
    """Record every statement the ``engines`` send, from any thread, while inside."""
    engines = list(engines)
    queries: list[RecordedQuery] = []
    recorder = QueryRecorder(lambda: queries)
    recorder.attach(engines)
    try:
        yield queries
    finally:
        recorder.detach(engines)


def _is_isolation_savepoint(conn: Connection, context: ExecutionContext | None) -> bool:
    if context is None or not conn.get_execution_options().get(ISOLATION_OPTION):
        return False
    statement = getattr(context.compiled, "statement", None)
    return getattr(statement, "__visit_name__", None) in _SAVEPOINT_STATEMENTS


def _location(frame: FrameType | None, packages: frozenset[str]) -> str:
    outside: FrameType | None = None
    while frame is not None:
        name: str = frame.f_globals.get("__name__", "")
        top = name.partition(".")[0]
        if top in packages:
            outside = frame
            break
        if outside is None and top not in _MACHINERY and top not in sys.stdlib_module_names:
            outside = frame
            if not packages:
                break
        frame = frame.f_back
    if outside is None:
        return "<unknown>"
    code = outside.f_code
    return f"{code.co_filename}:{outside.f_lineno} ({code.co_name})"
