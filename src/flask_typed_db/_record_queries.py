"""Queries recorded per app context, as Flask-SQLAlchemy's ``SQLALCHEMY_RECORD_QUERIES``."""

from __future__ import annotations

from flask import g
from flask import has_app_context

from .core import RecordedQuery

#: ``g`` attribute holding the queries recorded in the current app context.
_G_QUERIES = "_flask_typed_db_queries"


def get_recorded_queries() -> list[RecordedQuery]:
    """The queries sent so far in the current app context (a request, a CLI command),
    oldest first, when the app sets ``SQLALCHEMY_RECORD_QUERIES = True``; otherwise
    an empty list.

    A drop-in for Flask-SQLAlchemy's
    ``flask_sqlalchemy.record_queries.get_recorded_queries``: the same attributes, typed.

    :raises RuntimeError: Outside an app context.
    """
    if not has_app_context():
        raise RuntimeError(
            "Working outside of application context: 'get_recorded_queries()' reads the"
            " queries of the current app context. Call it in a view or CLI command, or"
            " push a context with 'with app.app_context():'."
        )
    queries: list[RecordedQuery] = g.get(_G_QUERIES, [])
    return queries


def app_context_queries() -> list[RecordedQuery] | None:
    """Where a query sent now is recorded: the current app context's list, or nowhere
    (``None``) outside one.
    """
    if not has_app_context():
        return None
    queries: list[RecordedQuery] | None = g.get(_G_QUERIES)
    if queries is None:
        queries = []
        setattr(g, _G_QUERIES, queries)
    return queries
