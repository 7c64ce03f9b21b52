"""Ids and lookups no row can match, because their column's type cannot hold the value:
a 404 (or an empty result), never a 500 and never another row, on every backend.

A route that takes its id as a string passes ``/items/1abc`` on as ``"1abc"``: MariaDB
would coerce it to 1 and answer with item 1; PostgreSQL would fail to cast it and
answer with a 500. Each value is judged against its column's type first.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import aliased
from sqlalchemy.orm import load_only
from sqlalchemy.orm import mapped_column
from werkzeug.exceptions import NotFound

from flask_typed_db import Database
from flask_typed_db.core._identity import NO_ROW
from flask_typed_db.core._identity import value_for

TOKEN = uuid.UUID("0b9a6f4e-3c1d-4e5f-8a7b-9c0d1e2f3a4b")
TICKET = uuid.UUID("f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9")


class Number(sa.types.TypeDecorator[int]):
    """An integer under another name: values reach the Integer unchanged."""

    impl = sa.Integer
    cache_ok = True


class HexId(sa.types.TypeDecorator[uuid.UUID]):
    """A UUID stored as 32 hex digits; a string that is no UUID cannot be bound."""

    impl = sa.String(32)
    cache_ok = True

    def process_bind_param(self, value: uuid.UUID | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return (value if isinstance(value, uuid.UUID) else uuid.UUID(value)).hex

    def process_result_value(self, value: str | None, dialect: Dialect) -> uuid.UUID | None:
        return None if value is None else uuid.UUID(value)


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "lookup_item"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(sa.String(20))


class Tag(Base):
    __tablename__ = "lookup_tag"
    name: Mapped[str] = mapped_column(sa.String(20), primary_key=True)


class Token(Base):
    __tablename__ = "lookup_token"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class Pair(Base):
    """A composite key of an integer and a string."""

    __tablename__ = "lookup_pair"
    group_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    code: Mapped[str] = mapped_column(sa.String(10), primary_key=True)


class Counted(Base):
    __tablename__ = "lookup_counted"
    id: Mapped[int] = mapped_column(Number, primary_key=True, autoincrement=False)


class Ticket(Base):
    __tablename__ = "lookup_ticket"
    id: Mapped[uuid.UUID] = mapped_column(HexId, primary_key=True)


db = Database(Base)


@pytest.fixture
def app(database_url: str, instance_path: Path) -> Flask:
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)
    with app.app_context():
        db.create_all()
        db.session.add_all(
            [
                Item(id=1, name="one"),
                Item(id=2, name="two"),
                Tag(name="py"),
                Token(id=TOKEN),
                Pair(group_id=1, code="a"),
                Counted(id=7),
                Ticket(id=TICKET),
            ]
        )
        db.session.commit()

    models: dict[str, type[Base]] = {
        "items": Item,
        "tags": Tag,
        "tokens": Token,
        "counted": Counted,
        "tickets": Ticket,
    }

    @app.get("/<kind>/<ident>")
    def show(kind: str, ident: str) -> str:
        return repr(sa.inspect(db.get_or_404(models[kind], ident)).identity)

    return app


@pytest.fixture
def request_context(app: Flask) -> Iterator[None]:
    with app.test_request_context("/"):
        yield


def backend(app: Flask) -> str:
    with app.app_context():
        return db.engine.dialect.name


def fetch(app: Flask, path: str) -> tuple[int, int]:
    """The status of a GET of ``path``, and how many statements it sent."""
    with db.record_queries(app) as queries:
        status = app.test_client().get(path).status_code
    return status, len(queries)


# get_or_404 with ids from a URL


@pytest.mark.parametrize("ident", ["2", "02", "0002"])
def test_a_string_of_digits_finds_its_integer_row(app: Flask, ident: str) -> None:
    assert app.test_client().get(f"/items/{ident}").text == "(2,)"


@pytest.mark.parametrize("ident", ["3", "-1", "0"])
def test_a_well_formed_integer_without_a_row_is_a_404_after_a_query(
    app: Flask, ident: str
) -> None:
    assert fetch(app, f"/items/{ident}") == (404, 1)


@pytest.mark.parametrize(
    "ident",
    [
        "1abc",
        "2;drop",
        "abc",
        "1.0",
        "1e0",
        "0x1",
        "1_0",
        "+2",
        "--2",
        "-",
        "%202",  # " 2"
        "2%20",  # "2 "
        "%00",
        "2%00",
        "%D9%A1",  # ARABIC-INDIC DIGIT ONE
        "%EF%BC%92",  # FULLWIDTH DIGIT TWO
        "9223372036854775808",
        "-9223372036854775809",
        "9" * 5000,
    ],
)
def test_an_id_an_integer_key_cannot_hold_is_a_404_without_a_query(app: Flask, ident: str) -> None:
    assert fetch(app, f"/items/{ident}") == (404, 0)


@pytest.mark.parametrize("ident", ["99999999999", "-2147483649"])
def test_an_id_past_integer_is_a_404_sent_only_to_sqlite(app: Flask, ident: str) -> None:
    # SQLite stores any INTEGER in 64 bits: such a row may exist there.
    queries = 1 if backend(app) == "sqlite" else 0
    assert fetch(app, f"/items/{ident}") == (404, queries)


def test_a_string_id_finds_its_string_row(app: Flask) -> None:
    assert app.test_client().get("/tags/py").text == "('py',)"


def test_a_string_id_with_nul_is_a_404_and_not_sent_to_postgresql(app: Flask) -> None:
    # SQLite and MariaDB store NUL in strings, so only PostgreSQL is spared the query.
    queries = 0 if backend(app) == "postgresql" else 1
    assert fetch(app, "/tags/py%00") == (404, queries)


def test_a_string_id_longer_than_its_column_is_a_404(app: Flask) -> None:
    # SQLite does not enforce VARCHAR lengths: a longer value may be stored there.
    queries = 1 if backend(app) == "sqlite" else 0
    assert fetch(app, f"/tags/{'p' * 21}") == (404, queries)


@pytest.mark.usefixtures("request_context")
def test_a_string_no_database_can_encode_is_a_404_without_a_query() -> None:
    with db.record_queries() as queries, pytest.raises(NotFound):
        db.get_or_404(Tag, "py\ud800")
    assert queries == []


@pytest.mark.parametrize(
    "ident",
    [str(TOKEN), str(TOKEN).upper(), TOKEN.hex, f"{{{TOKEN}}}", f"urn:uuid:{TOKEN}"],
)
def test_a_uuid_id_in_any_of_its_spellings_finds_its_row(app: Flask, ident: str) -> None:
    assert app.test_client().get(f"/tokens/{ident}").status_code == 200


@pytest.mark.parametrize(
    "ident",
    [
        "not-a-uuid",
        str(TOKEN)[:-1],
        f"{TOKEN}0",
        "%00",
        "1",
        f"%D9%A0{str(TOKEN)[1:]}",  # ARABIC-INDIC DIGIT ZERO, which uuid.UUID() reads as 0
        f"{TOKEN.hex[:4]}_{TOKEN.hex[5:]}",  # which uuid.UUID() reads as 31 digits
        f"%20{TOKEN.hex[1:]}",
    ],
)
def test_a_string_that_is_no_uuid_is_a_404_without_a_query(app: Flask, ident: str) -> None:
    assert fetch(app, f"/tokens/{ident}") == (404, 0)


def test_an_id_of_a_type_decorator_is_judged_by_the_type_it_decorates(app: Flask) -> None:
    assert app.test_client().get("/counted/7").text == "(7,)"
    assert app.test_client().get("/counted/07").text == "(7,)"
    assert fetch(app, "/counted/7x") == (404, 0)
    assert fetch(app, "/counted/9223372036854775808") == (404, 0)


def test_an_id_its_type_decorator_cannot_bind_is_a_404_without_a_query(app: Flask) -> None:
    assert app.test_client().get(f"/tickets/{TICKET}").status_code == 200
    assert fetch(app, "/tickets/not-a-uuid") == (404, 0)


# get_or_404 with values from elsewhere


@pytest.mark.usefixtures("request_context")
@pytest.mark.parametrize("ident", [True, False, 1.0, 2.5, [True], uuid.UUID(int=1)])
def test_an_integer_key_takes_only_integers_and_their_digits(ident: Any) -> None:
    with db.record_queries() as queries, pytest.raises(NotFound):
        db.get_or_404(Item, ident)
    assert queries == []


@pytest.mark.usefixtures("request_context")
def test_a_uuid_key_takes_a_uuid() -> None:
    assert db.get_or_404(Token, TOKEN).id == TOKEN


@pytest.mark.usefixtures("request_context")
def test_each_value_of_a_composite_key_is_judged_by_its_own_column() -> None:
    assert db.get_or_404(Pair, ("1", "a")).code == "a"
    assert db.get_or_404(Pair, ["01", "a"]).code == "a"
    assert db.get_or_404(Pair, {"group_id": "1", "code": "a"}).code == "a"
    for ident in [("1x", "a"), (True, "a"), {"code": "a", "group_id": "x"}, ("1", "a\ud800")]:
        with db.record_queries() as queries, pytest.raises(NotFound):
            db.get_or_404(Pair, ident)
        assert queries == []


@pytest.mark.usefixtures("request_context")
def test_a_malformed_composite_key_is_left_to_sqlalchemy_to_reject() -> None:
    with pytest.raises(InvalidRequestError):
        db.get_or_404(Pair, ("1",))
    with pytest.raises(InvalidRequestError):
        db.get_or_404(Pair, {"group_id": "1"})


# first_or_404 and one_or_404: lookups in a select()


@pytest.mark.usefixtures("request_context")
@pytest.mark.parametrize(
    "criteria",
    [
        pytest.param([Item.id == 2**31], id="past INTEGER"),
        pytest.param([Item.id == -(2**31) - 1], id="below INTEGER"),
        pytest.param([sa.literal(2**70) == Item.id], id="past 64 bits, value first"),
        pytest.param([Item.id == "1abc"], id="not digits"),
        pytest.param([Item.id == 1.5], id="a float"),
        pytest.param([Item.id.in_([2**31, 2**40])], id="IN, none held"),
        pytest.param([Item.name == "one", Item.id == 2**31], id="one of two"),
        pytest.param([sa.and_(Item.name == "one", Item.id == 2**40)], id="in and_()"),
        pytest.param([Item.name == "one\x00"], id="NUL"),
        pytest.param([Item.name == "o" * 21], id="too long"),
        pytest.param([Item.name == "one\ud800"], id="lone surrogate"),
    ],
)
def test_a_lookup_no_row_can_match_finds_nothing(criteria: list[sa.ColumnElement[bool]]) -> None:
    statement = sa.select(Item).where(*criteria)
    with pytest.raises(NotFound):
        db.first_or_404(statement)
    with pytest.raises(NotFound):
        db.one_or_404(statement)
    # The transaction is intact: no error reached the database.
    assert db.one_or_404(sa.select(Item.name).where(Item.id == 1)) == "one"


@pytest.mark.parametrize("page", [1, 2])
def test_a_page_of_a_lookup_no_row_can_match_is_empty(app: Flask, page: int) -> None:
    statement = sa.select(Item).where(Item.id == 2**31).order_by(Item.id)
    with app.test_request_context(f"/?page={page}"):
        pagination = db.paginate(statement, error_out=False)
        assert (pagination.items, pagination.total) == ([], 0)
        # The transaction is intact: no error reached the database.
        assert db.paginate(sa.select(Item.id).where(Item.id == "2"), page=1).items == [2]


@pytest.mark.usefixtures("request_context")
def test_an_in_list_keeps_the_values_its_column_can_hold() -> None:
    statement = sa.select(Item).where(Item.id.in_([2**31, 2, "2x", 2**70]))
    assert db.one_or_404(statement).name == "two"


@pytest.mark.usefixtures("request_context")
def test_an_aggregate_over_a_lookup_no_row_can_match_counts_nothing() -> None:
    statement = sa.select(sa.func.count()).select_from(Item).where(Item.id == 2**31)
    assert db.first_or_404(statement) == 0
    assert db.one_or_404(statement) == 0


@pytest.mark.usefixtures("request_context")
def test_a_lookup_its_column_can_hold_is_sent_unchanged() -> None:
    statement = sa.select(Item.name).where(Item.id.in_([1, 2]), Item.name == "two")
    assert db.one_or_404(statement) == "two"
    with db.record_queries() as queries, pytest.raises(NotFound):
        db.first_or_404(sa.select(Item.name).where(Item.id == 2**31 - 1))
    assert len(queries) == 1


@pytest.mark.usefixtures("request_context")
def test_a_lookup_value_is_sent_as_its_column_holds_it() -> None:
    assert db.one_or_404(sa.select(Item.name).where(Item.id == "02")) == "two"
    assert db.one_or_404(sa.select(Item.name).where(Item.id.in_(["2", "x"]))) == "two"
    assert db.one_or_404(sa.select(Token.id).where(Token.id == str(TOKEN).upper())) == TOKEN


@pytest.mark.usefixtures("request_context")
def test_a_lookup_with_loader_options_and_a_join_is_judged_too() -> None:
    other = aliased(Item)
    statement = (
        sa.select(Item)
        .join(other, other.id == Item.id)
        .where(other.id == "1", Item.name == "one")
        .options(load_only(Item.name))
        .order_by(Item.id)
    )
    assert db.one_or_404(statement).id == 1
    with pytest.raises(NotFound):
        db.first_or_404(statement.where(other.id == 2**40))


# value_for: what each type holds on each backend, without a database


def dialect(url: str) -> Dialect:
    """A dialect as an engine of that URL has it; nothing is connected."""
    return sa.create_engine(url).dialect


class Color(enum.Enum):
    RED = "r"
    BLUE = "b"


@pytest.mark.parametrize(
    ("type_", "url", "value", "held"),
    [
        (mysql.TINYINT(), "mysql+pymysql://", 127, 127),
        (mysql.TINYINT(), "mysql+pymysql://", 128, NO_ROW),
        (mysql.TINYINT(unsigned=True), "mysql+pymysql://", "255", 255),
        (mysql.MEDIUMINT(), "mysql+pymysql://", 2**23, NO_ROW),
        (mysql.MEDIUMINT(), "mysql+pymysql://", -(2**23), -(2**23)),
        (sa.SmallInteger(), "postgresql+psycopg://", "-32769", NO_ROW),
        (sa.BigInteger(), "postgresql+psycopg://", str(2**63 - 1), 2**63 - 1),
        (
            sa.BigInteger().with_variant(sa.SmallInteger(), "postgresql"),
            "postgresql+psycopg://",
            2**15,
            NO_ROW,
        ),
        (sa.Integer(), "sqlite://", 2**63, NO_ROW),
        (sa.Integer(), "sqlite://", Color.RED, NO_ROW),
        (sa.Enum(Color), "sqlite://", "RED", "RED"),
        (sa.Enum(Color), "sqlite://", "r", NO_ROW),
        (sa.Enum(Color), "sqlite://", Color.BLUE, Color.BLUE),
        (sa.String(3), "sqlite://", "four", "four"),
        (sa.String(), "postgresql+psycopg://", "x" * 10_000, "x" * 10_000),
        (sa.Uuid(as_uuid=False), "sqlite://", str(TOKEN).upper(), str(TOKEN).upper()),
        (sa.Uuid(), "sqlite://", TOKEN.hex, TOKEN),
        (sa.Date(), "postgresql+psycopg://", "2024-13-01", "2024-13-01"),
    ],
    ids=repr,
)
def test_value_for_judges_a_value_by_its_type_on_the_backend(
    type_: sa.types.TypeEngine[Any], url: str, value: object, held: object
) -> None:
    assert value_for(type_, value, dialect(url)) == held


def test_value_for_leaves_integers_unbounded_on_backends_it_does_not_size() -> None:
    unknown = DefaultDialect()  # a backend whose integer sizes are not known here
    assert value_for(sa.Integer(), str(2**100), unknown) == 2**100
    assert value_for(sa.Integer(), "1" * 41, unknown) is NO_ROW
    assert value_for(sa.Integer(), "1abc", unknown) is NO_ROW
