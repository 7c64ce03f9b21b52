"""A Session that routes each statement to the engine of its tables' bind."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapper
from sqlalchemy.orm import Session
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.selectable import GenerativeSelect
from typing_extensions import TypeVar

from ._config import missing_bind_message
from ._replicas import Replicas
from ._replicas import only_reads
from ._replicas import primary_forced

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
        replicas: Mapping[str | None, Replicas] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(bind=bind, **kwargs)
        self._engines: Mapping[str | None, Engine | Connection] = engines or {}
        self._replicas: Mapping[str | None, Replicas] = replicas or {}
        #: Whether this session sends everything to the primaries, for the rest of its
        #: life: it wrote, locked, or was told to (:meth:`use_primary`).
        self.on_primary: bool = False
        #: Whether this session has committed a write (set by the commit, when replicas
        #: are configured): for read-your-writes beyond it.
        self.committed_write: bool = False
        #: Called once, after the first commit of this session that wrote, when
        #: replicas are configured: the Flask adapter sets it to give the client reads
        #: from the primaries for a while.
        self.on_write_committed: Callable[[], object] | None = None
        self._wrote = False
        self._replica_of: dict[str | None, Engine | None] = {}

    def use_primary(self) -> None:
        """Send every later statement of this session to the primaries, as after a
        write. The Flask adapter calls it for requests that may change data.
        """
        self.on_primary = True

    def get_bind(
        self,
        mapper: Any = None,
        *,
        clause: ClauseElement | None = None,
        bind: Engine | Connection | None = None,
        **kwargs: Any,
    ) -> Engine | Connection:
        """Return the engine for ``mapper`` or ``clause``, by the bind key of the
        metadata their tables belong to; fall back to the default engine. With read
        replicas configured, a statement that only reads may get a replica's engine
        instead, by the rule of :doc:`/scaling`.
        """
        if bind is not None:
            return self._default_bind(mapper, clause=clause, bind=bind, **kwargs)
        key, primary = self._primary_and_key(mapper, clause, **kwargs)
        if not self._replicas:
            return primary
        replicas = self._replicas.get(key)
        if replicas is None:
            return primary
        if not only_reads(clause):
            # A write, a lock, or what may be either: here, and from now on.
            self.on_primary = True
            if not isinstance(clause, GenerativeSelect):
                self._wrote = True
            return primary
        if self.on_primary or primary_forced():
            return primary
        return self._replica(key, replicas) or primary

    def primary_bind(
        self, mapper: Any = None, *, clause: ClauseElement | None = None
    ) -> Engine | Connection:
        """The primary's engine for ``mapper`` or ``clause``, as :meth:`get_bind` routes
        them without replicas, and without any effect on later statements: for reading
        the dialect, say.
        """
        return self._primary_and_key(mapper, clause)[1]

    def _primary_and_key(
        self, mapper: Any, clause: ClauseElement | None, **kwargs: Any
    ) -> tuple[str | None, Engine | Connection]:
        metadata = _metadata_of(mapper, clause)
        if metadata is not None and "bind_key" in metadata.info:
            key: str | None = metadata.info["bind_key"]
            return key, self._engine_for(key)
        if self.bind is None and None in self._engines:
            # An async session's: its default bind is routed like the others.
            return None, self._engines[None]
        return None, self._default_bind(mapper, clause=clause, bind=None, **kwargs)

    def _default_bind(
        self,
        mapper: Any,
        *,
        clause: ClauseElement | None,
        bind: Engine | Connection | None,
        **kwargs: Any,
    ) -> Engine | Connection:
        try:
            return super().get_bind(mapper, clause=clause, bind=bind, **kwargs)
        except sa_exc.UnboundExecutionError as error:
            if None in self._engines:
                raise
            raise sa_exc.UnboundExecutionError(
                "There is no default engine for a model or statement without a bind key:"
                " set 'SQLALCHEMY_DATABASE_URI', or give its metadata a bind key."
            ) from error

    def _replica(self, key: str | None, replicas: Replicas) -> Engine | None:
        """This session's replica of the bind ``key``, connected in its transaction, or
        ``None`` if none can be reached. A replica that cannot is skipped for a while.
        """
        chosen = self._replica_of.get(key, _UNCHOSEN)
        candidates = (chosen,) if chosen is not _UNCHOSEN else replicas.in_turn()
        for engine in candidates:
            if engine is None:
                return None
            try:
                # Connected here, where a refusal can still be routed around: the
                # session's transaction keeps the connection for the statement.
                self.connection(bind_arguments={"bind": engine})
            except sa_exc.DBAPIError as error:
                replicas.mark_down(engine, error)
                continue
            replicas.mark_up(engine)
            self._replica_of[key] = engine
            return engine
        # None is up: this session reads from the primary.
        self._replica_of[key] = None
        return None

    def _engine_for(self, key: str | None) -> Engine | Connection:
        try:
            return self._engines[key]
        except KeyError:
            raise sa_exc.UnboundExecutionError(missing_bind_message(key)) from None


#: No replica picked yet for a bind (None: none could be reached).
_UNCHOSEN: Any = object()


def _note_committed_write(session: Session) -> None:
    if isinstance(session, RoutingSession) and session._wrote:  # pyright: ignore[reportPrivateUsage]  # this module's own class
        session.committed_write = True
        session._wrote = False  # pyright: ignore[reportPrivateUsage]  # this module's own class
        callback, session.on_write_committed = session.on_write_committed, None
        if callback is not None:
            callback()


event.listen(RoutingSession, "after_commit", _note_committed_write)


def dialect_of(
    session: Session, mapper: Any = None, clause: ClauseElement | None = None
) -> Dialect:
    """The dialect ``mapper`` or ``clause`` runs on in ``session``, found without
    sending the session's later statements to the primary, as ``get_bind()`` would.
    """
    if isinstance(session, RoutingSession):
        return session.primary_bind(mapper, clause=clause).dialect
    return session.get_bind(mapper, clause=clause).dialect


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
