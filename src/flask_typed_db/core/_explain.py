"""``EXPLAIN`` of a select, as a statement SQLAlchemy can run and route."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles  # pyright: ignore[reportUnknownVariableType]  # untyped in SQLAlchemy 2.0.0
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal


class Explain(Executable, ClauseElement):
    """``EXPLAIN (FORMAT JSON)`` of a select: the plan, without running the select.

    A statement of its own, so that its bound parameters are the select's, passed to
    the driver as the select's would be; cached like the select.
    """

    inherit_cache = True
    # SQLAlchemy declares it as an instance variable; ClassVar would contradict it.
    _traverse_internals: list[tuple[str, InternalTraversal]] = [  # noqa: RUF012
        ("statement", InternalTraversal.dp_clauseelement)
    ]

    def __init__(self, statement: sa.Select[Any]) -> None:
        self.statement = statement


@compiles(Explain, "postgresql")  # type: ignore[no-untyped-call, untyped-decorator, unused-ignore]  # pyright: ignore[reportUntypedFunctionDecorator]  # untyped in SQLAlchemy 2.0.0
def _explain_on_postgresql(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    # Compiled below a statement of its own, as an INSERT compiles its SELECT: the
    # select's columns are then not taken for the result's, which is the plan.
    compiler.stack.append(
        {"correlate_froms": set(), "asfrom_froms": set(), "selectable": element.statement}
    )
    try:
        return "EXPLAIN (FORMAT JSON) " + compiler.process(element.statement, **kw)
    finally:
        compiler.stack.pop()
