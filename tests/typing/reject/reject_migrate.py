"""The Flask-Migrate stub in ``stubs/`` accepts any object with ``engine``, ``engines``
and ``metadata``, not anything at all. Each marked line must get exactly the named
errors; tests/test_typing_rejections.py runs both checkers and compares.
"""

from __future__ import annotations

from pathlib import Path

import flask_migrate
from flask import Flask
from flask_migrate import Config
from flask_migrate import Migrate

from .models import db


def wrong_arguments(app: Flask) -> None:
    Migrate(app, object())  # expect: mypy[arg-type] pyright[reportArgumentType]
    Migrate(app, db.metadata)  # expect: mypy[arg-type] pyright[reportArgumentType]
    Migrate(app, db, directory=1)  # expect: mypy[arg-type] pyright[reportArgumentType]
    flask_migrate.init(Path("migrations"))  # expect: mypy[arg-type] pyright[reportArgumentType]


def configure_without_returning_the_config(migrate: Migrate) -> None:
    def forgets_to_return(config: Config) -> None:
        config.set_main_option("answer", "42")

    migrate.configure(forgets_to_return)  # expect: mypy[type-var] pyright[reportArgumentType]
