"""Engines, metadata and a sessionmaker, built once from configuration."""

from __future__ import annotations

import os
import threading
from collections.abc import Generator
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from contextlib import AbstractContextManager
from contextlib import contextmanager
from types import MappingProxyType
from types import TracebackType
from typing import TYPE_CHECKING
from typing import Any
from typing import Generic
from typing import Literal
from typing import Self
from typing import TypeAlias
from typing import cast
from typing import overload

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import DeclarativeBaseNoMeta
from sqlalchemy.orm import sessionmaker as _sessionmaker

from ._config import describe_bind
from ._config import missing_bind_message
from ._config import read_config
from ._engine import create_engine
from ._health import HealthChecker
from ._health import HealthReport
from ._isolation import isolated
from ._recording import RecordedQuery
from ._recording import recording
from ._replicas import PrimaryBlock
from ._replicas import Replicas
from ._session import A
from ._session import RoutingSession
from ._session import S
from ._session import session_class_of

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from ._async import AsyncParts

#: A declarative base whose ``metadata.info["bind_key"]`` names its bind.
ModelBase: TypeAlias = type[DeclarativeBase] | type[DeclarativeBaseNoMeta]

#: What ``create_all`` and ``drop_all`` take: ``"__all__"``, one key (``None`` is the
#: default bind), or several keys.
BindKeys: TypeAlias = Literal["__all__"] | str | Iterable[str | None] | None


def metadatas_of(bases: Iterable[ModelBase]) -> Mapping[str | None, tuple[sa.MetaData, ...]]:
    """Map each bind key to the metadata of every base that declares it, in the order
    of the bases, each metadata once.

    Several bases may share a bind: a library's models on the app's database, or two
    bases with different naming conventions.
    """
    metadatas: dict[str | None, tuple[sa.MetaData, ...]] = {}
    for base in bases:
        metadata = base.metadata
        key: object = metadata.info.get("bind_key")
        if key is not None and not isinstance(key, str):
            raise TypeError(
                f"{base.__name__}.metadata.info['bind_key'] must be a string or None, not {key!r}."
            )
        known = metadatas.get(key, ())
        if metadata not in known:
            metadatas[key] = (*known, metadata)
    return MetadatasByBind(metadatas)


def _undeclared(key: str | None) -> KeyError:
    # KeyError shows its message as a repr: no single quotes to escape in it.
    name = f'"{key}"'
    return KeyError(
        f"No model base declares the bind key {name}, so it has no metadata: give"
        f' a base metadata = MetaData(info={{"bind_key": {name}}}) and pass it to'
        " Database or DatabaseCore."
    )


class MetadatasByBind(Mapping[str | None, tuple[sa.MetaData, ...]]):
    """Every metadata of each bind key, read-only. A key no base declares raises a
    ``KeyError`` that says so and how to declare it.
    """

    def __init__(self, metadatas: Mapping[str | None, tuple[sa.MetaData, ...]]) -> None:
        self._metadatas = dict(metadatas)

    def __getitem__(self, key: str | None) -> tuple[sa.MetaData, ...]:
        try:
            return self._metadatas[key]
        except KeyError:
            raise _undeclared(key) from None

    def __iter__(self) -> Iterator[str | None]:
        return iter(self._metadatas)

    def __len__(self) -> int:
        return len(self._metadatas)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._metadatas!r})"


class BindMetadatas(Mapping[str | None, sa.MetaData]):
    """The metadata of each bind key, read-only. A key no base declares raises a
    ``KeyError`` that says so and how to declare it: Flask-Migrate's multi-database
    template asks for every key in ``SQLALCHEMY_BINDS``. A key of several bases with
    different metadata raises a ``RuntimeError`` that points to ``metadatas_by_bind``.
    """

    def __init__(self, metadatas: Mapping[str | None, tuple[sa.MetaData, ...]]) -> None:
        self._metadatas = MetadatasByBind(metadatas)

    def __getitem__(self, key: str | None) -> sa.MetaData:
        metadatas = self._metadatas[key]
        if len(metadatas) == 1:
            return metadatas[0]
        # A RuntimeError: Flask-Migrate shows its message, without a traceback.
        name = "None" if key is None else f'"{key}"'
        which = f"'metadatas[{name}]'"
        if key is None:
            which = f"'metadata' and {which}"
        raise RuntimeError(
            f"The bind key {key!r} has {len(metadatas)} MetaData objects, one for each of"
            f" its bases: {which} cannot pick one. Use 'metadatas_by_bind[{name}]', a"
            " tuple of them all, which Alembic takes as its target_metadata; with"
            " Flask-Migrate, have get_metadata() in migrations/env.py return it."
        )

    def __contains__(self, key: object) -> bool:
        return key in self._metadatas

    def __iter__(self) -> Iterator[str | None]:
        return iter(self._metadatas)

    def __len__(self) -> int:
        return len(self._metadatas)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self._metadatas)!r})"


def default_metadata(metadatas: Mapping[str | None, sa.MetaData]) -> sa.MetaData:
    """The metadata of the default bind, or an error saying how to reach the others."""
    try:
        return metadatas[None]
    except KeyError:
        if not metadatas:
            raise RuntimeError(
                "No model base was given, so there is no metadata: pass your models'"
                " declarative base, Database(Base) or DatabaseCore(config, Base)."
            ) from None
        raise RuntimeError(
            "No model base uses the default bind; use 'metadatas[key]' for a bind key."
        ) from None


class DatabaseCore(Generic[S, A]):
    """Everything a process needs to talk to its databases, without Flask.

    Built from the same ``SQLALCHEMY_*`` keys as the Flask extension, so a worker or a
    script gets exactly the engines and sessions the web app gets::

        core = DatabaseCore(settings, Base, AuthBase, root_path=INSTANCE_PATH)
        with core.transaction() as session:
            session.add(Report(...))

    One engine is made per bind, here and only here; dispose of them with
    :meth:`dispose` (or use the object as a context manager) when the process is done.

    :param config: A mapping with Flask-SQLAlchemy 3.1's keys:
        ``SQLALCHEMY_DATABASE_URI``, ``SQLALCHEMY_BINDS``,
        ``SQLALCHEMY_ENGINE_OPTIONS``, ``SQLALCHEMY_ECHO``.
    :param bases: The declarative bases of the models. Each base's
        ``metadata.info["bind_key"]`` (absent: the default bind) picks its engine.
    :param session_class: The class of the sessions, a subclass of
        :class:`RoutingSession`; it is part of the type (``core.transaction()`` yields
        one), and session events listened for on it apply to every session made of it.
    :param async_session_class: The class of the async sessions, a subclass of
        :class:`~sqlalchemy.ext.asyncio.AsyncSession`; it is part of the type
        (``core.async_transaction()`` yields one). Their sync sessions are of
        ``session_class``, so session events listened for on it apply to both.
    :param root_path: The absolute path of the directory relative SQLite paths are
        resolved against, as a Flask app's instance folder; made when a database in it
        is first connected to. ``None`` leaves them relative to the working directory.
    :param engine_options: Defaults for every engine, below the config's options.
    :param session_options: Arguments for the :class:`~sqlalchemy.orm.sessionmaker`.
    :raises RuntimeError: If the config has no database URL, or a base's bind key has
        none. The message names the config key to set.
    """

    @overload
    def __init__(
        self: DatabaseCore[RoutingSession, AsyncSession],
        config: Mapping[str, Any],
        *bases: ModelBase,
        root_path: str | os.PathLike[str] | None = None,
        engine_options: Mapping[str, Any] | None = None,
        session_options: Mapping[str, Any] | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self,
        config: Mapping[str, Any],
        *bases: ModelBase,
        session_class: type[S],
        root_path: str | os.PathLike[str] | None = None,
        engine_options: Mapping[str, Any] | None = None,
        session_options: Mapping[str, Any] | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self,
        config: Mapping[str, Any],
        *bases: ModelBase,
        async_session_class: type[A],
        root_path: str | os.PathLike[str] | None = None,
        engine_options: Mapping[str, Any] | None = None,
        session_options: Mapping[str, Any] | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self,
        config: Mapping[str, Any],
        *bases: ModelBase,
        session_class: type[S],
        async_session_class: type[A],
        root_path: str | os.PathLike[str] | None = None,
        engine_options: Mapping[str, Any] | None = None,
        session_options: Mapping[str, Any] | None = None,
    ) -> None: ...
    def __init__(
        self,
        config: Mapping[str, Any],
        *bases: ModelBase,
        session_class: type[RoutingSession] | None = None,
        async_session_class: type[AsyncSession] | None = None,
        root_path: str | os.PathLike[str] | None = None,
        engine_options: Mapping[str, Any] | None = None,
        session_options: Mapping[str, Any] | None = None,
    ) -> None:
        #: Every metadata of each bind key, in the order of the bases. Read-only.
        self.metadatas_by_bind: Mapping[str | None, tuple[sa.MetaData, ...]] = metadatas_of(bases)
        #: The metadata of each bind key with one. Read-only.
        self.metadatas: Mapping[str | None, sa.MetaData] = BindMetadatas(self.metadatas_by_bind)
        if root_path is not None and not os.path.isabs(root_path):
            raise ValueError(
                "root_path must be an absolute path, as Flask's instance_path is: a"
                " relative one would name another SQLite file from each working"
                " directory. Resolve it from your package, for example"
                " Path(__file__).resolve().parent / 'instance'."
            )
        specs = read_config(config, engine_options)
        for key in self.metadatas:
            if key not in specs:
                raise RuntimeError(
                    f"A model base declares the bind key {key!r}, so {describe_bind(key)}"
                    " must be set to that database's URL."
                )
        session_options = dict(session_options or {})
        #: The class of the sessions made here: events listened for on it apply to
        #: every one of them. (S is the class given, by the overloads above.)
        self.session_class: type[S] = cast(
            "type[S]", session_class_of(session_class, session_options)
        )

        engines = {key: create_engine(spec, root_path) for key, spec in specs.items()}
        #: The engine of each bind, the default bind under ``None``. Read-only.
        self.engines: Mapping[str | None, sa.Engine] = MappingProxyType(engines)
        #: The engines of each bind's read replicas (``SQLALCHEMY_REPLICAS``), for the
        #: binds that have any. Read-only.
        self.replica_engines: Mapping[str | None, tuple[sa.Engine, ...]] = MappingProxyType(
            {
                key: tuple(create_engine(replica, root_path) for replica in spec.replicas)
                for key, spec in specs.items()
                if spec.replicas
            }
        )
        self._replicas = {
            key: Replicas(key, replica_engines)
            for key, replica_engines in self.replica_engines.items()
        }
        maker_options: dict[str, Any] = dict(session_options)
        if self._replicas:
            # Only then: a session class of the app's own may not take the argument.
            maker_options["replicas"] = self._replicas
        #: Makes sessions that route each model and table to its bind's engine, and
        #: what only reads to a replica of it.
        self.sessionmaker: _sessionmaker[S] = _sessionmaker(
            bind=engines.get(None),
            class_=self.session_class,
            engines=self.engines,
            **maker_options,
        )
        self._health = HealthChecker(self.engines, self.replica_engines)
        self._specs = specs
        self._root_path = root_path
        self._session_options = session_options
        self._async_session_class = async_session_class
        self._async: AsyncParts[A] | None = None
        # Made once, by whichever thread first asks.
        self._async_lock = threading.Lock()
        self._isolating = False

    @property
    def engine(self) -> sa.Engine:
        """The default bind's engine (``SQLALCHEMY_DATABASE_URI``)."""
        return self.get_engine(None)

    @property
    def metadata(self) -> sa.MetaData:
        """The default bind's metadata: that of the bases without a bind key.

        :raises RuntimeError: If no base uses the default bind, or several bases with
            different metadata do: then use ``metadatas_by_bind[None]``.
        """
        return default_metadata(self.metadatas)

    def get_engine(self, bind_key: str | None = None) -> sa.Engine:
        """Return the engine of ``bind_key``; ``None`` is the default bind.

        :raises KeyError: If that bind is not configured; the message names the key.
        """
        try:
            return self.engines[bind_key]
        except KeyError:
            raise KeyError(missing_bind_message(bind_key)) from None

    def primary(self) -> PrimaryBlock:
        """Send every statement to the primaries inside the block, or inside the
        decorated function (sync or ``async def``)::

            with core.primary():
                ...

        Without replicas configured it changes nothing. The sessions are not pinned to
        the primary by it: after the block, reads may go to replicas again.
        """
        return PrimaryBlock()

    def transaction(self) -> AbstractContextManager[S]:
        """A unit of work for workers and scripts: commit when the block succeeds,
        roll back and re-raise when it raises, close the session either way::

            with core.transaction() as session:
                session.add(report)
        """
        return self.sessionmaker.begin()

    # -- Async engines and sessions, made on first use --------------------------------

    @property
    def async_engines(self) -> Mapping[str | None, AsyncEngine]:
        """The async engine of each bind, the default bind under ``None``. Read-only.

        Each is made when first used, from its bind's URL with the backend's async
        driver (``postgresql+psycopg_async``, ``mysql+aiomysql``, ``sqlite+aiosqlite``)
        or from ``SQLALCHEMY_ASYNC_DATABASE_URI`` / the bind's ``"async_url"``, and the
        bind's engine options. Its connections belong to the event loop they are made
        on; see :meth:`async_dispose`.
        """
        return self._async_parts().engines

    @property
    def async_engine(self) -> AsyncEngine:
        """The default bind's async engine."""
        return self.get_async_engine(None)

    def get_async_engine(self, bind_key: str | None = None) -> AsyncEngine:
        """Return the async engine of ``bind_key``; ``None`` is the default bind.

        :raises KeyError: If that bind is not configured; the message names the key.
        :raises RuntimeError: If its async driver is not installed; the message names
            the package.
        """
        if bind_key not in self.engines:
            raise KeyError(missing_bind_message(bind_key))
        return self._async_parts().engines[bind_key]

    @property
    def async_sessionmaker(self) -> async_sessionmaker[A]:
        """Makes async sessions that route each model and table to its bind's async
        engine, as :attr:`sessionmaker`'s sessions do to the sync engines.
        """
        return self._async_parts().sessionmaker

    def async_transaction(self) -> AbstractAsyncContextManager[A]:
        """An async unit of work for asyncio workers: commit when the block succeeds,
        roll back and re-raise when it raises, close the session either way::

            async with core.async_transaction() as session:
                session.add(report)
        """
        return self.async_sessionmaker.begin()

    async def async_dispose(self) -> None:
        """Close the async engines' pooled connections. Await it on the event loop they
        were used on, before that loop ends: a later use, on any loop, connects afresh.
        """
        if self._async is not None:
            await self._async.engines.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.async_dispose()
        self.dispose()

    def _async_parts(self) -> AsyncParts[A]:
        parts = self._async
        if parts is not None:
            return parts
        with self._async_lock:
            return self._make_async_parts()

    def _make_async_parts(self) -> AsyncParts[A]:
        parts = self._async
        if parts is None:
            # Imported here: an app or worker that never goes async never imports it.
            from ._async import AsyncParts
            from ._async import default_async_session_class

            parts = AsyncParts(
                self._specs,
                self._root_path,
                self.session_class,
                cast("type[A]", self._async_session_class or default_async_session_class()),
                self._session_options,
            )
            if self._isolating:
                parts.begin_isolation()
            self._async = parts
        return parts

    def test_isolation(
        self, *, forbid_lazy_loads: bool = False
    ) -> AbstractContextManager[Mapping[str | None, sa.Connection]]:
        """Run a test's database work in one transaction per bind, rolled back at the end.

        Sessions made inside, by :meth:`transaction` or :attr:`sessionmaker`, commit to
        SAVEPOINTs instead (``join_transaction_mode="create_savepoint"``): the code
        under test runs unchanged, sees its own earlier commits, and leaves nothing.
        Yields each bind's connection. Not for use from several threads at once.

        :param forbid_lazy_loads: Raise :class:`LazyLoadError` on any lazy load of a
            relationship, to catch N+1 queries.
        :raises RuntimeError: If a database cannot be reached.
        """
        return self._isolated(forbid_lazy_loads)

    @contextmanager
    def _isolated(
        self, forbid_lazy_loads: bool
    ) -> Generator[Mapping[str | None, sa.Connection], None, None]:
        with isolated(
            self.sessionmaker, self.engines, forbid_lazy_loads=forbid_lazy_loads
        ) as connections:
            # Async sessions join too, whether made before the block or inside it.
            self._isolating = True
            if self._async is not None:
                self._async.begin_isolation()
            try:
                yield connections
            finally:
                self._isolating = False
                if self._async is not None:
                    self._async.end_isolation()

    def record_queries(self) -> AbstractContextManager[Sequence[RecordedQuery]]:
        """Record every statement sent on these engines while inside, from any thread:
        to see what a block of code asks of the database, or to assert how many
        queries it makes::

            with core.record_queries() as queries:
                send_overdue_reminders(core, now)
            assert len(queries) == 3

        Yields the list the queries are appended to as they run. Nothing is recorded,
        and nothing is spent, outside the block.
        """
        return recording(self.engines.values())

    def check_health(self, timeout: float = 2.0) -> HealthReport:
        """Check that every bind's database answers a trivial query within ``timeout``
        seconds, all binds at once, on connections from their pools.

        Never raises for a database that is down: the report says which bind failed
        and why, with URLs' passwords hidden. A check stuck on an unresponsive server
        is abandoned at the time limit (and not started again until it ends), so keep
        ``timeout`` under the probe's own.

        :raises ValueError: If ``timeout`` is not positive.
        """
        return self._health.check(timeout)

    def create_all(self, bind_key: BindKeys = "__all__") -> None:
        """Create the tables of the given binds that do not exist yet. The metadatas of
        a bind's bases are created in the order of the bases.

        :param bind_key: ``"__all__"`` (every base), ``None`` (the default bind), one
            key, or a list of keys.
        """
        for metadata, engine in self._metadata_and_engines(bind_key):
            metadata.create_all(engine)

    def drop_all(self, bind_key: BindKeys = "__all__") -> None:
        """Drop the tables of the given binds. Takes the same ``bind_key`` values as
        :meth:`create_all`, and drops in the reverse order.
        """
        for metadata, engine in reversed(list(self._metadata_and_engines(bind_key))):
            metadata.drop_all(engine)

    def dispose(self) -> None:
        """Close every engine's pooled connections, the replicas' included."""
        for engine in self.engines.values():
            engine.dispose()
        for replica_engines in self.replica_engines.values():
            for engine in replica_engines:
                engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.dispose()

    def __repr__(self) -> str:
        # Engine's repr hides the password.
        return f"<{type(self).__name__} engines={dict(self.engines)!r}>"

    def _metadata_and_engines(self, bind_key: BindKeys) -> Iterator[tuple[sa.MetaData, sa.Engine]]:
        if bind_key == "__all__":
            keys: list[str | None] = list(self.metadatas)
        elif bind_key is None or isinstance(bind_key, str):
            keys = [bind_key]
        else:
            keys = list(bind_key)
        for key in keys:
            if key not in self.engines:
                raise sa_exc.UnboundExecutionError(missing_bind_message(key))
            for metadata in self.metadatas_by_bind.get(key, ()):
                yield metadata, self.engines[key]
