"""JSON code that must be rejected; tests/test_typing_rejections.py checks each line."""

from __future__ import annotations

from flask_typed_db.core import json_default

from .models import Book


def json_default_is_not_typed_as_json(book: Book) -> None:
    # It returns what json encodes further, not finished JSON: loosened to Any, this passes.
    data: dict[str, object] = json_default(book)  # expect: mypy[assignment] pyright[reportAssignmentType]
    print(data)

