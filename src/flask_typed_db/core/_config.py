"""Read Flask-SQLAlchemy 3.1 style configuration into one engine spec per bind.

Every value is checked here, so that a wrong one fails at ``init_app`` with an error
quoting its config key, not at the first query with an error that names no key.
"""

from __future__ import annotations

import difflib
import inspect
import warnings
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import NamedTuple
from typing import TypeAlias
from typing import cast

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.engine import URL
from sqlalchemy.engine import Dialect
from sqlalchemy.pool import Pool
from sqlalchemy.pool.base import ResetStyle

#: Keys read here, with the meaning they have in Flask-SQLAlchemy 3.1.
SUPPORTED_KEYS = frozenset(
    {
        "SQLALCHEMY_DATABASE_URI",
        "SQLALCHEMY_BINDS",
        "SQLALCHEMY_ENGINE_OPTIONS",
        "SQLALCHEMY_ECHO",
        # The default bind's async URL, when its own driver's async twin is not wanted.
        "SQLALCHEMY_ASYNC_DATABASE_URI",
        # Read replicas of each bind, and PgBouncer's transaction pooling in front of
        # every PostgreSQL engine.
        "SQLALCHEMY_REPLICAS",
        "SQLALCHEMY_PGBOUNCER",
        # Read by the Flask adapter, not by the core: paginate()'s cap, query
        # recording per app context, and the commit policy of views.
        "SQLALCHEMY_MAX_PER_PAGE",
        "SQLALCHEMY_RECORD_QUERIES",
        "SQLALCHEMY_COMMIT_ON_SUCCESS",
        # How long a client's reads go to the primary after it wrote.
        "SQLALCHEMY_REPLICA_DELAY",
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
    "SQLALCHEMY_ASYNC_ENGINES": "that is Flask-SQLAlchemy-Lite's key; async engines are"
    " made from 'SQLALCHEMY_DATABASE_URI' and 'SQLALCHEMY_BINDS', with"
    " 'SQLALCHEMY_ASYNC_DATABASE_URI' and a bind's \"async_url\" to choose their URLs",
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
    #: The URL of the bind's async engine, when the config gives one: otherwise the
    #: bind's URL with its backend's async driver is used.
    async_url: URL | None = None
    #: The config key ``async_url`` comes from, quoted.
    async_config_key: str | None = None
    #: Whether the engine connects through PgBouncer in transaction pooling mode
    #: (``SQLALCHEMY_PGBOUNCER``, or ``"pgbouncer"`` in the bind's or replica's dict).
    pgbouncer: bool = False
    #: The bind's read replicas (``SQLALCHEMY_REPLICAS``), each a spec of its own with
    #: the bind's key and options under its own.
    replicas: tuple[BindSpec, ...] = ()


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

    A bind's options are layered as in Flask-SQLAlchemy 3.1's documentation, the
    later winning: ``engine_options``, then the bind's dict in ``SQLALCHEMY_BINDS``.
    The default bind may also be set under the ``None`` key of ``SQLALCHEMY_BINDS``;
    ``SQLALCHEMY_ENGINE_OPTIONS`` and then ``SQLALCHEMY_DATABASE_URI`` win over it.

    :param config: A Flask ``app.config``, or any mapping with the same keys.
    :param engine_options: Defaults applied to every engine, below the per-bind
        options from the config.
    :raises RuntimeError: If neither ``SQLALCHEMY_DATABASE_URI`` nor
        ``SQLALCHEMY_BINDS`` is set.
    :raises TypeError: If a value has the wrong type. The message quotes its key and
        names its type, never the value, which may hold a password.
    :raises ValueError: If a URL, or an option's value, is invalid; likewise.
    """
    _warn_about_unknown_keys(config)
    echo = _echo(config.get("SQLALCHEMY_ECHO"))
    defaults = _options({} if engine_options is None else engine_options, "engine_options")
    pgbouncer = config.get("SQLALCHEMY_PGBOUNCER")
    if pgbouncer is not None:
        # Under every bind's own options: a bind's dict may say "pgbouncer": False.
        defaults = {"pgbouncer": _Option(pgbouncer, "SQLALCHEMY_PGBOUNCER"), **defaults}
    layered: dict[str | None, _Options] = {}

    binds = _mapping(_unless_none(config, "SQLALCHEMY_BINDS"), "SQLALCHEMY_BINDS")
    for key, value in binds.items():
        if key is not None and not isinstance(key, str):
            raise TypeError(
                "'SQLALCHEMY_BINDS' keys must be strings, or None for the default bind,"
                f" not {_type_name(key)}."
            )
        options = _bind_options(key, value)
        if key is not None and "url" not in options:
            raise RuntimeError(f"'SQLALCHEMY_BINDS[{key!r}][\"url\"]' must be defined.")
        layered[key] = {**defaults, **options}

    default = {
        **layered.get(None, defaults),
        **_options(_unless_none(config, "SQLALCHEMY_ENGINE_OPTIONS"), "SQLALCHEMY_ENGINE_OPTIONS"),
    }
    uri = config.get("SQLALCHEMY_DATABASE_URI")
    if uri is not None:
        default["url"] = _Option(uri, "SQLALCHEMY_DATABASE_URI")
    async_uri = config.get("SQLALCHEMY_ASYNC_DATABASE_URI")
    if async_uri is not None:
        default["async_url"] = _Option(async_uri, "SQLALCHEMY_ASYNC_DATABASE_URI")
    if "url" in default:
        layered[None] = default
    elif "async_url" in default:
        raise RuntimeError(
            "'SQLALCHEMY_ASYNC_DATABASE_URI' is set without 'SQLALCHEMY_DATABASE_URI':"
            " set that to the same database, with a sync driver, as well."
        )
    elif None in layered:
        raise RuntimeError(
            "Either 'SQLALCHEMY_DATABASE_URI' or 'SQLALCHEMY_BINDS[None][\"url\"]' must be set."
        )

    if not layered:
        raise RuntimeError(
            "Either 'SQLALCHEMY_DATABASE_URI' or 'SQLALCHEMY_BINDS' must be set,"
            " for example app.config['SQLALCHEMY_DATABASE_URI'] = 'sqlite:///app.db'."
        )
    replicas = _replica_options(config, layered)
    return {
        key: _bind_spec(key, options, echo, replicas.get(key, ()))
        for key, options in layered.items()
    }


def _replica_options(
    config: Mapping[str, Any], layered: Mapping[str | None, _Options]
) -> dict[str | None, list[_Options]]:
    """Each bind's replicas from ``SQLALCHEMY_REPLICAS``: the bind's options, with the
    replica's URL and its own options over them.
    """
    replicas = _mapping(
        _unless_none(config, "SQLALCHEMY_REPLICAS"),
        "SQLALCHEMY_REPLICAS",
        "a dict of bind keys (None for the default bind) to lists of replica URLs",
    )
    found: dict[str | None, list[_Options]] = {}
    for key, entries in replicas.items():
        where = f"SQLALCHEMY_REPLICAS[{key!r}]"
        if key is not None and not isinstance(key, str):
            raise TypeError(
                "'SQLALCHEMY_REPLICAS' keys must be bind keys (strings), or None for the"
                f" default bind, not {_type_name(key)}."
            )
        if key not in layered:
            raise RuntimeError(
                f"{_quoted(where)} lists replicas of a bind that is not configured: set"
                f" {describe_bind(key)} to its primary's URL, or remove the entry."
            )
        if not isinstance(entries, list | tuple):
            raise TypeError(
                f"{_quoted(where)} must be a list of replica URLs (or dicts with a 'url'),"
                f" not {_type_name(entries)}."
            )
        bind_options = {
            name: option
            for name, option in layered[key].items()
            if name not in {"url", "async_url"}
        }
        found[key] = []
        for index, entry in enumerate(cast("Sequence[object]", entries)):
            entry_where = f"{where}[{index}]"
            expected = "a URL string, a sqlalchemy.URL or a dict of engine options with a 'url'"
            if isinstance(entry, str | URL):
                own = {"url": _Option(entry, entry_where)}
            else:
                own = _options(entry, entry_where, expected)
                if "url" not in own:
                    raise RuntimeError(f"'{entry_where}[\"url\"]' must be defined.")
                if "async_url" in own:
                    raise ValueError(
                        f'{_quoted(entry_where)} has an "async_url": replicas serve the'
                        " sync sessions only; async sessions read from the primary."
                    )
            found[key].append({**bind_options, **own})
    return found


class _Option(NamedTuple):
    """An engine option's value, and the key that set it, unquoted:
    ``SQLALCHEMY_BINDS['auth']["pool_size"]``, or ``engine_options["pool_size"]``.
    """

    value: Any
    key: str


_Options: TypeAlias = dict[str, _Option]


def _options(value: object, where: str, expected: str = "a dict") -> _Options:
    """The options in the dict ``value``, each with its key under ``where``."""
    options: _Options = {}
    for name, option in _mapping(value, where, expected).items():
        if not isinstance(name, str):
            raise TypeError(
                f"{_quoted(where)} keys must be option names (strings), not {_type_name(name)}."
            )
        options[name] = _Option(option, f'{where}["{name}"]')
    return options


def _bind_options(key: str | None, value: object) -> _Options:
    where = f"SQLALCHEMY_BINDS[{key!r}]"
    if isinstance(value, str | URL):
        return {"url": _Option(value, where)}
    expected = "a URL string, a sqlalchemy.URL or a dict of engine options with a 'url'"
    return _options(value, where, expected)


def _bind_spec(
    key: str | None, options: _Options, echo: object, replicas: Sequence[_Options] = ()
) -> BindSpec:
    options = dict(options)
    url_option = options.pop("url")
    config_key = _quoted(url_option.key)
    url = _parse_url(url_option.value, config_key)
    async_option = options.pop("async_url", None)
    async_url = async_config_key = None
    if async_option is not None:
        async_config_key = _quoted(async_option.key)
        async_url = _parse_url(async_option.value, async_config_key)
    pgbouncer = _pgbouncer(options.pop("pgbouncer", None), url, config_key)
    for name, option in options.items():
        _check_option(name, option, url, config_key)
    values = {name: option.value for name, option in options.items()}
    # Flask-SQLAlchemy echoes the engine and its pool for every bind.
    values.setdefault("echo", echo)
    values.setdefault("echo_pool", echo)
    return BindSpec(
        key=key,
        config_key=config_key,
        url=url,
        options=values,
        async_url=async_url,
        async_config_key=async_config_key,
        pgbouncer=pgbouncer,
        replicas=tuple(_bind_spec(key, replica, echo) for replica in replicas),
    )


#: The PostgreSQL drivers whose settings for PgBouncer's transaction pooling are known.
PGBOUNCER_DRIVERS = ("psycopg", "psycopg_async", "psycopg2", "asyncpg")


def _pgbouncer(option: _Option | None, url: URL, config_key: str) -> bool:
    """The ``"pgbouncer"`` setting of an engine, checked against its URL."""
    if option is None or option.value is None:
        return False
    key = _quoted(option.key)
    if not isinstance(option.value, bool):
        raise TypeError(f"{key} must be True or False, not {_type_name(option.value)}.")
    if not option.value:
        return False
    if url.get_backend_name() != "postgresql":
        if option.key == "SQLALCHEMY_PGBOUNCER":
            # Set for every engine: a SQLite or MariaDB bind beside PostgreSQL ones.
            return False
        raise ValueError(
            f"{key} is set, but {config_key} is not a PostgreSQL URL: PgBouncer pools"
            " PostgreSQL connections only. Remove the setting."
        )
    if url.get_driver_name() not in PGBOUNCER_DRIVERS:
        raise ValueError(
            f"{key} is set, but the driver of {config_key} is"
            f" {url.get_driver_name()!r}, whose settings for PgBouncer's transaction"
            f" pooling flask-typed-db does not know: use one of {_listed(PGBOUNCER_DRIVERS)}."
        )
    return True


def _echo(value: object) -> object:
    """``SQLALCHEMY_ECHO``, checked; ``None`` is the same as unset."""
    if value is None:
        return False
    if not _is_echo(value):
        raise TypeError(
            f"'SQLALCHEMY_ECHO' must be True, False or \"debug\", not {_type_name(value)}."
        )
    return value


# Engine options


def _is_int(value: object) -> bool:
    # bool is an int to Python, but pool_size=True is a mistake, not 1.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_mapping(value: object) -> bool:
    return isinstance(value, Mapping)


def _is_seconds(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_echo(value: object) -> bool:
    return value is None or isinstance(value, bool) or value == "debug"


def _is_str_list(value: object) -> bool:
    return isinstance(value, list | tuple) and all(map(_is_str, cast("Sequence[object]", value)))


def _is_pool(value: object) -> bool:
    return isinstance(value, Pool)


def _is_pool_class(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, Pool)


def _is_reset_style(value: object) -> bool:
    return isinstance(value, bool | str | ResetStyle)


def _either(check: Callable[[object], bool]) -> Callable[[object], bool]:
    """``check``, or ``None``: SQLAlchemy's default for the option."""
    return lambda value: value is None or check(value)


#: What each common ``create_engine()`` option must be, as SQLAlchemy documents and
#: annotates them, with the words for it. SQLAlchemy's own table,
#: ``DefaultDialect.engine_config_types``, covers seven of these and coerces strings
#: from ``engine_from_config()`` files rather than refusing them. Options not listed
#: (a dialect's own, say) go to SQLAlchemy unchecked; it rejects unknown names.
ENGINE_OPTION_TYPES: Mapping[str, tuple[str, Callable[[object], bool]]] = {
    "connect_args": ("a dict", _is_mapping),
    "creator": ("a callable", callable),
    "echo": ('True, False, None or "debug"', _is_echo),
    "echo_pool": ('True, False, None or "debug"', _is_echo),
    "enable_from_linting": ("True or False", _is_bool),
    "execution_options": ("a dict", _is_mapping),
    "future": ("True or False", _is_bool),
    "hide_parameters": ("True or False", _is_bool),
    "insertmanyvalues_page_size": ("an int", _is_int),
    "isolation_level": ("a str naming an isolation level", _either(_is_str)),
    "json_deserializer": ("a callable", callable),
    "json_serializer": ("a callable", callable),
    "label_length": ("an int or None", _either(_is_int)),
    "logging_name": ("a str", _is_str),
    "max_identifier_length": ("an int or None", _either(_is_int)),
    "max_overflow": ("an int", _is_int),
    "paramstyle": ("a str or None", _either(_is_str)),
    "plugins": ("a list of str", _is_str_list),
    "pool": ("a sqlalchemy.pool.Pool instance", _either(_is_pool)),
    "pool_logging_name": ("a str", _is_str),
    "pool_pre_ping": ("True or False", _is_bool),
    "pool_recycle": ("a number of seconds (int or float)", _is_seconds),
    "pool_reset_on_return": (
        '"rollback", "commit", "none", True, False or None',
        _either(_is_reset_style),
    ),
    "pool_size": ("an int", _is_int),
    "pool_timeout": ("a number of seconds (int or float)", _is_seconds),
    "pool_use_lifo": ("True or False", _is_bool),
    "poolclass": ("a subclass of sqlalchemy.pool.Pool", _either(_is_pool_class)),
    "query_cache_size": ("an int", _is_int),
    "use_insertmanyvalues": ("True or False", _is_bool),
}

#: The strings an option takes, where it takes only some.
_OPTION_CHOICES: Mapping[str, tuple[str, ...]] = {
    "paramstyle": ("qmark", "numeric", "named", "format", "pyformat", "numeric_dollar"),
    "pool_reset_on_return": ("rollback", "commit", "none"),
}


def _check_option(name: str, option: _Option, url: URL, config_key: str) -> None:
    """Raise if the option ``name`` is not of its type, or not one of its choices."""
    rule = ENGINE_OPTION_TYPES.get(name)
    if rule is None:
        return
    value, key = option.value, _quoted(option.key)
    expected, check = rule
    if not check(value):
        raise TypeError(f"{key} must be {expected}, not {_type_name(value)}.")
    if name == "isolation_level":
        _check_isolation_level(value, key, url, config_key)
    elif name == "execution_options":
        # The same option, given for every connection of the engine.
        level_key = _quoted(f'{option.key}["isolation_level"]')
        _check_isolation_level(value.get("isolation_level"), level_key, url, config_key)
    elif isinstance(value, str) and value not in _OPTION_CHOICES.get(name, (value,)):
        raise ValueError(f"{key} must be one of {_listed(_OPTION_CHOICES[name])}.")


def _check_isolation_level(level: object, key: str, url: URL, config_key: str) -> None:
    """Raise unless ``level`` is one the URL's dialect lists, compared as SQLAlchemy
    compares them: in any case, with "_" the same as " ".
    """
    if level is None:
        return
    if not isinstance(level, str):
        raise TypeError(f"{key} must be a str naming an isolation level, not {_type_name(level)}.")
    dialect = url.get_dialect()
    levels = _isolation_levels(dialect)
    if levels is not None and level.replace("_", " ").upper() not in levels:
        raise ValueError(
            f"{key} is not an isolation level of {dialect.name}+{dialect.driver}, the"
            f" dialect of {config_key}: use one of {_listed(levels)}."
        )


def _isolation_levels(dialect: type[Dialect]) -> list[str] | None:
    """The isolation levels ``dialect`` lists, normalized as SQLAlchemy does; ``None``
    if it cannot list them without a connection: SQLAlchemy checks the level then.
    """
    try:
        # Made without a DBAPI, a dialect imports no driver and connects nowhere.
        levels = dialect().get_isolation_level_values(None)  # type: ignore[arg-type]  # no connection, see above
    except Exception:  # any failure only means this check cannot be made early
        return None
    return [name.replace("_", " ").upper() for name in levels]


def _listed(choices: Sequence[str]) -> str:
    quoted = [f'"{choice}"' for choice in choices]
    return f"{', '.join(quoted[:-1])} or {quoted[-1]}" if len(quoted) > 1 else quoted[0]


# URLs


def _parse_url(value: object, where: str) -> URL:
    if not isinstance(value, str | URL):
        # The type only: the value may hold a password.
        raise TypeError(
            f"{where} must be a URL string or a sqlalchemy.URL, not {type(value).__name__}."
        )
    try:
        url = sa.make_url(value)
    except (sa_exc.ArgumentError, ValueError):
        # SQLAlchemy's message repeats the string, or the part of it it took for the
        # port (a password with an unescaped "@" or ":"): drop it.
        raise ValueError(
            f"{where} is not a valid database URL. Use the form"
            " 'dialect+driver://user:password@host:port/database', with special"
            " characters in the password percent-encoded (urllib.parse.quote_plus)."
        ) from None
    if "@" in (url.host or ""):
        # SQLAlchemy splits at the first "@": the rest of the password became the
        # host, which the URL's repr shows.
        raise ValueError(
            f"{where} has an '@' in its password (or user name) that is not"
            " percent-encoded: write it as %40 (urllib.parse.quote_plus does), or make"
            " the URL with sqlalchemy.URL.create(), which takes the password as it is."
        )
    return _password_out_of_query(url, where)


def _password_out_of_query(url: URL, where: str) -> URL:
    """Move a password given in the query (``?password=``) to the URL's password.

    SQLAlchemy hides only the latter in reprs and in ``render_as_string()``. Its
    dialects give the driver either one as the password: the connection is the same.
    """
    names = ["password"]
    if url.get_backend_name() in {"mysql", "mariadb"}:
        names.append("passwd")  # MySQLdb's name for it, which PyMySQL also takes
    for name in names:
        if name not in url.query:
            continue
        password = url.query[name]
        if url.password is not None or not isinstance(password, str):
            raise ValueError(
                f"{where} has a password twice: in its 'user:password@' part and as"
                f" '?{name}=' in its query, or as '?{name}=' more than once. Keep one."
            )
        url = url.set(password=password).difference_update_query([name])
    return url


def _mapping(value: object, where: str, expected: str = "a dict") -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{_quoted(where)} must be {expected}, not {_type_name(value)}.")
    return value  # pyright: ignore[reportUnknownVariableType]  # keys are checked by callers


def _unless_none(config: Mapping[str, Any], key: str) -> object:
    """A dict-valued key's value; ``None``, Flask-SQLAlchemy's unset value, is empty."""
    value = config.get(key)
    return {} if value is None else value


def _quoted(where: str) -> str:
    """A config key quoted as the user writes it; the ``engine_options`` argument bare."""
    return f"'{where}'" if where.startswith(_PREFIX) else where


def _type_name(value: object) -> str:
    """What a wrong value is, without the value itself, which may hold a password."""
    if value is None:
        return "None"
    if isinstance(value, type):
        return f"the class {value.__name__}"
    return type(value).__name__


# Keys


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
