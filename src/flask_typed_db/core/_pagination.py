"""Pages of any select(), with Flask-SQLAlchemy's page arithmetic, and no Flask."""

from __future__ import annotations

import math
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import Generic
from typing import Literal
from typing import TypeVar
from typing import overload

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ._estimate import estimated_count
from ._estimate import exact_count
from ._select import T1
from ._select import T2
from ._select import Ts
from ._select import execute_select
from ._select import merges_rows

if TYPE_CHECKING:
    from sqlalchemy.engine import Row

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

#: The largest OFFSET (and LIMIT) every supported database accepts: a signed 64-bit
#: integer. A page further than that is past the last page, and is not queried.
MAX_OFFSET = 2**63 - 1


@dataclass(frozen=True)
class Pagination(Generic[T_co]):
    """One page of a select's results, and where it stands among the others.

    Immutable; its attributes and :meth:`iter_pages` follow Flask-SQLAlchemy 3.1's
    ``Pagination`` exactly (plus :attr:`estimated_total`, which it lacks), so templates
    written for it keep working. Iterating over
    the page iterates over :attr:`items`. Like Flask-SQLAlchemy's, a page is always
    true, even an empty one: test ``page.items`` or ``page.total`` instead.
    """

    #: The rows of this page: entities or values for a select of one entity or
    #: column, :class:`~sqlalchemy.engine.Row` objects for several.
    items: Sequence[T_co]
    #: The 1-based number of this page.
    page: int
    #: The most items a page holds.
    per_page: int
    #: How many items all the pages hold, or ``None`` when counting was switched off
    #: or only estimated.
    total: int | None
    #: With ``count="estimate"``, about how many items all the pages hold: PostgreSQL's
    #: planner estimate, made to agree with this page (at least one more than this
    #: page's last item when there is a next page, exact when this page is the last).
    #: ``None`` otherwise. Never a count: show it as "about".
    estimated_total: int | None = None

    @property
    def pages(self) -> int:
        """How many pages there are, by :attr:`total` or else :attr:`estimated_total`;
        0 when there are no items or neither.
        """
        total = self.total if self.total is not None else self.estimated_total
        if not total:
            return 0
        return math.ceil(total / self.per_page)

    @property
    def first(self) -> int:
        """The 1-based index of this page's first item among all items; 0 if empty."""
        if not self.items:
            return 0
        return (self.page - 1) * self.per_page + 1

    @property
    def last(self) -> int:
        """The 1-based index of this page's last item among all items; 0 if empty."""
        return max(self.first, self.first + len(self.items) - 1)

    @property
    def has_prev(self) -> bool:
        """Whether there is a page before this one."""
        return self.page > 1

    @property
    def prev_num(self) -> int | None:
        """The number of the page before this one, if there is one."""
        return self.page - 1 if self.has_prev else None

    @property
    def has_next(self) -> bool:
        """Whether there is a page after this one: exact with a :attr:`total` or an
        :attr:`estimated_total`, always false with neither.
        """
        return self.page < self.pages

    @property
    def next_num(self) -> int | None:
        """The number of the page after this one, if there is one."""
        return self.page + 1 if self.has_next else None

    def iter_pages(
        self,
        *,
        left_edge: int = 2,
        left_current: int = 2,
        right_current: int = 4,
        right_edge: int = 2,
    ) -> Iterator[int | None]:
        """Page numbers for a pagination widget, with ``None`` where numbers are skipped.

        Yields the first ``left_edge`` pages, the ``left_current`` pages before and
        ``right_current`` pages after the current one, and the last ``right_edge``
        pages; each gap becomes one ``None``. With 20 pages and page 10 current:
        ``1, 2, None, 8, 9, 10, 11, 12, 13, 14, None, 19, 20``.
        """
        pages_end = self.pages + 1
        if pages_end == 1:
            return
        left_end = min(1 + left_edge, pages_end)
        yield from range(1, left_end)
        if left_end == pages_end:
            return
        mid_start = max(left_end, self.page - left_current)
        mid_end = min(self.page + right_current + 1, pages_end)
        if mid_start - left_end > 0:
            yield None
        yield from range(mid_start, mid_end)
        if mid_end == pages_end:
            return
        right_start = max(mid_end, pages_end - right_edge)
        if right_start - mid_end > 0:
            yield None
        yield from range(right_start, pages_end)

    def __iter__(self) -> Iterator[T_co]:
        return iter(self.items)


@overload
def paginate(  # type: ignore[overload-overlap, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # a select of one tuple matches the 2.1 form too
    session: Session,
    statement: sa.Select[tuple[T]],
    *,
    page: int,
    per_page: int,
    count: bool | Literal["estimate"] = ...,
) -> Pagination[T]: ...
@overload
def paginate(
    session: Session,
    statement: sa.Select[tuple[T1, T2, *Ts]],
    *,
    page: int,
    per_page: int,
    count: bool | Literal["estimate"] = ...,
) -> Pagination[Row[tuple[T1, T2, *Ts]]]: ...
@overload
def paginate(
    session: Session,
    statement: sa.Select[T],  # type: ignore[type-var, unused-ignore]  # SQLAlchemy 2.0 rejects the 2.1 form
    *,
    page: int,
    per_page: int,
    count: bool | Literal["estimate"] = ...,
) -> Pagination[T]: ...
@overload
def paginate(  # type: ignore[overload-cannot-match, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # mypy takes T for *Ts; pyright, only on 2.0
    session: Session,
    statement: sa.Select[*Ts],  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
    *,
    page: int,
    per_page: int,
    count: bool | Literal["estimate"] = ...,
) -> Pagination[Row[*Ts]]: ...  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
def paginate(
    session: Session,
    statement: Any,  # the overloads above type it; SQLAlchemy 2.0 and 2.1 spell it differently
    *,
    page: int,
    per_page: int,
    count: bool | Literal["estimate"] = True,
) -> Pagination[Any]:
    """Run one page of ``statement`` on ``session``.

    The items are fetched with LIMIT and OFFSET in SQL, never by loading the whole
    result. The total is counted by wrapping the select in a subquery, so joined and
    DISTINCT selects count what they return, without loading any relationship; and it
    is not queried at all when the page itself shows where the results end.

    :param statement: Any ``select()``: of one entity or column (items are entities or
        values) or of several (items are rows). Rows of a join are neither
        de-duplicated nor dropped: a page has ``min(per_page, remaining)`` items. (A
        ``joinedload()`` of a collection is SQLAlchemy's exception: it returns each
        parent once, so a page of a join that repeats parents can be shorter.)
    :param page: The 1-based page number.
    :param per_page: The most items on a page.
    :param count: Count the total (``False``: :attr:`Pagination.total` is ``None``).
        ``"estimate"``: on PostgreSQL, ask the planner instead (one ``EXPLAIN``, which
        reads no rows) and set :attr:`Pagination.estimated_total`, leaving ``total``
        ``None``; elsewhere the estimate is an exact count.
    :raises ValueError: If ``page`` or ``per_page`` is less than 1.
    """
    if page < 1:
        raise ValueError(f"page must be 1 or more, not {page}.")
    if per_page < 1:
        raise ValueError(f"per_page must be 1 or more, not {per_page}.")
    if count == "estimate":
        return _estimated_page(session, statement, page, per_page)
    offset = (page - 1) * per_page
    items: Sequence[Any] = []
    merged = False
    if offset <= MAX_OFFSET:
        items, merged = _fetch_items(session, statement, offset, per_page)
    total: int | None = None
    if count:
        if items and len(items) < per_page and not merged:
            # A page that is not full is the last one: the total is known already.
            total = offset + len(items)
        elif not items and page == 1:
            total = 0
        else:
            total = exact_count(session, statement)
    return Pagination(items=items, page=page, per_page=per_page, total=total)


def _estimated_page(session: Session, statement: Any, page: int, per_page: int) -> Pagination[Any]:
    """Page ``page``, and an estimated total that agrees with it: one more row is
    fetched, so whether a next page exists is known, not estimated.
    """
    offset = (page - 1) * per_page
    items: Sequence[Any] = []
    if offset <= MAX_OFFSET:
        items, _ = _fetch_items(session, statement, offset, per_page + 1)
    seen = offset + min(len(items), per_page)
    if len(items) > per_page:
        items = items[:per_page]
        estimate = max(estimated_count(session, statement), seen + 1)
    elif items or page == 1:
        estimate = seen  # this page is the last: the total is known
    else:  # past the last page: the rows end somewhere before it
        estimate = min(estimated_count(session, statement), offset)
    return Pagination(
        items=items, page=page, per_page=per_page, total=None, estimated_total=estimate
    )


def _fetch_items(
    session: Session, statement: Any, offset: int, limit: int
) -> tuple[Sequence[Any], bool]:
    """This page's items, and whether SQLAlchemy merged repeated rows into fewer items
    (joined eager loading of a collection), in which case a short page proves nothing.
    """
    # No table has more rows than an OFFSET can skip; a larger LIMIT would overflow.
    limited = statement.limit(min(limit, MAX_OFFSET)).offset(offset)
    result = execute_select(session, limited)
    # One entity or column a row: the items are those; several: the rows.
    items = result.scalars().all() if len(result.keys()) == 1 else result.all()
    return items, merges_rows(result)
