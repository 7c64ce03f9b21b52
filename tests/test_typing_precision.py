"""The query helpers are typed never less precisely than SQLAlchemy itself types the
same statement, whichever SQLAlchemy is installed.

For each statement, mypy and pyright reveal the type of each helper's result and of
what plain SQLAlchemy gives for it: ``session.execute(stmt).first()`` (a Row) and
``session.execute(stmt).scalars().first()`` (its first value), or ``session.get()``.
The helper's type must be one of those (``| None`` aside: a helper never returns a
missing row). The async helpers, awaited, are held to what an ``AsyncSession`` gives:
``(await session.execute(stmt)).first()`` and the rest. ``tests/typing/check_queries.py``
and ``check_async.py`` assert the types both SQLAlchemy 2.0 and 2.1 give alike; this
catches what they give differently (a ``union_all()`` is typed on 2.1 only) under each.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.checkers import mypy_output
from tests.checkers import pyright_diagnostics

ROOT = Path(__file__).parent.parent

PROBE_HEAD = """
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Mapper
from sqlalchemy.orm import Session
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import registry

from flask_typed_db import Database
from flask_typed_db.core import paginate


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "user"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    nickname: Mapped[str | None]


class Shelf:
    id: int


registry().map_imperatively(Shelf, sa.Table("shelf", Base.metadata, sa.Column("id", sa.Integer)))
db = Database(Base)


def probe(session: Session, columns: list[sa.ColumnElement[int]], mapper: Mapper[User]) -> None:
"""

#: After the sync probe's lines, the async helpers' probe.
PROBE_ASYNC_HEAD = """

async def probe_async(
    session: AsyncSession, columns: list[sa.ColumnElement[int]], mapper: Mapper[User]
) -> None:
"""

#: Statements of every shape, and whether they can be paginated.
STATEMENTS = {
    "entity": ("sa.select(User)", True),
    "column": ("sa.select(User.name)", True),
    "nullable column": ("sa.select(User.nickname)", True),
    "count": ("sa.select(sa.func.count()).select_from(User)", True),
    "two columns": ("sa.select(User.id, User.name)", True),
    "three columns": ("sa.select(User.name, User.nickname, User)", True),
    "select(*columns)": ("sa.select(*columns)", True),
    "add_columns()": ("sa.select(User).add_columns(User.name)", True),
    "union of entities": ("sa.union_all(sa.select(User), sa.select(User))", False),
    "union of two columns": (
        "sa.union_all(sa.select(User.id, User.name), sa.select(User.id, User.name))",
        False,
    ),
    "from_statement()": (
        "sa.select(User).from_statement(sa.union_all(sa.select(User), sa.select(User)))",
        False,
    ),
    "insert returning a column": (
        'sa.insert(User).values(name="ann").returning(User.id)',
        False,
    ),
    "insert returning an entity": ('sa.insert(User).values(name="ann").returning(User)', False),
}
ENTITIES = {"declared": "User", "imperative": "Shelf", "mapper": "mapper"}

#: Each revealed expression: (case, whose: "ours" or "sqlalchemy").
Reveals = dict[int, tuple[str, str]]


def probe_source() -> tuple[str, Reveals]:
    lines = list[str](PROBE_HEAD.splitlines())
    reveals: Reveals = {}

    def reveal(expression: str, case: str, whose: str) -> None:
        lines.append(f"    reveal_type({expression})")
        reveals[len(lines)] = (case, whose)

    for number, (case, (statement, pageable)) in enumerate(STATEMENTS.items()):
        name = f"statement_{number}"
        lines.append(f"    {name} = {statement}")
        reveal(f"db.first_or_404({name})", case, "ours")
        reveal(f"db.one_or_404({name})", case, "ours")
        if pageable:
            reveal(f"db.paginate({name}).items[0]", case, "ours")
            reveal(f"paginate(session, {name}, page=1, per_page=1).items[0]", case, "ours")
        reveal(f"session.execute({name}).first()", case, "sqlalchemy")
        reveal(f"session.execute({name}).scalars().first()", case, "sqlalchemy")
    for case, entity in ENTITIES.items():
        reveal(f"db.get_or_404({entity}, 1)", f"get_or_404 of {case}", "ours")
        reveal(f"session.get({entity}, 1)", f"get_or_404 of {case}", "sqlalchemy")

    lines.extend(PROBE_ASYNC_HEAD.splitlines())
    for number, (shape, (statement, pageable)) in enumerate(STATEMENTS.items()):
        name, case = f"statement_{number}", f"async, {shape}"
        lines.append(f"    {name} = {statement}")
        reveal(f"await db.async_first_or_404({name})", case, "ours")
        reveal(f"await db.async_one_or_404({name})", case, "ours")
        if pageable:
            reveal(f"(await db.async_paginate({name})).items[0]", case, "ours")
        reveal(f"(await session.execute({name})).first()", case, "sqlalchemy")
        reveal(f"(await session.execute({name})).scalars().first()", case, "sqlalchemy")
    for kind, entity in ENTITIES.items():
        case = f"async_get_or_404 of {kind}"
        reveal(f"await db.async_get_or_404({entity}, 1)", case, "ours")
        reveal(f"await session.get({entity}, 1)", case, "sqlalchemy")
    return "\n".join(lines) + "\n", reveals


def mypy_reveals(probe: Path, tmp_path: Path) -> dict[int, str]:
    revealed = re.compile(r'^.*?:(?P<line>\d+): note: Revealed type is "(?P<type>.*)"$')
    return {
        int(match["line"]): match["type"]
        for match in map(revealed.match, mypy_output([probe], tmp_path / "mypy").splitlines())
        if match is not None
    }


def pyright_reveals(probe: Path, tmp_path: Path) -> dict[int, str]:
    revealed = re.compile(r'^Type of ".*" is "(?P<type>.*)"$', re.DOTALL)
    found: dict[int, str] = {}
    for diagnostic in pyright_diagnostics([probe], tmp_path):
        match = revealed.match(diagnostic["message"])
        if diagnostic["severity"] == "information" and match is not None:
            found[diagnostic["range"]["start"]["line"] + 1] = match["type"]
    return found


def without_none(type_: str) -> str:
    """``type_`` without the ``| None`` SQLAlchemy adds for a missing row."""
    return type_.removesuffix(" | None").removeprefix("None | ")


def spelled_alike(type_: str) -> str:
    """``type_`` with ``typing.Tuple`` (SQLAlchemy 2.0.0's) spelled ``tuple``."""
    return re.sub(r"\bTuple\[", "tuple[", type_)


@pytest.mark.parametrize("checker", ["mypy", "pyright"])
def test_the_helpers_are_typed_as_precisely_as_sqlalchemy(checker: str, tmp_path: Path) -> None:
    source, reveals = probe_source()
    probe = tmp_path / "probe.py"
    probe.write_text(source, encoding="utf-8")
    revealed = (mypy_reveals if checker == "mypy" else pyright_reveals)(probe, tmp_path)
    found = {line: spelled_alike(type_) for line, type_ in revealed.items()}
    assert found.keys() >= reveals.keys(), f"types not revealed: {reveals.keys() - found.keys()}"

    sqlalchemy_gives: dict[str, set[str]] = {}
    for line, (case, whose) in reveals.items():
        if whose == "sqlalchemy":
            sqlalchemy_gives.setdefault(case, set()).update(
                {found[line], without_none(found[line])}
            )
    less_precise = [
        f"{case}: line {line} is {found[line]}, SQLAlchemy gives {sorted(sqlalchemy_gives[case])}"
        for line, (case, whose) in sorted(reveals.items())
        if whose == "ours" and found[line] not in sqlalchemy_gives[case]
    ]
    assert not less_precise, "\n".join([source, *less_precise])
