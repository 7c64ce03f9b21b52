"""Primary-key values that no row can have, because the column's type cannot hold them.

A URL like ``/books/99999999999`` gives ``get_or_404`` an integer its column cannot store.
Sent anyway, it is an error on some backends, not an empty result: PostgreSQL's "integer
out of range" (which also aborts the transaction), sqlite3's ``OverflowError`` beyond
64 bits. Such a value names no row, so it is answered without a query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from typing import TypeGuard
from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapper

#: Values this small fit every integer type of every backend: no need to look closer.
_ALWAYS_FITS = 2**15 - 1

#: Backends whose integer types have fixed sizes we know; others are never second-guessed.
_SIZED_BACKENDS = frozenset({"sqlite", "postgresql", "mysql", "mariadb"})


def identity_fits(mapper: Mapper[Any], ident: object, dialect: Dialect) -> bool:
    """Whether each integer in ``ident`` (as :meth:`Session.get
    <sqlalchemy.orm.Session.get>` takes it: a value, a tuple, or a dict by attribute
    name) fits its primary-key column's type on ``dialect``.
    """
    columns = mapper.primary_key
    if isinstance(ident, dict):
        by_key = cast("dict[object, object]", ident)
        values = [by_key.get(mapper.get_property_by_column(column).key) for column in columns]
    else:
        values = _values(ident)
    for column, value in zip(columns, values, strict=False):
        if not _is_large_int(value):
            continue
        bounds = _integer_bounds(column.type, dialect.name)
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            return False
    return True


def needs_check(ident: object) -> bool:
    """Whether ``ident`` holds an integer too large to be sure it fits, without looking
    at the column: the cheap test that keeps ordinary lookups free of the full one.
    """
    if type(ident) is int:  # the usual case, without the general one's cost
        return not -_ALWAYS_FITS <= ident <= _ALWAYS_FITS
    return any(_is_large_int(value) for value in _values(ident))


def _values(ident: object) -> list[object]:
    if isinstance(ident, dict):
        return list(cast("dict[object, object]", ident).values())
    if isinstance(ident, tuple | list):
        return list(cast("Sequence[object]", ident))
    return [ident]


def _is_large_int(value: object) -> TypeGuard[int]:
    return type(value) is int and not -_ALWAYS_FITS <= value <= _ALWAYS_FITS


def _integer_bounds(type_: sa.types.TypeEngine[Any], backend: str) -> tuple[int, int] | None:
    if isinstance(type_, sa.types.TypeDecorator):
        type_ = type_.impl_instance  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]  # TypeDecorator is generic in what it wraps
    if not isinstance(type_, sa.Integer) or backend not in _SIZED_BACKENDS:
        return None
    if backend == "sqlite" or isinstance(type_, sa.BigInteger):
        # SQLite stores any INTEGER in up to 8 bytes.
        bits = 64
    elif isinstance(type_, sa.SmallInteger):
        bits = 16
    else:
        bits = 32
    if getattr(type_, "unsigned", False) is True:
        # MySQL's UNSIGNED types.
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
