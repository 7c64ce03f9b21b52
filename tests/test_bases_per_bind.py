"""Several declarative bases on one bind: a library's models on the app's database, or
two bases with different naming conventions, as Flask-SQLAlchemy-Lite allows.

Each bind keeps every metadata of its bases, in the order the bases were given:
``create_all`` creates them in that order and ``drop_all`` drops them in the reverse
one, and the session routes each base's models by its own metadata's bind key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import ForeignKey
from sqlalchemy import MetaData
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from flask_typed_db import Database
from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import metadatas_of


class LibraryBase(DeclarativeBase):
    """A library's models, on the app's default bind, with their own naming convention."""

    metadata = MetaData(
        naming_convention={"pk": "lib_pk_%(table_name)s", "uq": "lib_uq_%(column_0_name)s"}
    )


class AppBase(DeclarativeBase):
    """The app's own models, on the default bind."""


class Tag(LibraryBase):
    __tablename__ = "perbind_tag"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)


class Article(AppBase):
    __tablename__ = "perbind_article"
    id: Mapped[int] = mapped_column(primary_key=True)
    # A key to the other base's table: the library's tables come first.
    tag_id: Mapped[int | None] = mapped_column(ForeignKey(Tag.id))


class AuditBase(DeclarativeBase):
    metadata = MetaData(info={"bind_key": "audit"})


class AuditLibraryBase(DeclarativeBase):
    metadata = MetaData(info={"bind_key": "audit"})


class AuditEntry(AuditBase):
    __tablename__ = "perbind_audit_entry"
    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(50))


class AuditTrail(AuditLibraryBase):
    __tablename__ = "perbind_audit_trail"
    id: Mapped[int] = mapped_column(primary_key=True)


DEFAULT_TABLES = {"perbind_tag", "perbind_article"}
AUDIT_TABLES = {"perbind_audit_entry", "perbind_audit_trail"}
BASES = (LibraryBase, AppBase, AuditBase, AuditLibraryBase)


@pytest.fixture
def config(database_url: str, tmp_path: Path) -> dict[str, object]:
    # The audit bind is a SQLite file whatever the default backend is.
    return {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_BINDS": {"audit": f"sqlite:///{tmp_path / 'audit.sqlite'}"},
    }


@pytest.fixture
def app(config: dict[str, object], instance_path: Path) -> Flask:
    app = Flask(__name__, instance_path=str(instance_path))
    app.config.from_mapping(config)
    return app


@pytest.fixture
def core(config: dict[str, object]) -> Iterator[DatabaseCore]:
    with DatabaseCore(config, *BASES) as core:
        yield core


def table_names(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


# -- Which metadatas a bind has ---------------------------------------------------------


def test_every_metadata_of_a_bind_is_kept_in_the_order_of_the_bases() -> None:
    db = Database(*BASES)

    assert dict(db.metadatas_by_bind) == {
        None: (LibraryBase.metadata, AppBase.metadata),
        "audit": (AuditBase.metadata, AuditLibraryBase.metadata),
    }


def test_a_metadata_shared_by_two_bases_or_passed_twice_is_kept_once() -> None:
    class SharingBase(DeclarativeBase):
        metadata = AppBase.metadata

    db = Database(AppBase, SharingBase, AppBase)

    assert dict(db.metadatas_by_bind) == {None: (AppBase.metadata,)}
    assert db.metadatas[None] is db.metadata is AppBase.metadata


def test_metadatas_of_gives_the_same_for_the_core() -> None:
    metadatas = metadatas_of(BASES)

    assert dict(metadatas) == {
        None: (LibraryBase.metadata, AppBase.metadata),
        "audit": (AuditBase.metadata, AuditLibraryBase.metadata),
    }


def test_one_metadata_of_a_bind_with_several_points_to_metadatas_by_bind() -> None:
    db = Database(AppBase, AuditBase, AuditLibraryBase)
    config = {"SQLALCHEMY_DATABASE_URI": "sqlite://", "SQLALCHEMY_BINDS": {"audit": "sqlite://"}}
    core = DatabaseCore(config, *BASES)

    assert db.metadatas[None] is AppBase.metadata
    assert "audit" in db.metadatas
    for metadatas in (db.metadatas, core.metadatas):
        with pytest.raises(RuntimeError) as info:
            _ = metadatas["audit"]
        assert str(info.value) == (
            "The bind key 'audit' has 2 MetaData objects, one for each of its bases:"
            " 'metadatas[\"audit\"]' cannot pick one. Use 'metadatas_by_bind[\"audit\"]',"
            " a tuple of them all, which Alembic takes as its target_metadata; with"
            " Flask-Migrate, have get_metadata() in migrations/env.py return it."
        )
    for owner in (Database(*BASES), core):
        with pytest.raises(RuntimeError, match=re.escape("'metadatas_by_bind[None]'")):
            _ = owner.metadata


def test_metadatas_by_bind_of_a_bind_no_base_declares_says_how_to_declare_it() -> None:
    db = Database(AppBase)

    with pytest.raises(KeyError, match='No model base declares the bind key "reports"'):
        _ = db.metadatas_by_bind["reports"]


# -- Creating and dropping tables -------------------------------------------------------


def test_create_all_creates_the_tables_of_every_base_of_each_bind(app: Flask) -> None:
    db = Database(*BASES, app=app)
    with app.app_context():
        db.create_all()

        assert table_names(db.engine) == DEFAULT_TABLES
        assert table_names(db.get_engine("audit")) == AUDIT_TABLES

        db.drop_all()

        assert table_names(db.engine) == set()
        assert table_names(db.get_engine("audit")) == set()


def test_create_all_of_one_bind_creates_every_base_of_that_bind_only(app: Flask) -> None:
    db = Database(*BASES, app=app)
    with app.app_context():
        db.create_all("audit")

        assert table_names(db.engine) == set()
        assert table_names(db.get_engine("audit")) == AUDIT_TABLES

        db.create_all(None)
        db.drop_all(None)

        assert table_names(db.engine) == set()
        assert table_names(db.get_engine("audit")) == AUDIT_TABLES


def test_each_base_keeps_its_naming_convention(core: DatabaseCore) -> None:
    core.create_all()

    inspector = sa.inspect(core.engine)
    assert {uq["name"] for uq in inspector.get_unique_constraints("perbind_tag")} == {
        "lib_uq_name"
    }
    if core.engine.dialect.name != "mysql":  # MariaDB names every primary key PRIMARY
        assert inspector.get_pk_constraint("perbind_tag")["name"] == "lib_pk_perbind_tag"


# -- Sessions ---------------------------------------------------------------------------


def test_session_routes_the_models_of_every_base_of_a_bind_to_it(core: DatabaseCore) -> None:
    core.create_all()
    with core.transaction() as session:
        tag = Tag(name="python")
        session.add_all([tag, AuditEntry(action="login"), AuditTrail()])
        session.flush()
        tag_id = tag.id
        session.add(Article(tag_id=tag_id))

    with core.sessionmaker() as session:
        assert session.get_bind(AuditEntry) is session.get_bind(AuditTrail)
        assert session.get_bind(AuditTrail) is core.engines["audit"]
        assert session.get_bind(Tag) is session.get_bind(Article) is core.engine
        assert session.scalars(sa.select(Article.tag_id)).all() == [tag_id]
        assert session.scalars(sa.select(AuditEntry.action)).all() == ["login"]
        assert len(session.scalars(sa.select(AuditTrail)).all()) == 1
