"""Static checks: the async names' types, as mypy and pyright see them.

``db.async_session`` is exactly ``AsyncSession`` (or the class given), never a
``Union`` with the sync session and never ``Any``; the async query helpers keep the
statement's type through the ``await``, as the sync ones do (``check_queries.py``).
A multi-column row is checked through ``Row.tuple()``, spelled alike on SQLAlchemy 2.0
and 2.1; ``tests/test_typing_precision.py`` compares the ``Row`` types themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Coroutine
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any
from typing import assert_type

import sqlalchemy as sa
from flask import Flask
from flask import Response
from flask.typing import ResponseReturnValue
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Mapper
from sqlalchemy.orm import Session
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import selectinload

from flask_typed_db import Database
from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import KeysetPage
from flask_typed_db.core import Pagination
from flask_typed_db.core import RoutingSession


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "user"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    nickname: Mapped[str | None]


class Post(Base):
    __tablename__ = "post"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id"))


class AuditedSession(RoutingSession):
    """A custom session class with a method of its own."""

    def audit(self, action: str) -> int:
        return len(action)


class AuditedAsyncSession(AsyncSession):
    """A custom async session class with a method of its own."""

    async def audit(self, action: str) -> int:
        return len(action)


db = Database(Base)


async def check_async_session() -> None:
    assert_type(db, Database[RoutingSession, AsyncSession])
    assert_type(db.async_session, AsyncSession)
    assert_type(db.session, RoutingSession)
    # The async session keeps SQLAlchemy's own typing through the await.
    assert_type(await db.async_session.get(User, 1), User | None)
    assert_type((await db.async_session.scalars(sa.select(User))).all(), Sequence[User])
    names = sa.select(User.name)
    assert_type(await db.async_session.scalar(names), str | None)
    assert_type(db.async_session.sync_session, Session)


async def check_custom_session_classes(app: Flask) -> None:
    audited_async = Database(Base, async_session_class=AuditedAsyncSession, app=app)
    assert_type(audited_async, Database[RoutingSession, AuditedAsyncSession])
    assert_type(audited_async.async_session, AuditedAsyncSession)
    assert_type(await audited_async.async_session.audit("export"), int)
    assert_type(audited_async.session, RoutingSession)
    assert_type(audited_async.async_sessionmaker, async_sessionmaker[AuditedAsyncSession])
    assert_type(audited_async.async_sessionmaker(), AuditedAsyncSession)

    audited = Database(Base, session_class=AuditedSession, app=app)
    assert_type(audited, Database[AuditedSession, AsyncSession])
    assert_type(audited.session, AuditedSession)
    assert_type(audited.async_session, AsyncSession)
    assert_type(audited.async_sessionmaker, async_sessionmaker[AsyncSession])

    both = Database(
        Base, session_class=AuditedSession, async_session_class=AuditedAsyncSession, app=app
    )
    assert_type(both, Database[AuditedSession, AuditedAsyncSession])
    assert_type(both.session, AuditedSession)
    assert_type(both.session.audit("export"), int)
    assert_type(both.async_session, AuditedAsyncSession)
    assert_type(await both.async_session.audit("export"), int)


def annotated_with_the_session_class_only(db: Database[AuditedSession]) -> None:
    # A defaults to AsyncSession: annotations written before async stay valid.
    assert_type(db, Database[AuditedSession, AsyncSession])
    assert_type(db.session, AuditedSession)
    assert_type(db.async_session, AsyncSession)


def annotated_without_arguments(db: Database, core: DatabaseCore) -> None:
    assert_type(db.async_session, AsyncSession)
    assert_type(core.async_sessionmaker, async_sessionmaker[AsyncSession])


async def check_async_get_or_404(mapper: Mapper[User]) -> None:
    assert_type(await db.async_get_or_404(User, 1), User)
    assert_type(await db.async_get_or_404(mapper, 1), User)
    assert_type(await db.async_get_or_404(User, 1, description="No such user"), User)
    assert_type(await db.async_get_or_404(User, 1, with_for_update=True), User)
    assert_type(
        await db.async_get_or_404(Post, (1,), options=[selectinload("*")], populate_existing=True),
        Post,
    )
    # Not awaited, it is a coroutine of the entity.
    pending: Coroutine[Any, Any, User] = db.async_get_or_404(User, 1)
    pending.close()


async def check_async_first_and_one_or_404() -> None:
    users = sa.select(User).where(User.id == 1)
    assert_type(await db.async_first_or_404(users), User)
    assert_type(await db.async_one_or_404(users, description="No such user"), User)
    assert_type(await db.async_first_or_404(sa.select(User.id)), int)
    assert_type(await db.async_one_or_404(sa.select(User.id)), int)
    assert_type(await db.async_first_or_404(sa.select(User.nickname)), str | None)
    assert_type(await db.async_one_or_404(sa.select(sa.func.count()).select_from(User)), int)

    row = await db.async_first_or_404(sa.select(User, User.id))
    assert_type(row.tuple(), tuple[User, int])
    only = await db.async_one_or_404(sa.select(User, User.id))
    assert_type(only.tuple(), tuple[User, int])
    triple = await db.async_one_or_404(sa.select(User.name, User.nickname, Post))
    assert_type(triple.tuple(), tuple[str, str | None, Post])

    inserted = sa.insert(User).values(name="ann").returning(User.id)
    assert_type(await db.async_one_or_404(inserted), int)
    created = sa.insert(User).values(name="ann").returning(User)
    assert_type(await db.async_first_or_404(created), User)
    # As the sync helpers: SQLAlchemy types from_statement()'s rows as Any.
    loaded = sa.select(User).from_statement(sa.union_all(sa.select(User), sa.select(User)))
    assert_type(await db.async_one_or_404(loaded), Any)


async def check_async_paginate() -> None:
    page = await db.async_paginate(sa.select(User).order_by(User.id))
    assert_type(page, Pagination[User])
    assert_type(page.items, Sequence[User])
    assert_type(iter(page), Iterator[User])
    assert_type(page.total, int | None)
    ids = await db.async_paginate(sa.select(User.id), page=2, per_page=10, max_per_page=50)
    assert_type(ids, Pagination[int])
    names = await db.async_paginate(sa.select(User.nickname), error_out=False, count=False)
    assert_type(names, Pagination[str | None])
    about = await db.async_paginate(sa.select(User.nickname), count="estimate")
    assert_type(about, Pagination[str | None])
    rows = await db.async_paginate(sa.select(User, User.id))
    assert_type(rows.items[0].tuple(), tuple[User, int])


def check_async_engines_and_sessionmaker(app: Flask) -> None:
    with app.app_context():
        assert_type(db.async_engine, AsyncEngine)
        assert_type(db.async_engines, Mapping[str | None, AsyncEngine])
        assert_type(db.get_async_engine("auth"), AsyncEngine)
        assert_type(db.async_sessionmaker, async_sessionmaker[AsyncSession])
        assert_type(db.async_sessionmaker(), AsyncSession)


async def add_user() -> ResponseReturnValue:
    db.async_session.add(User(name="ann"))
    await db.async_session.flush()
    return {}, 201


async def show_user(user_id: int) -> ResponseReturnValue:
    user = await db.async_get_or_404(User, user_id)
    return {"id": user.id, "name": user.name}


def check_commit_on_success_of_async_views() -> None:
    # An async view stays awaitable and keeps its parameters.
    assert_type(db.commit_on_success(add_user), Callable[[], Awaitable[Response]])
    assert_type(db.commit_on_success(add_user)(), Awaitable[Response])
    assert_type(db.commit_on_success(show_user)(1), Awaitable[Response])


async def check_core(settings: Mapping[str, object]) -> None:
    core = DatabaseCore(settings, Base)
    assert_type(core, DatabaseCore[RoutingSession, AsyncSession])
    assert_type(core.async_transaction(), AbstractAsyncContextManager[AsyncSession])
    async with core.async_transaction() as session:
        assert_type(session, AsyncSession)
        assert_type((await session.scalars(sa.select(User))).one(), User)
    assert_type(core.async_sessionmaker, async_sessionmaker[AsyncSession])
    assert_type(core.async_sessionmaker(), AsyncSession)
    assert_type(core.async_engine, AsyncEngine)
    assert_type(core.async_engines, Mapping[str | None, AsyncEngine])
    assert_type(core.get_async_engine("auth"), AsyncEngine)
    disposing: Coroutine[Any, Any, None] = core.async_dispose()
    assert_type(await disposing, None)
    async with core as same:
        assert_type(same, DatabaseCore[RoutingSession, AsyncSession])


async def check_core_with_custom_classes(settings: Mapping[str, object]) -> None:
    audited_async = DatabaseCore(settings, Base, async_session_class=AuditedAsyncSession)
    assert_type(audited_async, DatabaseCore[RoutingSession, AuditedAsyncSession])
    async with audited_async.async_transaction() as session:
        assert_type(session, AuditedAsyncSession)
        assert_type(await session.audit("report"), int)
    assert_type(audited_async.async_sessionmaker, async_sessionmaker[AuditedAsyncSession])

    audited = DatabaseCore(settings, Base, session_class=AuditedSession)
    assert_type(audited, DatabaseCore[AuditedSession, AsyncSession])
    async with audited.async_transaction() as plain:
        assert_type(plain, AsyncSession)

    both = DatabaseCore(
        settings, Base, session_class=AuditedSession, async_session_class=AuditedAsyncSession
    )
    assert_type(both, DatabaseCore[AuditedSession, AuditedAsyncSession])
    with both.transaction() as sync_session:
        assert_type(sync_session, AuditedSession)
    async with both.async_transaction() as async_session:
        assert_type(async_session, AuditedAsyncSession)
    async with both as same:
        assert_type(same, DatabaseCore[AuditedSession, AuditedAsyncSession])


async def check_async_keyset_paginate() -> None:
    page = await db.async_keyset_paginate(sa.select(User).order_by(User.id))
    assert_type(page, KeysetPage[User])
    ids = await db.async_keyset_paginate(sa.select(User.id).order_by(User.id), per_page=5)
    assert_type(ids, KeysetPage[int])
    rows = await db.async_keyset_paginate(
        sa.select(User, User.id).order_by(User.id), max_per_page=50, error_out=False
    )
    assert_type(rows.items[0].tuple(), tuple[User, int])
