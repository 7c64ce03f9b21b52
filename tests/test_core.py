"""DatabaseCore without Flask: the transaction scope, routing and disposal."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import Session
from sqlalchemy.orm import mapped_column
from sqlalchemy.pool import QueuePool

from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import RoutingSession


class Base(DeclarativeBase):
    pass


class AuthBase(DeclarativeBase):
    metadata = sa.MetaData(info={"bind_key": "auth"})


class Job(Base):
    __tablename__ = "core_job"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))


class Token(AuthBase):
    __tablename__ = "core_token"
    id: Mapped[int] = mapped_column(primary_key=True)


@pytest.fixture
def core(database_url: str, tmp_path: Path) -> DatabaseCore:
    config = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_BINDS": {"auth": "sqlite:///auth.db"},
    }
    core = DatabaseCore(config, Base, AuthBase, root_path=tmp_path)
    core.create_all()
    return core


def queue_pool(engine: sa.Engine) -> QueuePool:
    assert isinstance(engine.pool, QueuePool)
    return engine.pool


def job_names(core: DatabaseCore) -> list[str]:
    with core.sessionmaker() as session:
        return list(session.scalars(sa.select(Job.name)))


def test_transaction_commits_when_the_block_succeeds(core: DatabaseCore) -> None:
    with core.transaction() as session:
        session.add(Job(name="nightly"))
    assert job_names(core) == ["nightly"]


def test_transaction_rolls_back_and_reraises_when_the_block_raises(core: DatabaseCore) -> None:
    def add_then_fail() -> None:
        with core.transaction() as session:
            session.add(Job(name="lost"))
            session.flush()
            raise LookupError("the block failed")

    with pytest.raises(LookupError, match="the block failed"):
        add_then_fail()
    assert job_names(core) == []


@pytest.mark.parametrize("fails", [False, True])
def test_transaction_always_closes_the_session(core: DatabaseCore, fails: bool) -> None:
    job = Job(name="job")
    sessions: list[Session] = []
    try:
        with core.transaction() as session:
            sessions.append(session)
            session.add(job)
            session.flush()
            assert queue_pool(core.engine).checkedout() == 1
            if fails:
                raise KeyError("the block failed")
    except KeyError:
        assert fails
    (made,) = sessions
    assert not made.in_transaction()
    assert job not in made
    assert queue_pool(core.engine).checkedout() == 0


def test_transaction_session_routes_binds(core: DatabaseCore, tmp_path: Path) -> None:
    with core.transaction() as session:
        assert isinstance(session, RoutingSession)
        session.add(Token())
        assert session.get_bind(Token) is core.engines["auth"]
        assert session.get_bind() is core.engine
    assert core.engines["auth"].url.database == str(tmp_path / "auth.db")
    with core.engines["auth"].connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(Token)).scalar() == 1


def test_dispose_closes_every_pooled_connection(core: DatabaseCore) -> None:
    for engine in core.engines.values():
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    pools = [queue_pool(engine) for engine in core.engines.values()]
    assert [pool.checkedin() for pool in pools] == [1, 1]
    core.dispose()
    assert [pool.checkedin() for pool in pools] == [0, 0]
    assert job_names(core) == []  # the engines still work, on new connections


def test_core_as_context_manager_disposes_at_exit(tmp_path: Path) -> None:
    config = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'jobs.db'}"}
    with DatabaseCore(config, Base) as core:
        core.create_all()
        pool = queue_pool(core.engine)
        assert pool.checkedin() == 1
    assert pool.checkedin() == 0


def test_core_metadata_and_engines(core: DatabaseCore) -> None:
    assert core.metadata is Base.metadata
    assert dict(core.metadatas) == {None: Base.metadata, "auth": AuthBase.metadata}
    assert set(core.engines) == {None, "auth"}
    assert core.get_engine("auth") is core.engines["auth"]
