"""Alembic's environment for the bookshelf example, run by the ``flask db`` commands
and by ``init-db``, in the app's context.

Flask-Migrate's ``flask`` template, reviewed: typed like the rest of the repository,
reading the example's ``db`` and ``migrate`` directly, and leaving logging alone in a
process that configured its own. The untouched template works with flask-typed-db too
(``tests/test_migrations_flask_migrate.py`` runs it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.operations import MigrationScript
from alembic.runtime.migration import MigrationContext

from bookshelf.app import db
from bookshelf.app import migrate

config = context.config
logger = logging.getLogger("alembic.env")

# 'flask db' logs as alembic.ini says, each step at INFO. A process that configured its
# own logging keeps it, and its loggers stay enabled: 'init-db' (warnings and errors
# only, as it reports in its own words), the tests.
if config.config_file_name is not None and not logging.getLogger().handlers:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def skip_empty_revision(
    migration_context: MigrationContext,
    revision: str | Iterable[str | None] | Iterable[str],
    directives: list[MigrationScript],
) -> None:
    """Write no file when ``flask db migrate`` finds the models and the database equal."""
    upgrade_ops = directives[0].upgrade_ops
    autogenerate: bool = getattr(config.cmd_opts, "autogenerate", False)
    if autogenerate and upgrade_ops is not None and upgrade_ops.is_empty():
        directives[:] = []
        logger.info("No changes in schema detected.")


def run_migrations_offline() -> None:
    """Print the SQL instead of running it (``flask db upgrade --sql``)."""
    context.configure(url=db.engine.url, target_metadata=db.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the app's default engine, in one transaction."""
    # compare_type, render_as_batch and any other option given to Migrate.
    options: dict[str, Any] = {
        "process_revision_directives": skip_empty_revision,
        **migrate.alembic_ctx_kwargs,
    }
    with db.engine.connect() as connection:
        context.configure(connection=connection, target_metadata=db.metadata, **options)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
