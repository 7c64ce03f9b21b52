"""``test_isolation()``: a test's commits, on every bind, are rolled back at its end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from flask import Flask
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Session
from sqlalchemy.orm import joinedload
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship
from sqlalchemy.orm import selectinload

from flask_typed_db import Database
from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import LazyLoadError


class Base(DeclarativeBase):
    pass


class AuthBase(DeclarativeBase):
    metadata = sa.MetaData(info={"bind_key": "auth"})


class Author(Base):
    __tablename__ = "iso_author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    books: Mapped[list[Book]] = relationship(back_populates="author")


class Book(Base):
    __tablename__ = "iso_book"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(100))
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("iso_author.id"))
    author: Mapped[Author] = relationship(back_populates="books")


class Account(AuthBase):
    __tablename__ = "iso_account"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))


authors = Base.metadata.tables["iso_author"]
books = Base.metadata.tables["iso_book"]
accounts = AuthBase.metadata.tables["iso_account"]

#: SQLAlchemy's own default, which isolation must put back.
DEFAULT_JOIN_MODE = Session().join_transaction_mode

#: One Database for the module, registered on a new app per test, as an app factory does.
db = Database(Base, AuthBase)

#: A URL no server listens on (port 1), with a password that must never be shown.
UNREACHABLE_URLS = [
    "postgresql+psycopg://postgres:s3cret-pw@127.0.0.1:1/test",
    "mysql+pymysql://root:s3cret-pw@127.0.0.1:1/test",
]


def create_app(database_url: str, auth_url: str, instance_path: Path) -> Flask:
    """The app factory of the code under test: its views commit as real views do."""
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["TESTING"] = True
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    app.config["SQLALCHEMY_BINDS"] = {"auth": auth_url}
    db.init_app(app)

    @app.post("/authors/<name>")
    def add_author(name: str) -> dict[str, int]:
        author = Author(name=name)
        db.session.add(author)
        db.session.commit()
        return {"id": author.id}

    @app.get("/authors")
    def list_authors() -> list[str]:
        return list(db.session.scalars(sa.select(Author.name).order_by(Author.name)))

    @app.post("/signup/<name>")
    def sign_up(name: str) -> dict[str, str]:
        # One commit writing to both binds.
        db.session.add_all([Author(name=name), Account(name=name)])
        db.session.commit()
        return {"name": name}

    @app.get("/accounts")
    def list_accounts() -> list[str]:
        return list(db.session.scalars(sa.select(Account.name).order_by(Account.name)))

    @app.post("/nested/<kept>/<dropped>")
    def add_with_nested(kept: str, dropped: str) -> dict[str, str]:
        with db.session.begin_nested():
            db.session.add(Author(name=kept))
        nested = db.session.begin_nested()
        db.session.add(Author(name=dropped))
        db.session.flush()
        nested.rollback()
        db.session.commit()
        return {"kept": kept}

    @app.post("/flush-then-fail/<name>")
    def flush_then_fail(name: str) -> dict[str, str]:
        db.session.add(Author(name=name))
        db.session.flush()
        raise RuntimeError("the view failed after its flush")

    return app


def auth_url_for(database_url: str, tmp_path: Path) -> str:
    # A server's second bind is a second engine on the same database; SQLite's a second file.
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'auth.db'}"
    return database_url


def count(engine: sa.Engine, table: sa.Table) -> int:
    """Rows in ``table``, read on a connection of its own, outside any isolation."""
    with engine.connect() as connection:
        total = connection.scalar(sa.select(sa.func.count()).select_from(table))
    assert total is not None
    return total


def names(connection: sa.Connection) -> list[str]:
    return list(connection.scalars(sa.select(authors.c.name).order_by(authors.c.name)))


@pytest.fixture
def app(database_url: str, tmp_path: Path, instance_path: Path) -> Flask:
    app = create_app(database_url, auth_url_for(database_url, tmp_path), instance_path)
    with app.app_context():
        db.create_all()
    return app


@pytest.fixture
def core(database_url: str, tmp_path: Path) -> Iterator[DatabaseCore]:
    config = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_BINDS": {"auth": auth_url_for(database_url, tmp_path)},
    }
    with DatabaseCore(config, Base, AuthBase) as core:
        core.create_all()
        yield core


def engines_of(app: Flask) -> dict[str | None, sa.Engine]:
    with app.app_context():
        return dict(db.engines)


# -- Requests through the Flask adapter ----------------------------------------------


def test_requests_see_each_others_commits_and_nothing_is_left(app: Flask) -> None:
    client = app.test_client()
    with db.test_isolation(app):
        assert client.post("/authors/ann").status_code == 200
        assert client.post("/authors/bob").status_code == 200
        assert client.get("/authors").json == ["ann", "bob"]
    assert count(engines_of(app)[None], authors) == 0


def test_failed_commit_rolls_back_and_later_requests_go_on(app: Flask) -> None:
    client = app.test_client()
    with db.test_isolation(app):
        client.post("/authors/ann")
        with pytest.raises(sa_exc.IntegrityError):
            client.post("/authors/ann")
        # PostgreSQL would refuse every later statement had the error not been rolled
        # back to a SAVEPOINT.
        assert client.post("/authors/bob").status_code == 200
        assert client.get("/authors").json == ["ann", "bob"]
    assert count(engines_of(app)[None], authors) == 0


def test_view_raising_after_flush_leaves_nothing_for_the_next_request(app: Flask) -> None:
    client = app.test_client()
    with db.test_isolation(app):
        client.post("/authors/ann")
        with pytest.raises(RuntimeError, match="after its flush"):
            client.post("/flush-then-fail/bob")
        assert client.get("/authors").json == ["ann"]
    assert count(engines_of(app)[None], authors) == 0


def test_nested_transactions_in_a_view_keep_their_own_outcome(app: Flask) -> None:
    client = app.test_client()
    with db.test_isolation(app):
        assert client.post("/nested/kept/dropped").status_code == 200
        assert client.get("/authors").json == ["kept"]
    assert count(engines_of(app)[None], authors) == 0


def test_every_bind_is_isolated(app: Flask) -> None:
    client = app.test_client()
    engines = engines_of(app)
    with db.test_isolation(app) as connections:
        assert set(connections) == {None, "auth"}
        assert connections[None].engine is engines[None]
        assert connections["auth"].engine is engines["auth"]
        client.post("/signup/ann")
        client.post("/signup/bob")
        assert client.get("/accounts").json == ["ann", "bob"]
        assert client.get("/authors").json == ["ann", "bob"]
    assert count(engines[None], authors) == 0
    assert count(engines["auth"], accounts) == 0


def test_session_of_a_context_pushed_inside_isolation_is_isolated(app: Flask) -> None:
    with db.test_isolation(app):
        with app.app_context():
            db.session.add(Author(name="ann"))
            db.session.commit()
        with app.app_context():
            assert db.session.scalars(sa.select(Author.name)).all() == ["ann"]
    assert count(engines_of(app)[None], authors) == 0


def test_isolation_of_the_current_app_needs_no_app_argument(app: Flask) -> None:
    with app.app_context():
        with db.test_isolation():
            db.session.add(Author(name="ann"))
            db.session.commit()
        assert count(db.engine, authors) == 0


def test_isolation_without_app_or_context_names_the_fix() -> None:
    with pytest.raises(RuntimeError, match="app_context"):
        db.test_isolation()


def test_isolation_of_an_unregistered_app_names_the_fix() -> None:
    with pytest.raises(RuntimeError, match=r"db\.init_app\(app\)"):
        db.test_isolation(Flask("unregistered"))


def test_two_isolations_in_a_row_each_start_empty(app: Flask) -> None:
    client = app.test_client()
    with db.test_isolation(app):
        client.post("/authors/ann")
    with db.test_isolation(app):
        assert client.get("/authors").json == []
        client.post("/authors/ann")  # no unique violation: the first one is gone
        assert client.get("/authors").json == ["ann"]
    assert count(engines_of(app)[None], authors) == 0


def test_commit_after_isolation_persists(app: Flask) -> None:
    with db.test_isolation(app):
        pass
    with app.app_context():
        db.session.add(Author(name="ann"))
        db.session.commit()
        assert db.session.join_transaction_mode == DEFAULT_JOIN_MODE
        assert db.sessionmaker.kw["bind"] is db.engine
        assert db.sessionmaker.kw["engines"] == db.engines
    assert count(engines_of(app)[None], authors) == 1


# -- Workers: DatabaseCore -----------------------------------------------------------


def test_core_transactions_see_each_others_commits_and_nothing_is_left(
    core: DatabaseCore,
) -> None:
    with core.test_isolation():
        with core.transaction() as session:
            session.add_all([Author(name="ann"), Account(name="ann")])
        with core.transaction() as session:
            assert session.scalars(sa.select(Author.name)).all() == ["ann"]
            assert session.scalars(sa.select(Account.name)).all() == ["ann"]
    assert count(core.engine, authors) == 0
    assert count(core.engines["auth"], accounts) == 0


def test_core_failed_commit_rolls_back_and_the_session_goes_on(core: DatabaseCore) -> None:
    with core.test_isolation() as connections:
        with core.transaction() as session:
            session.add(Author(name="ann"))
        session = core.sessionmaker()
        with session:
            session.add(Author(name="ann"))
            with pytest.raises(sa_exc.IntegrityError):
                session.commit()
            session.rollback()
            session.add(Author(name="bob"))
            session.commit()
        assert names(connections[None]) == ["ann", "bob"]
    assert count(core.engine, authors) == 0


def add_then_fail(core: DatabaseCore, name: str) -> None:
    with core.transaction() as session:
        session.add(Author(name=name))
        session.flush()
        _ = 1 / 0


def test_core_transaction_that_raises_is_rolled_back(core: DatabaseCore) -> None:
    with core.test_isolation() as connections:
        with core.transaction() as session:
            session.add(Author(name="ann"))
        with pytest.raises(ZeroDivisionError):
            add_then_fail(core, "bob")
        assert names(connections[None]) == ["ann"]
    assert count(core.engine, authors) == 0


def test_core_sessionmaker_is_restored_after_isolation(core: DatabaseCore) -> None:
    before = dict(core.sessionmaker.kw)
    with core.test_isolation() as connections:
        assert core.sessionmaker.kw["bind"] is connections[None]
        assert core.sessionmaker().join_transaction_mode == "create_savepoint"
    assert core.sessionmaker.kw == before
    with core.sessionmaker() as session:
        assert session.join_transaction_mode == DEFAULT_JOIN_MODE
    with core.transaction() as session:
        session.add(Author(name="ann"))
    assert count(core.engine, authors) == 1


def test_core_keeps_its_own_join_transaction_mode_after_isolation(tmp_path: Path) -> None:
    config = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'app.db'}"}
    options = {"join_transaction_mode": "rollback_only"}
    with DatabaseCore(config, Base, session_options=options) as core:
        with core.test_isolation():
            pass
        assert core.sessionmaker().join_transaction_mode == "rollback_only"


@pytest.mark.parametrize("url", UNREACHABLE_URLS)
def test_unreachable_server_raises_runtime_error_naming_the_url_not_the_password(
    url: str,
) -> None:
    with DatabaseCore({"SQLALCHEMY_DATABASE_URI": url}, Base) as core:
        maker_options = dict(core.sessionmaker.kw)
        with pytest.raises(RuntimeError) as info, core.test_isolation():
            pytest.fail("isolation was entered without a server")
        assert core.sessionmaker.kw == maker_options
    message = str(info.value)
    assert "could not connect" in message
    assert "127.0.0.1:1/test" in message
    assert "***" in message
    assert "s3cret-pw" not in message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_unreachable_second_bind_leaves_the_first_untouched(tmp_path: Path) -> None:
    config = {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'app.db'}",
        "SQLALCHEMY_BINDS": {"auth": UNREACHABLE_URLS[0]},
    }
    with DatabaseCore(config, Base, AuthBase) as core:
        core.create_all(None)
        with pytest.raises(RuntimeError, match=r"127\.0\.0\.1:1"), core.test_isolation():
            pass
        assert core.sessionmaker.kw["bind"] is core.engine
        # The default bind's outer transaction was ended: a plain commit persists.
        with core.transaction() as session:
            session.add(Author(name="ann"))
        assert count(core.engine, authors) == 1


def test_flask_app_with_unreachable_server_raises_runtime_error(instance_path: Path) -> None:
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = UNREACHABLE_URLS[0]
    app_db = Database(Base)
    app_db.init_app(app)
    with (
        pytest.raises(RuntimeError, match="could not connect") as info,
        app_db.test_isolation(app),
    ):
        pass
    assert "s3cret-pw" not in str(info.value)


# -- SQLite --------------------------------------------------------------------------


def test_in_memory_sqlite_app_is_isolated(instance_path: Path) -> None:
    app = Flask(__name__, instance_path=str(instance_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    memory_db = Database(Base)
    memory_db.init_app(app)
    with app.app_context():
        memory_db.create_all()
    with memory_db.test_isolation(app):
        with app.app_context():
            memory_db.session.add(Author(name="ann"))
            memory_db.session.commit()
        with app.app_context():
            assert memory_db.session.scalars(sa.select(Author.name)).all() == ["ann"]
    with app.app_context():
        # The one connection still holds the tables, without the row.
        assert count(memory_db.engine, authors) == 0
        memory_db.session.add(Author(name="bob"))
        memory_db.session.commit()
        assert count(memory_db.engine, authors) == 1


@pytest.mark.xfail(
    reason="known limitation (docs/testing.md): in-memory SQLite has one connection, and"
    " closing it elsewhere through db.engine ends the outer transaction",
    strict=True,
)
def test_in_memory_sqlite_stays_isolated_when_code_uses_the_engine() -> None:
    with DatabaseCore({"SQLALCHEMY_DATABASE_URI": "sqlite://"}, Base) as core:
        core.create_all()
        with core.test_isolation():
            with core.transaction() as session:
                session.add(Author(name="ann"))
            # Code under test reading through the engine, not a session.
            assert count(core.engine, authors) == 1
            with core.transaction() as session:
                assert session.scalars(sa.select(Author.name)).all() == ["ann"]
                session.add(Author(name="bob"))
        assert count(core.engine, authors) == 0


@pytest.fixture
def sqlite_core(tmp_path: Path) -> Iterator[DatabaseCore]:
    with DatabaseCore({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'a.db'}"}, Base) as core:
        core.create_all()
        yield core


def test_sqlite_file_commit_inside_isolation_does_not_reach_the_file(
    sqlite_core: DatabaseCore,
) -> None:
    # Without the BEGIN of the fix, pysqlite would run the session's SAVEPOINT outside
    # any transaction, and its RELEASE would commit to the file.
    with sqlite_core.test_isolation(), sqlite_core.transaction() as session:
        session.add(Author(name="ann"))
    assert count(sqlite_core.engine, authors) == 0


def test_sqlite_file_rollback_to_savepoint_inside_isolation(sqlite_core: DatabaseCore) -> None:
    with sqlite_core.test_isolation() as connections:
        connection = connections[None]
        with sqlite_core.transaction() as session:
            session.add(Author(name="kept"))
        savepoint = connection.begin_nested()
        connection.execute(authors.insert().values(name="dropped"))
        assert names(connection) == ["dropped", "kept"]
        savepoint.rollback()
        assert names(connection) == ["kept"]
    assert count(sqlite_core.engine, authors) == 0


def test_sqlite_connection_gets_its_isolation_level_back(sqlite_core: DatabaseCore) -> None:
    def isolation_level() -> Any:
        with sqlite_core.engine.connect() as connection:
            return connection.connection.dbapi_connection.isolation_level  # type: ignore[union-attr]  # pysqlite's attribute; not in the DBAPI protocol

    before = isolation_level()
    assert before is not None
    with sqlite_core.test_isolation() as connections:
        assert connections[None].connection.dbapi_connection.isolation_level is None  # type: ignore[union-attr]  # pysqlite's attribute; not in the DBAPI protocol
    assert isolation_level() == before
    # And so the driver's transactions work again: a rolled-back insert is gone.
    with sqlite_core.engine.connect() as connection:
        connection.execute(authors.insert().values(name="ann"))
        connection.rollback()
    assert count(sqlite_core.engine, authors) == 0


# -- Lazy loads ----------------------------------------------------------------------


def add_author_with_books(core: DatabaseCore) -> None:
    with core.transaction() as session:
        session.add(Author(name="ann", books=[Book(title="one"), Book(title="two")]))


def test_forbidden_lazy_load_raises_naming_the_class(core: DatabaseCore) -> None:
    with core.test_isolation(forbid_lazy_loads=True):
        add_author_with_books(core)
        with core.sessionmaker() as session:
            author = session.scalars(sa.select(Author)).one()
            with pytest.raises(LazyLoadError, match=r"Lazy load from Author .*selectinload"):
                _ = author.books
            book = session.scalars(sa.select(Book).limit(1)).one()
            session.expunge(author)  # so that book.author must be loaded, not looked up
            with pytest.raises(LazyLoadError, match="from Book"):
                _ = book.author


def test_forbidden_lazy_loads_allow_eager_loads_and_refreshes(core: DatabaseCore) -> None:
    with core.test_isolation(forbid_lazy_loads=True):
        add_author_with_books(core)
        with core.sessionmaker() as session:
            author = session.scalars(sa.select(Author).options(selectinload(Author.books))).one()
            assert sorted(book.title for book in author.books) == ["one", "two"]
        with core.sessionmaker() as session:
            found = session.scalars(sa.select(Book).options(joinedload(Book.author))).all()
            assert {book.author.name for book in found} == {"ann"}
        with core.sessionmaker() as session:
            author = session.scalars(sa.select(Author)).one()
            author.name = "bob"
            session.commit()
            # Expired by the commit: reloading a column is no lazy load.
            assert author.name == "bob"


def test_lazy_loads_are_allowed_after_a_forbidding_isolation(core: DatabaseCore) -> None:
    with core.test_isolation(forbid_lazy_loads=True):
        pass
    with core.test_isolation():
        add_author_with_books(core)
        with core.sessionmaker() as session:
            author = session.scalars(sa.select(Author)).one()
            assert len(author.books) == 2


def test_lazy_loads_are_allowed_by_default(app: Flask) -> None:
    with db.test_isolation(app), app.app_context():
        db.session.add(Author(name="ann", books=[Book(title="one")]))
        db.session.commit()
        db.session.expunge_all()
        author = db.session.scalars(sa.select(Author)).one()
        assert [book.title for book in author.books] == ["one"]


def test_forbid_lazy_loads_through_the_flask_adapter(app: Flask) -> None:
    with db.test_isolation(app, forbid_lazy_loads=True), app.app_context():
        db.session.add(Author(name="ann", books=[Book(title="one")]))
        db.session.commit()
        db.session.expunge_all()
        author = db.session.scalars(sa.select(Author)).one()
        with pytest.raises(LazyLoadError, match="Author"):
            _ = author.books


# -- One app for the whole module ----------------------------------------------------


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    folder = tmp_path_factory.mktemp("shared")
    app = create_app(
        f"sqlite:///{folder / 'app.db'}", f"sqlite:///{folder / 'auth.db'}", folder / "instance"
    )
    with app.app_context():
        db.create_all()
    return app


def test_shared_app_first_test_commits(shared_app: Flask) -> None:
    client = shared_app.test_client()
    with db.test_isolation(shared_app):
        client.post("/signup/ann")
        assert client.get("/authors").json == ["ann"]


def test_shared_app_next_test_sees_nothing(shared_app: Flask) -> None:
    client = shared_app.test_client()
    with db.test_isolation(shared_app):
        assert client.get("/authors").json == []
        assert client.get("/accounts").json == []
        client.post("/signup/ann")  # no unique violation: the last test's row is gone
