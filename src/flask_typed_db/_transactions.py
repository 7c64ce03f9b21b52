"""Commit-on-success: end a view's unit of work by the response it returns.

The view is wrapped, not hooked from ``after_request``: only a wrapper knows whether the
view itself returned or raised (an error handler may turn an exception into a 200), and
a commit that fails inside it goes through the app's error handlers like any exception
the view raises.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any
from typing import TypeVar

from flask import Response
from flask import current_app
from flask.typing import ResponseReturnValue

V = TypeVar("V", bound=Callable[..., Any])

#: Ends the unit of work: commit when given a status below 400, else roll back.
EndUnitOfWork = Callable[[int | None], None]
#: The same for an async view, which also ends its async session's.
EndAsyncUnitOfWork = Callable[[int | None], Awaitable[None]]

#: On a view: the end-of-work functions that already wrap it (one per Database).
_COMMITTED_BY = "_flask_typed_db_committed_by"
#: On a view: commits explicitly, never wrapped.
_MANUAL = "_flask_typed_db_manual_commit"


def committing(
    view: Callable[..., Any], end: EndUnitOfWork, end_async: EndAsyncUnitOfWork, owner: object
) -> Callable[..., Any]:
    """Wrap ``view`` so that its response's status decides commit or rollback: with
    ``end``, or for an ``async def`` view with ``end_async``.

    The wrapper returns the :class:`~flask.Response` Flask would have made of the
    view's return value; the status is known only once that is made.
    """
    if inspect.iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Response:
            try:
                rv: ResponseReturnValue = await view(*args, **kwargs)
            except BaseException:
                await end_async(None)
                raise
            response = current_app.make_response(rv)
            await end_async(response.status_code)
            return response

        wrapper: Callable[..., Any] = async_wrapper
    else:

        @functools.wraps(view)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Response:
            try:
                rv: ResponseReturnValue = view(*args, **kwargs)
            except BaseException:
                end(None)
                raise
            return _finish(rv, end)

        wrapper = sync_wrapper
    # functools.wraps copied the view's markers; add this owner to them.
    setattr(wrapper, _COMMITTED_BY, committed_by(view) | {owner})
    return wrapper


def _finish(rv: ResponseReturnValue, end: EndUnitOfWork) -> Response:
    response = current_app.make_response(rv)
    end(response.status_code)
    return response


def committed_by(view: Callable[..., Any]) -> frozenset[object]:
    """The owners (Databases) whose commit-on-success already wraps ``view``."""
    owners: frozenset[object] = getattr(view, _COMMITTED_BY, frozenset())
    return owners


def mark_manual(view: V) -> V:
    setattr(view, _MANUAL, True)
    return view


def is_manual(view: Callable[..., Any]) -> bool:
    return getattr(view, _MANUAL, False) is True
