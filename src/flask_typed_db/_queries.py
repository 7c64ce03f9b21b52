"""Query helpers for views: fetch a row or abort with 404, and paginate by the request's
query string.

The work an async twin shares (running the query on a sync session, which the async
twin does in SQLAlchemy's greenlet as ``AsyncSession`` does; which page the query string
asks for; what a row is returned as; when a lookup or a page is missing) is in
module-level functions here, so that it calls them rather than copies them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from typing import Literal
from typing import TypeVar
from typing import cast
from typing import overload

import sqlalchemy as sa
from flask import abort
from flask.wrappers import Request as FlaskRequest
from sqlalchemy.engine import Result
from sqlalchemy.engine import Row
from sqlalchemy.exc import MultipleResultsFound
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Mapper
from sqlalchemy.orm import Session
from sqlalchemy.orm import class_mapper
from sqlalchemy.orm.interfaces import ORMOption
from werkzeug.datastructures import MultiDict

from ._sessions import SessionLifetime
from ._sessions import current_request
from .core import InvalidCursor
from .core import KeysetPage
from .core import Pagination
from .core import keyset_paginate
from .core import paginate
from .core._identity import NO_ROW
from .core._identity import identity_for
from .core._identity import needs_judging
from .core._identity import with_lookups_judged
from .core._select import T1
from .core._select import T2
from .core._select import ExecutableReturnsRows
from .core._select import SelectBase
from .core._select import Ts
from .core._select import TypedReturnsRows
from .core._select import execute_select
from .core._session import A
from .core._session import S
from .core._session import dialect_of

T = TypeVar("T")

#: Flask-SQLAlchemy's page size when neither the call nor the query string gives one.
DEFAULT_PER_PAGE = 20
#: The cap on ``per_page`` unless the app sets ``SQLALCHEMY_MAX_PER_PAGE``.
DEFAULT_MAX_PER_PAGE = 100
#: Query-string numbers longer than this are not parsed (int() of a huge string is
#: slow) but taken as 10**18: beyond every page there is, and still a valid LIMIT.
_MAX_DIGITS = 18


class QueryHelpers(SessionLifetime[S, A]):
    """The query helpers of :class:`~flask_typed_db.Database`, on its session."""

    def get_or_404(
        self,
        entity: type[T] | Mapper[T],
        ident: Any,
        *,
        description: str | None = None,
        options: Sequence[ORMOption] = (),
        populate_existing: bool = False,
        with_for_update: bool = False,
    ) -> T:
        """Return the ``entity`` with primary key ``ident``, or abort with 404.

        An ``ident`` its primary-key column cannot hold is a 404 without a query:
        ``"1abc"``, ``"1.0"`` or a number past the column's range for an integer key, a
        string that is no UUID for a UUID key. Sent, it would be a database error on
        some backends and another row on others. A string of digits for an integer key
        is converted: ``/books/<book_id>`` finds the same book as ``<int:book_id>``.

        :param entity: A mapped class, declared or mapped imperatively, or its
            :class:`~sqlalchemy.orm.Mapper`.
        :param ident: The primary key value, as :meth:`Session.get
            <sqlalchemy.orm.Session.get>` takes it (a tuple or dict for a composite key).
        :param description: The 404 page's description.
        :param options: Loader options, e.g. ``[selectinload(User.posts)]``.
        :param populate_existing: Refresh an object already in the session.
        :param with_for_update: Lock the row (``SELECT ... FOR UPDATE``) until the
            transaction ends; queried even if the object is in the session already.
        """
        if needs_judging(ident):
            ident = identity_of(entity, ident, self.session)
            if ident is NO_ROW:
                abort(404, description=description)
        switches = switched_on(
            populate_existing=populate_existing, with_for_update=with_for_update
        )
        # No local variable holds the session when abort() raises: Flask answers with
        # the exception itself, whose traceback keeps this frame alive until the
        # garbage collector runs, and would keep the closed session with it.
        value = self.session.get(entity, ident, options=options, **switches)
        if value is None:
            abort(404, description=description)
        return value

    @overload
    def first_or_404(  # type: ignore[overload-overlap, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # a select of one tuple matches the 2.1 form too
        self, statement: TypedReturnsRows[tuple[T]], *, description: str | None = None
    ) -> T: ...
    @overload
    def first_or_404(
        self,
        statement: TypedReturnsRows[tuple[T1, T2, *Ts]],
        *,
        description: str | None = None,
    ) -> Row[tuple[T1, T2, *Ts]]: ...
    @overload
    def first_or_404(
        self,
        statement: TypedReturnsRows[T],  # type: ignore[type-var, unused-ignore]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        description: str | None = None,
    ) -> T: ...
    @overload
    def first_or_404(  # type: ignore[overload-cannot-match, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # mypy takes T for *Ts; pyright, only on 2.0
        self,
        statement: TypedReturnsRows[*Ts],  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        description: str | None = None,
    ) -> Row[*Ts]: ...  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
    @overload
    def first_or_404(
        self,
        statement: ExecutableReturnsRows | SelectBase,
        *,
        description: str | None = None,
    ) -> Any: ...
    def first_or_404(
        self,
        statement: Any,  # typed by the overloads; SQLAlchemy 2.0 and 2.1 spell it differently
        *,
        description: str | None = None,
    ) -> Any:
        """Return the first row of ``statement``, or abort with 404 if there is none.

        For a select of one entity or column, the entity or value; for several, the
        :class:`~sqlalchemy.engine.Row`. A first row whose one value is NULL is
        returned as ``None``, not taken for a missing row.

        The values of the WHERE clause's AND-ed ``column == value`` and
        ``column.in_(values)`` are judged as :meth:`get_or_404` judges an ``ident``:
        a lookup no row can match, such as ``Book.id == 2**31`` for an ``INTEGER``
        column, finds nothing, on every backend.

        ``statement`` is any statement that returns rows, as
        :meth:`Session.execute <sqlalchemy.orm.Session.execute>` takes it: a
        ``select()``, a ``union_all()`` (of entity selects, it returns the entities),
        ``select(User).from_statement(...)``, or an INSERT, UPDATE or DELETE with
        ``returning()``.

        :param description: The 404 page's description.
        :raises TypeError: For an INSERT, UPDATE or DELETE without ``returning()``,
            before it runs.
        """
        row = first_row(self.session, statement)
        if row is None:
            abort(404, description=description)
        return value_of(row)

    @overload
    def one_or_404(  # type: ignore[overload-overlap, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # a select of one tuple matches the 2.1 form too
        self, statement: TypedReturnsRows[tuple[T]], *, description: str | None = None
    ) -> T: ...
    @overload
    def one_or_404(
        self,
        statement: TypedReturnsRows[tuple[T1, T2, *Ts]],
        *,
        description: str | None = None,
    ) -> Row[tuple[T1, T2, *Ts]]: ...
    @overload
    def one_or_404(
        self,
        statement: TypedReturnsRows[T],  # type: ignore[type-var, unused-ignore]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        description: str | None = None,
    ) -> T: ...
    @overload
    def one_or_404(  # type: ignore[overload-cannot-match, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # mypy takes T for *Ts; pyright, only on 2.0
        self,
        statement: TypedReturnsRows[*Ts],  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        description: str | None = None,
    ) -> Row[*Ts]: ...  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
    @overload
    def one_or_404(
        self,
        statement: ExecutableReturnsRows | SelectBase,
        *,
        description: str | None = None,
    ) -> Any: ...
    def one_or_404(
        self,
        statement: Any,  # typed by the overloads; SQLAlchemy 2.0 and 2.1 spell it differently
        *,
        description: str | None = None,
    ) -> Any:
        """Return the only row of ``statement``, or abort with 404 if there are none or
        several.

        For a select of one entity or column, the entity or value; for several, the
        :class:`~sqlalchemy.engine.Row`. Takes the statements :meth:`first_or_404`
        takes, and judges their lookups alike.

        :param description: The 404 page's description.
        :raises TypeError: For an INSERT, UPDATE or DELETE without ``returning()``,
            before it runs.
        """
        row = one_row(self.session, statement)
        if row is None:
            abort(404, description=description)
        return value_of(row)

    @overload
    def paginate(  # type: ignore[overload-overlap, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # a select of one tuple matches the 2.1 form too
        self,
        statement: sa.Select[tuple[T]],
        *,
        page: int | None = None,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
        count: bool | Literal["estimate"] = True,
    ) -> Pagination[T]: ...
    @overload
    def paginate(
        self,
        statement: sa.Select[tuple[T1, T2, *Ts]],
        *,
        page: int | None = None,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
        count: bool | Literal["estimate"] = True,
    ) -> Pagination[Row[tuple[T1, T2, *Ts]]]: ...
    @overload
    def paginate(
        self,
        statement: sa.Select[T],  # type: ignore[type-var, unused-ignore]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        page: int | None = None,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
        count: bool | Literal["estimate"] = True,
    ) -> Pagination[T]: ...
    @overload
    def paginate(  # type: ignore[overload-cannot-match, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # mypy takes T for *Ts; pyright, only on 2.0
        self,
        statement: sa.Select[*Ts],  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        page: int | None = None,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
        count: bool | Literal["estimate"] = True,
    ) -> Pagination[Row[*Ts]]: ...  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
    def paginate(
        self,
        statement: Any,  # typed by the overloads; SQLAlchemy 2.0 and 2.1 spell it differently
        *,
        page: int | None = None,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
        count: bool | Literal["estimate"] = True,
    ) -> Pagination[Any]:
        """Return one page of ``statement``, numbered by the request's query string.

        ``page`` and ``per_page`` not given are read from ``request.args`` (``?page=2
        &per_page=50``), defaulting to 1 and 20. A value that is not a positive whole
        number, or a page past the last, aborts with 404; with ``error_out=False`` it
        falls back to page 1, 20 per page, or an empty page instead.

        Lookups are judged as in :meth:`first_or_404`: a page of ``Book.id == 2**31``
        for an ``INTEGER`` column is empty, on every backend.

        :param max_per_page: The most items a page may have; ``per_page`` is lowered to
            it. Defaults to the app's ``SQLALCHEMY_MAX_PER_PAGE`` (100; ``None`` there
            means no limit).
        :param error_out: Abort with 404 on bad numbers and pages past the last.
        :param count: Count the total; with ``False``, ``total`` is ``None`` and
            ``pages`` is 0. ``"estimate"``: PostgreSQL's planner estimate instead of a
            count, in ``estimated_total`` (see :doc:`/queries`).
        """
        if max_per_page is None:
            max_per_page = self._state("'db.paginate()'").max_per_page
        page, per_page = page_numbers(page, per_page, max_per_page, error_out)
        pagination = page_of(self.session, statement, page, per_page, count)
        if error_out and is_past_the_last_page(pagination, page):
            abort(404)
        return pagination

    @overload
    def keyset_paginate(  # type: ignore[overload-overlap, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # a select of one tuple matches the 2.1 form too
        self,
        statement: sa.Select[tuple[T]],
        *,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
    ) -> KeysetPage[T]: ...
    @overload
    def keyset_paginate(
        self,
        statement: sa.Select[tuple[T1, T2, *Ts]],
        *,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
    ) -> KeysetPage[Row[tuple[T1, T2, *Ts]]]: ...
    @overload
    def keyset_paginate(
        self,
        statement: sa.Select[T],  # type: ignore[type-var, unused-ignore]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
    ) -> KeysetPage[T]: ...
    @overload
    def keyset_paginate(  # type: ignore[overload-cannot-match, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # mypy takes T for *Ts; pyright, only on 2.0
        self,
        statement: sa.Select[*Ts],  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
    ) -> KeysetPage[Row[*Ts]]: ...  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
    def keyset_paginate(
        self,
        statement: Any,  # typed by the overloads; SQLAlchemy 2.0 and 2.1 spell it differently
        *,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
    ) -> KeysetPage[Any]:
        """Return the page of ``statement`` that the request's query string points at,
        by key instead of by number: as fast for the millionth row as for the first.

        ``?after=`` (a page's :attr:`~flask_typed_db.core.KeysetPage.next_cursor`) or
        ``?before=`` (its ``prev_cursor``) picks the page; neither, the first. Cursors
        belong to the endpoint and the ordering they were made for. ``per_page``, and
        ``?per_page=``, follow :meth:`paginate`'s rules and cap. The statement must be
        ordered as :func:`~flask_typed_db.core.keyset_paginate` requires; if it is not,
        the ``ValueError`` says what to add.

        :param error_out: Abort with 400 on a cursor that is not one of this listing
            (malformed, from another endpoint or ordering, mistyped, too long) or on both
            cursors at once, and with 404 on a bad ``per_page``; with ``False``, the
            first page, and 20 per page, instead.
        """
        if max_per_page is None:
            max_per_page = self._state("'db.keyset_paginate()'").max_per_page
        _, per_page = page_numbers(1, per_page, max_per_page, error_out)
        after, before, context = cursors_of_request(error_out)
        return keyset_page_of(
            self.session,
            statement,
            per_page,
            after=after,
            before=before,
            context=context,
            error_out=error_out,
        )


def keyset_page_of(
    session: Session,
    statement: Any,
    per_page: int,
    *,
    after: str | None,
    before: str | None,
    context: str,
    error_out: bool,
) -> KeysetPage[Any]:
    """The keyset page of ``statement`` at the cursor, its lookups judged; a cursor that
    is not valid aborts with 400, or, without ``error_out``, gives the first page.
    """
    statement = with_lookups_judged(statement, session)
    try:
        return keyset_paginate(
            session, statement, per_page=per_page, after=after, before=before, context=context
        )
    except InvalidCursor as error:
        if error_out:
            abort(400, description=str(error))
    return keyset_paginate(session, statement, per_page=per_page, context=context)


def cursors_of_request(error_out: bool) -> tuple[str | None, str | None, str]:
    """The request's ``?after=`` and ``?before=`` cursors, and its endpoint, which the
    cursors belong to. Both at once abort with 400 (with ``error_out``; else neither
    counts).
    """
    args = _request_args(error_out)
    try:
        # Flask's request, which has the endpoint Werkzeug's does not.
        endpoint = cast("FlaskRequest", current_request()).endpoint or ""
    except RuntimeError:  # no request: no cursor but those given
        endpoint = ""
    if args is None:
        return None, None, endpoint
    after = args.get("after")
    before = args.get("before")
    if after is not None and before is not None:
        if error_out:
            abort(400, description="Give '?after=' or '?before=', not both.")
        return None, None, endpoint
    return after, before, endpoint


def first_row(session: Session, statement: Any) -> Row[Any] | None:
    """The first row of ``statement``, its lookups judged, or ``None``."""
    statement = with_lookups_judged(statement, session)
    return execute_select(session, statement).first()


def one_row(session: Session, statement: Any) -> Row[Any] | None:
    """The only row of ``statement``, its lookups judged, or ``None`` if it has none or
    several.
    """
    statement = with_lookups_judged(statement, session)
    return only_row(execute_select(session, statement))


def page_of(
    session: Session,
    statement: Any,
    page: int,
    per_page: int,
    count: bool | Literal["estimate"],
) -> Pagination[Any]:
    """Page ``page`` of ``statement``, its lookups judged."""
    statement = with_lookups_judged(statement, session)
    return paginate(session, statement, page=page, per_page=per_page, count=count)


def page_numbers(
    page: int | None, per_page: int | None, max_per_page: int | None, error_out: bool
) -> tuple[int, int]:
    """The page and page size to fetch: ``page`` and ``per_page`` if given, else the
    request's query arguments (``?page=2&per_page=50``), else 1 and
    ``DEFAULT_PER_PAGE``; ``per_page`` lowered to ``max_per_page`` unless that is
    ``None``. With ``error_out``, a query string that is not UTF-8 aborts with 400 and
    a number that is not a positive whole number with 404; without it, the default is
    taken instead.
    """
    args = _request_args(error_out)
    page = _page_arg(page, args, "page", 1, error_out)
    per_page = _page_arg(per_page, args, "per_page", DEFAULT_PER_PAGE, error_out)
    if max_per_page is not None:
        per_page = min(per_page, max_per_page)
    return page, per_page


def is_past_the_last_page(pagination: Pagination[Any], page: int) -> bool:
    """Whether ``pagination``, fetched for ``page``, is a page past the last: empty,
    and not the first page (which is empty only when there are no rows at all).
    """
    return not pagination.items and page != 1


def identity_of(entity: type[Any] | Mapper[Any], ident: Any, session: Session) -> Any:
    """``ident`` as ``entity``'s primary-key column holds it (a string of digits
    converted for an integer key), or ``NO_ROW`` if the column cannot hold it: then no
    query is sent, and the caller answers 404. For an ``ident`` that
    ``needs_judging()``.
    """
    mapper = entity if isinstance(entity, Mapper) else class_mapper(entity)
    return identity_for(mapper, ident, dialect_of(session, mapper))


def switched_on(*, populate_existing: bool, with_for_update: bool) -> dict[str, Any]:
    """The keyword arguments of :meth:`Session.get <sqlalchemy.orm.Session.get>` for
    the switches that are on, and only those: SQLAlchemy 2.1 does extra work for an
    explicit ``populate_existing=False``, and before 2.0.13 types ``with_for_update``
    as ``ForUpdateArg``.
    """
    switches: dict[str, Any] = {}
    if populate_existing:
        switches["populate_existing"] = True
    if with_for_update:
        switches["with_for_update"] = True
    return switches


def only_row(result: Result[Any]) -> Row[Any] | None:
    """The only row of ``result``, or ``None`` if it has none or several.

    The caller aborts outside this function's except clause: raised inside it, the 404
    would carry SQLAlchemy's error, and through its traceback the result and the
    session, until the garbage collector runs (see ``get_or_404``).
    """
    try:
        return result.one()
    except (NoResultFound, MultipleResultsFound):
        return None


def value_of(row: Row[Any]) -> Any:
    """What a ``*_or_404`` helper returns for ``row``: its one value (an entity, a
    column's value, or ``None`` for a NULL), or the row itself if it has several.
    """
    return row[0] if len(row) == 1 else row


def _request_args(error_out: bool) -> MultiDict[str, str] | None:
    """The current request's query arguments; ``None`` outside a request, or, without
    ``error_out``, when they cannot be read.
    """
    try:
        current = current_request()
    except RuntimeError:  # no request: only the arguments given count
        return None
    try:
        return current.args
    except UnicodeDecodeError:
        # Raw bytes that are not UTF-8 in the query string (Werkzeug decodes only
        # percent-encoded ones leniently): the client's error, not a server's.
        if error_out:
            abort(400, description="The query string is not valid UTF-8.")
        return None


def _page_arg(
    value: int | None,
    args: MultiDict[str, str] | None,
    name: str,
    default: int,
    error_out: bool,
) -> int:
    """``value``, or the query argument ``name`` in ``args``, as a positive integer."""
    if value is None:
        # Not args.get(): for a missing key it raises and catches a KeyError.
        if args is None or name not in args:
            return default
        raw = args[name]
        # Plain ASCII digits only: int() would also take "+1", " 1" and other scripts' digits.
        digits = raw.lstrip("0") if raw.isascii() and raw.isdigit() else ""
        # Past every page there is; as a per_page, lowered to max_per_page.
        value = 10**_MAX_DIGITS if len(digits) > _MAX_DIGITS else int(digits or 0)
    if value >= 1:
        return value
    if error_out:
        abort(404)
    return default
