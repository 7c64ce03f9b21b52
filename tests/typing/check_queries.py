"""Static checks: the query helpers keep the statement's type all the way to the view.

The same assertions hold on SQLAlchemy 2.0 and 2.1: a multi-column row is checked
through ``Row.tuple()``, whose type both versions spell ``tuple[int, str]``, while the
``Row`` type itself is ``Row[tuple[int, str]]`` on 2.0 and ``Row[int, str]`` on 2.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any
from typing import assert_type

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Mapper
from sqlalchemy.orm import Session
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import registry
from sqlalchemy.orm import selectinload

from flask_typed_db import Database
from flask_typed_db.core import KeysetPage
from flask_typed_db.core import Pagination
from flask_typed_db.core import keyset_paginate
from flask_typed_db.core import paginate


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "user"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    nickname: Mapped[str | None]


class Shelf:
    """Mapped imperatively: no declarative base."""

    id: int


registry().map_imperatively(Shelf, sa.Table("shelf", Base.metadata, sa.Column("id", sa.Integer)))


class Post(Base):
    __tablename__ = "post"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id"))


db = Database(Base)


def check_get_or_404(mapper: Mapper[User]) -> None:
    assert_type(db.get_or_404(User, 1), User)
    assert_type(db.get_or_404(Shelf, "1"), Shelf)
    assert_type(db.get_or_404(mapper, 1), User)
    assert_type(db.get_or_404(User, 1, description="No such user"), User)
    assert_type(db.get_or_404(User, 1, with_for_update=True), User)
    assert_type(db.get_or_404(Post, (1,), options=[selectinload("*")]), Post)


def check_first_and_one_or_404() -> None:
    users = sa.select(User).where(User.id == 1)
    assert_type(db.first_or_404(users), User)
    assert_type(db.one_or_404(users, description="No such user"), User)
    assert_type(db.first_or_404(sa.select(User.name)), str)
    assert_type(db.one_or_404(sa.select(User.nickname)), str | None)
    assert_type(db.one_or_404(sa.select(sa.func.count()).select_from(User)), int)

    row = db.first_or_404(sa.select(User.id, User.name))
    assert_type(row.tuple(), tuple[int, str])
    pair = db.one_or_404(sa.select(User, Post).join(Post, Post.user_id == User.id))
    assert_type(pair.tuple(), tuple[User, Post])
    triple = db.one_or_404(sa.select(User.name, User.nickname, Post))
    assert_type(triple.tuple(), tuple[str, str | None, Post])


def check_statements_besides_select() -> None:
    inserted = sa.insert(User).values(name="ann").returning(User.id)
    assert_type(db.one_or_404(inserted), int)
    created = sa.insert(User).values(name="ann").returning(User)
    assert_type(db.first_or_404(created), User)
    both = sa.insert(User).values(name="ann").returning(User.id, User.name)
    assert_type(db.one_or_404(both).tuple(), tuple[int, str])
    # SQLAlchemy 2.1 types a union by its first select (a User here), 2.0 as Any;
    # assigned, the row is a User for both.
    user: User = db.first_or_404(sa.union_all(sa.select(User), sa.select(User)))
    name: str = db.one_or_404(sa.union_all(sa.select(User.name), sa.select(User.name)))
    print(user, name)
    # SQLAlchemy types the rows of from_statement() as Any: so do the helpers.
    loaded = sa.select(User).from_statement(sa.union_all(sa.select(User), sa.select(User)))
    assert_type(db.one_or_404(loaded), Any)


def check_a_column_count_only_the_run_can_tell() -> None:
    # One column gives its value, several a Row: the checkers say Any, as they do for
    # a call that more than one overload matches through Any.
    assert_type(db.first_or_404(sa.select(User).add_columns(User.name)), Any)


def check_paginate() -> None:
    page = db.paginate(sa.select(User).order_by(User.id))
    assert_type(page, Pagination[User])
    assert_type(page.items, Sequence[User])
    assert_type(iter(page), Iterator[User])
    assert_type(page.page, int)
    assert_type(page.per_page, int)
    assert_type(page.total, int | None)
    assert_type(page.pages, int)
    assert_type(page.has_prev, bool)
    assert_type(page.has_next, bool)
    assert_type(page.prev_num, int | None)
    assert_type(page.next_num, int | None)
    assert_type(page.first, int)
    assert_type(page.last, int)
    assert_type(page.iter_pages(left_edge=1, right_edge=1), Iterator[int | None])
    for user in page:
        assert_type(user, User)

    names = db.paginate(sa.select(User.name), page=2, per_page=10, max_per_page=50)
    assert_type(names, Pagination[str])
    rows = db.paginate(sa.select(User.id, User.name), error_out=False, count=False)
    assert_type(rows.items[0].tuple(), tuple[int, str])
    about = db.paginate(sa.select(User.id), count="estimate")
    assert_type(about, Pagination[int])
    assert_type(about.estimated_total, int | None)
    # A page of one entity is a page of a supertype too: Pagination is covariant.
    assert_type(items_of(page), Sequence[Base])


def items_of(page: Pagination[Base]) -> Sequence[Base]:
    return page.items


def check_core_paginate(session: Session) -> None:
    users = paginate(session, sa.select(User), page=1, per_page=20)
    assert_type(users, Pagination[User])
    assert_type(users.items, Sequence[User])
    ids = paginate(session, sa.select(User.id), page=3, per_page=5, count=False)
    assert_type(ids, Pagination[int])
    about = paginate(session, sa.select(User), page=9, per_page=5, count="estimate")
    assert_type(about, Pagination[User])
    rows = paginate(session, sa.select(User.id, User.nickname), page=1, per_page=5)
    assert_type(rows.items[0].tuple(), tuple[int, str | None])


def check_keyset_paginate(session: Session) -> None:
    page = db.keyset_paginate(sa.select(User).order_by(User.id))
    assert_type(page, KeysetPage[User])
    assert_type(page.items, Sequence[User])
    assert_type(iter(page), Iterator[User])
    assert_type(page.has_next, bool)
    assert_type(page.has_prev, bool)
    assert_type(page.next_cursor, str | None)
    assert_type(page.prev_cursor, str | None)
    assert_type(page.per_page, int)
    ids = db.keyset_paginate(sa.select(User.id).order_by(User.id), per_page=5, error_out=False)
    assert_type(ids, KeysetPage[int])
    rows = db.keyset_paginate(sa.select(User.id, User.name).order_by(User.id), max_per_page=50)
    assert_type(rows.items[0].tuple(), tuple[int, str])
    core_users = keyset_paginate(session, sa.select(User).order_by(User.id), per_page=20)
    assert_type(core_users, KeysetPage[User])
    core_rows = keyset_paginate(
        session, sa.select(User.id, User.nickname).order_by(User.id), per_page=5, after=None
    )
    assert_type(core_rows.items[0].tuple(), tuple[int, str | None])
