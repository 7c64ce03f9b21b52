"""Loans: a book lent to a borrower until a due date."""

from __future__ import annotations

from datetime import UTC
from datetime import date
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint
from sqlalchemy import ForeignKey
from sqlalchemy import String
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from .base import Base

if TYPE_CHECKING:
    from .catalogue import Book


def utcnow() -> datetime:
    """The current time as a naive UTC datetime, the form every timestamp here uses.

    SQLite and MariaDB store no time zone, so the tables hold naive UTC values and
    the code never mixes them with aware ones.
    """
    return datetime.now(UTC).replace(tzinfo=None)


class Loan(Base):
    __tablename__ = "loans"
    __table_args__ = (
        CheckConstraint(
            "returned_at IS NULL OR returned_at >= lent_at", name="returned_after_lent"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    book_id: Mapped[int] = mapped_column(ForeignKey("books.id"), index=True)
    borrower: Mapped[str] = mapped_column(String(200))
    lent_at: Mapped[datetime]
    due_on: Mapped[date] = mapped_column(index=True)
    returned_at: Mapped[datetime | None]
    #: When the nightly job reminded the borrower that the book is overdue.
    reminded_at: Mapped[datetime | None]

    book: Mapped[Book] = relationship(back_populates="loans")

    @property
    def is_open(self) -> bool:
        """Whether the book has not come back yet."""
        return self.returned_at is None

    def is_overdue(self, today: date) -> bool:
        """Whether the book is still out after its due date."""
        return self.is_open and self.due_on < today

    def __repr__(self) -> str:
        return f"<Loan {self.id} book={self.book_id} to {self.borrower!r}>"
