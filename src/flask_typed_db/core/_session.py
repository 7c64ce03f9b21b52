"""A Session that routes each statement to the engine of its tables' bind."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapper
from sqlalchemy.orm import Session
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ClauseElement
from typing_extensions import TypeVar

from ._config import missing_bind_message

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

#: The session class of a :class:`~flask_typed_db.core.DatabaseCore` or
#: :class:`~flask_typed_db.Database`: :class:`RoutingSession` unless given.
S = TypeVar("S", bound="RoutingSession", default="RoutingSession")
#: The async session class of a core or a Database: SQLAlchemy's
#: :class:`~sqlalchemy.ext.asyncio.AsyncSession` unless given. Named here, without
#: importing it: apps that never go async never import ``sqlalchemy.ext.asyncio``.
A = TypeVar("A", bound="AsyncSession", default="AsyncSession")


class RoutingSession(Session):
    """A :class:`~sqlalchemy.orm.Session` that picks the engine from metadata.

    A declarative base declares its bind the way Flask-SQLAlchemy does, without
    importing anything from this package::

        class AuthBase(DeclarativeBase):
            metadata = MetaData(info={"bind_key": "auth"})

    Every ORM entity of that base, and every Core statement on one of its tables, runs
    on the ``"auth"`` engine. Everything else runs on the default engine. Because the
    key is read from the table's metadata at execution time, tables added to a
    metadata after set-up are routed too.

    :param engines: The engine of each bind key; ``None`` is the default bind.
    """

    def __init__(
        self,
        bind: Engine | Connection | None = None,
        *,
        engines: Mapping[str | None, Engine | Connection] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(bind=bind, **kwargs)
        self._engines: Mapping[str | None, Engine | Connection] = engines or {}

    def get_bind(
        self,
        mapper: Any = None,
        *,
        clause: ClauseElement | None = None,
        bind: Engine | Connection | None = None,
        **kwargs: Any,
    ) -> Engine | Connection:
        """Return the engine for ``mapper`` or ``clause``, by the bind key of the
        metadata their tables belong to; fall back to the default engine.
        """
        if bind is None:
            metadata = _metadata_of(mapper, clause)
            if metadata is not None and "bind_key" in metadata.info:
                return self._engine_for(metadata.info["bind_key"])
            if self.bind is None and None in self._engines:
                # An async session's: its default bind is routed like the others.
                return self._engines[None]
        try:
            return super().get_bind(mapper, clause=clause, bind=bind, **kwargs)
        except sa_exc.UnboundExecutionError as error:
            if None in self._engines:
                raise
            raise sa_exc.UnboundExecutionError(
                "There is no default engine for a model or statement without a bind key:"
                " set 'SQLALCHEMY_DATABASE_URI', or give its metadata a bind key."
            ) from error

    def _engine_for(self, key: str | None) -> Engine | Connection:
        try:
            return self._engines[key]
        except KeyError:
            raise sa_exc.UnboundExecutionError(missing_bind_message(key)) from None


def session_class_of(
    session_class: type[RoutingSession] | None, session_options: dict[str, Any]
) -> type[RoutingSession]:
    """The class to make sessions of: ``session_class``, or Flask-SQLAlchemy's spelling
    of it, ``session_options["class_"]`` (taken out of the options), or
    :class:`RoutingSession`.

    :raises TypeError: If both are given, or the class does not route models to their
        binds.
    """
    from_options: object = session_options.pop("class_", None)
    if session_class is not None and from_options is not None:
        raise TypeError(
            "The session class is given twice: pass it as 'session_class=' only, not also"
            " as session_options['class_']."
        )
    chosen = session_class or from_options or RoutingSession
    if not (isinstance(chosen, type) and issubclass(chosen, RoutingSession)):
        where = "session_class" if session_class is not None else "session_options['class_']"
        raise TypeError(
            f"{where} must be a subclass of flask_typed_db.core.RoutingSession, which"
            " routes models to their binds."
        )
    return chosen


def close_or_invalidate(session: Session) -> Exception | None:
    """Close ``session``, or, if closing fails, invalidate its connections, so that none
    is left checked out in its transaction (idle in transaction on the server, holding
    its locks) for as long as something keeps the session or the error. Return the
    error closing raised, for the caller to report.
    """
    # Taken first: a close that fails half-way has already detached the transaction
    # from the session, and session.invalidate() would find nothing to invalidate.
    transaction = session.get_transaction()
    try:
        session.close()
    except Exception as error:
        if transaction is not None:
            try:
                transaction.close(invalidate=True)
            except Exception as second:
                # Each connection is invalidated before anything else that can fail
                # here (a rollback listener again): the connections are gone anyway.
                error.add_note(f"Invalidating the session's connections then failed: {second!r}")
        return error
    return None


def _metadata_of(mapper: Any, clause: ClauseElement | None) -> sa.MetaData | None:
    insp: Any = mapper
    if mapper is not None and not isinstance(mapper, Mapper):
        # The Session passes a Mapper; inspect() is for anything else it may pass.
        insp = sa.inspect(mapper, raiseerr=False)
    if isinstance(insp, Mapper):
        table = insp.local_table
        if isinstance(table, sa.Table):
            return table.metadata
        return insp.registry.metadata
    if clause is not None:
        for element in visitors.iterate(clause):
            if isinstance(element, sa.Table) and "bind_key" in element.metadata.info:
                return element.metadata
    return None
