"""Check that every bind's database answers, within a time limit: for readiness probes."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import wait
from dataclasses import dataclass

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.pool import QueuePool


@dataclass(frozen=True)
class _Failure:
    """Why one check failed: in full, and in words that name no file, host or user."""

    detail: str
    summary: str


#: What one check of one bind found: seconds taken, and why it failed, if it did.
_Outcome = tuple[float, _Failure | None]


@dataclass(frozen=True)
class BindHealth:
    """Whether one bind's database answered, and how fast."""

    #: The bind key; ``None`` is the default bind.
    bind_key: str | None
    #: The bind's URL, with its password hidden. It names the host, the user and the
    #: database or file: :meth:`HealthReport.as_dict` shows it only with ``detail``.
    url: str
    #: Whether the database answered within the time limit.
    ok: bool
    #: Seconds until the database answered or failed; the time limit if it did neither.
    duration: float
    #: Why the check failed, in full: the driver's error, first line, without the
    #: password. It may name the host, the user or the file.
    error: str | None = None
    #: Why the check failed, in words that name no file, host or user: the type of the
    #: driver's error (``"OperationalError"``), or the time limit's message in full.
    #: What :meth:`HealthReport.as_dict` shows by default.
    summary: str | None = None


@dataclass(frozen=True)
class HealthReport:
    """The result of one :meth:`DatabaseCore.check_health
    <flask_typed_db.core.DatabaseCore.check_health>`: one :class:`BindHealth` per bind.
    """

    binds: tuple[BindHealth, ...]

    @property
    def ok(self) -> bool:
        """Whether every bind's database answered."""
        return all(bind.ok for bind in self.binds)

    def as_dict(self, *, detail: bool = False) -> dict[str, object]:
        """The report as JSON-ready data, for a health endpoint.

        By default it names no file, host or user, so that a probe anyone can reach
        may return it: each bind's key, ``ok``, ``duration`` and the
        :attr:`~BindHealth.summary` of its error::

            {"ok": False, "binds": [{"bind_key": None, "ok": False,
              "duration": 0.004, "error": "OperationalError"}]}

        With ``detail``, each bind's ``url`` (password hidden) is added, and its
        :attr:`~BindHealth.error` is given in full. That is for operators, in a log
        line or on an endpoint that only the internal network reaches::

            {"ok": False, "binds": [{"bind_key": None,
              "url": "postgresql+psycopg://app:***@db.internal/app", "ok": False,
              "duration": 0.004, "error": "OperationalError: connection to server at"
              ' "db.internal" (10.0.0.5), port 5432 failed: Connection refused'}]}

        :param detail: Add the URLs, and give the drivers' errors in full.
        """
        return {"ok": self.ok, "binds": [_bind_dict(bind, detail) for bind in self.binds]}


def _bind_dict(bind: BindHealth, detail: bool) -> dict[str, object]:
    if detail:
        return {
            "bind_key": bind.bind_key,
            "url": bind.url,
            "ok": bind.ok,
            "duration": bind.duration,
            "error": bind.error,
        }
    return {
        "bind_key": bind.bind_key,
        "ok": bind.ok,
        "duration": bind.duration,
        "error": bind.summary,
    }


class HealthChecker:
    """Checks engines concurrently, each in a daemon thread of its own, and stops
    waiting at the time limit: a driver stuck on a dead network cannot hold up the
    probe, nor keep the process from exiting.

    A bind whose previous check is still stuck is reported as failing without starting
    another, so probes against a hung server never pile up threads.
    """

    def __init__(self, engines: Mapping[str | None, sa.Engine]) -> None:
        self._engines = engines
        self._running: dict[str | None, Future[_Outcome]] = {}
        self._lock = threading.Lock()

    def check(self, timeout: float) -> HealthReport:
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}.")
        started = time.perf_counter()
        with self._lock:
            checks = {key: self._start(key, engine) for key, engine in self._engines.items()}
        wait([future for future, _ in checks.values()], timeout=timeout)
        binds: list[BindHealth] = []
        for key, (future, is_new) in checks.items():
            url = self._engines[key].url.render_as_string(hide_password=True)
            failure: _Failure | None
            if future.done():
                duration, failure = future.result()
            elif is_new:
                failure, duration = _unanswered(self._engines[key], timeout), timeout
            else:
                failure = _ours(
                    "the previous check has not finished: the database does not answer"
                )
                duration = time.perf_counter() - started
            if failure is None:
                binds.append(BindHealth(key, url, True, duration))
            else:
                binds.append(
                    BindHealth(key, url, False, duration, failure.detail, failure.summary)
                )
        return HealthReport(tuple(binds))

    def _start(self, key: str | None, engine: sa.Engine) -> tuple[Future[_Outcome], bool]:
        previous = self._running.get(key)
        if previous is not None and not previous.done():
            return previous, False
        future: Future[_Outcome] = Future()
        future.set_running_or_notify_cancel()
        self._running[key] = future
        threading.Thread(
            target=_ping,
            args=(engine, future),
            name=f"flask-typed-db health check ({key or 'default'})",
            daemon=True,
        ).start()
        return future, True


def _ping(engine: sa.Engine, future: Future[_Outcome]) -> None:
    """Run the cheapest query there is on a pooled connection; resolve ``future``
    with how long it took and ``None``, or the reason it failed.
    """
    started = time.perf_counter()
    failure: _Failure | None = None
    try:
        with engine.connect() as connection:
            connection.execute(sa.select(sa.literal(1, sa.Integer()))).scalar_one()
    except Exception as exc:  # any failure means the bind is not usable
        failure = _describe(exc, engine.url)
    future.set_result((time.perf_counter() - started, failure))


def _ours(message: str) -> _Failure:
    """A failure in our own words, which name nothing of the server's: safe to show."""
    return _Failure(detail=message, summary=message)


def _unanswered(engine: sa.Engine, timeout: float) -> _Failure:
    """Why a check found no answer in time: a busy pool is said apart from a silent
    server, since only the first goes away by itself when the requests finish.
    """
    pool = engine.pool
    if isinstance(pool, QueuePool):
        # QueuePool has no public accessor for its overflow limit; -1 is no limit.
        max_overflow: int = getattr(pool, "_max_overflow", -1)
        in_use = pool.checkedout()
        if max_overflow >= 0 and pool.checkedin() == 0 and in_use >= pool.size() + max_overflow:
            return _ours(
                f"no answer within {timeout:g} s: all {in_use} pooled connections are in use"
            )
    return _ours(f"no answer within {timeout:g} s")


def _describe(exc: Exception, url: sa.URL) -> _Failure:
    """The driver's error: its words may name the host, the user or the file, so the
    summary is its type alone.
    """
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    name = type(cause).__name__
    lines = str(cause).strip().splitlines()
    text = f"{name}: {lines[0]}" if lines else name
    # Drivers rarely repeat the password, but the detail goes to logs.
    if url.password:
        text = text.replace(str(url.password), "***")
    return _Failure(detail=text, summary=name)
