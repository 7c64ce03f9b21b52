"""JSON for mapped instances, pages and rows, built from what is loaded, never by a query.

:func:`json_default` is a ``default`` for :func:`json.dumps`, so a worker serializes
exactly as the Flask provider does: ``json.dumps(book, default=json_default)``.
"""

from __future__ import annotations

import base64
import enum
import uuid
from collections.abc import Sequence
from datetime import date
from datetime import time
from decimal import Decimal
from typing import Any
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import ColumnProperty
from sqlalchemy.orm import InstanceState
from sqlalchemy.orm import MapperProperty
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.orm.collections import collection_adapter

from ._pagination import Pagination

#: The key that keeps a column or relationship out of JSON, set in its ``info``:
#: ``mapped_column(info={"private": True})``, ``relationship(..., info={"private": True})``.
PRIVATE_INFO_KEY: Final = "private"

#: Relationship strategies whose attribute is a query to run, never loaded data.
_QUERY_STRATEGIES = frozenset({"dynamic", "write_only"})

#: The instances on the way from the top-level instance to the current one.
_Path = frozenset[InstanceState[Any]]


def json_default(value: object) -> object:
    """Return what :func:`json.dumps` should write for ``value``, a type it does not know.

    Pass it as ``default``: ``json.dumps(book, default=json_default)``. Like any
    ``default``, it returns data that :mod:`json` encodes in turn, handing back to
    ``default`` whatever it contains that JSON has no type for; so a function of your
    own can handle other types first and then call this one.

    - A mapped instance becomes an object of its loaded column attributes, by
      attribute key, and its loaded relationships, converted the same way. Nothing is
      loaded for it: an unloaded (deferred, lazy) attribute is left out, so no SQL is
      ever emitted. An instance already on the path from the top one is left out where
      it appears again (a many-to-one back to it, or a collection's member), which cuts
      cycles; the same instance in two branches appears in both. A column or
      relationship whose ``info`` has ``"private": True`` is never written.
    - A :class:`Pagination` becomes ``{"items", "page", "per_page", "total", "pages",
      "has_prev", "has_next", "prev_num", "next_num"}``, and ``"estimated_total"`` for a
      page counted with ``count="estimate"``.
    - A :class:`~sqlalchemy.engine.Row` or :class:`~sqlalchemy.engine.RowMapping`
      becomes an object of its labels.
    - ``datetime``, ``date`` and ``time`` become ISO 8601 strings (``isoformat()``);
      ``Decimal`` and ``UUID`` strings (exact); an ``Enum`` member its ``value``; bytes
      standard base64.

    :raises ValueError: If an instance has expired attributes (after ``commit()`` or
        ``session.expire()``): they could only be written by a query per instance.
        The message names the fixes.
    :raises TypeError: For any other type, as :mod:`json` expects.
    """
    # datetime is a date: one check covers all three.
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    return _sqlalchemy_json(value)


def _sqlalchemy_json(value: object) -> dict[str, object]:
    """The JSON object of a row, a page or a mapped instance."""
    if isinstance(value, Row):
        return value._asdict()  # pyright: ignore[reportPrivateUsage]  # public, named as namedtuple's
    if isinstance(value, RowMapping):
        return dict(value)
    if isinstance(value, Pagination):
        return _page_json(value)  # pyright: ignore[reportUnknownArgumentType]  # any item type
    if isinstance(sa.inspect(value, raiseerr=False), InstanceState):
        return _instance_json(instance_state(value), frozenset())
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _page_json(page: Pagination[object]) -> dict[str, object]:
    written: dict[str, object] = {
        "items": list(page.items),
        "page": page.page,
        "per_page": page.per_page,
        "total": page.total,
        "pages": page.pages,
        "has_prev": page.has_prev,
        "has_next": page.has_next,
        "prev_num": page.prev_num,
        "next_num": page.next_num,
    }
    if page.estimated_total is not None:
        # Only for count="estimate": a client sees the guess named as one.
        written["estimated_total"] = page.estimated_total
    return written


def _instance_json(state: InstanceState[Any], path: _Path) -> dict[str, object]:
    """The loaded, public attributes of one instance, read from its ``__dict__`` only:
    reading them through the instance could load them.
    """
    loaded = state.dict
    mapper = state.mapper
    keys = [prop.key for prop in mapper.column_attrs if not _is_private(prop)]
    _refuse_expired(state, keys)
    data: dict[str, object] = {key: loaded[key] for key in keys if key in loaded}
    path = path | {state}
    for prop in mapper.relationships:
        if prop.key not in loaded or prop.lazy in _QUERY_STRATEGIES or _is_private(prop):
            continue
        value = loaded[prop.key]
        if prop.uselist:
            # Through the collection's adapter: a dict collection yields its values.
            data[prop.key] = [
                _instance_json(member, path)
                for member in map(instance_state, collection_adapter(value))
                if member not in path
            ]
        elif value is None:
            data[prop.key] = None
        elif (related := instance_state(value)) not in path:
            data[prop.key] = _instance_json(related, path)
    return data


def _is_private(prop: MapperProperty[Any]) -> bool:
    """Whether ``info`` marks the attribute private, on the property
    (``relationship()``, ``column_property()``) or on a column it maps (``mapped_column()``).
    """
    if prop.info.get(PRIVATE_INFO_KEY):
        return True
    if isinstance(prop, ColumnProperty):
        # A SQL expression (column_property(select(...))) has no info of its own.
        return any(
            isinstance(column, sa.Column) and column.info.get(PRIVATE_INFO_KEY)
            for column in prop.columns
        )
    return False


def _refuse_expired(state: InstanceState[Any], keys: Sequence[str]) -> None:
    """Raise if an attribute to be written is expired: reading it would refresh the
    instance with a query, and leaving it out would write a partial object.

    Deferred columns and query expressions stay in ``expired_attributes`` after a
    refresh, yet are never reloaded with it; SQLAlchemy's own test for what an access
    would refresh is the attribute's ``accepts_scalar_loader`` and ``load_on_unexpire``.
    """
    expired = [
        key
        for key in keys
        if key in state.expired_attributes
        and key not in state.dict
        and state.manager[key].impl.accepts_scalar_loader
        and state.manager[key].impl.load_on_unexpire
    ]
    if not expired:
        return
    name = state.class_.__name__
    what = f"a new {name}" if state.identity is None else f"{name} {state.identity!r}"
    names = ", ".join(repr(key) for key in sorted(expired))
    raise ValueError(
        f"Cannot serialize {what}: its attributes {names} are expired and can only be read"
        " with a query (commit() expires every attribute, flush() those the database"
        " computes, session.expire() those it names). Serialize it before commit(), call"
        " session.refresh() on it first, or make the sessions with"
        " session_options={'expire_on_commit': False}."
    )
