"""The load tests' log reading: which tracebacks in a server's log count as errors.

Not marked ``load``: these need no server, so they run with the rest of the suite.
"""

from __future__ import annotations

import traceback

from tests.load.harness import raised_exceptions


class DriverError(Exception):
    pass


class WrappedError(Exception):
    pass


class CaughtError(Exception):
    pass


def logged(error: BaseException) -> str:
    """``error`` as a server logs it: a line of its own, then the formatted chain."""
    return "ERROR in app: Exception on /x [POST]\n" + "".join(traceback.format_exception(error))


def raised(error: Exception) -> Exception:
    """``error``, raised and caught: with a traceback, as a logger formats it."""
    try:
        raise error
    except Exception as caught:
        return caught


def raise_from() -> WrappedError:
    try:
        try:
            raise DriverError("server closed the connection")
        except DriverError as error:
            raise WrappedError("wrapped") from error
    except WrappedError as wrapped:
        return wrapped


def raise_while_handling() -> WrappedError:
    """A caught error, then a failure while handling it, itself raised from another."""
    try:
        try:
            raise CaughtError("duplicate key")
        except CaughtError:
            raise_from_inside()
    except WrappedError as error:
        return error
    raise AssertionError("nothing was raised")


def raise_from_inside() -> None:
    try:
        raise DriverError("server closed the connection")
    except DriverError as error:
        raise WrappedError("wrapped") from error


def name(exception: str) -> str:
    return exception.partition(":")[0].rpartition(".")[2]


def test_every_link_of_a_chain_raised_from_a_cause_is_listed() -> None:
    assert [name(line) for line in raised_exceptions(logged(raise_from()))] == [
        "DriverError",
        "WrappedError",
    ]


def test_an_exception_that_was_caught_before_another_was_raised_is_not_listed() -> None:
    error = raise_while_handling()
    log = logged(error)
    assert "During handling of the above exception" in log
    assert "CaughtError" in log
    assert [name(line) for line in raised_exceptions(log)] == ["DriverError", "WrappedError"]


def test_separate_tracebacks_are_each_listed_with_their_messages() -> None:
    log = "".join(
        [
            logged(raised(CaughtError("first"))),
            logged(raise_while_handling()),
            logged(raised(WrappedError("last"))),
        ]
    )
    exceptions = raised_exceptions(log)
    assert [name(line) for line in exceptions] == [
        "CaughtError",
        "DriverError",
        "WrappedError",
        "WrappedError",
    ]
    assert exceptions[0].endswith("CaughtError: first")


def test_a_log_without_a_traceback_lists_nothing() -> None:
    log = "[2026-01-01 00:00:00 +0000] [1] [INFO] Booting worker with pid: 2\nall quiet\n"
    assert raised_exceptions(log) == []
