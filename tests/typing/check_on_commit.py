"""Static checks: the types of on_commit and its test helpers, as mypy and pyright
see them. A callback is any ``Callable[[], object]``: a function, a lambda, a bound
method, a ``functools.partial``, or (for the async session) an ``async def``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import assert_type

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Session

from flask_typed_db import Database
from flask_typed_db.core import async_on_commit
from flask_typed_db.core import captured_on_commit
from flask_typed_db.core import on_commit


class Base(DeclarativeBase):
    pass


db = Database(Base)


def send_receipt(loan_id: int) -> bool:
    return loan_id > 0


async def enqueue() -> None:
    pass


def check_database_on_commit() -> None:
    assert_type(db.on_commit(lambda: None), None)
    db.on_commit(functools.partial(send_receipt, 1), raise_errors=True)
    db.on_commit(print)
    helper = db.captured_on_commit()
    assert_type(helper, AbstractContextManager[list[Callable[[], object]]])
    with db.captured_on_commit(run=True) as callbacks:
        assert_type(callbacks, list[Callable[[], object]])
        assert_type(callbacks[0](), object)


async def check_async_on_commit(session: AsyncSession) -> None:
    assert_type(await db.async_on_commit(enqueue), None)
    await async_on_commit(session, enqueue, raise_errors=True)
    await async_on_commit(session, functools.partial(send_receipt, 2))


def check_core(session: Session) -> None:
    assert_type(on_commit(session, functools.partial(send_receipt, 3)), None)
    with captured_on_commit() as callbacks:
        assert_type(callbacks, list[Callable[[], object]])
