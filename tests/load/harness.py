"""Run ``served_app`` under gunicorn, talk to it over HTTP, and read what it logged.

Standard library only on the client side: ``http.client`` with a timeout on every
request, so a hung server fails a test instead of stalling CI.
"""

from __future__ import annotations

import fnmatch
import functools
import http.client
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Collection
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError
from tests.load.served_app import CONFIG_PREFIX
from tests.load.served_app import POOL_REPORT
from tests.load.served_async import ASYNC_POOL_REPORT

#: The repository: gunicorn runs there, so it imports ``tests.load.served_app``.
ROOT = Path(__file__).resolve().parents[2]
#: Seconds a client waits for an answer: far above any request's own time limit (the
#: pool timeout, the connect timeout), so reaching it means the server hung.
CLIENT_TIMEOUT = 20.0
#: Seconds gunicorn gets to start its workers, and then to stop them.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0

_GUNICORN_LINE = re.compile(r"^\[[^\]]+\] \[\d+\] \[(?P<level>[A-Z]+)\] ")
_POOL_LINE = re.compile(
    re.escape(POOL_REPORT) + r" pid=(\d+) bind=\S+ checked_out=(\S+)$", re.MULTILINE
)
_ASYNC_POOL_LINE = re.compile(
    re.escape(ASYNC_POOL_REPORT) + r" pid=(\d+) bind=\S+ checked_out=(\S+)$", re.MULTILINE
)


@dataclass(frozen=True)
class Answer:
    """A response, read in full."""

    status: int
    #: Header names in lower case.
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:  # what json.loads returns: the tests look inside
        return json.loads(self.body)

    def is_json_error(self) -> bool:
        """Whether the body is the example API's error form, ``{"error": "..."}``."""
        if not self.headers.get("content-type", "").startswith("application/json"):
            return False
        match self.json():
            case {"error": str()}:
                return True
            case _:
                return False


def fetch(
    port: int,
    method: str,
    path: str,
    body: object = None,
    *,
    timeout: float = CLIENT_TIMEOUT,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """Send one request on a connection of its own; ``body`` is sent as JSON, or as
    is if it is ``bytes``. Raises ``OSError`` (``TimeoutError`` included) or
    ``http.client.HTTPException`` when no whole answer comes.

    A new connection per request: a POST is then never retried on a kept-alive
    connection the server closed meanwhile, so each answer belongs to one attempt.
    """
    headers = {"Connection": "close", **(headers or {})}
    data: bytes | None = None
    if isinstance(body, bytes):
        data = body
        headers["Content-Type"] = "application/json"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        return Answer(
            response.status,
            {name.lower(): value for name, value in response.getheaders()},
            payload,
        )
    finally:
        connection.close()


class Serve(Protocol):
    """The ``serve`` fixture: start a gunicorn serving ``served_app`` and wait until it
    answers. It is stopped, and its log checked, after the test.
    """

    def __call__(
        self,
        environment: Mapping[str, str],
        *,
        workers: int = ...,
        threads: int = ...,
        expected_errors: Collection[str] = ...,
    ) -> Gunicorn: ...


def served_app_environment(
    database_url: str, engine_options: Mapping[str, object], **config: object
) -> dict[str, str]:
    """The environment that configures ``served_app``: its database URL, engine
    options and any other ``app.config`` keys, each as JSON.
    """
    environment = {
        "BOOKSHELF_DATABASE_URL": database_url,
        f"{CONFIG_PREFIX}_SQLALCHEMY_ENGINE_OPTIONS": json.dumps(engine_options),
    }
    for key, value in config.items():
        environment[f"{CONFIG_PREFIX}_{key}"] = json.dumps(value)
    return environment


@functools.cache
def _gunicorn_options() -> tuple[str, ...]:
    """Options that depend on the installed gunicorn."""
    usage = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    # Newer versions open a control socket at one fixed path per user: several
    # servers at once (ours, other test runs) would fight over it.
    return ("--no-control-socket",) if "--no-control-socket" in usage else ()


class Gunicorn:
    """One gunicorn master serving ``served_app`` with ``--preload``, on a port of its
    own, logging to a file.

    :param expected_errors: ``fnmatch`` patterns of the exceptions (qualified names,
        as a traceback's last line gives them) the test provokes on purpose; any other
        traceback in the log is a problem.
    """

    def __init__(
        self,
        environment: Mapping[str, str],
        log_path: Path,
        *,
        workers: int,
        threads: int,
        expected_errors: Collection[str] = (),
    ) -> None:
        self.log_path = log_path
        self.workers = workers
        self.expected_errors = tuple(expected_errors)
        # gunicorn gets a socket already listening on a free port: no race for the port.
        listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = listener.getsockname()[1]
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(f"{CONFIG_PREFIX}_")
        }
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--preload",
            f"--workers={workers}",
            f"--threads={threads}",
            f"--bind=fd://{listener.fileno()}",
            f"--chdir={ROOT}",
            "--pythonpath=examples",
            f"--graceful-timeout={STOP_TIMEOUT / 2:g}",
            *_gunicorn_options(),
            "tests.load.served_app:create_served_app()",
        ]
        with listener, log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**inherited, **environment},
                pass_fds=(listener.fileno(),),
            )

    def wait_until_serving(self) -> None:
        """Return once a worker answers; raise if gunicorn exits or takes too long."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with {self.process.returncode} while starting:\n"
                    + self.log()
                )
            try:
                if fetch(self.port, "GET", "/load/no-db", timeout=2.0).status == 200:
                    return
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer within {START_TIMEOUT:g} s:\n" + self.log())

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), as a deployment does; kill if it takes too long."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(
                f"gunicorn did not stop within {STOP_TIMEOUT:g} s of SIGTERM:\n" + self.log()
            ) from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def booted_workers(self) -> int:
        """How many workers were started: more than ``workers`` means one was replaced."""
        return self.log().count("Booting worker with pid")

    def async_pool_reports(self) -> list[tuple[int, str]]:
        """Each async pool's report at exit, from each process that ran async code:
        its pid, and how many connections the pool still had checked out.
        """
        return [
            (int(pid), checked_out) for pid, checked_out in _ASYNC_POOL_LINE.findall(self.log())
        ]

    def problems(self) -> list[str]:
        """What the log shows went wrong, once gunicorn has stopped: a worker that
        crashed, timed out or was replaced, a warning or error of gunicorn's, a
        traceback the test did not provoke, a connection left checked out (async
        pools included), a process that exited without its pool report.
        """
        log = self.log()
        found: list[str] = []
        if self.process.returncode != 0:
            found.append(f"gunicorn exited with {self.process.returncode}")
        if self.booted_workers() != self.workers:
            found.append(f"{self.booted_workers()} workers booted, not {self.workers}")
        for line in log.splitlines():
            match = _GUNICORN_LINE.match(line)
            if match and match["level"] in {"WARNING", "ERROR", "CRITICAL"}:
                found.append(f"gunicorn logged: {line}")
        for exception in raised_exceptions(log):
            name = exception.partition(":")[0]
            if not any(fnmatch.fnmatchcase(name, pattern) for pattern in self.expected_errors):
                found.append(f"unexpected traceback ending in: {exception}")
        reports = _POOL_LINE.findall(log)
        # The master writes one too: it imported the app and exits last.
        if len(reports) != self.workers + 1:
            found.append(f"{len(reports)} pool reports at exit, not {self.workers + 1}")
        found.extend(
            f"process {pid} exited with {checked_out} connection(s) checked out"
            for pid, checked_out in reports
            if checked_out != "0"
        )
        found.extend(
            f"process {pid} exited with {checked_out} async connection(s) checked out"
            for pid, checked_out in self.async_pool_reports()
            if checked_out != "0"
        )
        return found


#: What Python prints between two tracebacks of one chain: the later exception was
#: raised ``from`` the earlier one, or while the earlier one was being handled.
_RAISED_FROM = "The above exception was the direct cause of the following exception:"
_WHILE_HANDLING = "During handling of the above exception, another exception occurred:"


def raised_exceptions(log: str) -> list[str]:
    """The last line of every traceback in ``log`` that reached the logger uncaught:
    ``module.Error: message``.

    A chained exception shows each of its tracebacks. A link raised ``from`` another
    (SQLAlchemy's error from the driver's) is listed with its cause; links that were
    being handled when a later one was raised are not, as the code caught them: a view
    that catches an ``IntegrityError`` and then finds the server gone lets only the
    ``OperationalError`` out.
    """
    lines = log.splitlines()
    starts = [
        index for index, line in enumerate(lines) if line == "Traceback (most recent call last):"
    ]
    # Each traceback's last line, and how it joins the next traceback: Python puts a
    # blank line, the separator and a blank line before a chain's next traceback.
    links: list[tuple[str, str | None]] = []
    for start, end in itertools.pairwise([*starts, len(lines)]):
        exception = next(
            (line for line in lines[start + 1 : end] if line and not line[0].isspace()), ""
        )
        separator = lines[end - 2] if end < len(lines) else None
        links.append(
            (exception, separator if separator in {_RAISED_FROM, _WHILE_HANDLING} else None)
        )
    found: list[str] = []
    chain: list[str] = []
    for exception, separator in links:
        chain.append(exception)
        if separator == _WHILE_HANDLING:
            chain = []
        elif separator is None:
            found.extend(chain)
            chain = []
    return found


def wait_for_database(url: str, timeout: float) -> None:
    """Return once the server at ``url`` accepts a connection; raise after ``timeout``."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                with engine.connect() as connection:
                    connection.execute(sa.select(sa.literal(1)))
                return
            except OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        engine.dispose()
