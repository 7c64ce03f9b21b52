"""Typing shared by the helpers that run a statement: what one row of it is.

A statement of one entity or column gives that entity or value per row; one of several
gives a :class:`~sqlalchemy.engine.Row`. The helpers take what
:meth:`Session.execute <sqlalchemy.orm.Session.execute>` types by its rows
(:class:`TypedReturnsRows`: a ``select()``, a ``union_all()`` on 2.1, an INSERT or
UPDATE with ``returning()``) and, with rows of type ``Any``, any other statement that
returns rows (:class:`ExecutableReturnsRows` or :class:`SelectBase`: ``from_statement()``,
``text().columns()``, a ``union_all()`` on 2.0), as SQLAlchemy types those too.

SQLAlchemy spells the statement's type differently in 2.0 (``Select[tuple[User]]``,
``Select[tuple[int, str]]``) and 2.1 (``Select[User]``, ``Select[int, str]``), so each
helper has four overloads for typed statements: the 2.0 forms first, then the 2.1
forms. On 2.0 every typed statement matches a 2.0 form, and the 2.1 forms, which 2.0
rejects as malformed, are never reached; on 2.1 a statement matches a 2.0 form only if
its single column is itself a tuple. The ``type: ignore`` comments on those overloads
name exactly the errors one version or the other reports.

A statement whose number of columns the type checker cannot know, such as
``select(*columns)`` or ``select(User).add_columns(...)`` (``Select[Any]`` on 2.0,
``Select[*tuple[Any, ...]]`` on 2.1), gives ``Any``: its row is one value when it has
one column and a ``Row`` otherwise, which only the run can tell; type checkers
answer ``Any`` for a call that more than one overload matches through ``Any``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any
from typing import TypeGuard
from typing import TypeVar
from typing import TypeVarTuple

import sqlalchemy as sa
from sqlalchemy import Executable
from sqlalchemy.engine import Result
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.selectable import ExecutableReturnsRows
from sqlalchemy.sql.selectable import SelectBase
from sqlalchemy.sql.selectable import SelectStatementGrouping
from sqlalchemy.sql.selectable import TypedReturnsRows

__all__ = [
    "T1",
    "T2",
    "ExecutableReturnsRows",
    "SelectBase",
    "Ts",
    "TypedReturnsRows",
    "execute_select",
]

T1 = TypeVar("T1")
T2 = TypeVar("T2")
Ts = TypeVarTuple("Ts")


def execute_select(session: Session, statement: Executable) -> Result[Any]:
    """Execute ``statement``, so that its rows are what its type says they are, with
    ``unique()`` applied only where SQLAlchemy needs it.

    SQLAlchemy types ``union_all(select(User), ...)`` as rows of ``User``, but returns
    the users' columns; the ORM loads entities from a union when it is given as
    ``select(User).from_statement(union)``, so it is run that way. An INSERT, UPDATE
    or DELETE without RETURNING returns no rows, and is refused before it runs.

    SQLAlchemy refuses to return joined eager loads of collections without
    ``unique()``; it applies any LIMIT to the parent rows in a subquery first, so
    uniquing those parents is exact. Every other result is returned row for row,
    duplicates included: a join's rows are never silently merged.
    """
    if not _is_select(statement):
        statement = _returning_rows(statement)
    result = session.execute(statement)
    return result.unique() if merges_rows(result) else result


def _returning_rows(statement: Executable) -> Executable:
    if isinstance(statement, UpdateBase) and not statement.exported_columns:
        raise TypeError(
            f"This {type(statement).__name__} returns no rows, so there is no row to"
            " return or 404 for: add '.returning(...)' to it, or run it with"
            " 'db.session.execute()'."
        )
    if not _is_compound(statement):
        return statement
    # A union's columns are those of its first select, however deeply nested.
    first: object = statement
    while True:
        if _is_compound(first):
            first = first.selects[0]
        elif _is_grouping(first):
            first = first.element
        else:
            break
    if not _is_select(first):
        return statement
    descriptions = first.column_descriptions
    if not any(description["expr"] is description["entity"] for description in descriptions):
        return statement
    entities = (description["expr"] for description in descriptions)
    return sa.select(*entities).from_statement(statement)


# Narrowed by isinstance(), these generic classes would have unknown type arguments.


def _is_select(statement: object) -> TypeGuard[sa.Select[Any]]:
    return isinstance(statement, sa.Select)


def _is_compound(statement: object) -> TypeGuard[_Compound]:
    return isinstance(statement, sa.CompoundSelect)


def _is_grouping(statement: object) -> TypeGuard[SelectStatementGrouping[Any]]:
    return isinstance(statement, SelectStatementGrouping)


if TYPE_CHECKING:

    class _Compound(ExecutableReturnsRows):
        """A :class:`~sqlalchemy.sql.expression.CompoundSelect` of any columns, which
        only 2.1 lets us spell ``CompoundSelect[Any]``: SQLAlchemy 2.0 does not make
        it generic.
        """

        selects: list[SelectBase]


def merges_rows(result: Result[Any]) -> bool:
    """Whether ``result`` merges repeated rows, as SQLAlchemy's ORM sets up (before
    ``unique()`` is called, by demanding it) for joined eager loads of collections.
    """
    return getattr(result, "_unique_filter_state", None) is not None
