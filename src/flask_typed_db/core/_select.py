"""Typing shared by the helpers that run a select(): what one row of it is.

A select of one entity or column gives that entity or value per row; a select of
several gives a :class:`~sqlalchemy.engine.Row`. SQLAlchemy spells the statement's
type differently in 2.0 (``Select[tuple[User]]``, ``Select[tuple[int, str]]``) and
2.1 (``Select[User]``, ``Select[int, str]``), so each helper has four overloads: the
2.0 forms first, then the 2.1 forms. On 2.0 every select matches a 2.0 form, and the
2.1 forms, which 2.0 rejects as malformed, are never reached; on 2.1 a select matches
a 2.0 form only if its single column is itself a tuple. The ``type: ignore`` comments
on those overloads name exactly the errors one version or the other reports.
"""

from __future__ import annotations

from typing import Any
from typing import ClassVar
from typing import Protocol
from typing import TypeVar
from typing import TypeVarTuple

import sqlalchemy as sa
from sqlalchemy.engine import Result
from sqlalchemy.orm import Mapper
from sqlalchemy.orm import Session

T1 = TypeVar("T1")
T2 = TypeVar("T2")
Ts = TypeVarTuple("Ts")


class MappedClass(Protocol):
    """What type checkers know of a mapped class: its declarative base declares
    ``__mapper__``. Rejects a plain class where an entity is expected.
    """

    __mapper__: ClassVar[Mapper[Any]]


def execute_select(session: Session, statement: sa.Select[Any]) -> Result[Any]:
    """Execute ``statement``, with ``unique()`` applied only where SQLAlchemy needs it.

    SQLAlchemy refuses to return joined eager loads of collections without
    ``unique()``; it applies any LIMIT to the parent rows in a subquery first, so
    uniquing those parents is exact. Every other result is returned row for row,
    duplicates included: a join's rows are never silently merged.
    """
    result = session.execute(statement)
    return result.unique() if merges_rows(result) else result


def merges_rows(result: Result[Any]) -> bool:
    """Whether ``result`` merges repeated rows, as SQLAlchemy's ORM sets up (before
    ``unique()`` is called, by demanding it) for joined eager loads of collections.
    """
    return getattr(result, "_unique_filter_state", None) is not None
