"""Flask-SQLAlchemy 3.1's automatic table names, for a plain declarative base.

An app moving from Flask-SQLAlchemy has migrations written against the names its models
were given from their class names. :class:`AutoTableName` gives the same names, decided
the same way, so those migrations still match. The rules and the code follow
``flask_sqlalchemy.model`` (``NameMixin``, ``should_set_tablename``,
``camel_to_snake_case``) in Flask-SQLAlchemy 3.1, without importing it or Flask.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import DeclarativeBaseNoMeta
from sqlalchemy.orm import DeclarativeMeta
from sqlalchemy.orm import declared_attr
from sqlalchemy.orm.decl_api import DeclarativeAttributeIntercept

_DECLARATIVE_BASES = (DeclarativeBase, DeclarativeBaseNoMeta)

# A capital that ends a word: after a lower-case letter or a digit ("userId",
# "V2Model"), or before a lower-case letter unless it starts the name ("HTTPResponse").
_WORD_START = re.compile(r"((?<=[a-z0-9])[A-Z]|(?!^)[A-Z](?=[a-z]))")


def camel_to_snake_case(name: str) -> str:
    """The table name Flask-SQLAlchemy 3.1 gives a model class called ``name``:
    ``"HTTPResponse"`` is ``"http_response"``, ``"V2Model"`` is ``"v2_model"``.

    For a ``__tablename__`` of your own that should follow the same rule.
    """
    return _WORD_START.sub(r"_\1", name).lower().lstrip("_")


class AutoTableName:
    """Name each model's table from its class name, as Flask-SQLAlchemy 3.1 does.

    Put it before ``DeclarativeBase`` (or ``DeclarativeBaseNoMeta``) in the base::

        class Base(AutoTableName, DeclarativeBase):
            pass

        class HTTPResponse(Base):  # table "http_response"
            id: Mapped[int] = mapped_column(primary_key=True)

    A model that sets ``__tablename__`` or ``__table__`` keeps it, and so does one that
    gets ``__tablename__`` from a mixin (a ``declared_attr`` is used at every level).
    Abstract models get no name. A subclass of a model gets a table of its own, under
    its own name, only when it declares a primary key column (joined-table
    inheritance); otherwise it shares its parent's table (single-table inheritance).
    A table already in the metadata under the generated name is the model's table.
    """

    # Declared for the type checkers; set on each model by __init_subclass__.
    __tablename__: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        _check_comes_before_declarative_base(cls)
        if _should_set_tablename(cls):
            cls.__tablename__ = camel_to_snake_case(cls.__name__)

        super().__init_subclass__(**kwargs)

        # __table_cls__ has run. If it made no table, use the parent's.
        if "__tablename__" not in cls.__dict__ and cls.__dict__.get("__table__", ...) is None:
            delattr(cls, "__table__")

    @classmethod
    def __table_cls__(cls, *args: Any, **kwargs: Any) -> sa.Table | None:
        """Make the model's table, or none for single-table inheritance.

        SQLAlchemy calls this with the arguments of :class:`~sqlalchemy.Table` when it
        maps a model that has a ``__tablename__``. Without a primary key among the
        columns, a subclass of a model with a table is mapped to that table.
        """
        name, metadata = args[0], args[1]
        schema = kwargs.get("schema")
        key = name if schema is None else f"{schema}.{name}"
        # A table of that name already in the metadata, reflected or declared: the
        # model maps it.
        if key in metadata.tables:
            return sa.Table(*args, **kwargs)

        # A primary key of its own: a table of its own, for joined-table inheritance.
        for arg in args:
            if (isinstance(arg, sa.Column) and arg.primary_key) or isinstance(
                arg, sa.PrimaryKeyConstraint
            ):
                return sa.Table(*args, **kwargs)

        # No base has a table: make this one, missing its primary key, so that
        # SQLAlchemy says what is wrong.
        if not any("__table__" in base.__dict__ for base in cls.__mro__[1:-1]):
            return sa.Table(*args, **kwargs)

        # Single-table inheritance: the parent's table and name. __init_subclass__
        # removes the __table__ = None this leaves.
        if "__tablename__" in cls.__dict__:
            del cls.__tablename__
        return None


def _should_set_tablename(cls: type) -> bool:
    """Whether ``cls`` gets a generated name: not abstract, not the base itself, and
    no name found in its MRO except on a mapped class (which names only itself). A
    ``declared_attr`` name found first is used instead.
    """
    if (
        cls.__dict__.get("__abstract__", False)
        or (
            not issubclass(cls, _DECLARATIVE_BASES)
            and not any(isinstance(base, DeclarativeMeta) for base in cls.__mro__[1:])
        )
        or any(base in _DECLARATIVE_BASES for base in cls.__bases__)
    ):
        return False

    for base in cls.__mro__:
        if "__tablename__" not in base.__dict__:
            continue
        if isinstance(base.__dict__["__tablename__"], declared_attr):
            return False
        # A name on cls itself is kept; one on an abstract class or a plain mixin is
        # inherited; one on a mapped class names that class only.
        return not (
            base is cls
            or base.__dict__.get("__abstract__", False)
            or not (
                isinstance(base, (DeclarativeMeta, DeclarativeAttributeIntercept))
                or issubclass(base, DeclarativeBaseNoMeta)
            )
        )
    return True


def _check_comes_before_declarative_base(cls: type) -> None:
    # After DeclarativeBase in the MRO, the name would be set after SQLAlchemy has
    # mapped the model, which then has none.
    for declarative in _DECLARATIVE_BASES:
        if declarative in cls.__bases__ and (
            cls.__mro__.index(AutoTableName) > cls.__mro__.index(declarative)
        ):
            raise TypeError(
                f"AutoTableName must come before {declarative.__name__} in the bases of"
                f" {cls.__name__}: class {cls.__name__}(AutoTableName,"
                f" {declarative.__name__})."
            )
