"""Read replicas: which statements may read from one, which replica, and which are down.

The rule a :class:`~flask_typed_db.core.RoutingSession` follows, per bind with replicas:

- A statement that only reads (a ``SELECT`` without ``FOR UPDATE``: queries, ``get()``,
  lazy loads, refreshes) goes to a replica, while the session has not gone to the
  primary. Each session reads from one replica of a bind, picked in turn among those
  that are up: its reads see one server's view of the data.
- Anything else goes to the primary, and so does everything after it in that session,
  until the session is closed (in a Flask app, the app context ends): flushes, ``INSERT``,
  ``UPDATE`` and ``DELETE``, ``SELECT ... FOR UPDATE``, ``text()`` (which may write),
  ``session.connection()`` and ``session.get_bind()`` without a statement. So a
  transaction's reads after its first write or lock, and an object refreshed or lazily
  loaded after a commit that wrote, come from the primary.
- Inside ``db.primary()`` (a :class:`PrimaryBlock`) every statement goes to the
  primary, without pinning the session to it.

A read before the session's first write may come from a replica that lags: code that
writes what it read (read-modify-write) reads it with ``with_for_update()``, or inside
``db.primary()``. The Flask adapter sends a whole request to the primary when its method
may change data (``POST``, ``PUT``, ``PATCH``, ``DELETE``), or when the same client wrote
moments ago.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from types import TracebackType
from typing import Any
from typing import TypeVar
from typing import cast

import sqlalchemy as sa
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.selectable import GenerativeSelect

from ._explain import Explain

logger = logging.getLogger("flask_typed_db")

#: Seconds a replica that refused a connection is skipped before it is tried again.
RETRY_AFTER = 10.0

F = TypeVar("F", bound=Callable[..., Any])

#: How many :class:`PrimaryBlock` blocks the current context is in.
_primary_blocks: ContextVar[int] = ContextVar("flask_typed_db_primary_blocks", default=0)


def only_reads(clause: ClauseElement | None) -> bool:
    """Whether ``clause`` is a statement a replica can run: a ``SELECT`` (or a ``UNION``
    of them) that locks nothing, or the ``EXPLAIN`` of one.
    """
    if isinstance(clause, Explain):
        clause = clause.statement
    # _for_update_arg is where SQLAlchemy keeps with_for_update(); no public accessor.
    return isinstance(clause, GenerativeSelect) and clause._for_update_arg is None  # pyright: ignore[reportPrivateUsage]


def primary_forced() -> bool:
    """Whether the current context is inside a :class:`PrimaryBlock`."""
    return _primary_blocks.get() > 0


class PrimaryBlock:
    """What ``db.primary()`` and ``core.primary()`` return: sends every statement to the
    primary inside the block, or inside the decorated function (sync or ``async def``),
    whatever replicas are configured::

        with core.primary():
            balance = session.scalar(select(Account.balance).where(...))

    The session is not pinned to the primary by it: after the block, reads that are
    allowed to go to a replica do again.
    """

    def __init__(self) -> None:
        self._tokens: list[Any] = []

    def __enter__(self) -> None:
        self._tokens.append(_primary_blocks.set(_primary_blocks.get() + 1))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _primary_blocks.reset(self._tokens.pop())

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with PrimaryBlock():
                    return await func(*args, **kwargs)

            return cast("F", run_async)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with PrimaryBlock():
                return func(*args, **kwargs)

        return cast("F", run)


class Replicas:
    """The replica engines of one bind: which is next, and which are down.

    Shared by every session of a core, from any thread.
    """

    def __init__(self, bind_key: str | None, engines: tuple[sa.Engine, ...]) -> None:
        self.bind_key = bind_key
        self.engines = engines
        self._turns = itertools.count()
        #: When each replica may be tried again; 0 while it is up.
        self._down_until = [0.0] * len(engines)
        #: Whether any is down: until one is, a session's pick looks at no clock.
        self._any_down = False
        self._lock = threading.Lock()

    def in_turn(self) -> tuple[sa.Engine, ...]:
        """The replicas that are up, starting with the one whose turn it is."""
        count = len(self.engines)
        if count == 1 and not self._any_down:
            return self.engines
        start = next(self._turns) % count
        turn = self.engines[start:] + self.engines[:start]
        if not self._any_down:
            return turn
        now = time.monotonic()
        down = {
            engine
            for engine, until in zip(self.engines, self._down_until, strict=True)
            if until > now
        }
        return tuple(engine for engine in turn if engine not in down)

    def mark_down(self, engine: sa.Engine, error: BaseException) -> None:
        """Skip ``engine`` for 10 seconds (``RETRY_AFTER``); warn once per outage."""
        index = self.engines.index(engine)
        with self._lock:
            was_up = self._down_until[index] == 0.0
            self._down_until[index] = time.monotonic() + RETRY_AFTER
            self._any_down = True
        if was_up:
            # The engine's repr hides the URL's password; the error's first line is
            # the driver's (SQLAlchemy's message hides the password too).
            logger.warning(
                "flask-typed-db: replica %s of %s cannot be reached, so its reads go to"
                " the other replicas or the primary; it is tried again in %s s: %s",
                engine.url.render_as_string(hide_password=True),
                "the default bind" if self.bind_key is None else f"bind {self.bind_key!r}",
                RETRY_AFTER,
                str(error).splitlines()[0] if str(error) else type(error).__name__,
            )

    def mark_up(self, engine: sa.Engine) -> None:
        """``engine`` answered: it is up again, if it was down."""
        if not self._any_down:
            return
        index = self.engines.index(engine)
        if self._down_until[index] != 0.0:
            with self._lock:
                self._down_until[index] = 0.0
                self._any_down = any(self._down_until)
            logger.warning(
                "flask-typed-db: replica %s answers again.",
                engine.url.render_as_string(hide_password=True),
            )

    def is_down(self, engine: sa.Engine) -> bool:
        """Whether ``engine`` is being skipped."""
        return self._down_until[self.engines.index(engine)] > time.monotonic()
