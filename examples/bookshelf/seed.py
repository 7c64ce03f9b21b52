"""Sample data for the demo, written through any session: Flask's or a worker's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Author
from .models import Book
from .models import Loan

#: (name, year of birth, [(title, ISBN-13, year)])
AUTHORS: list[tuple[str, int | None, list[tuple[str, str, int]]]] = [
    (
        "Ursula K. Le Guin",
        1929,
        [
            ("A Wizard of Earthsea", "9780547773742", 1968),
            ("The Left Hand of Darkness", "9780441478125", 1969),
            ("The Dispossessed", "9780060512750", 1974),
        ],
    ),
    (
        "Italo Calvino",
        1923,
        [
            ("Invisible Cities", "9780156453806", 1972),
            ("If on a winter's night a traveler", "9780156439619", 1979),
        ],
    ),
    ("Toni Morrison", 1931, [("Beloved", "9781400033416", 1987)]),
    ("Stanisław Lem", 1921, [("Solaris", "9780156027601", 1961)]),
]

#: (ISBN, borrower, lent this many days ago, for this many days, returned days ago)
LOANS: list[tuple[str, str, int, int, int | None]] = [
    ("9780547773742", "Ada", 30, 14, None),  # overdue by 16 days
    ("9780156453806", "Grace", 20, 14, None),  # overdue by 6 days
    ("9781400033416", "Edsger", 3, 14, None),  # due in 11 days
    ("9780156027601", "Barbara", 40, 21, 25),  # returned
]


@dataclass(frozen=True)
class SeedResult:
    """How many rows one :func:`seed` call added."""

    authors: int
    books: int
    loans: int


def seed(session: Session, now: datetime) -> SeedResult:
    """Add the sample authors, books and loans that are missing; do not commit.

    Idempotent: authors are matched by name and books by ISBN, and loans are added
    only with the book they belong to, so a second call adds nothing.

    :param now: The naive UTC time the loan dates are relative to.
    """
    names = [name for name, _, _ in AUTHORS]
    authors = {
        author.name: author
        for author in session.scalars(select(Author).where(Author.name.in_(names)))
    }
    isbns = [isbn for _, _, books in AUTHORS for _, isbn, _ in books]
    known_isbns = set(session.scalars(select(Book.isbn).where(Book.isbn.in_(isbns))))

    added_authors = added_books = added_loans = 0
    new_books: dict[str, Book] = {}
    for name, born, books in AUTHORS:
        author = authors.get(name)
        if author is None:
            author = Author(name=name, born=born)
            session.add(author)
            added_authors += 1
        for title, isbn, year in books:
            if isbn not in known_isbns:
                book = Book(title=title, isbn=isbn, year=year, author=author)
                session.add(book)
                new_books[isbn] = book
                added_books += 1

    for isbn, borrower, lent_days_ago, days, returned_days_ago in LOANS:
        lent_book = new_books.get(isbn)
        if lent_book is None:
            continue
        lent_at = now - timedelta(days=lent_days_ago)
        returned_at = None if returned_days_ago is None else now - timedelta(returned_days_ago)
        session.add(
            Loan(
                book=lent_book,
                borrower=borrower,
                lent_at=lent_at,
                due_on=lent_at.date() + timedelta(days=days),
                returned_at=returned_at,
            )
        )
        added_loans += 1
    session.flush()
    return SeedResult(authors=added_authors, books=added_books, loans=added_loans)
