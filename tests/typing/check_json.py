"""Static checks: the JSON provider is Flask's, and json_default fits json.dumps.

``json_default`` follows json's contract for ``default``: it returns data that json
encodes in turn, so its type is ``object``, not a JSON type a caller could index.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from typing import Literal
from typing import assert_type

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from flask_typed_db import ModelJSONProvider
from flask_typed_db.core import PRIVATE_INFO_KEY
from flask_typed_db.core import json_default


class ModelJSONFlask(Flask):
    json_provider_class = ModelJSONProvider


def check_provider_is_flasks(app: Flask) -> None:
    provider = ModelJSONProvider(app)
    assert_type(provider, ModelJSONProvider)
    default_provider: DefaultJSONProvider = provider
    app.json = provider
    assert_type(provider.default(object()), object)
    assert_type(provider.dumps([1]), str)
    print(default_provider, ModelJSONFlask(__name__).json)


def check_json_default_fits_json_dumps(value: object) -> None:
    assert_type(json_default(value), object)
    default: Callable[[Any], Any] = json_default
    assert_type(json.dumps(value, default=json_default), str)
    print(default)


def check_private_key() -> None:
    assert_type(PRIVATE_INFO_KEY, Literal["private"])
    info: dict[str, object] = {PRIVATE_INFO_KEY: True}
    print(info)
