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
from collections.abc import Mapping
from typing import Any

from flask import has_request_context
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


def route_request(session: RoutingSession, request_method: str, wrote_until: str | None) -> None:
    """Pin ``session`` to the primaries if its request may change data, or comes from
    a client whose :data:`WROTE_COOKIE` (``wrote_until``) has not expired.
    """
    if request_method not in SAFE_METHODS or _wrote_recently(wrote_until):
        session.use_primary()


def _wrote_recently(wrote_until: str | None) -> bool:
    if wrote_until is None:
        return False
    try:
        until = float(wrote_until)
    except ValueError:
        return True  # garbled, or not ours: the primary is always right
    # NaN compares false: it also goes to the primary.
    return not until <= time.time()


def remember_writer(config: Mapping[str, Any], response: Response, delay: float) -> None:
    """Give the client of the current request :data:`WROTE_COOKIE`, so that its reads
    go to the primaries for ``delay`` seconds. ``config``: the app's, for the path
    and security of its session cookie, which this one shares.
    """
    if delay <= 0 or not has_request_context():
        return
    response.set_cookie(
        WROTE_COOKIE,
        f"{time.time() + delay:.3f}",
        max_age=math.ceil(delay),
        path=config.get("SESSION_COOKIE_PATH") or config.get("APPLICATION_ROOT") or "/",
        secure=bool(config.get("SESSION_COOKIE_SECURE")),
        httponly=True,
        samesite="Lax",
    )
