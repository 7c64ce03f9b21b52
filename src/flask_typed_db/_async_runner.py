"""Run an app's coroutines on the process's one event loop, and close async sessions there.

Flask runs an ``async def`` view, or an async hook, through :meth:`Flask.async_to_sync
<flask.Flask.async_to_sync>`, whose default (asgiref) makes a new event loop for every
call. An async session's pooled connections work only on the loop they were made on, so
:func:`run_coroutines_on_shared_loop` makes the app run every coroutine on the loop thread
of :mod:`flask_typed_db.core._loop` instead, the loop that owns the async engines. The
view's coroutine runs in a copy of the request thread's context, so ``request``, ``g``
and ``current_app`` are the request's; while it waits for the database, the loop runs
other requests' coroutines.

Nothing here starts a thread or imports asyncio's side of SQLAlchemy until a coroutine is
run or an async session is closed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from collections.abc import Coroutine
from typing import TYPE_CHECKING
from typing import Any

from flask import Flask

if TYPE_CHECKING:
    import asyncio
    from logging import Logger

    from sqlalchemy.ext.asyncio import AsyncSession


#: Closes scheduled from the loop's own thread, until each is done.
_closing: set[asyncio.Task[None]] = set()


def run_coroutines_on_shared_loop(app: Flask) -> bool:
    """Make ``app`` run its coroutines on the shared loop; return whether it does.

    An app whose class, or whose own attribute, already replaces Flask's
    ``async_to_sync`` keeps it: that app has chosen how its coroutines run.
    """
    # Looked up statically: Flask 3.0 leaves the method's types partly unknown.
    own = inspect.getattr_static(type(app), "async_to_sync")
    if "async_to_sync" in vars(app) or own is not vars(Flask)["async_to_sync"]:
        return False
    # An instance attribute, as Flask's docs invite overriding the method.
    setattr(app, "async_to_sync", _async_to_sync)  # noqa: B010  # the method, shadowed on this app only
    return True


def _async_to_sync(
    func: Callable[..., Coroutine[Any, Any, Any]],
) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        from .core._loop import shared_loop  # no loop until one is needed

        return shared_loop().run(func(*args, **kwargs))

    return run


def close_async_session(session: AsyncSession, logger: Logger) -> None:
    """Close ``session`` on the loop that owns its connections, as the sync session is
    closed (:func:`~flask_typed_db.core._session.close_or_invalidate`): anything not
    committed is rolled back, and a connection that cannot be is invalidated.

    From the loop's own thread (an app context pushed and popped inside a coroutine),
    the close cannot be waited for: it is scheduled on the loop instead.
    """
    from .core._loop import shared_loop

    loop = shared_loop()
    if loop.in_loop_thread():
        # The loop keeps only a weak reference to a task: keep it until it is done.
        task = loop.loop.create_task(_close_and_log(session, logger))
        _closing.add(task)
        task.add_done_callback(_closing.discard)
        return
    error = loop.run(_close(session))
    if error is not None:
        _log(logger, error)


async def _close(session: AsyncSession) -> Exception | None:
    # The sync session's close, in SQLAlchemy's greenlet, as AsyncSession.close() does.
    from sqlalchemy.util import greenlet_spawn

    from .core._session import close_or_invalidate

    error: Exception | None = await greenlet_spawn(close_or_invalidate, session.sync_session)
    return error


async def _close_and_log(session: AsyncSession, logger: Logger) -> None:
    error = await _close(session)
    if error is not None:
        _log(logger, error)


def _log(logger: Logger, error: Exception) -> None:
    # Teardown must not replace the view's own error.
    logger.error(
        "flask-typed-db: closing the async session failed; its connections were invalidated",
        exc_info=error,
    )
