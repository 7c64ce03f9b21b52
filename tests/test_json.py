"""json_default: loaded attributes only, never a query; cycles cut; private and expired
attributes; pages, rows and the value types. On every backend where a database is used.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Generator
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import time
from datetime import timedelta
from datetime import timezone
from decimal import Decimal
from typing import TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Session
from sqlalchemy.orm import WriteOnlyMapped
from sqlalchemy.orm import attribute_keyed_dict
from sqlalchemy.orm import column_property
from sqlalchemy.orm import joinedload
from sqlalchemy.orm import load_only
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import query_expression
from sqlalchemy.orm import relationship
from sqlalchemy.orm import selectinload
from sqlalchemy.orm import sessionmaker
from sqlalchemy.orm import undefer

from flask_typed_db.core import PRIVATE_INFO_KEY
from flask_typed_db.core import json_default
from flask_typed_db.core import paginate


class Base(DeclarativeBase):
    pass


class Shade(enum.Enum):
    LIGHT = "light"
    DARK = "dark"


class Writer(Base):
    __tablename__ = "json_writer"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    # The attribute key, not the column name, is the JSON key.
    name: Mapped[str] = mapped_column("full_name", sa.String(100))
    biography: Mapped[str | None] = mapped_column(sa.Text, deferred=True)
    password_hash: Mapped[str] = mapped_column(sa.String(100), info={PRIVATE_INFO_KEY: True})
    name_length: Mapped[int] = column_property(sa.func.length(name))
    password_length: Mapped[int] = column_property(
        sa.func.length(password_hash), info={"private": True}
    )
    volumes: Mapped[list[Volume]] = relationship(back_populates="writer", order_by="Volume.id")
    volumes_by_title: Mapped[dict[str, Volume]] = relationship(
        collection_class=attribute_keyed_dict("title"), viewonly=True
    )
    score: Mapped[int | None] = query_expression()
    drafts: Mapped[list[Draft]] = relationship(order_by="Draft.id", info={"private": True})
    notes: WriteOnlyMapped[Note] = relationship()


class Volume(Base):
    __tablename__ = "json_volume"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(sa.String(100))
    writer_id: Mapped[int] = mapped_column(sa.ForeignKey("json_writer.id"))
    writer: Mapped[Writer] = relationship(back_populates="volumes")


class Draft(Base):
    __tablename__ = "json_draft"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    writer_id: Mapped[int] = mapped_column(sa.ForeignKey("json_writer.id"))
    text: Mapped[str] = mapped_column(sa.String(100))


class Note(Base):
    __tablename__ = "json_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    writer_id: Mapped[int] = mapped_column(sa.ForeignKey("json_writer.id"))


following = sa.Table(
    "json_following",
    Base.metadata,
    sa.Column("follower_id", sa.Integer, sa.ForeignKey("json_person.id"), primary_key=True),
    sa.Column("followed_id", sa.Integer, sa.ForeignKey("json_person.id"), primary_key=True),
)


class Person(Base):
    """A self-referential many-to-many: who follows whom."""

    __tablename__ = "json_person"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(sa.String(100))
    follows: Mapped[list[Person]] = relationship(
        secondary=following,
        primaryjoin=id == following.c.follower_id,
        secondaryjoin=id == following.c.followed_id,
        order_by=id,
    )


class Item(Base):
    __tablename__ = "json_item"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    price: Mapped[Decimal] = mapped_column(sa.Numeric(10, 2))
    ref: Mapped[uuid.UUID]
    shade: Mapped[Shade]
    made_at: Mapped[datetime]
    made_on: Mapped[date]
    opens_at: Mapped[time]
    picture: Mapped[bytes] = mapped_column(sa.LargeBinary)


M = TypeVar("M", bound=Base)
REF = uuid.UUID("12345678-1234-5678-1234-567812345678")
# What each writer's row holds; the volume and draft ids are fixed by add_catalogue().
URSULA = {"id": 1, "name": "Ursula", "name_length": 6}
OCTAVIA = {"id": 2, "name": "Octavia", "name_length": 7}
EARTHSEA = {"id": 10, "title": "Earthsea", "writer_id": 1}
LATHE = {"id": 11, "title": "The Lathe of Heaven", "writer_id": 1}
KINDRED = {"id": 12, "title": "Kindred", "writer_id": 2}


def fetch(session: Session, model: type[M], ident: int) -> M:
    instance = session.get(model, ident)
    assert instance is not None
    return instance


def to_json(value: object) -> object:
    """``value`` through json.dumps with json_default, read back."""
    return json.loads(json.dumps(value, default=json_default))


@contextmanager
def no_sql(engine: sa.Engine) -> Generator[None]:
    """Fail if any statement reaches the database inside."""
    statements: list[str] = []

    def record(conn: sa.Connection, cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements == []


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(database_url)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: sa.Engine) -> Iterator[Session]:
    """A session on the catalogue: two writers, three volumes, a draft, and people who
    follow each other (1 -> 2 -> 1, 2 -> 3, 1 -> 3).
    """
    with Session(engine) as session:
        ursula = Writer(id=1, name="Ursula", biography="Born 1929.", password_hash="s3cret")
        octavia = Writer(id=2, name="Octavia", password_hash="hunter2")
        ursula.volumes = [Volume(id=10, title="Earthsea"), Volume(id=11, title=LATHE["title"])]
        octavia.volumes = [Volume(id=12, title="Kindred")]
        ursula.drafts = [Draft(id=20, text="Unfinished")]
        ada, bob, cy = (Person(id=n, name=name) for n, name in [(1, "ada"), (2, "bob"), (3, "cy")])
        ada.follows = [bob, cy]
        bob.follows = [ada, cy]
        session.add_all([ursula, octavia, ada])
        session.commit()
    with Session(engine) as session:
        yield session


# -- Columns ---------------------------------------------------------------------------


def test_loaded_columns_are_written_by_attribute_key(engine: sa.Engine, session: Session) -> None:
    writer = fetch(session, Writer, 1)

    with no_sql(engine):
        assert to_json(writer) == URSULA


def test_deferred_columns_are_left_out_until_loaded(engine: sa.Engine, session: Session) -> None:
    partial = session.scalars(sa.select(Volume).options(load_only(Volume.title))).all()
    undeferred = session.scalars(
        sa.select(Writer).where(Writer.id == 1).options(undefer(Writer.biography))
    ).one()

    with no_sql(engine):
        assert to_json(partial) == [
            {"id": 10, "title": "Earthsea"},
            {"id": 11, "title": "The Lathe of Heaven"},
            {"id": 12, "title": "Kindred"},
        ]
        assert to_json(undeferred) == {**URSULA, "biography": "Born 1929."}


# -- Relationships ---------------------------------------------------------------------


def test_unloaded_relationships_are_left_out_without_a_lazy_load(
    engine: sa.Engine, session: Session
) -> None:
    writer = fetch(session, Writer, 1)
    volume = fetch(session, Volume, 10)  # its writer is in the session, but not loaded

    with no_sql(engine):
        assert to_json(writer) == URSULA
        assert to_json(volume) == EARTHSEA


def test_loaded_collection_is_written_and_the_way_back_is_cut(
    engine: sa.Engine, session: Session
) -> None:
    writer = session.scalars(
        sa.select(Writer)
        .where(Writer.id == 1)
        .options(selectinload(Writer.volumes).joinedload(Volume.writer))
    ).one()

    with no_sql(engine):
        # Each volume's writer is loaded, and is the writer being written: left out.
        assert to_json(writer) == {**URSULA, "volumes": [EARTHSEA, LATHE]}


def test_instance_on_the_path_is_left_out_of_a_collection(
    engine: sa.Engine, session: Session
) -> None:
    volume = session.scalars(
        sa.select(Volume)
        .where(Volume.id == 10)
        .options(joinedload(Volume.writer).selectinload(Writer.volumes))
    ).one()

    with no_sql(engine):
        assert to_json(volume) == {**EARTHSEA, "writer": {**URSULA, "volumes": [LATHE]}}


def test_self_referential_cycle_is_cut_and_shared_instances_written_in_each_branch(
    engine: sa.Engine, session: Session
) -> None:
    people = session.scalars(
        sa.select(Person).options(selectinload(Person.follows)).order_by(Person.id)
    ).all()
    ada = people[0]

    with no_sql(engine):
        written = to_json(ada)

    cy: dict[str, object] = {"id": 3, "name": "cy", "follows": []}
    # bob follows ada back, who is on the path; cy is followed by both, so twice.
    bob: dict[str, object] = {"id": 2, "name": "bob", "follows": [cy]}
    assert written == {"id": 1, "name": "ada", "follows": [bob, cy]}


def test_same_instance_in_two_top_level_values_is_written_in_both(
    engine: sa.Engine, session: Session
) -> None:
    volumes = session.scalars(
        sa.select(Volume).where(Volume.writer_id == 1).options(joinedload(Volume.writer))
    ).all()

    with no_sql(engine):
        assert to_json(volumes) == [{**EARTHSEA, "writer": URSULA}, {**LATHE, "writer": URSULA}]


def test_many_to_one_loaded_as_none_is_written_as_null() -> None:
    volume = Volume(id=99, title="Orphan", writer=None)

    assert to_json(volume) == {"id": 99, "title": "Orphan", "writer": None}


def test_dict_collection_is_written_as_a_list_of_its_members(
    engine: sa.Engine, session: Session
) -> None:
    writer = session.scalars(
        sa.select(Writer).where(Writer.id == 1).options(selectinload(Writer.volumes_by_title))
    ).one()

    with no_sql(engine):
        written = to_json(writer)

    assert written == {**URSULA, "volumes_by_title": [EARTHSEA, LATHE]}


def test_write_only_relationship_is_left_out() -> None:
    writer = Writer(id=5, name="New", password_hash="x")
    writer.notes.add(Note())  # pending, held as a flag on the instance

    assert to_json(writer) == {"id": 5, "name": "New"}


# -- Private ---------------------------------------------------------------------------


def test_private_columns_and_relationships_are_never_written(
    engine: sa.Engine, session: Session
) -> None:
    writer = session.scalars(
        sa.select(Writer).where(Writer.id == 1).options(selectinload(Writer.drafts))
    ).one()
    # All loaded: the column, the column_property and the relationship.
    assert writer.password_hash == "s3cret"
    assert writer.password_length == 6
    assert [draft.text for draft in writer.drafts] == ["Unfinished"]

    with no_sql(engine):
        written = json.dumps(writer, default=json_default)

    assert json.loads(written) == URSULA
    assert "s3cret" not in written
    assert "Unfinished" not in written


def test_private_column_of_a_new_instance_is_not_written() -> None:
    writer = Writer(id=3, name="Iain", password_hash="s3cret")

    assert to_json(writer) == {"id": 3, "name": "Iain"}


# -- Expired ---------------------------------------------------------------------------


def test_instance_expired_by_commit_is_refused_with_the_fixes(
    engine: sa.Engine, session: Session
) -> None:
    writer = fetch(session, Writer, 1)
    writer.biography = "Changed."
    session.commit()

    with (
        no_sql(engine),
        pytest.raises(ValueError, match=r"^Cannot serialize Writer \(1,\)") as info,
    ):
        json.dumps(writer, default=json_default)

    message = str(info.value)
    # Not the deferred column, which a refresh would not load either.
    assert "its attributes 'id', 'name', 'name_length' are expired" in message
    assert "before commit()" in message
    assert "session.refresh()" in message
    assert "session_options={'expire_on_commit': False}" in message
    for value in ("Ursula", "Changed.", "s3cret", "password_hash"):
        assert value not in message


def test_attributes_expired_by_session_expire_are_refused_and_named(
    engine: sa.Engine, session: Session
) -> None:
    writer = fetch(session, Writer, 1)
    session.expire(writer, ["name"])

    with no_sql(engine), pytest.raises(ValueError, match="its attributes 'name' are expired"):
        json.dumps(writer, default=json_default)


def test_expired_attribute_set_again_is_written(engine: sa.Engine, session: Session) -> None:
    writer = fetch(session, Writer, 1)
    session.expire(writer, ["name"])
    writer.name = "Ursula K."

    with no_sql(engine):
        assert to_json(writer) == {**URSULA, "name": "Ursula K."}


def test_expired_relationship_is_left_out_like_an_unloaded_one(
    engine: sa.Engine, session: Session
) -> None:
    writer = session.scalars(
        sa.select(Writer).where(Writer.id == 1).options(selectinload(Writer.volumes))
    ).one()
    session.expire(writer, ["volumes"])

    with no_sql(engine):
        assert to_json(writer) == URSULA


def test_refreshed_instance_is_written_again(engine: sa.Engine, session: Session) -> None:
    writer = fetch(session, Writer, 1)
    session.commit()
    session.refresh(writer)

    # The deferred column, the query expression and the relationships stay expired,
    # but a refresh would not load them either: left out, like unloaded ones.
    with no_sql(engine):
        assert to_json(writer) == URSULA


def test_instance_committed_without_expiry_is_written(engine: sa.Engine) -> None:
    with sessionmaker(engine, expire_on_commit=False)() as session:
        dee = Person(id=4, name="dee", follows=[Person(id=5, name="eve")])
        session.add(dee)
        session.commit()

        with no_sql(engine):
            assert to_json(dee) == {"id": 4, "name": "dee", "follows": [{"id": 5, "name": "eve"}]}


def test_attribute_the_database_computes_is_expired_by_flush(engine: sa.Engine) -> None:
    with Session(engine) as session:
        writer = Writer(id=3, name="Iain", password_hash="x")
        session.add(writer)
        session.flush()

        with no_sql(engine), pytest.raises(ValueError, match="attributes 'name_length' are"):
            json.dumps(writer, default=json_default)


# -- Pages and rows --------------------------------------------------------------------


def test_page_of_entities(engine: sa.Engine, session: Session) -> None:
    page = paginate(session, sa.select(Volume).order_by(Volume.id), page=2, per_page=2)

    with no_sql(engine):
        written = to_json(page)

    assert written == {
        "items": [KINDRED],
        "page": 2,
        "per_page": 2,
        "total": 3,
        "pages": 2,
        "has_prev": True,
        "has_next": False,
        "prev_num": 1,
        "next_num": None,
    }


def test_an_estimated_page_says_so(engine: sa.Engine, session: Session) -> None:
    page = paginate(
        session, sa.select(Volume.id).order_by(Volume.id), page=1, per_page=2, count="estimate"
    )

    written = to_json(page)

    assert isinstance(written, dict)
    # The key is what marks it (on SQLite the "estimate" is the count; on PostgreSQL
    # the planner's guess for a table it has never analysed).
    assert written["total"] is None
    assert written["estimated_total"] == page.estimated_total
    assert page.estimated_total is not None
    assert written["pages"] == page.pages
    counted = to_json(paginate(session, sa.select(Volume.id), page=1, per_page=2))
    assert isinstance(counted, dict)
    assert "estimated_total" not in counted


def test_page_of_rows_is_written_by_label(engine: sa.Engine, session: Session) -> None:
    statement = sa.select(Volume.id, Volume.title.label("name")).order_by(Volume.id)
    page = paginate(session, statement, page=1, per_page=2)

    with no_sql(engine):
        written = to_json(page)

    assert written == {
        "items": [{"id": 10, "name": "Earthsea"}, {"id": 11, "name": LATHE["title"]}],
        "page": 1,
        "per_page": 2,
        "total": 3,
        "pages": 2,
        "has_prev": False,
        "has_next": True,
        "prev_num": None,
        "next_num": 2,
    }


def test_rows_of_entities_and_row_mappings(engine: sa.Engine, session: Session) -> None:
    statement = sa.select(Volume, Writer).join(Volume.writer).where(Volume.id == 12)
    row = session.execute(statement).one()
    mapping = session.execute(sa.select(Writer.id, Writer.name).where(Writer.id == 2)).mappings()

    with no_sql(engine):
        assert to_json(row) == {"Volume": KINDRED, "Writer": OCTAVIA}
        assert to_json(mapping.one()) == {"id": 2, "name": "Octavia"}


# -- Values ----------------------------------------------------------------------------


def test_values_read_from_each_database(engine: sa.Engine) -> None:
    with Session(engine) as session:
        session.add(
            Item(
                id=1,
                price=Decimal("12.30"),
                ref=REF,
                shade=Shade.DARK,
                made_at=datetime(2024, 5, 1, 9, 30, 15),
                made_on=date(2024, 5, 2),
                opens_at=time(8, 45),
                picture=b"\x00\xffpng",
            )
        )
        session.commit()
    with Session(engine) as session:
        item = fetch(session, Item, 1)

        with no_sql(engine):
            assert to_json(item) == {
                "id": 1,
                "price": "12.30",
                "ref": "12345678-1234-5678-1234-567812345678",
                "shade": "dark",
                "made_at": "2024-05-01T09:30:15",
                "made_on": "2024-05-02",
                "opens_at": "08:45:00",
                "picture": "AP9wbmc=",
            }


class Release(enum.Enum):
    """Members whose values JSON has no type for either."""

    FIRST = date(2024, 1, 31)
    PRICED = Decimal("0.10")


def test_values_outside_models() -> None:
    values = {
        "aware": datetime(2024, 5, 1, 9, 30, 0, 5, tzinfo=UTC),
        "offset": datetime(2024, 5, 1, 9, 30, tzinfo=timezone(timedelta(hours=2))),
        "date": date(2024, 5, 1),
        "time": time(23, 59, 59, 999999),
        "exact": Decimal("0.1000000000000000000000000001"),
        "uuid": REF,
        "enum": Shade.LIGHT,
        "enum of a date": Release.FIRST,
        "enum of a decimal": Release.PRICED,
        "bytes": b"\xfb\xff",
        "bytearray": bytearray(b"ab"),
    }

    assert to_json(values) == {
        "aware": "2024-05-01T09:30:00.000005+00:00",
        "offset": "2024-05-01T09:30:00+02:00",
        "date": "2024-05-01",
        "time": "23:59:59.999999",
        "exact": "0.1000000000000000000000000001",
        "uuid": "12345678-1234-5678-1234-567812345678",
        "enum": "light",
        "enum of a date": "2024-01-31",
        "enum of a decimal": "0.10",
        "bytes": "+/8=",  # standard base64, not the URL-safe alphabet
        "bytearray": "YWI=",
    }


@pytest.mark.parametrize("value", [object(), Writer, {1, 2}, timedelta(1)])
def test_other_types_raise_type_error_as_json_expects(value: object) -> None:
    with pytest.raises(TypeError, match=f"^Object of type {type(value).__name__} is not JSON"):
        json.dumps(value, default=json_default)
