"""Which requests read from replicas, and read-your-writes across a client's requests.

A request whose method may change data (anything but ``GET``, ``HEAD``, ``OPTIONS`` and
``TRACE``) sends its whole session to the primaries: a view that reads what it then
writes reads it from the primary. So does a request from a client that wrote moments
ago: a response whose session committed a write carries a cookie,
:data:`WROTE_COOKIE`, holding the time until which the client's reads go to the
primaries (``SQLALCHEMY_REPLICA_DELAY`` seconds later), and the cookie expires then.

The cookie is not signed, and needs no ``SECRET_KEY``: all a forged, stale or garbled
one can do is send that client's reads to the primaries, which is always correct.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

import flask
from flask import has_request_context
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

from .core import RoutingSession

#: The cookie that sends a client's reads to the primaries, for a while after it wrote.
WROTE_COOKIE = "flask_typed_db_wrote"
#: Seconds a client's reads go to the primaries after it wrote, unless configured.
DEFAULT_REPLICA_DELAY = 2.0
#: The methods that do not change data (RFC 9110's safe methods).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def replica_delay(config: Mapping[str, Any]) -> float:
    """``SQLALCHEMY_REPLICA_DELAY``, checked: seconds, 0 for no read-your-writes
    across requests.
    """
    value = config.get("SQLALCHEMY_REPLICA_DELAY")
    if value is None:
        return DEFAULT_REPLICA_DELAY
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            "'SQLALCHEMY_REPLICA_DELAY' must be a number of seconds (int or float), not"
            f" {type(value).__name__}."
        )
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(
            "'SQLALCHEMY_REPLICA_DELAY' must be a finite number of seconds, 0 or more,"
            f" not {value!r}."
        )
    return float(value)


#: Flask's ``after_this_request``, which Flask 3.0 leaves partly untyped.
_after_this_request: Callable[[Callable[[Response], Response]], object] = getattr(  # noqa: B009  # typed here, not by Flask 3.0
    flask, "after_this_request"
)


class ReplicaRequests:
    """An app's rules for requests when it has read replicas, made at ``init_app``.

    :param config: The app's config: ``SQLALCHEMY_REPLICA_DELAY``, and the path and
        security of the session cookie, which :data:`WROTE_COOKIE` shares.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        #: Seconds a client's reads go to the primaries after it wrote.
        self.delay = replica_delay(config)
        self._path = config.get("SESSION_COOKIE_PATH") or config.get("APPLICATION_ROOT") or "/"
        self._secure = bool(config.get("SESSION_COOKIE_SECURE"))

    def route(self, session: RoutingSession, request: Request) -> None:
        """Pin ``session`` to the primaries if ``request`` may change data, or comes
        from a client whose :data:`WROTE_COOKIE` has not expired; have a commit of a
        write in it give the client the cookie.
        """
        if self.delay > 0:
            session.on_write_committed = self._remember_writer
        if request.method not in SAFE_METHODS:
            session.use_primary()
            return
        # The raw header first: parsing every request's cookies costs more than routing.
        header = request.environ.get("HTTP_COOKIE")
        if (
            header
            and WROTE_COOKIE in header
            and _wrote_recently(request.cookies.get(WROTE_COOKIE))
        ):
            session.use_primary()

    def _remember_writer(self) -> None:
        # After a commit that wrote: the response gets the cookie. Nothing is spent on
        # the requests that do not write.
        if has_request_context():
            _after_this_request(self._set_cookie)

    def _set_cookie(self, response: Response) -> Response:
        response.set_cookie(
            WROTE_COOKIE,
            f"{time.time() + self.delay:.3f}",
            max_age=math.ceil(self.delay),
            path=self._path,
            secure=self._secure,
            httponly=True,
            samesite="Lax",
        )
        return response


def _wrote_recently(wrote_until: str | None) -> bool:
    if wrote_until is None:
        return False
    try:
        until = float(wrote_until)
    except ValueError:
        return True  # garbled, or not ours: the primary is always right
    # NaN compares false: it also goes to the primary.
    return not until <= time.time()
