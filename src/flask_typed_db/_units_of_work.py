"""Units of work: commit a view's session when it succeeds (per view, or for every view
under ``SQLALCHEMY_COMMIT_ON_SUCCESS``), and transactions and SAVEPOINTs as blocks.

The wrapping of views is in ``_transactions``; this module decides what ending a unit of
work does to the current app context's session.
"""

from __future__ import annotations

from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Generator
from contextlib import AbstractContextManager
from contextlib import contextmanager
from typing import TYPE_CHECKING
from typing import Any
from typing import ParamSpec
from typing import TypeVar
from typing import cast
from typing import overload

from flask import Response
from flask import current_app
from flask import request
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from ._sessions import SessionLifetime
from ._sessions import app_context_for
from ._sessions import current_app_context
from ._transactions import committed_by
from ._transactions import committing
from ._transactions import is_manual
from ._transactions import mark_manual
from .core._on_commit import async_on_commit
from .core._on_commit import captured_on_commit
from .core._on_commit import on_commit
from .core._session import A
from .core._session import S

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

P = ParamSpec("P")
V = TypeVar("V", bound=Callable[..., Any])


class UnitsOfWork(SessionLifetime[S, A]):
    """The units of work of :class:`~flask_typed_db.Database`, on its session."""

    @overload
    def commit_on_success(
        self, view: Callable[P, Awaitable[ResponseReturnValue]]
    ) -> Callable[P, Awaitable[Response]]: ...
    @overload
    def commit_on_success(
        self, view: Callable[P, ResponseReturnValue]
    ) -> Callable[P, Response]: ...
    def commit_on_success(self, view: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a view so that :attr:`session` is committed when it succeeds::

            @app.post("/books")
            @db.commit_on_success
            def add_book() -> ResponseReturnValue:
                db.session.add(Book(title=request.form["title"]))
                return redirect(url_for("list_books"))

        When the view returns a response with a status below 400 (redirects
        included), the session is committed before the response goes out; if that
        commit fails, the error propagates as if the view had raised it (your error
        handlers see it, else the client gets a 500) and nothing is kept. When the
        view raises, even if an error handler turns that into a response, or returns
        a 4xx or 5xx status, the session is rolled back at once. The wrapped view
        returns the :class:`~flask.Response` made of the view's return value.

        ``SQLALCHEMY_COMMIT_ON_SUCCESS = True`` does this for every view of the app;
        see :meth:`manual_commit` to exempt one.
        """
        return self._committing(view)

    def manual_commit(self, view: V) -> V:
        """Exempt a view from ``SQLALCHEMY_COMMIT_ON_SUCCESS``: it commits, or not, by
        itself, as every view does by default.
        """
        return mark_manual(view)

    @contextmanager
    def transaction(self) -> Generator[S, None, None]:
        """A unit of work inside a view on :attr:`session`: commit everything the
        session holds when the block succeeds, roll back and re-raise when it raises::

            with db.transaction() as session:
                session.add(Loan(book=book, borrower=name))
            # committed here
        """
        session = self.session
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        session.commit()

    @contextmanager
    def savepoint(self) -> Generator[S, None, None]:
        """A SAVEPOINT on :attr:`session`: when the block raises, only its own work is
        undone, and the exception propagates; when it succeeds, its work stays part of
        the session's transaction, to be committed with the rest::

            try:
                with db.savepoint() as session:
                    session.add(Tag(name=name))
            except IntegrityError:
                pass  # the tag exists; everything before the block is still there
        """
        session = self.session
        with session.begin_nested():
            yield session

    def on_commit(self, callback: Callable[[], object], *, raise_errors: bool = False) -> None:
        """Run ``callback()`` once :attr:`session`'s transaction has committed; drop it
        if the transaction rolls back (teardown's rollback included)::

            db.session.add(loan)
            db.session.flush()  # the loan's id
            db.on_commit(functools.partial(send_confirmation.delay, loan_id=loan.id))

        Inside :meth:`savepoint`, it is dropped with a SAVEPOINT rolled back and waits
        for the outer commit when the SAVEPOINT is released. With no transaction in
        progress, it runs at once. Callbacks run in registration order after the
        commit, :meth:`commit_on_success`'s included, with the session usable. An
        exception in one is logged with its name and does not fail the request, unless
        ``raise_errors=True``. See :doc:`/after-commit`.
        """
        app_context_for("'db.on_commit()'")
        on_commit(self.session, callback, raise_errors=raise_errors)

    async def async_on_commit(
        self, callback: Callable[[], object], *, raise_errors: bool = False
    ) -> None:
        """:meth:`on_commit` for :attr:`async_session`, in an ``async def`` view: the
        callback may be an ``async def`` function, awaited on the session's loop.
        """
        app_context_for("'db.async_on_commit()'")
        await async_on_commit(self.async_session, callback, raise_errors=raise_errors)

    def captured_on_commit(
        self, *, run: bool = False
    ) -> AbstractContextManager[list[Callable[[], object]]]:
        """For tests: the list of callbacks that become due inside the block (their
        transaction committed), not run unless ``run=True``::

            with db.captured_on_commit() as callbacks:
                client.post("/loans", json={"book_id": 1})
            assert len(callbacks) == 1
            callbacks[0]()  # run it, if the test wants to

        Under :meth:`test_isolation`, where a commit releases a SAVEPOINT, callbacks
        otherwise run when the code under test commits, as in production.
        """
        return captured_on_commit(run=run)

    def _committing(self, view: Callable[..., Any]) -> Callable[..., Any]:
        return committing(view, self._end_unit_of_work, self._end_async_unit_of_work, self)

    def _end_unit_of_work(self, status: int | None) -> None:
        """Commit the current context's session for a status below 400; roll it back
        for an error status or a raised exception (``None``).
        """
        session: Session | None = current_app_context().g.get(self._g_session)
        if session is not None:
            end_unit_of_work(session, status)

    async def _end_async_unit_of_work(self, status: int | None) -> None:
        """For an async view: end the unit of work of the current context's async
        session, as :meth:`_end_unit_of_work` does the session's (and do that too).
        """
        self._end_unit_of_work(status)
        if not self._async_used:
            return
        session: AsyncSession | None = current_app_context().g.get(self._g_async_session)
        if session is not None:
            from sqlalchemy.util import greenlet_spawn  # async apps only

            # The same code on its sync session, in SQLAlchemy's greenlet, as
            # AsyncSession.commit() runs Session.commit().
            await greenlet_spawn(end_unit_of_work, session.sync_session, status)

    def _commit_current_view_on_success(self) -> None:
        """``before_request`` under ``SQLALCHEMY_COMMIT_ON_SUCCESS``: wrap the view
        about to run, once. Routes cannot change after the first request, so wrapping
        views as they are first used covers every view, whenever it was registered.
        """
        endpoint = request.endpoint
        if endpoint is None:
            return
        views = cast("dict[str, Callable[..., Any]]", current_app.view_functions)  # type: ignore[redundant-cast, unused-ignore]  # pyright: ignore[reportUnknownMemberType]  # Flask 3.0 types the values as a bare Callable
        view = views.get(endpoint)
        if view is None or is_manual(view) or self in committed_by(view):
            return
        views[endpoint] = committing(
            view, self._end_unit_of_work, self._end_async_unit_of_work, self
        )


def end_unit_of_work(session: Session, status: int | None) -> None:
    """Commit ``session`` for a status below 400; roll it back for an error status or a
    raised exception (``None``), and when the commit fails.
    """
    if status is None or status >= 400:
        session.rollback()
        return
    try:
        session.commit()
    except BaseException:
        # Nothing of it is kept, and error handlers get a usable session.
        session.rollback()
        raise
