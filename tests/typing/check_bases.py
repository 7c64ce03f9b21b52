"""Static checks: several bases on one bind, and automatic table names.

Nothing here runs under pytest; ``make typecheck`` runs both checkers over this file.
Every metadata of a bind reaches Alembic and Flask-Alembic without a cast, and a model
of an ``AutoTableName`` base needs no ``__tablename__`` to type-check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import assert_type

import sqlalchemy as sa
from alembic import context
from flask_alembic import Alembic
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Session
from sqlalchemy.orm import mapped_column

from flask_typed_db import Database
from flask_typed_db.core import AutoTableName
from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import camel_to_snake_case
from flask_typed_db.core import metadatas_of


class Base(AutoTableName, DeclarativeBase):
    pass


class LibraryBase(DeclarativeBase):
    pass


class HTTPResponse(Base):
    id: Mapped[int] = mapped_column(primary_key=True)


def check_metadatas_by_bind(core: DatabaseCore) -> None:
    db = Database(Base, LibraryBase)
    assert_type(db.metadatas_by_bind, Mapping[str | None, tuple[sa.MetaData, ...]])
    assert_type(core.metadatas_by_bind, Mapping[str | None, tuple[sa.MetaData, ...]])
    assert_type(metadatas_of([Base, LibraryBase]), Mapping[str | None, tuple[sa.MetaData, ...]])
    # What Flask-Alembic and Alembic take.
    Alembic(metadatas={key or "default": list(mds) for key, mds in db.metadatas_by_bind.items()})
    context.configure(target_metadata=db.metadatas_by_bind[None])


def check_table_names(session: Session) -> None:
    assert_type(camel_to_snake_case("HTTPResponse"), str)
    assert_type(session.scalars(sa.select(HTTPResponse)).one(), HTTPResponse)
