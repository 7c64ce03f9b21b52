"""The example app under gunicorn (``--preload``, several workers and threads) with a
streaming replica: reads spread from many threads go to the replica, a client that just
wrote reads its write back while the replica has not replayed it, and a client that did
not sees the replica's data. On the servers of ``tests/servers/scale_out.sh``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade
from tests.load.harness import Answer
from tests.load.harness import Serve
from tests.load.harness import fetch
from tests.load.harness import served_app_environment
from tests.scale_out import ScaleOut
from tests.scale_out import pause_replay
from tests.scale_out import resume_replay
from tests.scale_out import wait_on_replica

from bookshelf.app import create_app
from bookshelf.app import db
from bookshelf.models import utcnow
from bookshelf.seed import seed
from flask_typed_db._replica_requests import WROTE_COOKIE

pytestmark = pytest.mark.load


@pytest.fixture
def bookshelf_on_primary(scale_out: ScaleOut) -> Iterator[ScaleOut]:
    """The example's tables and sample data on the primary, replayed by the replica;
    dropped after the test.
    """
    servers = scale_out
    app = create_app({"SQLALCHEMY_DATABASE_URI": servers.primary})
    with app.app_context():
        upgrade()
        seed(db.session, utcnow())
        db.session.commit()
        books = db.session.scalar(sa.text("SELECT count(*) FROM books"))
    wait_on_replica(servers, "SELECT count(*) FROM books", lambda count: count == books)
    try:
        yield servers
    finally:
        resume_replay(servers)
        engine = sa.create_engine(servers.primary, poolclass=sa.NullPool)
        try:
            metadata = sa.MetaData()
            metadata.reflect(engine)
            metadata.drop_all(engine)
        finally:
            engine.dispose()
        with app.app_context():
            db.engine.dispose()


def replica_connections(servers: ScaleOut, application_name: str) -> int:
    """The served app's connections on the replica."""
    engine = sa.create_engine(servers.replica, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            found: int = connection.scalar(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
                {"name": application_name},
            )
            return found
    finally:
        engine.dispose()


def test_example_app_reads_from_the_replica_and_a_writer_reads_its_writes(
    bookshelf_on_primary: ScaleOut, serve: Serve
) -> None:
    servers = bookshelf_on_primary
    application_name = f"typed-db-replica-{uuid.uuid4().hex[:12]}"
    environment = served_app_environment(
        servers.primary, {"connect_args": {"application_name": application_name}}
    )
    environment["BOOKSHELF_REPLICA_URLS"] = servers.replica
    server = serve(environment, workers=2, threads=4)

    def read_books(_: int) -> Answer:
        return fetch(server.port, "GET", "/api/books")

    with ThreadPoolExecutor(8) as executor:
        answers = list(executor.map(read_books, range(80)))
    assert [answer.status for answer in answers] == [200] * 80
    # The replica's engine was made from the bind's options: its connections carry the
    # same application_name.
    assert replica_connections(servers, application_name) > 0

    pause_replay(servers)
    isbn = f"979{uuid.uuid4().int % 10**10:010d}"
    created = fetch(
        server.port,
        "POST",
        "/api/books",
        {"title": "Written under lag", "isbn": isbn, "author": "A. Writer"},
    )
    assert created.status == 201, created.body
    cookie = created.headers["set-cookie"]
    assert cookie.startswith(f"{WROTE_COOKIE}=")
    book_id = created.json()["id"]
    path = f"/api/books/{book_id}"
    marker = {"Cookie": cookie.split(";")[0]}
    # The writer reads its write back, from the primary, on every worker.
    assert {fetch(server.port, "GET", path, headers=marker).status for _ in range(10)} == {200}
    # Another client reads from the replica, which has not replayed it yet.
    assert fetch(server.port, "GET", path).status == 404
    resume_replay(servers)
    deadline = time.monotonic() + 10
    while fetch(server.port, "GET", path).status != 200:
        assert time.monotonic() < deadline, "the replica never showed the new book"
        time.sleep(0.1)
