"""Callbacks that run once a session's outermost transaction has committed.

A callback is kept with the transaction that was current when it was registered: the
innermost SAVEPOINT (``begin_nested()``) in progress, or else the session's transaction.
When a SAVEPOINT is released, its callbacks move to the transaction around it; when any
transaction ends without committing (rolled back, closed, or its commit failed), its
callbacks are dropped. When the outermost transaction has committed, its callbacks run,
in the order they were registered, after SQLAlchemy has closed that transaction: the
session is usable inside them, and a statement there begins a transaction of its own.

SQLAlchemy's ``after_commit`` event says that a transaction committed (it fires for
released SAVEPOINTs too) but comes before the transaction is closed, when the session
cannot run SQL; ``after_transaction_end`` comes after, for every transaction, committed
or not. The two together give "committed, and closed".

An exception in a callback is logged with the callback's name and does not stop the
others: the data is saved, and the caller of ``commit()`` is not told otherwise, unless
the callback was registered with ``raise_errors=True``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Callable
from collections.abc import Generator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import event
from sqlalchemy.orm import Session
from sqlalchemy.orm import SessionTransaction

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

logger = logging.getLogger("flask_typed_db")

#: What ``on_commit()`` takes: called with no arguments; what it returns is ignored
#: (for an async session, awaited first if it is awaitable).
Callback = Callable[[], object]

#: The attribute where a session keeps its :class:`_Pending` callbacks.
_ATTRIBUTE = "_flask_typed_db_on_commit"

#: The session classes whose instances' events reach :class:`_Pending`: listened to at
#: the first on_commit() on one of them, once, as listening on each session would cost
#: every session that uses on_commit() about 25 µs. Sessions of other classes pay one
#: attribute lookup per transaction from then on.
_listened: set[type[Session]] = set()
_listening = threading.Lock()


@dataclass
class _Entry:
    callback: Callback
    raise_errors: bool
    #: The transaction whose commit the callback waits for; ``None`` when there was none.
    transaction: SessionTransaction | None
    #: Registered on an async session: an awaitable the callback returns is awaited.
    awaits: bool


class _Capture:
    """One ``captured_on_commit()`` block: the callbacks due inside it."""

    def __init__(self, run: bool) -> None:
        self.run = run
        self.callbacks: list[Callback] = []


#: The ``captured_on_commit()`` blocks the current context is in, innermost last.
_captures: ContextVar[tuple[_Capture, ...]] = ContextVar(
    "flask_typed_db_on_commit_captures", default=()
)


class _Pending:
    """A session's callbacks, and what its transactions' ends do to them."""

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        #: The transactions that committed and have not ended yet.
        self.committed: list[SessionTransaction] = []

    def after_commit(self, session: Session) -> None:
        # The transaction that committed is still the session's innermost one.
        transaction = session.get_nested_transaction() or session.get_transaction()
        # Once, even if a subclass and its base were both listened to.
        if transaction is not None and transaction not in self.committed:
            self.committed.append(transaction)

    def after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        if not self.entries and not self.committed:
            return
        committed = transaction in self.committed
        if committed:
            self.committed.remove(transaction)
        if not committed:
            # Rolled back, closed, or its commit failed: its callbacks go with it.
            self.entries = [
                entry for entry in self.entries if entry.transaction is not transaction
            ]
            return
        if transaction.nested:
            # A released SAVEPOINT: its callbacks wait for the transaction around it,
            # which is the session's current one again now.
            around = session.get_nested_transaction() or session.get_transaction()
            for entry in self.entries:
                if entry.transaction is transaction and around is not None:
                    entry.transaction = around
            return
        # Committed and not a SAVEPOINT: the outermost transaction (SQLAlchemy sends
        # after_commit for no other, not for a flush's inner one).
        due = [entry for entry in self.entries if entry.transaction is transaction]
        self.entries = [entry for entry in self.entries if entry.transaction is not transaction]
        # Inside 'with session.begin():', SQLAlchemy refuses statements until the
        # block's exit is over, which comes after this event; that exit resets the
        # marker anyway, so the callbacks run as after the block. No public API.
        block = session._trans_context_manager  # pyright: ignore[reportPrivateUsage]
        session._trans_context_manager = None  # pyright: ignore[reportPrivateUsage]
        try:
            _run(due)
        finally:
            session._trans_context_manager = block  # pyright: ignore[reportPrivateUsage]


def on_commit(
    session: Session, callback: Callable[[], object], *, raise_errors: bool = False
) -> None:
    """Run ``callback()`` once ``session``'s outermost transaction has committed.

    Registered inside a SAVEPOINT (``begin_nested()``), the callback is dropped if the
    SAVEPOINT is rolled back, and waits for the outer commit if it is released. Dropped
    when the transaction rolls back or its commit fails. With no transaction in
    progress (the session has run nothing since it began or last committed), it runs at
    once, as Django's ``on_commit()`` does.

    Callbacks run in the order they were registered, once each, after the commit, with
    the session usable.

    :param raise_errors: By default an exception in the callback is logged (logger
        ``flask_typed_db``, with the callback's name and traceback) and the other
        callbacks still run: the data is saved, and ``commit()`` does not report a
        failure. ``True``: after the others have run, the exception is raised from
        ``commit()`` (or from this call, when the callback runs at once).
    :raises TypeError: For an ``async def`` callback, which a sync session could not
        await: see :func:`async_on_commit`.
    """
    if _is_async_function(callback):
        raise TypeError(
            f"{name_of(callback)} is an async function, and this session is not async:"
            " nothing would await it. Register it on the async session"
            " ('await db.async_on_commit()', or 'await async_on_commit(async_session,"
            " ...)'), or make it a plain function."
        )
    entry = _register(session, callback, raise_errors, awaits=False)
    if entry is not None:
        _run([entry])


async def async_on_commit(
    session: AsyncSession, callback: Callable[[], object], *, raise_errors: bool = False
) -> None:
    """:func:`on_commit` for an :class:`~sqlalchemy.ext.asyncio.AsyncSession`: the same
    rules, and a callback may be an ``async def`` function, awaited on the session's
    loop (the one the commit runs on). A coroutine function because, with no
    transaction in progress, the callback runs, and is awaited, at once.
    """
    entry = _register(session.sync_session, callback, raise_errors, awaits=True)
    if entry is not None:
        from sqlalchemy.util import greenlet_spawn  # async sessions only

        # Where commit() runs callbacks: in SQLAlchemy's greenlet, which can await.
        await greenlet_spawn(_run, [entry])


def _register(
    session: Session, callback: Callback, raise_errors: bool, *, awaits: bool
) -> _Entry | None:
    """Keep ``callback`` with ``session``'s current transaction; or, with none in
    progress, return its entry to run at once.
    """
    transaction = session.get_nested_transaction() or session.get_transaction()
    entry = _Entry(callback, raise_errors, transaction, awaits)
    if transaction is None:
        return entry
    pending: _Pending | None = vars(session).get(_ATTRIBUTE)
    if pending is None:
        _listen_to(type(session))
        pending = _Pending()
        setattr(session, _ATTRIBUTE, pending)
    pending.entries.append(entry)
    return None


def _listen_to(session_class: type[Session]) -> None:
    if session_class in _listened:
        return
    with _listening:
        if any(issubclass(session_class, listened) for listened in _listened):
            _listened.add(session_class)  # its base's listeners reach it already
            return
        event.listen(session_class, "after_commit", _after_commit)
        event.listen(session_class, "after_transaction_end", _after_transaction_end)
        _listened.add(session_class)


def _after_commit(session: Session) -> None:
    pending: _Pending | None = vars(session).get(_ATTRIBUTE)
    if pending is not None:
        pending.after_commit(session)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    pending: _Pending | None = vars(session).get(_ATTRIBUTE)
    if pending is not None:
        pending.after_transaction_end(session, transaction)


@contextmanager
def captured_on_commit(*, run: bool = False) -> Generator[list[Callable[[], object]], None, None]:
    """Collect the callbacks that become due inside the block, for a test to look at.

    The list holds each callback whose transaction committed inside the block (or
    that was registered with no transaction in progress), in the order they became
    due; those dropped by a rollback never appear. With ``run=False`` (the default)
    they are not run: a test can check that a job would be enqueued without enqueuing
    it, and call them itself. With ``run=True`` they also run, as without the block.
    Applies to every session used in the current context (and in the coroutines it
    starts), from any :class:`DatabaseCore` or Flask app.
    """
    capture = _Capture(run)
    token = _captures.set((*_captures.get(), capture))
    try:
        yield capture.callbacks
    finally:
        _captures.reset(token)


def _run(entries: list[_Entry]) -> None:
    captures = _captures.get()
    error: Exception | None = None
    for entry in entries:
        for capture in captures:
            capture.callbacks.append(entry.callback)
        if captures and not all(capture.run for capture in captures):
            continue
        try:
            _call(entry)
        except Exception as raised:
            if entry.raise_errors:
                error = error or raised
                continue
            logger.exception(
                "The on_commit callback %s raised after the commit; the data is saved,"
                " and the other callbacks still run.",
                name_of(entry.callback),
            )
    if error is not None:
        raise error


def _call(entry: _Entry) -> None:
    result = entry.callback()
    if entry.awaits and inspect.isawaitable(result):
        from sqlalchemy.util import await_only  # async sessions only

        await_only(result)
    elif inspect.iscoroutine(result):
        result.close()  # never started: no "never awaited" warning later
        raise TypeError(
            f"{name_of(entry.callback)} returned a coroutine, which nothing awaits on a"
            " sync session: register it with 'await db.async_on_commit()' on the async"
            " session instead."
        )


def name_of(callback: Callable[..., object]) -> str:
    """``module.qualname`` of ``callback`` (of the function a ``partial`` wraps), never
    its arguments, which may hold anything.
    """
    while isinstance(callback, functools.partial):
        callback = callback.func  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]  # partial of anything
    module = getattr(callback, "__module__", None)
    qualname = getattr(callback, "__qualname__", None) or type(callback).__qualname__
    return f"{module}.{qualname}" if module else str(qualname)


def _is_async_function(callback: Callable[..., object]) -> bool:
    while isinstance(callback, functools.partial):
        callback = callback.func  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]  # partial of anything
    return inspect.iscoroutinefunction(callback)
