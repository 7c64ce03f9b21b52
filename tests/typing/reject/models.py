"""Models shared by the files that must fail to type-check."""

from __future__ import annotations

from sqlalchemy import Column
from sqlalchemy import Integer
from sqlalchemy import MetaData
from sqlalchemy import Table
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import registry

from flask_typed_db import Database


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "user"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


class Book(Base):
    __tablename__ = "book"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]


class Shelf:
    """A class mapped imperatively: no declarative base, nothing in its type says so."""

    id: int


registry().map_imperatively(
    Shelf, Table("shelf", MetaData(), Column("id", Integer, primary_key=True))
)


db = Database(Base)
