"""Authors and their books."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint
from sqlalchemy import ForeignKey
from sqlalchemy import String
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from .base import Base

if TYPE_CHECKING:
    from .loans import Loan


class Author(Base):
    __tablename__ = "authors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    born: Mapped[int | None]

    books: Mapped[list[Book]] = relationship(
        back_populates="author", order_by="Book.title", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<Author {self.id} {self.name!r}>"


class Book(Base):
    __tablename__ = "books"
    __table_args__ = (CheckConstraint("year > 0", name="year_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    # ISBN-13 without hyphens: the natural key the seed data and clients use.
    isbn: Mapped[str] = mapped_column(String(13), unique=True)
    year: Mapped[int | None]
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"), index=True)

    author: Mapped[Author] = relationship(back_populates="books")
    loans: Mapped[list[Loan]] = relationship(
        back_populates="book", order_by="Loan.lent_at", cascade="all, delete-orphan"
    )
    #: The loan that has not been returned yet, if any: a book is lent to one
    #: borrower at a time. Read-only; lend and return through :class:`Loan`.
    current_loan: Mapped[Loan | None] = relationship(
        primaryjoin="and_(Loan.book_id == Book.id, Loan.returned_at.is_(None))",
        viewonly=True,
        uselist=False,
    )

    def __repr__(self) -> str:
        return f"<Book {self.id} {self.title!r}>"
