"""Read Flask-SQLAlchemy 3.1 style configuration into one engine spec per bind."""

from __future__ import annotations

import difflib
import inspect
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.engine import URL

#: Keys read here, with the meaning they have in Flask-SQLAlchemy 3.1.
SUPPORTED_KEYS = frozenset(
    {
        "SQLALCHEMY_DATABASE_URI",
        "SQLALCHEMY_BINDS",
        "SQLALCHEMY_ENGINE_OPTIONS",
        "SQLALCHEMY_ECHO",
        # Read by the Flask adapter, not by the core: paginate()'s cap, query
        # recording per app context, and the commit policy of views.
        "SQLALCHEMY_MAX_PER_PAGE",
        "SQLALCHEMY_RECORD_QUERIES",
        "SQLALCHEMY_COMMIT_ON_SUCCESS",
    }
)

_PREFIX = "SQLALCHEMY_"
_SUFFIXES = sorted(key.removeprefix(_PREFIX) for key in SUPPORTED_KEYS)

#: Flask-SQLAlchemy keys for features this package does not have. Setting one to a
#: true value warns, so that nobody relies on a feature that silently does nothing.
UNSUPPORTED_KEYS = {
    "SQLALCHEMY_TRACK_MODIFICATIONS": "model change signals are not supported;"
    " use SQLAlchemy's own session events instead",
}

#: Keys of Flask-SQLAlchemy 2 and Flask-SQLAlchemy-Lite that this package does not
#: read, and what to set instead. Setting one at all warns: it was set to be obeyed.
MOVED_KEYS = {
    "SQLALCHEMY_ENGINES": "that is Flask-SQLAlchemy-Lite's key; set"
    " 'SQLALCHEMY_DATABASE_URI' to its \"default\" engine and 'SQLALCHEMY_BINDS' to the"
    " others",
    "SQLALCHEMY_ASYNC_ENGINES": "asyncio engines are not supported",
    "SQLALCHEMY_POOL_SIZE": "set 'SQLALCHEMY_ENGINE_OPTIONS[\"pool_size\"]' instead",
    "SQLALCHEMY_POOL_TIMEOUT": "set 'SQLALCHEMY_ENGINE_OPTIONS[\"pool_timeout\"]' instead",
    "SQLALCHEMY_POOL_RECYCLE": "set 'SQLALCHEMY_ENGINE_OPTIONS[\"pool_recycle\"]' instead",
    "SQLALCHEMY_MAX_OVERFLOW": "set 'SQLALCHEMY_ENGINE_OPTIONS[\"max_overflow\"]' instead",
    "SQLALCHEMY_NATIVE_UNICODE": "SQLAlchemy 2 always returns str; remove it",
    "SQLALCHEMY_COMMIT_ON_TEARDOWN": "set 'SQLALCHEMY_COMMIT_ON_SUCCESS', which commits"
    " before the response is sent, not after",
}

_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)


class ConfigWarning(UserWarning):
    """A configuration key is unknown, misspelled or has no effect."""


@dataclass(frozen=True)
class BindSpec:
    """Where one bind's engine comes from: its URL, its options, and the config key
    that set them, so that every error can quote the key the user has to fix.
    """

    key: str | None
    config_key: str
    url: URL
    options: Mapping[str, Any]


def describe_bind(key: str | None) -> str:
    """The config key a bind's URL is read from, as the user writes it."""
    if key is None:
        return "'SQLALCHEMY_DATABASE_URI'"
    return f"'SQLALCHEMY_BINDS[{key!r}]'"


def missing_bind_message(key: str | None) -> str:
    """Flask-SQLAlchemy 3.1's words for a bind key without an engine, which ported
    code and tests match on; they name the config key to set.
    """
    message = f"Bind key '{key}' is not in 'SQLALCHEMY_BINDS' config."
    if key is None:
        return f"'SQLALCHEMY_DATABASE_URI' config is not set. {message}"
    return message


def read_config(
    config: Mapping[str, Any], engine_options: Mapping[str, Any] | None = None
) -> dict[str | None, BindSpec]:
    """Turn the ``SQLALCHEMY_*`` keys of ``config`` into one :class:`BindSpec` per bind.

    :param config: A Flask ``app.config``, or any mapping with the same keys.
    :param engine_options: Defaults applied to every engine, below the per-bind
        options from the config.
    :raises RuntimeError: If neither ``SQLALCHEMY_DATABASE_URI`` nor
        ``SQLALCHEMY_BINDS`` is set.
    """
    _warn_about_unknown_keys(config)
    defaults = dict(engine_options or {})
    echo = config.get("SQLALCHEMY_ECHO", False)
    raw: dict[str | None, tuple[str, dict[str, Any]]] = {}

    binds = _mapping(config.get("SQLALCHEMY_BINDS") or {}, "'SQLALCHEMY_BINDS'")
    for key, value in binds.items():
        if not isinstance(key, str):
            raise TypeError(f"'SQLALCHEMY_BINDS' keys must be strings, got {key!r}.")
        where = describe_bind(key)
        if isinstance(value, str | URL):
            raw[key] = (where, {**defaults, "url": value})
        else:
            options = _mapping(value, where)
            if "url" not in options:
                raise RuntimeError(f"'SQLALCHEMY_BINDS[{key!r}][\"url\"]' must be defined.")
            raw[key] = (f"'SQLALCHEMY_BINDS[{key!r}][\"url\"]'", {**defaults, **options})

    default_options = {
        **defaults,
        **_mapping(config.get("SQLALCHEMY_ENGINE_OPTIONS") or {}, "'SQLALCHEMY_ENGINE_OPTIONS'"),
    }
    uri = config.get("SQLALCHEMY_DATABASE_URI")
    if uri is not None:
        default_options["url"] = uri
    if "url" in default_options:
        raw[None] = ("'SQLALCHEMY_DATABASE_URI'", default_options)

    if not raw:
        raise RuntimeError(
            "Either 'SQLALCHEMY_DATABASE_URI' or 'SQLALCHEMY_BINDS' must be set,"
            " for example app.config['SQLALCHEMY_DATABASE_URI'] = 'sqlite:///app.db'."
        )

    specs: dict[str | None, BindSpec] = {}
    for key, (where, options) in raw.items():
        url = _parse_url(options.pop("url"), where)
        # Flask-SQLAlchemy echoes the engine and its pool for every bind.
        options.setdefault("echo", echo)
        options.setdefault("echo_pool", echo)
        specs[key] = BindSpec(key=key, config_key=where, url=url, options=options)
    return specs


def _parse_url(value: object, where: str) -> URL:
    if not isinstance(value, str | URL):
        # The type only: the value may hold a password.
        raise TypeError(
            f"{where} must be a URL string or a sqlalchemy.URL, not {type(value).__name__}."
        )
    try:
        return sa.make_url(value)
    except (sa_exc.ArgumentError, ValueError):
        # SQLAlchemy's message repeats the string, or the part of it it took for the
        # port (a password with an unescaped "@" or ":"): drop it.
        raise ValueError(
            f"{where} is not a valid database URL. Use the form"
            " 'dialect+driver://user:password@host:port/database'."
        ) from None


def _mapping(value: object, where: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{where} must be a dict, not {type(value).__name__}.")
    return value  # pyright: ignore[reportUnknownVariableType]  # keys are checked by callers


def _warn_about_unknown_keys(config: Mapping[str, Any]) -> None:
    for name in config:
        if not name.startswith(_PREFIX) or name in SUPPORTED_KEYS:
            continue
        if name in UNSUPPORTED_KEYS:
            if config[name]:
                _warn(f"{name!r} has no effect: {UNSUPPORTED_KEYS[name]}.")
            continue
        if name in MOVED_KEYS:
            _warn(f"{name!r} is ignored: {MOVED_KEYS[name]}.")
            continue
        # Compare what follows the shared prefix, or every name is "close".
        close = difflib.get_close_matches(name.removeprefix(_PREFIX), _SUFFIXES, n=1)
        hint = f" Did you mean {_PREFIX + close[0]!r}?" if close else ""
        _warn(f"Unknown config key {name!r} is ignored.{hint}")


def _warn(message: str) -> None:
    # Point the warning at the caller's init_app() or DatabaseCore(), not at us.
    stacklevel = 1
    frame = inspect.currentframe()
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        stacklevel += 1
    warnings.warn(message, ConfigWarning, stacklevel=stacklevel)
