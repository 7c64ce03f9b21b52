"""Code that must be rejected. Each marked line must get exactly the named errors from
each checker; tests/test_typing_rejections.py runs both and compares. Not formatted by
ruff, so that each checked expression stays on the line that names its errors.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from flask_typed_db.core import KeysetPage
from flask_typed_db.core import Pagination
from flask_typed_db.core import keyset_paginate
from flask_typed_db.core import paginate

from .models import Book
from .models import Shelf
from .models import User
from .models import db


def wrong_entity_types(session: Session) -> None:
    # Statements are bound first: inline, mypy infers select()'s type from the target.
    users = sa.select(User)
    names = sa.select(User.name)
    titles = sa.select(Book.title)
    user: User = db.get_or_404(Book, 1)  # expect: mypy[assignment] pyright[reportAssignmentType]
    book: Book = db.first_or_404(users)  # expect: mypy[assignment] pyright[reportAssignmentType]
    name: int = db.one_or_404(names)  # expect: mypy[assignment] pyright[reportAssignmentType]
    books: Pagination[Book] = db.paginate(users)  # expect: mypy[assignment|arg-type] pyright[reportAssignmentType]
    ints: Pagination[int] = paginate(session, titles, page=1, per_page=5)  # expect: mypy[assignment|arg-type] pyright[reportAssignmentType]
    row = db.first_or_404(sa.select(User.id, User.name))
    first: str = row.tuple()[0]  # expect: mypy[assignment] pyright[reportAssignmentType]
    print(user, book, name, books, ints, first)


def no_any_leaks() -> None:
    db.first_or_404(sa.select(User)).title  # expect: mypy[attr-defined] pyright[reportAttributeAccessIssue, reportUnknownMemberType]
    db.paginate(sa.select(Book)).items[0].name  # expect: mypy[attr-defined] pyright[reportAttributeAccessIssue, reportUnknownMemberType]


def not_a_select(session: Session) -> None:
    db.paginate(sa.insert(User))  # expect: mypy[call-overload] pyright[reportCallIssue, reportArgumentType]
    db.paginate(sa.union_all(sa.select(User), sa.select(User)))  # expect: mypy[call-overload] pyright[reportCallIssue, reportArgumentType]
    db.one_or_404(sa.text("SELECT 1"))  # expect: mypy[call-overload] pyright[reportCallIssue, reportArgumentType]
    db.first_or_404(sa.select(User).subquery())  # expect: mypy[call-overload] pyright[reportCallIssue, reportArgumentType]
    db.first_or_404(User)  # expect: mypy[call-overload] pyright[reportCallIssue, reportArgumentType]
    paginate(session, sa.delete(User), page=1, per_page=5)  # expect: mypy[call-overload] pyright[reportCallIssue, reportArgumentType]


def not_a_count_option(session: Session) -> None:
    db.paginate(sa.select(User), count="approximate")  # expect: mypy[call-overload] pyright[reportCallIssue, reportArgumentType]
    paginate(session, sa.select(User), page=1, per_page=5, count="exact")  # expect: mypy[call-overload] pyright[reportCallIssue, reportArgumentType]
    about: int = db.paginate(sa.select(User)).estimated_total  # expect: mypy[assignment] pyright[reportAssignmentType]
    print(about)


def statements_besides_select() -> None:
    inserted = sa.insert(User).values(name="ann").returning(User.id)
    name: str = db.one_or_404(inserted)  # expect: mypy[assignment] pyright[reportAssignmentType]
    print(name)


def not_an_entity() -> None:
    db.get_or_404(User(), 1)  # expect: mypy[arg-type] pyright[reportArgumentType]
    db.get_or_404(sa.select(User), 1)  # expect: mypy[arg-type] pyright[reportArgumentType]
    book: Book = db.get_or_404(Shelf, 1)  # expect: mypy[assignment] pyright[reportAssignmentType]
    print(book)


def keyset_pages(session: Session) -> None:
    users = sa.select(User).order_by(User.id)
    titles = sa.select(Book.title).order_by(Book.id)
    books: KeysetPage[Book] = db.keyset_paginate(users)  # expect: mypy[assignment|arg-type] pyright[reportAssignmentType]
    ints: KeysetPage[int] = keyset_paginate(session, titles, per_page=5)  # expect: mypy[assignment|arg-type] pyright[reportAssignmentType]
    db.keyset_paginate(sa.select(Book).order_by(Book.id)).items[0].name  # expect: mypy[attr-defined] pyright[reportAttributeAccessIssue, reportUnknownMemberType]
    db.keyset_paginate(sa.insert(User))  # expect: mypy[call-overload] pyright[reportCallIssue, reportArgumentType]
    keyset_paginate(session, sa.union_all(sa.select(User), sa.select(User)), per_page=5)  # expect: mypy[call-overload] pyright[reportCallIssue, reportArgumentType]
    cursor: int | None = db.keyset_paginate(users).next_cursor  # expect: mypy[assignment] pyright[reportAssignmentType]
    print(books, ints, cursor)
