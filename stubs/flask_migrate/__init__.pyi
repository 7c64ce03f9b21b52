# Flask-Migrate 4.x ships no types, and typeshed's stubs type `db` as Flask-SQLAlchemy's
# SQLAlchemy class, which rejects flask_typed_db.Database. Here `db` is a protocol of
# what Flask-Migrate reads from it, which Database and Flask-SQLAlchemy 3's SQLAlchemy
# both satisfy. See stubs/README.md.
from collections.abc import Callable
from collections.abc import Mapping
from logging import Logger
from os import PathLike
from typing import Any
from typing import ParamSpec
from typing import Protocol
from typing import TypeAlias
from typing import TypeVar

from alembic.config import Config as AlembicConfig
from flask import Flask
from sqlalchemy import Engine
from sqlalchemy import MetaData

_P = ParamSpec("_P")
_ConfigureCallback = TypeVar("_ConfigureCallback", bound=Callable[[Config], Config])
#: One ``-x`` argument for env.py, or several.
_XArg: TypeAlias = str | list[str] | tuple[str, ...]

class _Database(Protocol):
    """What Flask-Migrate's env.py templates need from `db`: the default `engine`, each
    bind's engine in `engines` (the default under None), and the default bind's
    `metadata`. They prefer `metadatas` and `get_engine()` where `db` has them.
    """

    @property
    def engine(self) -> Engine: ...
    @property
    def engines(self) -> Mapping[str | None, Engine]: ...
    @property
    def metadata(self) -> MetaData: ...

alembic_version: tuple[int, ...]
log: Logger

class _MigrateConfig:
    migrate: Migrate
    db: _Database | None
    directory: str
    configure_args: dict[str, Any]  # alembic's EnvironmentContext.configure() options
    def __init__(self, migrate: Migrate, db: _Database | None, **kwargs: Any) -> None: ...
    @property
    def metadata(self) -> MetaData: ...

class Config(AlembicConfig):
    template_directory: str | None
    # The other arguments are alembic's Config's, which differ between its versions.
    def __init__(
        self, *args: Any, template_directory: str | None = None, **kwargs: Any
    ) -> None: ...
    def get_template_directory(self) -> str: ...

class Migrate:
    configure_callbacks: list[Callable[[Config], Config]]
    db: _Database | None
    command: str
    directory: str
    alembic_ctx_kwargs: dict[str, Any]  # alembic's EnvironmentContext.configure() options
    def __init__(
        self,
        app: Flask | None = None,
        db: _Database | None = None,
        directory: str | PathLike[str] = "migrations",
        command: str = "db",
        compare_type: bool = True,
        render_as_batch: bool = True,
        **kwargs: Any,
    ) -> None: ...
    def init_app(
        self,
        app: Flask,
        db: _Database | None = None,
        directory: str | PathLike[str] | None = None,
        command: str | None = None,
        compare_type: bool | None = None,
        render_as_batch: bool | None = None,
        **kwargs: Any,
    ) -> None: ...
    def configure(self, f: _ConfigureCallback) -> _ConfigureCallback: ...
    def call_configure_callbacks(self, config: Config) -> Config: ...
    def get_config(
        self,
        directory: str | PathLike[str] | None = None,
        x_arg: _XArg | None = None,
        opts: list[str] | None = None,
    ) -> Config: ...

# Each command below logs alembic's CommandError (and RuntimeError) and exits with
# status 1 instead of raising it; `directory=None` means the Migrate's directory.
def catch_errors(f: Callable[_P, object]) -> Callable[_P, None]: ...
def list_templates() -> None: ...
def init(
    directory: str | None = None,  # alembic's config takes only a str here
    multidb: bool = False,
    template: str | None = None,
    package: bool = False,
) -> None: ...
def revision(
    directory: str | PathLike[str] | None = None,
    message: str | None = None,
    autogenerate: bool = False,
    sql: bool = False,
    head: str = "head",
    splice: bool = False,
    branch_label: str | None = None,
    version_path: str | None = None,
    rev_id: str | None = None,
) -> None: ...
def migrate(
    directory: str | PathLike[str] | None = None,
    message: str | None = None,
    sql: bool = False,
    head: str = "head",
    splice: bool = False,
    branch_label: str | None = None,
    version_path: str | None = None,
    rev_id: str | None = None,
    x_arg: _XArg | None = None,
) -> None: ...
def edit(directory: str | PathLike[str] | None = None, revision: str = "current") -> None: ...
def merge(
    directory: str | PathLike[str] | None = None,
    revisions: str | list[str] | tuple[str, ...] = "",
    message: str | None = None,
    branch_label: str | None = None,
    rev_id: str | None = None,
) -> None: ...
def upgrade(
    directory: str | PathLike[str] | None = None,
    revision: str = "head",
    sql: bool = False,
    tag: str | None = None,
    x_arg: _XArg | None = None,
) -> None: ...
def downgrade(
    directory: str | PathLike[str] | None = None,
    revision: str = "-1",
    sql: bool = False,
    tag: str | None = None,
    x_arg: _XArg | None = None,
) -> None: ...
def show(directory: str | PathLike[str] | None = None, revision: str = "head") -> None: ...
def history(
    directory: str | PathLike[str] | None = None,
    rev_range: str | None = None,
    verbose: bool = False,
    indicate_current: bool = False,
) -> None: ...
def heads(
    directory: str | PathLike[str] | None = None,
    verbose: bool = False,
    resolve_dependencies: bool = False,
) -> None: ...
def branches(directory: str | PathLike[str] | None = None, verbose: bool = False) -> None: ...
def current(directory: str | PathLike[str] | None = None, verbose: bool = False) -> None: ...
def stamp(
    directory: str | PathLike[str] | None = None,
    revision: str | list[str] | tuple[str, ...] = "head",
    sql: bool = False,
    tag: str | None = None,
    purge: bool = False,
) -> None: ...
def check(directory: str | PathLike[str] | None = None) -> None: ...
