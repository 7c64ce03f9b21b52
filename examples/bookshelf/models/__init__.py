"""The catalogue's tables, as plain SQLAlchemy 2.x models.

Nothing here imports Flask or flask-typed-db: the web app and the worker both use
these classes, each with its own sessions.
"""

from __future__ import annotations

from .base import Base
from .catalogue import Author
from .catalogue import Book
from .loans import Loan
from .loans import utcnow

__all__ = ["Author", "Base", "Book", "Loan", "utcnow"]
