"""The Flask adapter: app config to a DatabaseCore per app, app context to a session."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask import current_app
from flask import g
from flask import has_app_context
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

from .core import BindKeys
from .core import DatabaseCore
from .core import ModelBase
from .core import metadatas_of

#: ``app.extensions[_EXTENSION]`` maps each Database registered on the app to its state.
_EXTENSION = "flask_typed_db"
#: ``g`` attribute holding the sessions made in the current app context, per Database.
_G_SESSIONS = "_flask_typed_db_sessions"

_NO_APP_CONTEXT = (
    "Working outside of application context: {what} needs the current app. Use it in a"
    " view or CLI command, or push a context with 'with app.app_context():'."
)


class Database:
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
    :param engine_options: Defaults for every engine, below the config's options.
    :param session_options: Arguments for the :class:`~sqlalchemy.orm.sessionmaker`.
    """

    def __init__(
        self,
        *bases: ModelBase,
        app: Flask | None = None,
        engine_options: Mapping[str, Any] | None = None,
        session_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.bases = bases
        #: The metadata of each bind key, from the bases; needs no app.
        self.metadatas: Mapping[str | None, sa.MetaData] = metadatas_of(bases)
        self._engine_options = dict(engine_options or {})
        self._session_options = dict(session_options or {})
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
        states[self] = DatabaseCore(
            app.config,
            *self.bases,
            root_path=app.instance_path,
            engine_options=self._engine_options,
            session_options=self._session_options,
        )
        app.teardown_appcontext(self._close_session)
        app.shell_context_processor(self._shell_context)

    @property
    def session(self) -> Session:
        """The current app context's session, made on first use.

        The same object for the whole context; closed at its teardown, so anything not
        committed is rolled back.
        """
        if not has_app_context():
            raise RuntimeError(_NO_APP_CONTEXT.format(what="'db.session'"))
        sessions: dict[Database, Session] | None = g.get(_G_SESSIONS)
        if sessions is None:
            sessions = {}
            setattr(g, _G_SESSIONS, sessions)
        session = sessions.get(self)
        if session is None:
            session = sessions[self] = self._state("'db.session'").sessionmaker()
        return session

    @property
    def sessionmaker(self) -> sessionmaker[Session]:
        """The current app's session factory, for sessions you manage yourself."""
        return self._state("'db.sessionmaker'").sessionmaker

    @property
    def engine(self) -> sa.Engine:
        """The current app's default engine (``SQLALCHEMY_DATABASE_URI``)."""
        return self._state("'db.engine'").engine

    @property
    def engines(self) -> Mapping[str | None, sa.Engine]:
        """The current app's engines by bind key, the default under ``None``. Read-only."""
        return self._state("'db.engines'").engines

    def get_engine(self, bind_key: str | None = None) -> sa.Engine:
        """The current app's engine for ``bind_key``; ``None`` is the default bind."""
        return self._state("'db.get_engine()'").get_engine(bind_key)

    @property
    def metadata(self) -> sa.MetaData:
        """The default bind's metadata: that of the base without a bind key."""
        try:
            return self.metadatas[None]
        except KeyError:
            raise RuntimeError(
                "No model base uses the default bind; use 'db.metadatas[key]' for a bind key."
            ) from None

    def create_all(self, bind_key: BindKeys = "__all__") -> None:
        """Create the current app's missing tables.

        :param bind_key: ``"__all__"`` (every base), ``None`` (the default bind), one
            key, or a list of keys.
        """
        self._state("'db.create_all()'").create_all(bind_key)

    def drop_all(self, bind_key: BindKeys = "__all__") -> None:
        """Drop the current app's tables. Takes the same ``bind_key`` as :meth:`create_all`."""
        self._state("'db.drop_all()'").drop_all(bind_key)

    def __repr__(self) -> str:
        bases = ", ".join(base.__name__ for base in self.bases)
        return f"<{type(self).__name__}({bases})>"

    def _state(self, what: str) -> DatabaseCore:
        if not has_app_context():
            raise RuntimeError(_NO_APP_CONTEXT.format(what=what))
        state = _states(current_app).get(self)
        if state is None:
            raise RuntimeError(
                f"The current app {current_app.name!r} is not registered with this"
                f" Database, so {what} has nothing to use. Call 'db.init_app(app)' in the"
                " app factory."
            )
        return state

    def _close_session(self, exc: BaseException | None) -> None:
        sessions: dict[Database, Session] | None = g.get(_G_SESSIONS)
        session = sessions.pop(self, None) if sessions is not None else None
        if session is None:
            return
        try:
            # Closing rolls back the open transaction on its connection and returns the
            # connection to the pool; loaded objects stay readable, detached.
            session.close()
        except Exception:
            # Teardown must not replace the view's own error; the pool has already
            # invalidated a connection that failed to reset.
            current_app.logger.exception("flask-typed-db: closing the session failed")

    def _shell_context(self) -> dict[str, object]:
        context: dict[str, object] = {"db": self}
        for base in self.bases:
            for mapper in base.registry.mappers:
                context[mapper.class_.__name__] = mapper.class_
        return context


def _states(app: Flask) -> dict[Database, DatabaseCore]:
    """The state of each Database registered on ``app``, kept in ``app.extensions``."""
    # Flask 3.0 annotates 'extensions' as a bare dict, which strict pyright reports.
    extensions: dict[str, Any] = app.extensions  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    states: dict[Database, DatabaseCore] = extensions.setdefault(_EXTENSION, {})
    return states
