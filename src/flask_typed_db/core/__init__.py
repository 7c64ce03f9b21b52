"""The framework-agnostic core: configuration to engines, sessions and tables.

Nothing here imports Flask, so workers, schedulers and scripts build the same engines
and sessions as the web app from the same settings.
"""

from __future__ import annotations

from ._config import BindSpec
from ._config import ConfigWarning
from ._config import read_config
from ._database import BindKeys
from ._database import DatabaseCore
from ._database import ModelBase
from ._database import metadatas_of
from ._engine import apply_backend_defaults
from ._engine import create_engine
from ._health import BindHealth
from ._health import HealthReport
from ._isolation import LazyLoadError
from ._keyset import InvalidCursor
from ._keyset import KeysetPage
from ._keyset import keyset_paginate
from ._naming import AutoTableName
from ._naming import camel_to_snake_case
from ._on_commit import async_on_commit
from ._on_commit import captured_on_commit
from ._on_commit import on_commit
from ._pagination import Pagination
from ._pagination import paginate
from ._recording import RecordedQuery
from ._replicas import PrimaryBlock
from ._replicas import Replicas
from ._serialize import PRIVATE_INFO_KEY
from ._serialize import json_default
from ._session import RoutingSession

__all__ = [
    "PRIVATE_INFO_KEY",
    "AutoTableName",
    "BindHealth",
    "BindKeys",
    "BindSpec",
    "ConfigWarning",
    "DatabaseCore",
    "HealthReport",
    "InvalidCursor",
    "KeysetPage",
    "LazyLoadError",
    "ModelBase",
    "Pagination",
    "PrimaryBlock",
    "RecordedQuery",
    "Replicas",
    "RoutingSession",
    "apply_backend_defaults",
    "async_on_commit",
    "camel_to_snake_case",
    "captured_on_commit",
    "create_engine",
    "json_default",
    "keyset_paginate",
    "metadatas_of",
    "on_commit",
    "paginate",
    "read_config",
]
