"""Sessions and their lifetime: one session per app context, and one async session,
each made on first use and closed at the context's teardown, and the per-app state every
other job of the adapter reads.
"""

from __future__ import annotations

import itertools
import os
import sys
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import Generic
from typing import cast

from flask import Flask
from flask import has_request_context
from flask import request
from flask.ctx import AppContext
from flask.globals import app_ctx
from sqlalchemy.orm import Session
from werkzeug.local import LocalProxy
from werkzeug.wrappers import Request

from ._async_runner import close_async_session
from ._replica_requests import ReplicaRequests
from .core import DatabaseCore
from .core._session import A
from .core._session import S
from .core._session import close_or_invalidate

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

#: ``app.extensions[_EXTENSION]`` maps each Database registered on the app to its state.
_EXTENSION = "flask_typed_db"
#: Prefix of the ``g`` attribute that holds a Database's session in the current app
#: context; a number unique to the Database completes it.
_G_SESSION_PREFIX = "_flask_typed_db_session_"
#: Likewise for its async session.
_G_ASYNC_SESSION_PREFIX = "_flask_typed_db_async_session_"
_database_numbers = itertools.count()
#: Every Database, so that a forked child can give each one a new ``g`` attribute.
_databases: weakref.WeakSet[SessionLifetime[Any, Any]] = weakref.WeakSet()

_NO_APP_CONTEXT = (
    "Working outside of application context: {what} needs the current app. Use it in a"
    " view or CLI command, or push a context with 'with app.app_context():'."
)

# The objects behind Flask's context proxies, each reached in one call. Every use of a
# proxy looks the current context up again, and an attribute the proxy class lacks
# (g.get, current_app.extensions, request.args) first fails an ordinary lookup, which
# costs an AttributeError: about 2 µs a use, several per request. Werkzeug documents
# _get_current_object() as the way to reach the object; Flask types its proxies as the
# objects they stand for, hence the casts.
current_app_context = cast("LocalProxy[AppContext]", app_ctx)._get_current_object  # pyright: ignore[reportPrivateUsage]  # public Werkzeug API, despite the underscore
current_request = cast("LocalProxy[Request]", request)._get_current_object  # pyright: ignore[reportPrivateUsage]  # public Werkzeug API, despite the underscore


@dataclass(frozen=True)
class AppState(Generic[S, A]):
    """What a Database keeps for each app it is registered on."""

    core: DatabaseCore[S, A]
    max_per_page: int | None
    #: The app's rules for requests, when it has read replicas.
    replica_requests: ReplicaRequests | None = None


class SessionLifetime(Generic[S, A]):
    """The part of :class:`~flask_typed_db.Database` every other job builds on: the
    current app context's session and async session, and this Database's state for an
    app.
    """

    def __init__(self) -> None:
        # Where this Database's sessions live on ``g``: one attribute, one lookup. A
        # forked child gives them others.
        self._g_session, self._g_async_session = _new_g_session_attributes()
        #: Whether an async session was ever made: until then, teardown looks for none.
        self._async_used = False
        _databases.add(self)

    @property
    def session(self) -> S:
        """The current app context's session, made on first use.

        The same object for the whole context; closed at its teardown, so anything not
        committed is rolled back.
        """
        context = app_context_for("'db.session'")
        session: S | None = context.g.get(self._g_session)
        if session is None:
            state = self._state_of(context.app, "'db.session'")
            session = state.core.sessionmaker()
            if state.replica_requests is not None and has_request_context():
                state.replica_requests.route(session, current_request())
            setattr(context.g, self._g_session, session)
        return session

    @property
    def async_session(self) -> A:
        """The current app context's async session, made on first use: for ``async
        def`` views, which run on the process's event loop that owns its connections.

        The same object for the whole context; closed at its teardown, on that loop, so
        anything not committed is rolled back. See :doc:`/async`.

        :raises RuntimeError: If the bind's async driver is not installed; the message
            names the package.
        """
        context = app_context_for("'db.async_session'")
        session: A | None = context.g.get(self._g_async_session)
        if session is None:
            core = self._state_of(context.app, "'db.async_session'").core
            session = core.async_sessionmaker()
            self._async_used = True
            setattr(context.g, self._g_async_session, session)
        return session

    def _state(self, what: str, app: Flask | None = None) -> AppState[S, A]:
        """This Database's state for ``app``, or for the current app if not given."""
        if app is None:
            return self._state_of(app_context_for(what).app, what)
        registered = app_states(app).get(self)
        if registered is None:
            raise RuntimeError(
                f"The app {app.name!r} is not registered with this Database: call"
                f" 'db.init_app(app)' before {what}."
            )
        return registered

    def _state_of(self, current: Flask, what: str) -> AppState[S, A]:
        """This Database's state for ``current``, the current app."""
        state = app_states(current).get(self)
        if state is None:
            raise RuntimeError(
                f"The current app {current.name!r} is not registered with this"
                f" Database, so {what} has nothing to use. Call 'db.init_app(app)' in the"
                " app factory."
            )
        return state

    def _end_own_transaction_before_ddl(self, what: str) -> None:
        """Close the current context's session if it is in a transaction, as
        Flask-SQLAlchemy's ``db.session.remove()`` did: DDL runs on a connection of its
        own, and would wait forever for the locks that transaction holds (PostgreSQL's
        and MariaDB's even after a mere SELECT). Changes not flushed yet are never
        discarded for it: that is an error.
        """
        session: Session | None = current_app_context().g.get(self._g_session)
        if session is None or not session.in_transaction():
            return
        if session.new or session.dirty or session.deleted:
            raise RuntimeError(
                f"{what} runs on a connection of its own, and would wait for this app"
                " context's session, which holds changes not committed yet: call"
                " 'db.session.commit()' (or 'db.session.rollback()') first."
            )
        # What it flushed and did not commit is rolled back, as at the context's end.
        session.close()

    def _close_session(self, exc: BaseException | None) -> None:
        context = current_app_context()
        if self._async_used:
            async_session: AsyncSession | None = context.g.pop(self._g_async_session, None)
            if async_session is not None:
                close_async_session(async_session, context.app.logger)
        session: Session | None = context.g.pop(self._g_session, None)
        if session is None:
            return
        # Closing rolls back the open transaction on its connection and returns the
        # connection to the pool; loaded objects stay readable, detached. If it fails,
        # the connection is invalidated instead: the logged error keeps the session.
        error = close_or_invalidate(session)
        if error is not None:
            # Teardown must not replace the view's own error.
            context.app.logger.error(
                "flask-typed-db: closing the session failed; its connections were invalidated",
                exc_info=error,
            )


def _new_g_session_attributes() -> tuple[str, str]:
    number = next(_database_numbers)
    return f"{_G_SESSION_PREFIX}{number}", f"{_G_ASYNC_SESSION_PREFIX}{number}"


def _forget_parent_sessions() -> None:
    """In a child forked inside an app context, make :attr:`Database.session` and
    :attr:`Database.async_session` start new sessions instead of returning the parent's,
    which the core has cut from their connections. The parent's stay on ``g``, unused
    and never closed here.
    """
    for database in list(_databases):
        database._g_session, database._g_async_session = _new_g_session_attributes()  # pyright: ignore[reportPrivateUsage]  # this module's own class


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_forget_parent_sessions)


def app_context_for(what: str) -> AppContext:
    """The current app context; ``what`` needs one, the error says."""
    try:
        return current_app_context()
    except RuntimeError:
        raise RuntimeError(_NO_APP_CONTEXT.format(what=what)) from None


def extensions_of(app: Flask) -> dict[str, Any]:
    # Flask 3.0 annotates 'extensions' as a bare dict, which strict pyright reports.
    return app.extensions  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]


def app_states(app: Flask) -> dict[SessionLifetime[Any, Any], AppState[Any, Any]]:
    """The state of each Database registered on ``app``, kept in ``app.extensions``."""
    extensions = extensions_of(app)
    states: dict[SessionLifetime[Any, Any], AppState[Any, Any]] | None = extensions.get(_EXTENSION)
    if states is None:
        states = extensions[_EXTENSION] = {}
    return states
