"""Where the bookshelf app and worker find their database."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from bookshelf import worker
from bookshelf.app import create_app
from bookshelf.app import db
from bookshelf.settings import INSTANCE_PATH
from bookshelf.settings import database_settings


def engine_database(app: Flask) -> str | None:
    with app.app_context():
        database = db.engine.url.database
        db.engine.dispose()
    return database


def test_default_database_is_sqlite_in_the_instance_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BOOKSHELF_DATABASE_URL", raising=False)

    app = create_app()

    assert app.instance_path == str(INSTANCE_PATH)
    assert engine_database(app) == str(INSTANCE_PATH / "bookshelf.sqlite")


def test_worker_uses_the_same_default_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOOKSHELF_DATABASE_URL", raising=False)

    with worker.make_core() as core:
        assert core.engine.url.database == str(INSTANCE_PATH / "bookshelf.sqlite")


def test_environment_variable_chooses_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOOKSHELF_DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite'}")

    assert engine_database(create_app()) == str(tmp_path / "env.sqlite")


def test_config_mapping_overrides_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOOKSHELF_DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite'}")

    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'given.sqlite'}"})

    assert engine_database(app) == str(tmp_path / "given.sqlite")


def test_empty_environment_variable_means_the_default() -> None:
    settings = database_settings({"BOOKSHELF_DATABASE_URL": ""})

    assert settings == {"SQLALCHEMY_DATABASE_URI": "sqlite:///bookshelf.sqlite"}


def test_replica_urls_from_the_environment() -> None:
    settings = database_settings(
        {
            "BOOKSHELF_DATABASE_URL": "postgresql+psycopg://app@primary/bookshelf",
            "BOOKSHELF_REPLICA_URLS": (
                " postgresql+psycopg://app@r1/bookshelf  postgresql+psycopg://app@r2/bookshelf "
            ),
        }
    )

    assert settings["SQLALCHEMY_REPLICAS"] == {
        None: ["postgresql+psycopg://app@r1/bookshelf", "postgresql+psycopg://app@r2/bookshelf"]
    }
