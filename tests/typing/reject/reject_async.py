"""The async names: code that must be rejected. Each marked line must get exactly the
named errors from each checker; tests/test_typing_rejections.py runs both and compares.
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from flask import Response
from flask.typing import ResponseReturnValue
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from flask_typed_db import Database
from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import Pagination
from flask_typed_db.core import RoutingSession

from .models import Base
from .models import Book
from .models import User
from .models import db


class AuditedAsyncSession(AsyncSession):
    async def audit(self, action: str) -> None:
        pass


def results_used_without_await() -> None:
    db.async_get_or_404(User, 1).name  # expect: mypy[attr-defined] pyright[reportAttributeAccessIssue, reportUnknownMemberType]
    user: User = db.async_first_or_404(sa.select(User))  # expect: mypy[assignment] pyright[reportAssignmentType]
    page: Pagination[User] = db.async_paginate(sa.select(User))  # expect: mypy[assignment] pyright[reportAssignmentType]
    db.async_session.scalars(sa.select(User)).all()  # expect: mypy[attr-defined] pyright[reportAttributeAccessIssue, reportUnknownMemberType]
    print(user, page)


def the_async_session_is_not_a_session() -> None:
    session: Session = db.async_session  # expect: mypy[assignment] pyright[reportAssignmentType]
    routing: RoutingSession = db.async_session  # expect: mypy[assignment] pyright[reportAssignmentType]
    same: AsyncSession = db.session  # expect: mypy[assignment] pyright[reportAssignmentType]
    print(session, routing, same)


def only_async_sessions(settings: Mapping[str, object]) -> None:
    Database(Base, async_session_class=Session)  # expect: mypy[type-var] pyright[reportArgumentType]
    Database(Base, async_session_class=RoutingSession)  # expect: mypy[type-var] pyright[reportArgumentType]
    DatabaseCore(settings, Base, async_session_class=Session)  # expect: mypy[type-var] pyright[reportArgumentType]


def annotations_name_an_async_session(db: Database[RoutingSession, Session]) -> None:  # expect: mypy[type-var] pyright[reportInvalidTypeArguments]
    pass


async def custom_methods_keep_their_types() -> None:
    await db.async_session.audit("export")  # expect: mypy[attr-defined] pyright[reportAttributeAccessIssue, reportUnknownMemberType]
    audited = Database(Base, async_session_class=AuditedAsyncSession)
    await audited.async_session.audit(1)  # expect: mypy[arg-type] pyright[reportArgumentType]


async def wrong_entity_types() -> None:
    # Statements are bound first: inline, mypy infers select()'s type from the target.
    # Through the await, mypy infers the result's type from the target too: it names the
    # argument that does not fit it, or an overload's type that does not either.
    users = sa.select(User)
    names = sa.select(User.name)
    book: Book = await db.async_get_or_404(User, 1)  # expect: mypy[arg-type] pyright[reportAssignmentType]
    other: Book = await db.async_first_or_404(users)  # expect: mypy[assignment] pyright[reportAssignmentType]
    name: int = await db.async_one_or_404(names)  # expect: mypy[assignment] pyright[reportAssignmentType]
    books: Pagination[Book] = await db.async_paginate(users)  # expect: mypy[assignment|arg-type] pyright[reportAssignmentType]
    (await db.async_first_or_404(users)).title  # expect: mypy[attr-defined] pyright[reportAttributeAccessIssue, reportUnknownMemberType]
    print(book, other, name, books)


async def not_a_select() -> None:
    await db.async_paginate(sa.insert(User))  # expect: mypy[call-overload] pyright[reportCallIssue, reportArgumentType]
    await db.async_paginate(sa.union_all(sa.select(User), sa.select(User)))  # expect: mypy[call-overload] pyright[reportCallIssue, reportArgumentType]
    await db.async_one_or_404(sa.text("SELECT 1"))  # expect: mypy[call-overload] pyright[reportCallIssue, reportArgumentType]
    await db.async_first_or_404(User)  # expect: mypy[call-overload] pyright[reportCallIssue, reportArgumentType]
    await db.async_get_or_404(sa.select(User), 1)  # expect: mypy[arg-type] pyright[reportArgumentType]


async def add_user() -> ResponseReturnValue:
    return {}, 201


def async_views_stay_awaitable() -> None:
    response: Response = db.commit_on_success(add_user)()  # expect: mypy[assignment] pyright[reportAssignmentType]
    print(response)


def the_async_transaction_is_async(settings: Mapping[str, object]) -> None:
    core = DatabaseCore(settings, Base)
    with core.async_transaction():  # expect: mypy[attr-defined, attr-defined] pyright[reportGeneralTypeIssues, reportGeneralTypeIssues]
        pass
