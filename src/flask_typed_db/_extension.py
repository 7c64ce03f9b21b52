"""The Flask adapter: app config to a DatabaseCore per app, app context to a session."""

from __future__ import annotations

import itertools
import os
import sys
import types
import weakref
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Generator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import AbstractContextManager
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import Generic
from typing import ParamSpec
from typing import TypeVar
from typing import cast
from typing import overload

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
import sqlalchemy.orm as sa_orm
from flask import Flask
from flask import Response
from flask import abort
from flask import current_app
from flask import request
from flask.ctx import AppContext
from flask.globals import app_ctx
from flask.typing import ResponseReturnValue
from sqlalchemy.engine import Row
from sqlalchemy.exc import MultipleResultsFound
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Mapper
from sqlalchemy.orm import Session
from sqlalchemy.orm import class_mapper
from sqlalchemy.orm import sessionmaker
from sqlalchemy.orm.interfaces import ORMOption
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import ServiceUnavailable
from werkzeug.local import LocalProxy
from werkzeug.wrappers import Request

from ._record_queries import app_context_queries
from ._transactions import committed_by
from ._transactions import committing
from ._transactions import is_manual
from ._transactions import mark_manual
from .core import BindKeys
from .core import DatabaseCore
from .core import HealthReport
from .core import ModelBase
from .core import Pagination
from .core import RecordedQuery
from .core import RoutingSession
from .core import metadatas_of
from .core import paginate
from .core._database import BindMetadatas
from .core._database import default_metadata
from .core._identity import NO_ROW
from .core._identity import identity_for
from .core._identity import needs_judging
from .core._identity import with_lookups_judged
from .core._recording import QueryRecorder
from .core._select import T1
from .core._select import T2
from .core._select import ExecutableReturnsRows
from .core._select import SelectBase
from .core._select import Ts
from .core._select import TypedReturnsRows
from .core._select import execute_select
from .core._session import S
from .core._session import close_or_invalidate
from .core._session import session_class_of

T = TypeVar("T")
P = ParamSpec("P")
V = TypeVar("V", bound=Callable[..., Any])

#: ``app.extensions[_EXTENSION]`` maps each Database registered on the app to its state.
_EXTENSION = "flask_typed_db"
#: The ``app.extensions`` key Flask-SQLAlchemy uses, where other tools find it.
_SQLALCHEMY_EXTENSION = "sqlalchemy"
#: Prefix of the ``g`` attribute that holds a Database's session in the current app
#: context; a number unique to the Database completes it.
_G_SESSION_PREFIX = "_flask_typed_db_session_"
_database_numbers = itertools.count()
#: Every Database, so that a forked child can give each one a new ``g`` attribute.
_databases: weakref.WeakSet[Database[Any]] = weakref.WeakSet()

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


#: Flask-SQLAlchemy's page size when neither the call nor the query string gives one.
DEFAULT_PER_PAGE = 20
#: The cap on ``per_page`` unless the app sets ``SQLALCHEMY_MAX_PER_PAGE``.
DEFAULT_MAX_PER_PAGE = 100
#: Query-string numbers longer than this are not parsed (int() of a huge string is
#: slow) but taken as 10**18: beyond every page there is, and still a valid LIMIT.
_MAX_DIGITS = 18

_NO_APP_CONTEXT = (
    "Working outside of application context: {what} needs the current app. Use it in a"
    " view or CLI command, or push a context with 'with app.app_context():'."
)

# The objects behind Flask's context proxies, each reached in one call. Every use of a
# proxy looks the current context up again, and an attribute the proxy class lacks
# (g.get, current_app.extensions, request.args) first fails an ordinary lookup, which
# costs an AttributeError: about 2 µs a use, several per request. Werkzeug documents
# _get_current_object() as the way to reach the object; Flask types its proxies as the
# objects they stand for, hence the casts.
_current_app_context = cast("LocalProxy[AppContext]", app_ctx)._get_current_object  # pyright: ignore[reportPrivateUsage]  # public Werkzeug API, despite the underscore
_current_request = cast("LocalProxy[Request]", request)._get_current_object  # pyright: ignore[reportPrivateUsage]  # public Werkzeug API, despite the underscore


@dataclass(frozen=True)
class _AppState(Generic[S]):
    """What a Database keeps for each app it is registered on."""

    core: DatabaseCore[S]
    max_per_page: int | None


class Database(Generic[S]):
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
    :param engine_options: Defaults for every engine, below the config's options.
    :param session_options: Arguments for the :class:`~sqlalchemy.orm.sessionmaker`.
    """

    @overload
    def __init__(
        self: Database[RoutingSession],
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
    def __init__(
        self,
        *bases: ModelBase,
        session_class: type[RoutingSession] | None = None,
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
        # Where this Database's session lives on ``g``: one attribute, one lookup.
        self._g_session = _new_g_session_attribute()
        _databases.add(self)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Make ``app``'s engines from its config and manage sessions in its contexts.

        :raises RuntimeError: If this Database is already registered on ``app``, or the
            config lacks a URL; the message names the key to set.
        """
        states = _states(app)
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
            root_path=app.instance_path,
            engine_options=self._engine_options,
            session_options=self._session_options,
        )
        states[self] = _AppState(core, max_per_page)
        if record_queries:
            # Like Flask-SQLAlchemy: a query's location is in the app's own package.
            recorder = QueryRecorder(app_context_queries, [app.import_name.partition(".")[0]])
            recorder.attach(core.engines.values())
        # Where Flask-Alembic and other tools look for the app's SQLAlchemy
        # integration ('metadata', 'engines', 'engine'). The first Database wins, and
        # an existing entry (Flask-SQLAlchemy's, during a move) is left alone.
        _extensions(app).setdefault(_SQLALCHEMY_EXTENSION, self)
        if commit_on_success:
            app.before_request(self._commit_current_view_on_success)
        if sa_exc.TimeoutError not in app.error_handler_spec[None][None]:
            app.register_error_handler(sa_exc.TimeoutError, _answer_pool_timeout)
        app.teardown_appcontext(self._close_session)
        app.shell_context_processor(self._shell_context)

    @property
    def session(self) -> S:
        """The current app context's session, made on first use.

        The same object for the whole context; closed at its teardown, so anything not
        committed is rolled back.
        """
        context = _app_context("'db.session'")
        session: S | None = context.g.get(self._g_session)
        if session is None:
            session = self._state_of(context.app, "'db.session'").core.sessionmaker()
            setattr(context.g, self._g_session, session)
        return session

    @property
    def sessionmaker(self) -> sessionmaker[S]:
        """The current app's session factory, for sessions you manage yourself."""
        return self._state("'db.sessionmaker'").core.sessionmaker

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

    # -- Units of work in views -------------------------------------------------------

    @overload
    def commit_on_success(
        self, view: Callable[P, Awaitable[ResponseReturnValue]]
    ) -> Callable[P, Awaitable[Response]]: ...
    @overload
    def commit_on_success(
        self, view: Callable[P, ResponseReturnValue]
    ) -> Callable[P, Response]: ...
    def commit_on_success(self, view: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a view so that :attr:`session` is committed when it succeeds::

            @app.post("/books")
            @db.commit_on_success
            def add_book() -> ResponseReturnValue:
                db.session.add(Book(title=request.form["title"]))
                return redirect(url_for("list_books"))

        When the view returns a response with a status below 400 (redirects
        included), the session is committed before the response goes out; if that
        commit fails, the error propagates as if the view had raised it (your error
        handlers see it, else the client gets a 500) and nothing is kept. When the
        view raises, even if an error handler turns that into a response, or returns
        a 4xx or 5xx status, the session is rolled back at once. The wrapped view
        returns the :class:`~flask.Response` made of the view's return value.

        ``SQLALCHEMY_COMMIT_ON_SUCCESS = True`` does this for every view of the app;
        see :meth:`manual_commit` to exempt one.
        """
        return committing(view, self._end_unit_of_work, self)

    def manual_commit(self, view: V) -> V:
        """Exempt a view from ``SQLALCHEMY_COMMIT_ON_SUCCESS``: it commits, or not, by
        itself, as every view does by default.
        """
        return mark_manual(view)

    @contextmanager
    def transaction(self) -> Generator[S, None, None]:
        """A unit of work inside a view on :attr:`session`: commit everything the
        session holds when the block succeeds, roll back and re-raise when it raises::

            with db.transaction() as session:
                session.add(Loan(book=book, borrower=name))
            # committed here
        """
        session = self.session
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        session.commit()

    @contextmanager
    def savepoint(self) -> Generator[S, None, None]:
        """A SAVEPOINT on :attr:`session`: when the block raises, only its own work is
        undone, and the exception propagates; when it succeeds, its work stays part of
        the session's transaction, to be committed with the rest::

            try:
                with db.savepoint() as session:
                    session.add(Tag(name=name))
            except IntegrityError:
                pass  # the tag exists; everything before the block is still there
        """
        session = self.session
        with session.begin_nested():
            yield session

    # -- Queries in views ------------------------------------------------------------

    def get_or_404(
        self,
        entity: type[T] | Mapper[T],
        ident: Any,
        *,
        description: str | None = None,
        options: Sequence[ORMOption] = (),
        populate_existing: bool = False,
        with_for_update: bool = False,
    ) -> T:
        """Return the ``entity`` with primary key ``ident``, or abort with 404.

        An ``ident`` its primary-key column cannot hold is a 404 without a query:
        ``"1abc"``, ``"1.0"`` or a number past the column's range for an integer key, a
        string that is no UUID for a UUID key. Sent, it would be a database error on
        some backends and another row on others. A string of digits for an integer key
        is converted: ``/books/<book_id>`` finds the same book as ``<int:book_id>``.

        :param entity: A mapped class, declared or mapped imperatively, or its
            :class:`~sqlalchemy.orm.Mapper`.
        :param ident: The primary key value, as :meth:`Session.get
            <sqlalchemy.orm.Session.get>` takes it (a tuple or dict for a composite key).
        :param description: The 404 page's description.
        :param options: Loader options, e.g. ``[selectinload(User.posts)]``.
        :param populate_existing: Refresh an object already in the session.
        :param with_for_update: Lock the row (``SELECT ... FOR UPDATE``) until the
            transaction ends; queried even if the object is in the session already.
        """
        if needs_judging(ident):
            mapper = entity if isinstance(entity, Mapper) else class_mapper(entity)
            ident = identity_for(mapper, ident, self.session.get_bind(mapper=mapper).dialect)
            if ident is NO_ROW:
                abort(404, description=description)
        # Only what is switched on: SQLAlchemy 2.1 does extra work for an explicit
        # populate_existing=False, and before 2.0.13 types with_for_update as ForUpdateArg.
        switched_on: dict[str, Any] = {}
        if populate_existing:
            switched_on["populate_existing"] = True
        if with_for_update:
            switched_on["with_for_update"] = True
        # No local variable holds the session when abort() raises: Flask answers with
        # the exception itself, whose traceback keeps this frame alive until the
        # garbage collector runs, and would keep the closed session with it.
        value = self.session.get(entity, ident, options=options, **switched_on)
        if value is None:
            abort(404, description=description)
        return value

    @overload
    def first_or_404(  # type: ignore[overload-overlap, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # a select of one tuple matches the 2.1 form too
        self, statement: TypedReturnsRows[tuple[T]], *, description: str | None = None
    ) -> T: ...
    @overload
    def first_or_404(
        self,
        statement: TypedReturnsRows[tuple[T1, T2, *Ts]],
        *,
        description: str | None = None,
    ) -> Row[tuple[T1, T2, *Ts]]: ...
    @overload
    def first_or_404(
        self,
        statement: TypedReturnsRows[T],  # type: ignore[type-var, unused-ignore]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        description: str | None = None,
    ) -> T: ...
    @overload
    def first_or_404(  # type: ignore[overload-cannot-match, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # mypy takes T for *Ts; pyright, only on 2.0
        self,
        statement: TypedReturnsRows[*Ts],  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        description: str | None = None,
    ) -> Row[*Ts]: ...  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
    @overload
    def first_or_404(
        self,
        statement: ExecutableReturnsRows | SelectBase,
        *,
        description: str | None = None,
    ) -> Any: ...
    def first_or_404(
        self,
        statement: Any,  # typed by the overloads; SQLAlchemy 2.0 and 2.1 spell it differently
        *,
        description: str | None = None,
    ) -> Any:
        """Return the first row of ``statement``, or abort with 404 if there is none.

        For a select of one entity or column, the entity or value; for several, the
        :class:`~sqlalchemy.engine.Row`. A first row whose one value is NULL is
        returned as ``None``, not taken for a missing row.

        The values of the WHERE clause's AND-ed ``column == value`` and
        ``column.in_(values)`` are judged as :meth:`get_or_404` judges an ``ident``:
        a lookup no row can match, such as ``Book.id == 2**31`` for an ``INTEGER``
        column, finds nothing, on every backend.

        ``statement`` is any statement that returns rows, as
        :meth:`Session.execute <sqlalchemy.orm.Session.execute>` takes it: a
        ``select()``, a ``union_all()`` (of entity selects, it returns the entities),
        ``select(User).from_statement(...)``, or an INSERT, UPDATE or DELETE with
        ``returning()``.

        :param description: The 404 page's description.
        :raises TypeError: For an INSERT, UPDATE or DELETE without ``returning()``,
            before it runs.
        """
        statement = with_lookups_judged(statement, self.session)
        row = execute_select(self.session, statement).first()
        if row is None:
            abort(404, description=description)
        return row[0] if len(row) == 1 else row

    @overload
    def one_or_404(  # type: ignore[overload-overlap, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # a select of one tuple matches the 2.1 form too
        self, statement: TypedReturnsRows[tuple[T]], *, description: str | None = None
    ) -> T: ...
    @overload
    def one_or_404(
        self,
        statement: TypedReturnsRows[tuple[T1, T2, *Ts]],
        *,
        description: str | None = None,
    ) -> Row[tuple[T1, T2, *Ts]]: ...
    @overload
    def one_or_404(
        self,
        statement: TypedReturnsRows[T],  # type: ignore[type-var, unused-ignore]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        description: str | None = None,
    ) -> T: ...
    @overload
    def one_or_404(  # type: ignore[overload-cannot-match, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # mypy takes T for *Ts; pyright, only on 2.0
        self,
        statement: TypedReturnsRows[*Ts],  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        description: str | None = None,
    ) -> Row[*Ts]: ...  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
    @overload
    def one_or_404(
        self,
        statement: ExecutableReturnsRows | SelectBase,
        *,
        description: str | None = None,
    ) -> Any: ...
    def one_or_404(
        self,
        statement: Any,  # typed by the overloads; SQLAlchemy 2.0 and 2.1 spell it differently
        *,
        description: str | None = None,
    ) -> Any:
        """Return the only row of ``statement``, or abort with 404 if there are none or
        several.

        For a select of one entity or column, the entity or value; for several, the
        :class:`~sqlalchemy.engine.Row`. Takes the statements :meth:`first_or_404`
        takes, and judges their lookups alike.

        :param description: The 404 page's description.
        :raises TypeError: For an INSERT, UPDATE or DELETE without ``returning()``,
            before it runs.
        """
        statement = with_lookups_judged(statement, self.session)
        try:
            row = execute_select(self.session, statement).one()
        except (NoResultFound, MultipleResultsFound):
            # Aborted outside the except clause: raised inside it, the 404 would carry
            # SQLAlchemy's error, and through its traceback the result and the session,
            # until the garbage collector runs (see get_or_404).
            row = None
        if row is None:
            abort(404, description=description)
        return row[0] if len(row) == 1 else row

    @overload
    def paginate(  # type: ignore[overload-overlap, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # a select of one tuple matches the 2.1 form too
        self,
        statement: sa.Select[tuple[T]],
        *,
        page: int | None = None,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
        count: bool = True,
    ) -> Pagination[T]: ...
    @overload
    def paginate(
        self,
        statement: sa.Select[tuple[T1, T2, *Ts]],
        *,
        page: int | None = None,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
        count: bool = True,
    ) -> Pagination[Row[tuple[T1, T2, *Ts]]]: ...
    @overload
    def paginate(
        self,
        statement: sa.Select[T],  # type: ignore[type-var, unused-ignore]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        page: int | None = None,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
        count: bool = True,
    ) -> Pagination[T]: ...
    @overload
    def paginate(  # type: ignore[overload-cannot-match, unused-ignore]  # pyright: ignore[reportOverlappingOverload]  # mypy takes T for *Ts; pyright, only on 2.0
        self,
        statement: sa.Select[*Ts],  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
        *,
        page: int | None = None,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
        count: bool = True,
    ) -> Pagination[Row[*Ts]]: ...  # type: ignore[valid-type, type-arg, unused-ignore]  # pyright: ignore[reportInvalidTypeArguments, reportInvalidTypeForm]  # SQLAlchemy 2.0 rejects the 2.1 form
    def paginate(
        self,
        statement: Any,  # typed by the overloads; SQLAlchemy 2.0 and 2.1 spell it differently
        *,
        page: int | None = None,
        per_page: int | None = None,
        max_per_page: int | None = None,
        error_out: bool = True,
        count: bool = True,
    ) -> Pagination[Any]:
        """Return one page of ``statement``, numbered by the request's query string.

        ``page`` and ``per_page`` not given are read from ``request.args`` (``?page=2
        &per_page=50``), defaulting to 1 and 20. A value that is not a positive whole
        number, or a page past the last, aborts with 404; with ``error_out=False`` it
        falls back to page 1, 20 per page, or an empty page instead.

        Lookups are judged as in :meth:`first_or_404`: a page of ``Book.id == 2**31``
        for an ``INTEGER`` column is empty, on every backend.

        :param max_per_page: The most items a page may have; ``per_page`` is lowered to
            it. Defaults to the app's ``SQLALCHEMY_MAX_PER_PAGE`` (100; ``None`` there
            means no limit).
        :param error_out: Abort with 404 on bad numbers and pages past the last.
        :param count: Count the total; with ``False``, ``total`` is ``None`` and
            ``pages`` is 0.
        """
        if max_per_page is None:
            max_per_page = self._state("'db.paginate()'").max_per_page
        args = _request_args(error_out)
        page = _page_arg(page, args, "page", 1, error_out)
        per_page = _page_arg(per_page, args, "per_page", DEFAULT_PER_PAGE, error_out)
        if max_per_page is not None:
            per_page = min(per_page, max_per_page)
        session = self.session
        statement = with_lookups_judged(statement, session)
        pagination = paginate(session, statement, page=page, per_page=per_page, count=count)
        del session  # not to be kept by the traceback of a 404 (see get_or_404)
        if error_out and not pagination.items and page != 1:
            abort(404)
        return pagination

    def __repr__(self) -> str:
        bases = ", ".join(base.__name__ for base in self.bases)
        return f"<{type(self).__name__}({bases})>"

    def _state(self, what: str, app: Flask | None = None) -> _AppState[S]:
        """This Database's state for ``app``, or for the current app if not given."""
        if app is None:
            return self._state_of(_app_context(what).app, what)
        registered = _states(app).get(self)
        if registered is None:
            raise RuntimeError(
                f"The app {app.name!r} is not registered with this Database: call"
                f" 'db.init_app(app)' before {what}."
            )
        return registered

    def _state_of(self, current: Flask, what: str) -> _AppState[S]:
        """This Database's state for ``current``, the current app."""
        state = _states(current).get(self)
        if state is None:
            raise RuntimeError(
                f"The current app {current.name!r} is not registered with this"
                f" Database, so {what} has nothing to use. Call 'db.init_app(app)' in the"
                " app factory."
            )
        return state

    def _end_own_transaction_before_ddl(self, what: str) -> None:
        """Close the current context's session if it is in a transaction, as
        Flask-SQLAlchemy's ``db.session.remove()`` did: DDL runs on a connection of its
        own, and would wait forever for the locks that transaction holds (PostgreSQL's
        and MariaDB's even after a mere SELECT). Changes not flushed yet are never
        discarded for it: that is an error.
        """
        session: Session | None = _current_app_context().g.get(self._g_session)
        if session is None or not session.in_transaction():
            return
        if session.new or session.dirty or session.deleted:
            raise RuntimeError(
                f"{what} runs on a connection of its own, and would wait for this app"
                " context's session, which holds changes not committed yet: call"
                " 'db.session.commit()' (or 'db.session.rollback()') first."
            )
        # What it flushed and did not commit is rolled back, as at the context's end.
        session.close()

    def _end_unit_of_work(self, status: int | None) -> None:
        """Commit the current context's session for a status below 400; roll it back
        for an error status or a raised exception (``None``).
        """
        session: Session | None = _current_app_context().g.get(self._g_session)
        if session is None:
            return
        if status is None or status >= 400:
            session.rollback()
            return
        try:
            session.commit()
        except BaseException:
            # Nothing of it is kept, and error handlers get a usable session.
            session.rollback()
            raise

    def _commit_current_view_on_success(self) -> None:
        """``before_request`` under ``SQLALCHEMY_COMMIT_ON_SUCCESS``: wrap the view
        about to run, once. Routes cannot change after the first request, so wrapping
        views as they are first used covers every view, whenever it was registered.
        """
        endpoint = request.endpoint
        if endpoint is None:
            return
        views = cast("dict[str, Callable[..., Any]]", current_app.view_functions)  # type: ignore[redundant-cast, unused-ignore]  # pyright: ignore[reportUnknownMemberType]  # Flask 3.0 types the values as a bare Callable
        view = views.get(endpoint)
        if view is None or is_manual(view) or self in committed_by(view):
            return
        views[endpoint] = committing(view, self._end_unit_of_work, self)

    def _close_session(self, exc: BaseException | None) -> None:
        context = _current_app_context()
        session: Session | None = context.g.pop(self._g_session, None)
        if session is None:
            return
        # Closing rolls back the open transaction on its connection and returns the
        # connection to the pool; loaded objects stay readable, detached. If it fails,
        # the connection is invalidated instead: the logged error keeps the session.
        error = close_or_invalidate(session)
        if error is not None:
            # Teardown must not replace the view's own error.
            context.app.logger.error(
                "flask-typed-db: closing the session failed; its connections were invalidated",
                exc_info=error,
            )

    def _shell_context(self) -> dict[str, object]:
        context: dict[str, object] = {"db": self}
        for base in self.bases:
            for mapper in base.registry.mappers:
                context[mapper.class_.__name__] = mapper.class_
        return context


def _new_g_session_attribute() -> str:
    return f"{_G_SESSION_PREFIX}{next(_database_numbers)}"


def _forget_parent_sessions() -> None:
    """In a child forked inside an app context, make :attr:`Database.session` start a
    new session instead of returning the parent's, which the core has cut from its
    connection. The parent's session stays on ``g``, unused and never closed here.
    """
    for database in list(_databases):
        database._g_session = _new_g_session_attribute()  # pyright: ignore[reportPrivateUsage]  # this module's own class


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_forget_parent_sessions)


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


def _app_context(what: str) -> AppContext:
    """The current app context; ``what`` needs one, the error says."""
    try:
        return _current_app_context()
    except RuntimeError:
        raise RuntimeError(_NO_APP_CONTEXT.format(what=what)) from None


def _extensions(app: Flask) -> dict[str, Any]:
    # Flask 3.0 annotates 'extensions' as a bare dict, which strict pyright reports.
    return app.extensions  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]


def _states(app: Flask) -> dict[Database[Any], _AppState[Any]]:
    """The state of each Database registered on ``app``, kept in ``app.extensions``."""
    extensions = _extensions(app)
    states: dict[Database[Any], _AppState[Any]] | None = extensions.get(_EXTENSION)
    if states is None:
        states = extensions[_EXTENSION] = {}
    return states


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


def _request_args(error_out: bool) -> MultiDict[str, str] | None:
    """The current request's query arguments; ``None`` outside a request, or, without
    ``error_out``, when they cannot be read.
    """
    try:
        current = _current_request()
    except RuntimeError:  # no request: only the arguments given count
        return None
    try:
        return current.args
    except UnicodeDecodeError:
        # Raw bytes that are not UTF-8 in the query string (Werkzeug decodes only
        # percent-encoded ones leniently): the client's error, not a server's.
        if error_out:
            abort(400, description="The query string is not valid UTF-8.")
        return None


def _page_arg(
    value: int | None,
    args: MultiDict[str, str] | None,
    name: str,
    default: int,
    error_out: bool,
) -> int:
    """``value``, or the query argument ``name`` in ``args``, as a positive integer."""
    if value is None:
        # Not args.get(): for a missing key it raises and catches a KeyError.
        if args is None or name not in args:
            return default
        raw = args[name]
        # Plain ASCII digits only: int() would also take "+1", " 1" and other scripts' digits.
        digits = raw.lstrip("0") if raw.isascii() and raw.isdigit() else ""
        # Past every page there is; as a per_page, lowered to max_per_page.
        value = 10**_MAX_DIGITS if len(digits) > _MAX_DIGITS else int(digits or 0)
    if value >= 1:
        return value
    if error_out:
        abort(404)
    return default
