"""A typed, SQLAlchemy 2.x-style integration for Flask.

:class:`Database` is the Flask adapter; :mod:`flask_typed_db.core` is the same
machinery without Flask, for workers and scripts. Importing this package does not
import Flask: the adapter is loaded on first use, so ``flask_typed_db.core`` stays
usable where Flask is not installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._extension import Database
    from ._json import ModelJSONProvider
    from ._record_queries import get_recorded_queries

__all__ = ["Database", "ModelJSONProvider", "get_recorded_queries"]

#: Each public name, and the private module (which imports Flask) that defines it.
_LAZY = {
    "Database": "._extension",
    "ModelJSONProvider": "._json",
    "get_recorded_queries": "._record_queries",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
