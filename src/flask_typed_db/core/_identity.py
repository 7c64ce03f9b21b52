"""Values no row can have, because their column's type cannot hold them.

A view passes on what the URL gave it: ``/books/1abc`` gives ``get_or_404`` the string
``"1abc"``. Sent as it is, no backend answers "no such book": MariaDB coerces it to 1
and returns book 1, PostgreSQL fails to cast it (a ``DataError``, which also aborts the
transaction), SQLite takes ``"1.0"`` for 1. An integer too large for its column is an
error too: PostgreSQL's "integer out of range", sqlite3's ``OverflowError`` beyond 64
bits. So each value is judged against its column's type first. A value the type holds
exactly is converted to what the column takes (``"12"`` to ``12``); a value it cannot
hold names no row, and is answered without sending it.

What each kind of type holds:

- Integers: an ``int`` (never a ``bool``) within the type's range on the backend, or
  a string of ASCII digits with an optional leading ``-``. Nothing else: no float,
  no ``"1.0"``, ``"+1"``, ``" 1"``, ``"1_000"`` or digits of other scripts.
- Strings: a ``str`` that UTF-8 can encode, no longer than the column where the
  backend enforces lengths, and without NUL on PostgreSQL.
- UUIDs: a :class:`uuid.UUID`, or a string spelling one as :class:`uuid.UUID`
  prints it, in either case, with or without hyphens, braces or ``urn:uuid:``.
- Enums: one of the enum's values.
- A :class:`~sqlalchemy.types.TypeDecorator`: what the type it decorates holds, once
  its ``process_bind_param`` made the value; a value that method refuses (``ValueError``
  or ``TypeError``) names no row.

Values of other Python types for strings, UUIDs and enums, and values for columns of
any other type, are passed on unchanged. The models' types are taken as the truth: a
column declared ``Integer`` is judged as an ``INTEGER``, whatever the table holds.
"""

from __future__ import annotations

import enum
import operator
import re
import uuid
from collections.abc import Sequence
from typing import Any
from typing import Final
from typing import Literal
from typing import SupportsIndex
from typing import TypeVar
from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapper
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BinaryExpression
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.elements import BooleanClauseList

from ._session import dialect_of

_Statement = TypeVar("_Statement")


class _NoRow(enum.Enum):
    NO_ROW = "no row"


#: What :func:`value_for` and :func:`identity_for` give for a value no row can have.
NO_ROW: Final = _NoRow.NO_ROW

#: Integers this small are no error for any integer type of any backend (MySQL's
#: one-byte TINYINT compares them without error, and simply matches nothing).
_ALWAYS_FITS = 2**15 - 1

#: Backends whose integer types have fixed sizes we know; others are never second-guessed.
_SIZED_BACKENDS = frozenset({"sqlite", "postgresql", "mysql", "mariadb"})
#: MySQL's own integer types of other sizes, by the name SQLAlchemy gives each.
_MYSQL_INTEGER_BITS = {"TINYINT": 8, "MEDIUMINT": 24}
#: More digits than any integer type of any backend holds (NUMERIC(38) included).
_MAX_DIGITS = 40
#: Backends that refuse a string longer than its VARCHAR; SQLite stores any length.
_LENGTH_CHECKED_BACKENDS = frozenset({"postgresql", "mysql", "mariadb"})

# The spellings uuid.UUID prints; uuid.UUID() itself also takes digits of other
# scripts, underscores and surrounding spaces, which would name a different UUID.
_UUID = re.compile(
    r"(?:urn:uuid:)?(\{)?[0-9a-f]{8}(-?)[0-9a-f]{4}\2[0-9a-f]{4}\2[0-9a-f]{4}\2[0-9a-f]{12}(?(1)\})",
    re.ASCII | re.IGNORECASE,
)


def needs_judging(ident: object) -> bool:
    """Whether ``ident`` may be something its columns cannot hold: anything but a small
    ``int``. The cheap test that keeps ordinary lookups free of the full one.
    """
    return type(ident) is not int or not -_ALWAYS_FITS <= ident <= _ALWAYS_FITS


def identity_for(mapper: Mapper[Any], ident: Any, dialect: Dialect) -> Any:
    """``ident`` as :meth:`Session.get <sqlalchemy.orm.Session.get>` should get it: each
    value (of a tuple, or of a dict by attribute name, for a composite key) judged by
    :func:`value_for` against its primary-key column. :data:`NO_ROW` if one names no row.

    An identity of the wrong shape is returned as it is, for SQLAlchemy to reject.
    """
    columns = mapper.primary_key
    if isinstance(ident, dict):
        judged = dict(cast("dict[str, object]", ident))
        for column in columns:
            key = mapper.get_property_by_column(column).key
            if key in judged:
                value = value_for(column.type, judged[key], dialect)
                if value is NO_ROW:
                    return NO_ROW
                judged[key] = value
        return judged
    composite = isinstance(ident, tuple | list)
    values: Sequence[object] = cast("Sequence[object]", ident) if composite else (ident,)
    if len(values) != len(columns):
        return ident
    judged_values = [
        value_for(column.type, value, dialect)
        for column, value in zip(columns, values, strict=True)
    ]
    if NO_ROW in judged_values:
        return NO_ROW
    return tuple(judged_values) if composite else judged_values[0]


def value_for(
    type_: sa.types.TypeEngine[Any], value: object, dialect: Dialect
) -> object | Literal[_NoRow.NO_ROW]:
    """``value`` as a column of ``type_`` holds it on ``dialect`` (``"12"`` as ``12`` for
    an integer), or :data:`NO_ROW` if no value of such a column can equal it. ``None``
    and values of types not judged here are returned unchanged.
    """
    if value is None:
        return None
    # The type as this backend has it: variants resolved, a decorator's impl loaded.
    impl = type_.dialect_impl(dialect)
    if isinstance(impl, sa.types.TypeDecorator):
        return _decorated_value(impl, value, dialect)
    if isinstance(impl, sa.Integer):
        return _integer_value(impl, value, dialect.name)
    if isinstance(impl, sa.String):  # Enum included
        return _string_value(impl, value, dialect.name)
    if isinstance(impl, sa.Uuid):
        return _uuid_value(impl, value)
    return value


def with_lookups_judged(statement: _Statement, session: Session) -> _Statement:
    """``statement``, with the value of each of its lookups judged by :func:`value_for`.

    A lookup is a top-level condition of the WHERE clause, AND-ed with the others, that
    compares a table column with a bound value: ``column == value`` (either way round)
    or ``column.in_(values)``. A value the column holds is sent as the column holds it
    (``Book.id == "12"`` as ``Book.id == 12``); one it cannot hold is dropped from an IN
    list, and makes ``==`` match nothing, as the database would answer if it could take
    the value. Everything else is left as it is: other comparisons (``<``, ``!=``,
    ``LIKE``), conditions under OR or NOT, named ``bindparam()`` values, subqueries,
    compound selects. The statement still runs, so an aggregate over no rows
    (``count()``) is answered as the database answers it.
    """
    if isinstance(statement, sa.Select):
        return cast("_Statement", _judged_select(cast("sa.Select[Any]", statement), session))
    return statement


def _judged_select(select: sa.Select[Any], session: Session) -> sa.Select[Any]:
    where = select.whereclause
    if where is None:
        return select
    replacements: dict[int, sa.ColumnElement[bool]] = {}
    dialect: Dialect | None = None
    for condition, column, bind in _lookups(where):
        values = cast("Sequence[object]", bind.value) if bind.expanding else (bind.value,)
        if not any(value is not None and needs_judging(value) for value in values):
            continue
        if dialect is None:
            dialect = dialect_of(session, clause=select)
        judged = [value_for(column.type, value, dialect) for value in values]
        if all(new is old for new, old in zip(judged, values, strict=True)):
            continue
        held = [value for value in judged if value is not NO_ROW]
        if bind.expanding:
            replacements[id(condition)] = column.in_(held)
        else:
            replacements[id(condition)] = column == held[0] if held else sa.false()
    if not replacements:
        return select

    def replace(element: object, **kw: Any) -> sa.ColumnElement[bool] | None:
        return replacements.get(id(element))

    return cast("sa.Select[Any]", visitors.replacement_traverse(select, {}, replace))


def _lookups(
    where: sa.ColumnElement[Any],
) -> list[tuple[sa.ColumnElement[Any], sa.Column[Any], BindParameter[Any]]]:
    """The top-level AND-ed ``column == value`` and ``column IN (values)`` of ``where``:
    each condition, its column and its bound value.
    """
    found: list[tuple[sa.ColumnElement[Any], sa.Column[Any], BindParameter[Any]]] = []
    conditions: list[sa.ColumnElement[Any]] = [where]
    while conditions:
        condition = conditions.pop()
        if isinstance(condition, BooleanClauseList) and condition.operator is operators.and_:
            conditions.extend(cast("Sequence[sa.ColumnElement[Any]]", condition.clauses))
            continue
        if not isinstance(condition, BinaryExpression):
            continue
        binary: BinaryExpression[Any] = condition
        left, right = binary.left, binary.right
        if binary.operator is operators.eq and isinstance(left, BindParameter):
            left, right = right, left
        if (
            binary.operator in (operators.eq, operators.in_op)
            and isinstance(left, sa.Column)
            and isinstance(right, BindParameter)
            # An anonymous value of this condition alone, not a named bindparam().
            and right.unique
            and right.callable is None
            and right.expanding is (binary.operator is operators.in_op)
        ):
            found.append((binary, left, right))
    return found


def _decorated_value(
    type_: sa.types.TypeDecorator[Any], value: object, dialect: Dialect
) -> object | Literal[_NoRow.NO_ROW]:
    impl = type_.impl_instance
    if type(type_).process_bind_param is sa.types.TypeDecorator.process_bind_param:  # pyright: ignore[reportUnknownMemberType]  # typed by the class's own type argument
        # The value reaches the decorated type unchanged: judge, and convert, it there.
        return value_for(impl, value, dialect)
    try:
        bound = type_.process_bind_param(value, dialect)
    except (TypeError, ValueError):
        return NO_ROW
    # The decorator converts the value itself each time: send it as it was given.
    return NO_ROW if value_for(impl, bound, dialect) is NO_ROW else value


def _integer_value(type_: sa.Integer, value: object, backend: str) -> object:
    number: int | None
    if type(value) is int:
        number = value
    elif isinstance(value, str):
        number = _parse_integer(value)
    elif isinstance(value, SupportsIndex) and not isinstance(value, bool):
        # An int, an IntEnum, a NumPy integer: anything that is exactly an integer.
        number = operator.index(value)
    else:
        return NO_ROW
    if number is None:
        return NO_ROW
    bounds = _integer_bounds(type_, backend)
    if bounds is not None and not bounds[0] <= number <= bounds[1]:
        return NO_ROW
    return number


def _parse_integer(text: str) -> int | None:
    """``text`` as an integer if it is ASCII digits with an optional ``-``: what every
    backend reads as that integer and nothing else (``int()`` also takes ``"+1"``,
    ``" 1"``, ``"1_0"`` and other scripts' digits).
    """
    negative = text.startswith("-")
    digits = text[1:] if negative else text
    if not (digits.isascii() and digits.isdigit()):
        return None
    significant = digits.lstrip("0")
    if len(significant) > _MAX_DIGITS:
        return None
    number = int(significant or "0")
    return -number if negative else number


def _integer_bounds(type_: sa.Integer, backend: str) -> tuple[int, int] | None:
    if backend not in _SIZED_BACKENDS:
        return None
    if backend == "sqlite" or isinstance(type_, sa.BigInteger):
        # SQLite stores any INTEGER in up to 8 bytes.
        bits = 64
    elif isinstance(type_, sa.SmallInteger):
        bits = 16
    elif backend == "postgresql":
        bits = 32
    else:
        bits = _MYSQL_INTEGER_BITS.get(type_.__visit_name__, 32)
    if getattr(type_, "unsigned", False) is True:
        # MySQL's UNSIGNED types.
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _string_value(type_: sa.String, value: object, backend: str) -> object:
    if not isinstance(value, str):
        return value
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            # A lone surrogate, as JSON can carry: no driver can send it.
            return NO_ROW
    if backend == "postgresql" and "\x00" in value:
        return NO_ROW
    if isinstance(type_, sa.Enum):
        return value if value in type_.enums else NO_ROW  # pyright: ignore[reportUnknownMemberType]  # untyped in SQLAlchemy 2.0.0
    length = type_.length
    if length is not None and len(value) > length and backend in _LENGTH_CHECKED_BACKENDS:
        return NO_ROW
    return value


def _uuid_value(type_: sa.Uuid[Any], value: object) -> object:
    if not isinstance(value, str):
        return value
    if _UUID.fullmatch(value) is None:
        return NO_ROW
    # A column of strings (as_uuid=False) is given the string as it is: stored
    # through the same type, the row's value is spelled as its string was.
    return uuid.UUID(value) if type_.as_uuid else value
