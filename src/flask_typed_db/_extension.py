"""The Flask adapter's one public class, :class:`Database`: app config to a DatabaseCore
per app, and the engines, metadata, DDL and test tools of the current app.

Its other jobs are the modules it derives from, each with one reason to change:
``_sessions`` (the session and async session per app context, and the per-app state),
``_queries`` and ``_async_queries`` (404 helpers and pagination) and ``_units_of_work``
(commit on success, transactions).
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING
from typing import Any
from typing import cast
from typing import overload

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
import sqlalchemy.orm as sa_orm
from flask import Flask
from flask import current_app
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import sessionmaker
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import ServiceUnavailable

from ._async_queries import AsyncQueryHelpers
from ._async_runner import run_coroutines_on_shared_loop
from ._queries import DEFAULT_MAX_PER_PAGE
from ._queries import QueryHelpers
from ._record_queries import app_context_queries
from ._replica_requests import ReplicaRequests
from ._sessions import AppState
from ._sessions import app_states
from ._sessions import extensions_of
from ._units_of_work import UnitsOfWork
from .core import BindKeys
from .core import DatabaseCore
from .core import HealthReport
from .core import ModelBase
from .core import PrimaryBlock
from .core import RecordedQuery
from .core import RoutingSession
from .core import metadatas_of
from .core._database import BindMetadatas
from .core._database import default_metadata
from .core._recording import QueryRecorder
from .core._session import A
from .core._session import S
from .core._session import session_class_of

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.ext.asyncio import async_sessionmaker

#: The ``app.extensions`` key Flask-SQLAlchemy uses, where other tools find it.
_SQLALCHEMY_EXTENSION = "sqlalchemy"
#: Flask-SQLAlchemy's attributes that Database does not have, and what replaces each
#: (docs/migrating.md). Its re-exports of SQLAlchemy's names (db.Column, db.case, ...)
#: are answered with the module to import them from.
_REPLACED_ATTRIBUTES = {
    "Model": "models derive from your own DeclarativeBase, given to Database(Base)",
    "Query": "write select() statements and run them on db.session",
    "event": (
        "import event from sqlalchemy, and listen for session events on your session"
        " class, Database(Base, session_class=...)"
    ),
    "dynamic_loader": "use relationship(lazy='write_only')",
    "reflect": "call db.metadata.reflect(db.engine)",
}


def _missing_attribute(name: str) -> str:
    """The message of ``db.<name>``'s AttributeError, with the replacement if known."""
    message = f"'Database' object has no attribute {name!r}"
    if name in _REPLACED_ATTRIBUTES:
        return f"{message}: {_REPLACED_ATTRIBUTES[name]} (see the migrating guide)."
    if not name.startswith("_"):
        for module in (sa, sa_orm):
            found: object = getattr(module, name, None)
            if found is not None and not isinstance(found, types.ModuleType):
                return f"{message}: import {name} from {module.__name__}."
    return message


class Database(UnitsOfWork[S, A], AsyncQueryHelpers[S, A], QueryHelpers[S, A]):
    """Connect a Flask app to its databases, with one session per app context.

    The models stay plain SQLAlchemy: pass their declarative bases, and the same bases
    work in workers through :class:`flask_typed_db.core.DatabaseCore`::

        db = Database(Base, AuthBase)

        def create_app() -> Flask:
            app = Flask(__name__)
            app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///app.db"
            db.init_app(app)
            return app

    Engines are made once per app, in :meth:`init_app`. :attr:`session` is made on
    first use in each app context (a request, a CLI command, a test's
    ``app.app_context()``) and closed when that context ends, which rolls back
    anything not committed.

    :param bases: Declarative bases; a base's ``metadata.info["bind_key"]`` names
        the ``SQLALCHEMY_BINDS`` entry its models use.
    :param app: Call :meth:`init_app` on this app now.
    :param session_class: The class of :attr:`session`, a subclass of
        :class:`~flask_typed_db.core.RoutingSession`; it is part of the type
        (``Database(Base, session_class=AuditedSession).session`` is an
        ``AuditedSession``), and session events listened for on it apply to every
        session of every app, workers' included when their
        :class:`~flask_typed_db.core.DatabaseCore` gets the same class.
    :param async_session_class: The class of :attr:`async_session`, a subclass of
        :class:`~sqlalchemy.ext.asyncio.AsyncSession`; part of the type, as
        ``session_class`` is. Its sync sessions are of ``session_class``.
    :param engine_options: Defaults for every engine, below the config's options.
    :param session_options: Arguments for the :class:`~sqlalchemy.orm.sessionmaker`.
    """

    @overload
    def __init__(
        self: Database[RoutingSession, AsyncSession],
        *bases: ModelBase,
        app: Flask | None = None,
        engine_options: Mapping[str, Any] | None = None,
        session_options: Mapping[str, Any] | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self,
        *bases: ModelBase,
        session_class: type[S],
        app: Flask | None = None,
        engine_options: Mapping[str, Any] | None = None,
        session_options: Mapping[str, Any] | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self,
        *bases: ModelBase,
        async_session_class: type[A],
        app: Flask | None = None,
        engine_options: Mapping[str, Any] | None = None,
        session_options: Mapping[str, Any] | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self,
        *bases: ModelBase,
        session_class: type[S],
        async_session_class: type[A],
        app: Flask | None = None,
        engine_options: Mapping[str, Any] | None = None,
        session_options: Mapping[str, Any] | None = None,
    ) -> None: ...
    def __init__(
        self,
        *bases: ModelBase,
        session_class: type[RoutingSession] | None = None,
        async_session_class: type[AsyncSession] | None = None,
        app: Flask | None = None,
        engine_options: Mapping[str, Any] | None = None,
        session_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.bases = bases
        #: Every metadata of each bind key, in the order of the bases; needs no app.
        #: Several bases may share a bind, each with its own metadata.
        self.metadatas_by_bind: Mapping[str | None, tuple[sa.MetaData, ...]] = metadatas_of(bases)
        #: The metadata of each bind key, from the bases; needs no app. A bind with
        #: several metadatas has no single one: use :attr:`metadatas_by_bind` for it.
        self.metadatas: Mapping[str | None, sa.MetaData] = BindMetadatas(self.metadatas_by_bind)
        self._engine_options = dict(engine_options or {})
        self._session_options = dict(session_options or {})
        #: The class of every :attr:`session`; listen for session events on it. (S is
        #: the class given, by the overloads above.)
        self.session_class: type[S] = cast(
            "type[S]", session_class_of(session_class, self._session_options)
        )
        self._async_session_class = async_session_class
        # The ``g`` attribute its sessions live on (see _sessions).
        super().__init__()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Make ``app``'s engines from its config and manage sessions in its contexts.

        :raises RuntimeError: If this Database is already registered on ``app``, or the
            config lacks a URL; the message names the key to set.
        """
        states = app_states(app)
        if self in states:
            raise RuntimeError(
                f"This Database is already registered on the app {app.name!r}. Call"
                " 'db.init_app(app)' once per app."
            )
        max_per_page = _max_per_page(app.config)
        record_queries = _bool_config(app.config, "SQLALCHEMY_RECORD_QUERIES")
        commit_on_success = _bool_config(app.config, "SQLALCHEMY_COMMIT_ON_SUCCESS")
        core = DatabaseCore(
            app.config,
            *self.bases,
            session_class=self.session_class,
            # None when not given: the core's A then defaults to AsyncSession, as ours.
            async_session_class=cast("type[A]", self._async_session_class),
            root_path=app.instance_path,
            engine_options=self._engine_options,
            session_options=self._session_options,
        )
        replica_requests = ReplicaRequests(app.config) if core.replica_engines else None
        states[self] = AppState(core, max_per_page, replica_requests)
        if record_queries:
            # Like Flask-SQLAlchemy: a query's location is in the app's own package.
            recorder = QueryRecorder(app_context_queries, [app.import_name.partition(".")[0]])
            recorder.attach(core.engines.values())
        # Where Flask-Alembic and other tools look for the app's SQLAlchemy
        # integration ('metadata', 'engines', 'engine'). The first Database wins, and
        # an existing entry (Flask-SQLAlchemy's, during a move) is left alone.
        extensions_of(app).setdefault(_SQLALCHEMY_EXTENSION, self)
        if commit_on_success:
            app.before_request(self._commit_current_view_on_success)
        if sa_exc.TimeoutError not in app.error_handler_spec[None][None]:
            app.register_error_handler(sa_exc.TimeoutError, _answer_pool_timeout)
        app.teardown_appcontext(self._close_session)
        app.shell_context_processor(self._shell_context)
        # Async views run on the loop that owns the async engines. Only a function is
        # set here: the loop and its thread are made when a coroutine first runs.
        run_coroutines_on_shared_loop(app)

    @property
    def sessionmaker(self) -> sessionmaker[S]:
        """The current app's session factory, for sessions you manage yourself."""
        return self._state("'db.sessionmaker'").core.sessionmaker

    def primary(self) -> PrimaryBlock:
        """Send every statement to the primaries inside the block, or inside the
        decorated view or function (sync or ``async def``), whatever replicas the app
        has (``SQLALCHEMY_REPLICAS``)::

            @app.get("/balance")
            @db.primary()
            def balance() -> ...: ...

        Needs no app context. The session is not pinned to the primaries by it. See
        :doc:`/scaling`.
        """
        return PrimaryBlock()

    @property
    def replica_engines(self) -> Mapping[str | None, tuple[sa.Engine, ...]]:
        """The current app's read replicas' engines by bind key, for the binds that have
        any (``SQLALCHEMY_REPLICAS``). Read-only.
        """
        return self._state("'db.replica_engines'").core.replica_engines

    @property
    def engine(self) -> sa.Engine:
        """The current app's default engine (``SQLALCHEMY_DATABASE_URI``)."""
        return self._state("'db.engine'").core.engine

    @property
    def engines(self) -> Mapping[str | None, sa.Engine]:
        """The current app's engines by bind key, the default under ``None``. Read-only."""
        return self._state("'db.engines'").core.engines

    def get_engine(self, bind_key: str | None = None) -> sa.Engine:
        """The current app's engine for ``bind_key``; ``None`` is the default bind."""
        return self._state("'db.get_engine()'").core.get_engine(bind_key)

    @property
    def async_sessionmaker(self) -> async_sessionmaker[A]:
        """The current app's async session factory, for async sessions you manage."""
        return self._state("'db.async_sessionmaker'").core.async_sessionmaker

    @property
    def async_engine(self) -> AsyncEngine:
        """The current app's default async engine, made on first use. See :doc:`/async`."""
        return self._state("'db.async_engine'").core.async_engine

    @property
    def async_engines(self) -> Mapping[str | None, AsyncEngine]:
        """The current app's async engines by bind key, each made on first use."""
        return self._state("'db.async_engines'").core.async_engines

    def get_async_engine(self, bind_key: str | None = None) -> AsyncEngine:
        """The current app's async engine for ``bind_key``; ``None`` is the default bind."""
        return self._state("'db.get_async_engine()'").core.get_async_engine(bind_key)

    if not TYPE_CHECKING:
        # Hidden from type checkers, for which db.Column must stay an error.

        def __getattr__(self, name: str) -> Any:
            if hasattr(type(self), name):
                # A property that raised AttributeError: raise its own error again.
                return object.__getattribute__(self, name)
            raise AttributeError(_missing_attribute(name), name=name, obj=self)

    @property
    def metadata(self) -> sa.MetaData:
        """The default bind's metadata: that of the bases without a bind key.

        :raises RuntimeError: If no base uses the default bind, or several bases with
            different metadata do: then use ``metadatas_by_bind[None]``.
        """
        return default_metadata(self.metadatas)

    def create_all(self, bind_key: BindKeys = "__all__") -> None:
        """Create the current app's missing tables. The metadatas of a bind's bases are
        created in the order of the bases: pass a base before those whose tables have
        foreign keys to its tables.

        :param bind_key: ``"__all__"`` (every base), ``None`` (the default bind), one
            key, or a list of keys.
        """
        state = self._state("'db.create_all()'")
        self._end_own_transaction_before_ddl("'db.create_all()'")
        state.core.create_all(bind_key)

    def drop_all(self, bind_key: BindKeys = "__all__") -> None:
        """Drop the current app's tables, in the reverse order of :meth:`create_all`.
        Takes the same ``bind_key``.
        """
        state = self._state("'db.drop_all()'")
        self._end_own_transaction_before_ddl("'db.drop_all()'")
        state.core.drop_all(bind_key)

    def test_isolation(
        self, app: Flask | None = None, *, forbid_lazy_loads: bool = False
    ) -> AbstractContextManager[Mapping[str | None, sa.Connection]]:
        """Run everything inside, requests included, in one transaction per bind that is
        rolled back at the end: a test's commits never reach the next test.

        The code under test runs unchanged: its ``commit()`` releases a SAVEPOINT, a
        later request sees what an earlier one committed, and a failed commit rolls
        back to the SAVEPOINT. Needs no app context; enter it before the sessions of
        the test are made. See :meth:`DatabaseCore.test_isolation
        <flask_typed_db.core.DatabaseCore.test_isolation>`::

            with db.test_isolation(app):
                client.post("/books", json={...})
                assert client.get("/books").json == [...]

        :param app: The app to isolate; default: the current app.
        :param forbid_lazy_loads: Raise :class:`~flask_typed_db.core.LazyLoadError` on
            any lazy load of a relationship, to catch N+1 queries.
        :raises RuntimeError: If ``app`` is not registered, or a database cannot be
            reached.
        """
        state = self._state("'db.test_isolation()'", app)
        return state.core.test_isolation(forbid_lazy_loads=forbid_lazy_loads)

    def record_queries(
        self, app: Flask | None = None
    ) -> AbstractContextManager[Sequence[RecordedQuery]]:
        """Record every statement sent on the app's engines while inside, whatever
        ``SQLALCHEMY_RECORD_QUERIES`` says: to assert how many queries a request makes::

            with db.record_queries(app) as queries:
                client.get("/books")
            assert len(queries) == 2

        Yields the list the queries are appended to as they run, from any thread.
        Needs no app context. See :class:`~flask_typed_db.core.RecordedQuery`.

        :param app: The app whose engines to record; default: the current app.
        """
        return self._state("'db.record_queries()'", app).core.record_queries()

    def check_health(self, timeout: float = 2.0) -> HealthReport:
        """Check that each of the current app's databases answers within ``timeout``
        seconds: for a readiness probe. Never raises for a database that is down::

            @app.get("/healthz")
            def healthz() -> ResponseReturnValue:
                report = db.check_health(timeout=1.0)
                return report.as_dict(), 200 if report.ok else 503

        ``report.as_dict()`` names no file, host or user, so a probe anyone can reach may
        return it; ``report.as_dict(detail=True)`` adds the URLs and the drivers' errors,
        for the operators' logs. See :meth:`HealthReport.as_dict
        <flask_typed_db.core.HealthReport.as_dict>` and :meth:`DatabaseCore.check_health
        <flask_typed_db.core.DatabaseCore.check_health>`.

        :raises ValueError: If ``timeout`` is not positive.
        """
        return self._state("'db.check_health()'").core.check_health(timeout)

    def __repr__(self) -> str:
        bases = ", ".join(base.__name__ for base in self.bases)
        return f"<{type(self).__name__}({bases})>"

    def _shell_context(self) -> dict[str, object]:
        context: dict[str, object] = {"db": self}
        for base in self.bases:
            for mapper in base.registry.mappers:
                context[mapper.class_.__name__] = mapper.class_
        return context


def _answer_pool_timeout(error: sa_exc.TimeoutError) -> HTTPException | ResponseReturnValue:
    """A request that got no pooled connection within the pool timeout gets a 503 with
    ``Retry-After``, through the app's own 503 handlers, rather than a 500: the server
    is busy, not broken, and load balancers and clients can retry.
    """
    current_app.logger.error(
        "flask-typed-db: no database connection became free within the pool timeout;"
        " answering 503",
        exc_info=error,
    )
    busy = ServiceUnavailable(
        "The database is busy: no connection became free in time. Try again shortly.",
        retry_after=1,
    )
    return current_app.handle_http_exception(busy)


def _max_per_page(config: Mapping[str, Any]) -> int | None:
    value = config.get("SQLALCHEMY_MAX_PER_PAGE", DEFAULT_MAX_PER_PAGE)
    if value is not None and (type(value) is not int or value < 1):
        raise ValueError(
            f"'SQLALCHEMY_MAX_PER_PAGE' must be a positive integer, or None for no limit,"
            f" not {value!r}."
        )
    return value


def _bool_config(config: Mapping[str, Any], key: str) -> bool:
    value = config.get(key, False)
    if not isinstance(value, bool):
        # A string such as "False" from the environment would otherwise switch it on.
        raise ValueError(f"{key!r} must be True or False, not {value!r}.")
    return value
