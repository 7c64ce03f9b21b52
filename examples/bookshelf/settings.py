"""Database settings shared by the web app and the worker.

Both read the same keys from the same place, so the nightly job always works on the
database the app serves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Set this to use another database, e.g. ``postgresql+psycopg://user@host/bookshelf``.
DATABASE_URL_VARIABLE = "BOOKSHELF_DATABASE_URL"
#: Set this to read from replicas of it: their URLs, separated by spaces.
REPLICA_URLS_VARIABLE = "BOOKSHELF_REPLICA_URLS"

#: The embedded default: no server needed. A relative SQLite path is resolved
#: against :data:`INSTANCE_PATH`.
DEFAULT_DATABASE_URI = "sqlite:///bookshelf.sqlite"

#: Where the SQLite file lives: ``examples/instance/``, the folder Flask would pick
#: for this package. The app and the worker both pass it explicitly so they agree.
INSTANCE_PATH = Path(__file__).resolve().parent.parent / "instance"


def database_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``SQLALCHEMY_*`` settings, from ``environ`` (default: ``os.environ``)."""
    environ = os.environ if environ is None else environ
    settings: dict[str, Any] = {
        "SQLALCHEMY_DATABASE_URI": environ.get(DATABASE_URL_VARIABLE) or DEFAULT_DATABASE_URI
    }
    replicas = environ.get(REPLICA_URLS_VARIABLE, "").split()
    if replicas:
        # Reads in GET requests go to them; see docs/scaling.md.
        settings["SQLALCHEMY_REPLICAS"] = {None: replicas}
    return settings
