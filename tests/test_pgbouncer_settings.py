"""``SQLALCHEMY_PGBOUNCER`` and a bind's ``"pgbouncer"``: the driver settings each
engine gets, checked without a server (what the driver would be called with), and the
errors of a setting that cannot apply. Against a real PgBouncer:
``test_replicas_servers.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.util import greenlet_spawn

from flask_typed_db.core import DatabaseCore

PASSWORD = "bouncer-secret"
#: Nothing listens there: the engines are made, never connected.
PSYCOPG = f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:1/app"


def connect_arguments(engine: sa.Engine) -> dict[str, Any]:
    """What ``engine`` would pass its driver's ``connect()``, caught before it does."""
    seen: dict[str, Any] = {}

    class Caught(Exception):
        pass

    def catch(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        seen.update(cparams)
        raise Caught

    event.listen(engine, "do_connect", catch)
    with pytest.raises(Caught):
        engine.connect()
    return seen


def test_psycopg_engines_never_prepare_statements() -> None:
    config = {"SQLALCHEMY_DATABASE_URI": PSYCOPG, "SQLALCHEMY_PGBOUNCER": True}
    with DatabaseCore(config) as core:
        assert connect_arguments(core.engine)["prepare_threshold"] is None
        assert not core.engine.dialect.supports_server_side_cursors


def test_without_the_setting_nothing_changes() -> None:
    with DatabaseCore({"SQLALCHEMY_DATABASE_URI": PSYCOPG}) as core:
        assert "prepare_threshold" not in connect_arguments(core.engine)
        assert core.engine.dialect.supports_server_side_cursors


def test_the_users_own_driver_settings_win() -> None:
    config = {
        "SQLALCHEMY_DATABASE_URI": PSYCOPG,
        "SQLALCHEMY_PGBOUNCER": True,
        "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"prepare_threshold": 3}},
    }
    with DatabaseCore(config) as core:
        assert connect_arguments(core.engine)["prepare_threshold"] == 3


def test_a_binds_setting_applies_to_it_and_its_replicas_only() -> None:
    config = {
        "SQLALCHEMY_DATABASE_URI": PSYCOPG,
        "SQLALCHEMY_BINDS": {"pooled": {"url": PSYCOPG, "pgbouncer": True}},
        "SQLALCHEMY_REPLICAS": {"pooled": [PSYCOPG, {"url": PSYCOPG, "pgbouncer": False}]},
    }
    with DatabaseCore(config) as core:
        assert "prepare_threshold" not in connect_arguments(core.engine)
        assert connect_arguments(core.get_engine("pooled"))["prepare_threshold"] is None
        first, second = core.replica_engines["pooled"]
        assert connect_arguments(first)["prepare_threshold"] is None
        assert "prepare_threshold" not in connect_arguments(second)


def test_async_engines_get_their_drivers_settings() -> None:
    pytest.importorskip("asyncpg")
    config = {
        "SQLALCHEMY_DATABASE_URI": PSYCOPG,
        "SQLALCHEMY_BINDS": {
            "asyncpg": {
                "url": PSYCOPG,
                "async_url": PSYCOPG.replace("+psycopg", "+asyncpg"),
            }
        },
        "SQLALCHEMY_PGBOUNCER": True,
    }
    core = DatabaseCore(config)
    psycopg_async = core.async_engine.sync_engine
    asyncpg = core.get_async_engine("asyncpg").sync_engine

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        # An async engine's sync face connects in SQLAlchemy's greenlet.
        return await greenlet_spawn(
            lambda: (connect_arguments(psycopg_async), connect_arguments(asyncpg))
        )

    for_psycopg, for_asyncpg = asyncio.run(main())
    assert for_psycopg["prepare_threshold"] is None
    assert for_asyncpg["statement_cache_size"] == 0
    if "prepared_statement_name_func" in for_asyncpg:
        names = {for_asyncpg["prepared_statement_name_func"]() for _ in range(3)}
        assert len(names) == 3
    else:
        # SQLAlchemy 2.0.0 would hand the argument to asyncpg, which refuses it.
        assert sa.__version__.startswith("2.0.")
    assert asyncpg.url.query["prepared_statement_cache_size"] == "0"
    assert not asyncpg.dialect.supports_server_side_cursors
    core.dispose()


def test_the_global_setting_skips_binds_that_are_not_postgresql(tmp_path: Any) -> None:
    config = {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'app.db'}",
        "SQLALCHEMY_BINDS": {"pg": PSYCOPG},
        "SQLALCHEMY_PGBOUNCER": True,
    }
    # No error for the SQLite bind, which has no PgBouncer in front of it.
    with DatabaseCore(config) as core:
        with core.engine.connect() as connection:
            assert connection.scalar(sa.text("SELECT 1")) == 1
        assert connect_arguments(core.get_engine("pg"))["prepare_threshold"] is None


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        (
            {"SQLALCHEMY_BINDS": {"lite": {"url": "sqlite:///x.db", "pgbouncer": True}}},
            ValueError,
            "'SQLALCHEMY_BINDS['lite'][\"pgbouncer\"]' is set, but"
            " 'SQLALCHEMY_BINDS['lite'][\"url\"]' is not a PostgreSQL URL: PgBouncer pools"
            " PostgreSQL connections only. Remove the setting.",
        ),
        (
            {"SQLALCHEMY_PGBOUNCER": "yes"},
            TypeError,
            "'SQLALCHEMY_PGBOUNCER' must be True or False, not str.",
        ),
        (
            {
                "SQLALCHEMY_BINDS": {
                    "pg": {"url": PSYCOPG.replace("+psycopg", "+pg8000"), "pgbouncer": True}
                }
            },
            ValueError,
            "'SQLALCHEMY_BINDS['pg'][\"pgbouncer\"]' is set, but the driver of"
            " 'SQLALCHEMY_BINDS['pg'][\"url\"]' is 'pg8000', whose settings for PgBouncer's"
            ' transaction pooling flask-typed-db does not know: use one of "psycopg",'
            ' "psycopg_async", "psycopg2" or "asyncpg".',
        ),
    ],
)
def test_a_setting_that_cannot_apply_is_an_error_naming_the_key(
    config: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        DatabaseCore({"SQLALCHEMY_DATABASE_URI": PSYCOPG, **config})
    assert str(raised.value) == message
    assert PASSWORD not in str(raised.value)
