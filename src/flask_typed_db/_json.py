"""The opt-in Flask JSON provider for mapped instances, pages and rows."""

from __future__ import annotations

from flask.json.provider import DefaultJSONProvider

from .core import json_default


class ModelJSONProvider(DefaultJSONProvider):
    """Flask's default JSON provider, which also writes mapped instances, pages and rows,
    from what is loaded and without a query.

    Opt in per app, after making it::

        app.json = ModelJSONProvider(app)

    or with ``json_provider_class = ModelJSONProvider`` on a ``Flask`` subclass. Then
    ``jsonify(book)``, ``app.json.response(page)`` and a view returning a list or dict
    of instances write them as :func:`flask_typed_db.core.json_default` describes.

    Dates and times are written in ISO 8601 (``2024-05-01T09:30:00``), not in Flask's
    HTTP-date format, for every value the app serializes. Types this provider does not
    handle fall back to Flask's: ``Markup`` and plain dataclasses. A
    :class:`~flask_typed_db.core.Pagination` or a dataclass-mapped model is handled
    here first, so Flask's ``dataclasses.asdict()``, which would deep-copy the
    instances in it, never sees it.
    """

    @staticmethod
    def default(o: object) -> object:
        """Return what :func:`json.dumps` writes for ``o``: ours, else Flask's default.

        :raises ValueError: If an instance has expired attributes.
        :raises TypeError: If neither knows the type.
        """
        try:
            return json_default(o)
        except TypeError:
            return DefaultJSONProvider.default(o)
