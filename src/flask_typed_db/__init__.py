"""A typed, SQLAlchemy 2.x-style integration for Flask.

:class:`Database` is the Flask adapter; :mod:`flask_typed_db.core` is the same
machinery without Flask, for workers and scripts. Importing this package does not
import Flask: the adapter is loaded on first use, so ``flask_typed_db.core`` stays
usable where Flask is not installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._extension import Database

__all__ = ["Database"]


def __getattr__(name: str) -> object:
    if name == "Database":
        from ._extension import Database

        return Database
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
