"""get_or_404, first_or_404 and one_or_404: a row for the view, or a 404 response."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Session
from sqlalchemy.orm import joinedload
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import registry
from sqlalchemy.orm import relationship
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import NotFound

from flask_typed_db import Database


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "queries_user"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(sa.String(50))
    nickname: Mapped[str | None] = mapped_column(sa.String(50))
    posts: Mapped[list[Post]] = relationship(back_populates="user", order_by="Post.id")


class Post(Base):
    __tablename__ = "queries_post"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("queries_user.id"))
    user: Mapped[User] = relationship(back_populates="posts")


class Membership(Base):
    """A composite primary key."""

    __tablename__ = "queries_membership"
    group_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    role: Mapped[str] = mapped_column(sa.String(20))


db = Database(Base)


@pytest.fixture
def app(database_url: str, instance_path: Path) -> Flask:
    """Users 1 (ann, 3 posts), 2 (bob, nickname 'bobby', 1 post) and 3 (ann, no posts)."""
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)
    with app.app_context():
        db.create_all()
        db.session.add_all(
            [
                User(id=1, name="ann", posts=[Post(id=1), Post(id=2), Post(id=3)]),
                User(id=2, name="bob", nickname="bobby", posts=[Post(id=4)]),
                User(id=3, name="ann"),
                Membership(group_id=1, user_id=2, role="admin"),
                Membership(group_id=2, user_id=1, role="member"),
            ]
        )
        db.session.commit()
    return app


@pytest.fixture
def request_context(app: Flask) -> Iterator[None]:
    with app.test_request_context("/"):
        yield


# get_or_404


@pytest.mark.usefixtures("request_context")
def test_get_or_404_returns_the_entity_with_that_primary_key() -> None:
    user = db.get_or_404(User, 2)
    assert (user.id, user.name) == (2, "bob")


@pytest.mark.usefixtures("request_context")
def test_get_or_404_aborts_with_404_for_a_missing_key() -> None:
    with pytest.raises(NotFound):
        db.get_or_404(User, 99)


@pytest.mark.usefixtures("request_context")
def test_get_or_404_uses_the_description_given() -> None:
    with pytest.raises(NotFound) as caught:
        db.get_or_404(User, 99, description="No such user.")
    assert caught.value.description == "No such user."


@pytest.mark.usefixtures("request_context")
def test_get_or_404_without_description_keeps_werkzeugs_default() -> None:
    with pytest.raises(NotFound) as caught:
        db.get_or_404(User, 99)
    assert caught.value.description == NotFound.description


def test_get_or_404_in_a_view_responds_404_with_the_description(app: Flask) -> None:
    @app.get("/users/<int:user_id>")
    def show_user(user_id: int) -> str:
        return db.get_or_404(User, user_id, description="That user left.").name

    client = app.test_client()
    found = client.get("/users/1")
    assert (found.status_code, found.text) == (200, "ann")
    missing = client.get("/users/99")
    assert missing.status_code == 404
    assert "That user left." in missing.text


@pytest.mark.parametrize("helper", ["get_or_404", "one_or_404"])
def test_a_404_frees_the_session_at_teardown(app: Flask, helper: str) -> None:
    """Flask answers with the NotFound itself, whose traceback holds the helper's frame
    (and any exception it was raised while handling) in a reference cycle: the closed
    session must not be kept until the garbage collector runs.
    """
    sessions: list[weakref.ref[Session]] = []

    @app.get("/users/<int:user_id>")
    def show_user(user_id: int) -> str:
        sessions.append(weakref.ref(db.session))
        if helper == "get_or_404":
            return db.get_or_404(User, user_id).name
        return db.one_or_404(sa.select(User).where(User.id == user_id)).name

    client = app.test_client()
    gc.disable()
    try:
        assert client.get("/users/99").status_code == 404
        assert sessions[0]() is None
    finally:
        gc.enable()


@pytest.mark.usefixtures("request_context")
def test_get_or_404_takes_a_composite_key_as_tuple_or_dict() -> None:
    assert db.get_or_404(Membership, (1, 2)).role == "admin"
    assert db.get_or_404(Membership, {"group_id": 2, "user_id": 1}).role == "member"
    with pytest.raises(NotFound):
        db.get_or_404(Membership, (2, 2))


@pytest.mark.usefixtures("request_context")
def test_get_or_404_applies_loader_options() -> None:
    user = db.get_or_404(User, 1, options=[selectinload(User.posts)])
    assert "posts" not in sa.inspect(user).unloaded
    db.session.close()  # detached: a lazy load now would raise instead
    assert [post.id for post in user.posts] == [1, 2, 3]


@pytest.mark.usefixtures("request_context")
def test_get_or_404_refreshes_a_loaded_entity_only_with_populate_existing() -> None:
    user = db.get_or_404(User, 1)
    db.session.execute(
        sa.update(User).where(User.id == 1).values(name="anne"),
        execution_options={"synchronize_session": False},
    )
    assert db.get_or_404(User, 1).name == "ann"
    refreshed = db.get_or_404(User, 1, populate_existing=True)
    assert refreshed is user
    assert user.name == "anne"


def test_get_or_404_with_for_update_locks_the_row_and_queries_each_time(app: Flask) -> None:
    with app.app_context(), db.record_queries() as queries:
        user = db.get_or_404(User, 1, with_for_update=True)
        # In the session already: with_for_update still asks the database, to lock.
        assert db.get_or_404(User, 1, with_for_update=True) is user
        assert db.get_or_404(User, 1) is user
    assert len(queries) == 2
    if db_dialect(app) != "sqlite":  # SQLite has no row locks, and no FOR UPDATE
        assert all("FOR UPDATE" in query.statement for query in queries)


@pytest.mark.usefixtures("request_context")
def test_get_or_404_with_for_update_still_refuses_ids_no_column_holds() -> None:
    with db.record_queries() as queries, pytest.raises(NotFound):
        db.get_or_404(User, 2**64, with_for_update=True)
    assert queries == []


def db_dialect(app: Flask) -> str:
    with app.app_context():
        return db.engine.dialect.name


# first_or_404


@pytest.mark.usefixtures("request_context")
def test_first_or_404_returns_the_first_entity_in_order() -> None:
    user = db.first_or_404(sa.select(User).where(User.name == "ann").order_by(User.id.desc()))
    assert user.id == 3


@pytest.mark.usefixtures("request_context")
def test_first_or_404_aborts_with_404_and_the_description_when_no_row() -> None:
    with pytest.raises(NotFound) as caught:
        db.first_or_404(sa.select(User).where(User.id == 99), description="Nobody.")
    assert caught.value.description == "Nobody."


@pytest.mark.usefixtures("request_context")
def test_first_or_404_returns_the_value_of_a_single_column() -> None:
    assert db.first_or_404(sa.select(User.nickname).where(User.id == 2)) == "bobby"


@pytest.mark.usefixtures("request_context")
def test_first_or_404_returns_none_for_a_null_value_rather_than_404() -> None:
    assert db.first_or_404(sa.select(User.nickname).where(User.id == 1)) is None


@pytest.mark.usefixtures("request_context")
def test_first_or_404_returns_a_row_for_several_columns() -> None:
    row = db.first_or_404(sa.select(User.id, User.name, User.nickname).order_by(User.id))
    assert tuple(row) == (1, "ann", None)
    assert (row.id, row.name) == (1, "ann")


@pytest.mark.usefixtures("request_context")
def test_first_or_404_returns_an_entity_and_its_joined_collection() -> None:
    statement = sa.select(User).options(joinedload(User.posts)).order_by(User.id)
    user = db.first_or_404(statement)
    assert user.id == 1
    assert [post.id for post in user.posts] == [1, 2, 3]


@pytest.mark.usefixtures("request_context")
def test_first_or_404_returns_a_zero_count_rather_than_404() -> None:
    no_one = sa.select(sa.func.count()).select_from(User).where(User.id > 99)
    assert db.first_or_404(no_one) == 0


def test_first_or_404_in_a_view_responds_404_with_the_description(app: Flask) -> None:
    @app.get("/by-name/<name>")
    def by_name(name: str) -> str:
        statement = sa.select(User.id).where(User.name == name).order_by(User.id)
        return str(db.first_or_404(statement, description=f"No user named {name}."))

    client = app.test_client()
    assert client.get("/by-name/ann").text == "1"
    missing = client.get("/by-name/cy")
    assert missing.status_code == 404
    assert "No user named cy." in missing.text


# one_or_404


@pytest.mark.usefixtures("request_context")
def test_one_or_404_returns_the_only_entity() -> None:
    assert db.one_or_404(sa.select(User).where(User.name == "bob")).id == 2


@pytest.mark.usefixtures("request_context")
def test_one_or_404_aborts_with_404_and_the_description_when_no_row() -> None:
    with pytest.raises(NotFound) as caught:
        db.one_or_404(sa.select(User).where(User.id == 99), description="Nobody.")
    assert caught.value.description == "Nobody."


@pytest.mark.usefixtures("request_context")
def test_one_or_404_aborts_with_404_and_the_description_when_several_rows() -> None:
    with pytest.raises(NotFound) as caught:
        db.one_or_404(sa.select(User).where(User.name == "ann"), description="Ambiguous.")
    assert caught.value.description == "Ambiguous."


@pytest.mark.usefixtures("request_context")
def test_one_or_404_aborts_with_404_when_a_single_column_has_several_rows() -> None:
    with pytest.raises(NotFound):
        db.one_or_404(sa.select(User.id).where(User.name == "ann"))


@pytest.mark.usefixtures("request_context")
def test_one_or_404_returns_the_value_of_a_single_column_null_included() -> None:
    assert db.one_or_404(sa.select(User.nickname).where(User.id == 2)) == "bobby"
    assert db.one_or_404(sa.select(User.nickname).where(User.id == 1)) is None


@pytest.mark.usefixtures("request_context")
def test_one_or_404_returns_a_row_for_several_columns() -> None:
    row = db.one_or_404(sa.select(User.name, User.nickname).where(User.id == 2))
    assert tuple(row) == ("bob", "bobby")
    assert row.nickname == "bobby"


@pytest.mark.usefixtures("request_context")
def test_one_or_404_counts_a_parent_with_a_joined_collection_as_one_row() -> None:
    statement = sa.select(User).options(joinedload(User.posts)).where(User.id == 1)
    user = db.one_or_404(statement)
    assert [post.id for post in user.posts] == [1, 2, 3]


@pytest.mark.usefixtures("request_context")
def test_one_or_404_aborts_with_404_for_the_rows_of_a_join() -> None:
    with pytest.raises(NotFound):
        db.one_or_404(sa.select(User).join(User.posts).where(User.id == 1))


def test_one_or_404_in_a_view_responds_404_for_several_rows(app: Flask) -> None:
    @app.get("/only/<name>")
    def only(name: str) -> str:
        return str(db.one_or_404(sa.select(User.id).where(User.name == name)))

    client = app.test_client()
    assert client.get("/only/bob").text == "2"
    assert client.get("/only/ann").status_code == 404
    assert client.get("/only/cy").status_code == 404


# Statements besides select(), and classes mapped without a declarative base


@pytest.mark.usefixtures("request_context")
def test_first_or_404_loads_the_entities_of_a_union_of_entity_selects() -> None:
    union = sa.union_all(sa.select(User).where(User.id == 99), sa.select(User).where(User.id == 2))
    user = db.first_or_404(union)
    assert isinstance(user, User)
    assert user is db.session.get(User, 2)


def posts_of(user_id: int) -> sa.Select[User, int]:
    return sa.select(User, Post.id).join(User.posts).where(User.id == user_id)


@pytest.mark.usefixtures("request_context")
def test_one_or_404_loads_the_entities_and_values_of_a_union() -> None:
    # Bound first: mypy infers a union written inline from the assignment's targets.
    union = sa.union_all(posts_of(99), posts_of(98), posts_of(2))
    user, post_id = db.one_or_404(union)
    assert (type(user), user.id, post_id) == (User, 2, 4)
    with pytest.raises(NotFound):
        db.one_or_404(sa.union_all(posts_of(1), posts_of(2)))


def test_one_or_404_loads_the_entities_of_a_nested_union(app: Flask) -> None:
    if db_dialect(app) == "sqlite":
        pytest.skip("SQLite takes no parentheses around the selects of a union")
    union = sa.union_all(sa.union_all(posts_of(99), posts_of(98)), posts_of(2))
    with app.test_request_context():
        user, post_id = db.one_or_404(union)
    assert (type(user), user.id, post_id) == (User, 2, 4)


@pytest.mark.usefixtures("request_context")
def test_first_or_404_returns_the_value_or_row_of_a_union_of_columns() -> None:
    names = sa.union_all(sa.select(User.name).where(User.id == 2), sa.select(User.name))
    assert db.first_or_404(names.limit(1)) == "bob"
    pairs = sa.union_all(
        sa.select(User.id, User.name).where(User.id == 3),
        sa.select(User.id, User.name).where(User.id == 99),
    )
    assert tuple(db.one_or_404(pairs)) == (3, "ann")


@pytest.mark.usefixtures("request_context")
def test_first_and_one_or_404_load_entities_from_a_textual_statement() -> None:
    textual = sa.text("SELECT * FROM queries_user WHERE name = :name ORDER BY id")
    ann = sa.select(User).from_statement(textual.columns(User.id, User.name, User.nickname))
    assert db.first_or_404(ann.params(name="ann")) is db.session.get(User, 1)
    assert db.one_or_404(ann.params(name="bob")).id == 2
    with pytest.raises(NotFound):
        db.one_or_404(ann.params(name="ann"))
    with pytest.raises(NotFound):
        db.first_or_404(ann.params(name="cy"))


@pytest.mark.usefixtures("request_context")
def test_one_or_404_returns_what_an_insert_returning_gives() -> None:
    insert = sa.insert(Membership).values(group_id=3, user_id=3, role="guest")
    assert db.one_or_404(insert.returning(Membership.role)) == "guest"


@pytest.mark.usefixtures("request_context")
@pytest.mark.parametrize("helper", ["first_or_404", "one_or_404"])
def test_a_statement_that_returns_no_rows_is_refused_before_it_runs(helper: str) -> None:
    update = sa.update(User).values(name="eve")
    with db.record_queries() as queries, pytest.raises(TypeError, match=r"\.returning\("):
        getattr(db, helper)(update)
    assert queries == []


class Imperative:
    """A class mapped with registry.map_imperatively(): no declarative base."""

    id: int
    label: str


imperative_registry = registry()
imperative_table = sa.Table(
    "queries_imperative",
    imperative_registry.metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("label", sa.String(20)),
)
imperative_registry.map_imperatively(Imperative, imperative_table)


def test_get_or_404_finds_an_imperatively_mapped_class_and_takes_a_mapper(app: Flask) -> None:
    with app.app_context():
        imperative_table.create(db.engine)
        try:
            db.session.execute(sa.insert(imperative_table).values(id=1, label="one"))
            assert db.get_or_404(Imperative, 1).label == "one"
            assert db.get_or_404(Imperative, "1").label == "one"
            assert db.get_or_404(sa.inspect(User), 2).name == "bob"
            with pytest.raises(NotFound):
                db.get_or_404(Imperative, 2)
            with pytest.raises(NotFound):
                db.get_or_404(Imperative, "x")
        finally:
            db.session.rollback()
            imperative_table.drop(db.engine)
