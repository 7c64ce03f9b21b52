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


#: What one check of one database found: seconds taken, why it failed, if it did, and
#: a replica's replay lag.
_Outcome = tuple[float, _Failure | None, float | None]


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
    #: For a read replica (``SQLALCHEMY_REPLICAS``): its place in the bind's list;
    #: ``None`` for the bind's primary.
    replica: int | None = None
    #: For a PostgreSQL replica that answered: seconds its replay is behind the primary
    #: (0 when it has replayed all it received), or ``None`` if it has replayed nothing.
    replay_lag: float | None = None


@dataclass(frozen=True)
class HealthReport:
    """The result of one :meth:`DatabaseCore.check_health
    <flask_typed_db.core.DatabaseCore.check_health>`: one :class:`BindHealth` per bind.
    """

    binds: tuple[BindHealth, ...]
    #: Each bind's read replicas, in the order of ``SQLALCHEMY_REPLICAS``.
    replicas: tuple[BindHealth, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether every bind's database answered. A replica that does not is skipped by
        the sessions, which read from the others or the primary: it is reported in
        :attr:`replicas`, and does not count here.
        """
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
        report: dict[str, object] = {
            "ok": self.ok,
            "binds": [_bind_dict(bind, detail) for bind in self.binds],
        }
        if self.replicas:
            report["replicas"] = [_bind_dict(replica, detail) for replica in self.replicas]
        return report


def _bind_dict(bind: BindHealth, detail: bool) -> dict[str, object]:
    found: dict[str, object] = {"bind_key": bind.bind_key}
    if bind.replica is not None:
        found["replica"] = bind.replica
    if detail:
        found["url"] = bind.url
    found.update(ok=bind.ok, duration=bind.duration, error=bind.error if detail else bind.summary)
    if bind.replica is not None:
        found["replay_lag"] = bind.replay_lag
    return found


class HealthChecker:
    """Checks engines concurrently, each in a daemon thread of its own, and stops
    waiting at the time limit: a driver stuck on a dead network cannot hold up the
    probe, nor keep the process from exiting.

    A bind whose previous check is still stuck is reported as failing without starting
    another, so probes against a hung server never pile up threads.
    """

    def __init__(
        self,
        engines: Mapping[str | None, sa.Engine],
        replica_engines: Mapping[str | None, tuple[sa.Engine, ...]] | None = None,
    ) -> None:
        #: What is checked: each bind's primary (replica None), then each replica.
        self._targets: dict[_Target, sa.Engine] = {
            (key, None): engine for key, engine in engines.items()
        }
        for key, replicas in (replica_engines or {}).items():
            for index, engine in enumerate(replicas):
                self._targets[key, index] = engine
        self._running: dict[_Target, Future[_Outcome]] = {}
        self._lock = threading.Lock()

    def check(self, timeout: float) -> HealthReport:
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}.")
        started = time.perf_counter()
        with self._lock:
            checks = {
                target: self._start(target, engine) for target, engine in self._targets.items()
            }
        wait([future for future, _ in checks.values()], timeout=timeout)
        binds: list[BindHealth] = []
        replicas: list[BindHealth] = []
        for (key, replica), (future, is_new) in checks.items():
            engine = self._targets[key, replica]
            url = engine.url.render_as_string(hide_password=True)
            failure: _Failure | None
            lag: float | None = None
            if future.done():
                duration, failure, lag = future.result()
            elif is_new:
                failure, duration = _unanswered(engine, timeout), timeout
            else:
                failure = _ours(
                    "the previous check has not finished: the database does not answer"
                )
                duration = time.perf_counter() - started
            if failure is None:
                health = BindHealth(key, url, True, duration, replica=replica, replay_lag=lag)
            else:
                health = BindHealth(
                    key, url, False, duration, failure.detail, failure.summary, replica=replica
                )
            (binds if replica is None else replicas).append(health)
        return HealthReport(tuple(binds), tuple(replicas))

    def _start(self, target: _Target, engine: sa.Engine) -> tuple[Future[_Outcome], bool]:
        previous = self._running.get(target)
        if previous is not None and not previous.done():
            return previous, False
        future: Future[_Outcome] = Future()
        future.set_running_or_notify_cancel()
        self._running[target] = future
        key, replica = target
        name = key or "default"
        if replica is not None:
            name = f"{name}, replica {replica}"
        threading.Thread(
            target=_ping,
            args=(engine, future, replica is not None),
            name=f"flask-typed-db health check ({name})",
            daemon=True,
        ).start()
        return future, True


#: A checked database: a bind key, and the replica's place in its list (None: primary).
_Target = tuple[str | None, int | None]

#: On a PostgreSQL replica: how far its replay is behind, in seconds. The time since the
#: last replayed transaction counts only while WAL it received waits to be replayed: an
#: idle primary sends no transactions, and a replica that has replayed everything is
#: not behind.
_REPLAY_LAG = sa.text(
    "SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
    " ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END"
)


def _ping(engine: sa.Engine, future: Future[_Outcome], replica: bool = False) -> None:
    """Run the cheapest query there is on a pooled connection (on a PostgreSQL
    replica, the one that reads its replay lag); resolve ``future`` with how long it
    took, ``None`` or the reason it failed, and the lag.
    """
    started = time.perf_counter()
    failure: _Failure | None = None
    lag: float | None = None
    try:
        with engine.connect() as connection:
            if replica and engine.dialect.name == "postgresql":
                found = connection.execute(_REPLAY_LAG).scalar_one()
                lag = None if found is None else float(found)
            else:
                connection.execute(sa.select(sa.literal(1, sa.Integer()))).scalar_one()
    except Exception as exc:  # any failure means the bind is not usable
        failure = _describe(exc, engine.url)
    future.set_result((time.perf_counter() - started, failure, lag))


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
