"""Static checks: the Flask-Migrate stub in ``stubs/`` accepts our Database.

Typeshed's stub types ``db`` as Flask-SQLAlchemy's class, which rejects it; what the
stub must still refuse is in ``tests/typing/reject/reject_migrate.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import assert_type

import flask_migrate
from flask import Flask
from flask_migrate import Config
from flask_migrate import Migrate
from sqlalchemy.orm import DeclarativeBase

from flask_typed_db import Database


class Base(DeclarativeBase):
    pass


db = Database(Base)
migrate = Migrate(directory=Path("migrations"))


def create_app() -> Flask:
    app = Flask(__name__)
    db.init_app(app)
    migrate.init_app(app, db)
    return app


def create_app_in_one_call() -> Flask:
    app = Flask(__name__)
    db.init_app(app)
    Migrate(app, db, directory="migrations", compare_type=False)
    return app


@migrate.configure
def add_option(config: Config) -> Config:
    config.set_main_option("revision_environment", "true")
    return config


def deploy(app: Flask) -> None:
    with app.app_context():
        assert_type(migrate.get_config(), Config)
        assert_type(flask_migrate.upgrade(revision="head"), None)
        assert_type(flask_migrate.downgrade(Path("migrations"), "-1", x_arg=["a=b"]), None)
        assert_type(flask_migrate.migrate(message="Add users"), None)
