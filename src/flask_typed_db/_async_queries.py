"""The async twins of the query helpers, for ``async def`` views on
:attr:`~flask_typed_db.Database.async_session`.

Each runs the sync helper's own work (``_queries``) on the async session's sync session,
in SQLAlchemy's greenlet, as :class:`~sqlalchemy.ext.asyncio.AsyncSession` runs its own
methods: the rules, the lookups judged and the query-string handling are the same code.
Only the 404s are raised here, outside the greenlet, with no local variable holding the
session (see ``QueryHelpers.get_or_404``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import Literal
from typing import TypeVar
from typing import overload

import sqlalchemy as sa
from flask import abort
from sqlalchemy.engine import Row
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.interfaces import ORMOption

from ._queries import cursors_of_request
from ._queries import first_row
from ._queries import identity_of
from ._queries import is_past_the_last_page
from ._queries import keyset_page_of
from ._queries import one_row
from ._queries import page_numbers
from ._queries import page_of
from ._queries import switched_on
from ._queries import value_of
from ._sessions import SessionLifetime
from .core import KeysetPage
from .core import Pagination
from .core._identity import NO_ROW
from .core._identity import needs_judging
from .core._select import T1
from .core._select import T2
from .core._select import ExecutableReturnsRows
from .core._select import SelectBase
from .core._select import Ts
from .core._select import TypedReturnsRows
from .core._session import A
from .core._session import S

T = TypeVar("T")
R = TypeVar("R")


class AsyncQueryHelpers(SessionLifetime[S, A]):
    """The async query helpers of :class:`~flask_typed_db.Database`, on its async
    session.
    """

    async def async_get_or_404(
        self,
        entity: type[T] | Mapper[T],
        ident: Any,
        *,
        description: str | None = None,
        options: Sequence[ORMOption] = (),
        populate_existing: bool = False,
        with_for_update: bool = False,
    ) -> T:
        """:meth:`get_or_404` for async views: the ``entity`` with primary key
        ``ident`` from :attr:`async_session`, or a 404. Takes the same arguments, and
        judges ``ident`` alike.
        """
        if needs_judging(ident):
            ident = await _greenlet_spawn(
                identity_of, entity, ident, self.async_session.sync_session
            )
            if ident is NO_ROW:
                abort(404, description=description)
        switches = switched_on(
            populate_existing=populate_existing, with_for_update=with_for_update
        )
        value = await self.async_session.get(entity, ident, options=options, **switches)
        if value is None:
            abort(404, description=description)
        return value

    @overload
    async def async_first_or_404(  # type: ignore[overload-overlap, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # a select of one tuple matches the 2.1 form too
        self, statement: TypedReturnsRows[tuple[T]], *, description: str | None = None
    ) -> T: ...
    @overload
    async def async_first_or_404(
        self,
        statement: TypedReturnsRows[tuple[T1, T2, *Ts]],
        *,
        description: str | None = None,
    ) -> Row[tuple[T1, T2, *Ts]]: ...
    @overload
    async def async_first_or_404(
        self,
        statement: TypedReturnsRows[T],  # type: ignore[type-var, unused-ignore]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        description: str | None = None,
    ) -> T: ...
    @overload
    async def async_first_or_404(  # type: ignore[overload-cannot-match, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # mypy takes T for *Ts; pyright, only on 2.0
        self,
        statement: TypedReturnsRows[*Ts],  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        description: str | None = None,
    ) -> Row[*Ts]: ...  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
    @overload
    async def async_first_or_404(
        self,
        statement: ExecutableReturnsRows | SelectBase,
        *,
        description: str | None = None,
    ) -> Any: ...
    async def async_first_or_404(
        self,
        statement: Any,  # typed by the overloads; SQLAlchemy 2.0 and 2.1 spell it differently
        *,
        description: str | None = None,
    ) -> Any:
        """:meth:`first_or_404` for async views, on :attr:`async_session`: the first
        row's entity, value or :class:`~sqlalchemy.engine.Row`, or a 404.
        """
        row = await _greenlet_spawn(first_row, self.async_session.sync_session, statement)
        if row is None:
            abort(404, description=description)
        return value_of(row)

    @overload
    async def async_one_or_404(  # type: ignore[overload-overlap, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # a select of one tuple matches the 2.1 form too
        self, statement: TypedReturnsRows[tuple[T]], *, description: str | None = None
    ) -> T: ...
    @overload
    async def async_one_or_404(
        self,
        statement: TypedReturnsRows[tuple[T1, T2, *Ts]],
        *,
        description: str | None = None,
    ) -> Row[tuple[T1, T2, *Ts]]: ...
    @overload
    async def async_one_or_404(
        self,
        statement: TypedReturnsRows[T],  # type: ignore[type-var, unused-ignore]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        description: str | None = None,
    ) -> T: ...
    @overload
    async def async_one_or_404(  # type: ignore[overload-cannot-match, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # mypy takes T for *Ts; pyright, only on 2.0
        self,
        statement: TypedReturnsRows[*Ts],  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        description: str | None = None,
    ) -> Row[*Ts]: ...  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
    @overload
    async def async_one_or_404(
        self,
        statement: ExecutableReturnsRows | SelectBase,
        *,
        description: str | None = None,
    ) -> Any: ...
    async def async_one_or_404(
        self,
        statement: Any,  # typed by the overloads; SQLAlchemy 2.0 and 2.1 spell it differently
        *,
        description: str | None = None,
    ) -> Any:
        """:meth:`one_or_404` for async views, on :attr:`async_session`: the only row's
        entity, value or :class:`~sqlalchemy.engine.Row`, or a 404 if there are none or
        several.
        """
        row = await _greenlet_spawn(one_row, self.async_session.sync_session, statement)
        if row is None:
            abort(404, description=description)
        return value_of(row)

    @overload
    async def async_paginate(  # type: ignore[overload-overlap, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # a select of one tuple matches the 2.1 form too
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
    async def async_paginate(
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
    async def async_paginate(
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
    async def async_paginate(  # type: ignore[overload-cannot-match, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # mypy takes T for *Ts; pyright, only on 2.0
        self,
        statement: sa.Select[*Ts],  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        page: int | None = None,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
        count: bool | Literal["estimate"] = True,
    ) -> Pagination[Row[*Ts]]: ...  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
    async def async_paginate(
        self,
        statement: Any,  # typed by the overloads; SQLAlchemy 2.0 and 2.1 spell it differently
        *,
        page: int | None = None,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
        count: bool | Literal["estimate"] = True,
    ) -> Pagination[Any]:
        """:meth:`paginate` for async views, on :attr:`async_session`: the same
        query-string rules (``?page=``, ``?per_page=``), the same cap
        (``SQLALCHEMY_MAX_PER_PAGE``) and the same 404s.
        """
        if max_per_page is None:
            max_per_page = self._state("'db.async_paginate()'").max_per_page
        page, per_page = page_numbers(page, per_page, max_per_page, error_out)
        pagination = await _greenlet_spawn(
            page_of, self.async_session.sync_session, statement, page, per_page, count
        )
        if error_out and is_past_the_last_page(pagination, page):
            abort(404)
        return pagination

    @overload
    async def async_keyset_paginate(  # type: ignore[overload-overlap, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # a select of one tuple matches the 2.1 form too
        self,
        statement: sa.Select[tuple[T]],
        *,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
    ) -> KeysetPage[T]: ...
    @overload
    async def async_keyset_paginate(
        self,
        statement: sa.Select[tuple[T1, T2, *Ts]],
        *,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
    ) -> KeysetPage[Row[tuple[T1, T2, *Ts]]]: ...
    @overload
    async def async_keyset_paginate(
        self,
        statement: sa.Select[T],  # type: ignore[type-var, unused-ignore]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
    ) -> KeysetPage[T]: ...
    @overload
    async def async_keyset_paginate(  # type: ignore[overload-cannot-match, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # mypy takes T for *Ts; pyright, only on 2.0
        self,
        statement: sa.Select[*Ts],  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
    ) -> KeysetPage[Row[*Ts]]: ...  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
    async def async_keyset_paginate(
        self,
        statement: Any,  # typed by the overloads; SQLAlchemy 2.0 and 2.1 spell it differently
        *,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
    ) -> KeysetPage[Any]:
        """:meth:`keyset_paginate` for async views, on :attr:`async_session`: the same
        query-string cursors and page size, the same cap and the same 400s.
        """
        if max_per_page is None:
            max_per_page = self._state("'db.async_keyset_paginate()'").max_per_page
        _, per_page = page_numbers(1, per_page, max_per_page, error_out)
        after, before, context = cursors_of_request(error_out)
        run = functools.partial(
            keyset_page_of,
            self.async_session.sync_session,
            statement,
            per_page,
            after=after,
            before=before,
            context=context,
            error_out=error_out,
        )
        return await _greenlet_spawn(run)


async def _greenlet_spawn(function: Callable[..., R], *args: Any) -> R:
    """Run the sync ``function`` as :class:`~sqlalchemy.ext.asyncio.AsyncSession`
    runs its methods: in SQLAlchemy's greenlet, where the async driver's I/O is awaited.
    Imported here, on first use: an app that never goes async never imports it.
    """
    from sqlalchemy.util import greenlet_spawn

    return await greenlet_spawn(function, *args)
