"""The servers of ``tests/servers/scale_out.sh`` as the tests see them: a PostgreSQL
primary, a streaming replica of it and PgBouncer in front of the primary. The
``scale_out`` fixture (in ``conftest.py``) gives their URLs, or skips (fails under
``CI=true``) without them.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc

#: The variables ``scale_out.sh env`` prints, with the servers' URLs.
SCALE_OUT_VARIABLES = ("TEST_PRIMARY_URL", "TEST_REPLICA_URL", "TEST_PGBOUNCER_URL")
#: How long a row committed on the primary may take to show on the replica.
REPLICATION_TIMEOUT = 10.0


@dataclass(frozen=True)
class ScaleOut:
    """The servers' URLs."""

    primary: str
    replica: str
    pgbouncer: str
    #: tests/servers/scale_out.sh, which stops and starts the replica.
    script: str

    def replica_server(self, action: str) -> None:
        """Run ``scale_out.sh start-replica`` or ``stop-replica``."""
        subprocess.run([self.script, action], check=True, capture_output=True, timeout=120)


def wait_on_replica(scale_out: ScaleOut, query: str, done: Callable[[Any], bool]) -> None:
    """Wait until ``query``'s answer on the replica is ``done``: the replica caught up."""
    engine = sa.create_engine(scale_out.replica, poolclass=sa.NullPool)
    deadline = time.monotonic() + REPLICATION_TIMEOUT
    try:
        while True:
            try:
                with engine.connect() as connection:
                    if done(connection.scalar(sa.text(query))):
                        return
            except sa_exc.ProgrammingError:
                pass  # the table is not there yet
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the replica did not catch up within {REPLICATION_TIMEOUT} s"
                )
            time.sleep(0.05)
    finally:
        engine.dispose()


def on_replica(scale_out: ScaleOut, statement: str) -> None:
    engine = sa.create_engine(scale_out.replica, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(statement))
    finally:
        engine.dispose()


def pause_replay(scale_out: ScaleOut) -> None:
    on_replica(scale_out, "SELECT pg_wal_replay_pause()")


def resume_replay(scale_out: ScaleOut) -> None:
    on_replica(scale_out, "SELECT pg_wal_replay_resume()")
