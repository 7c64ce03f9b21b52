"""Units of work, health and recorded queries: code that must be rejected. Each marked
line must get exactly the named errors from each checker.
"""

from __future__ import annotations

from flask_typed_db import get_recorded_queries

from .models import db


def count() -> int:
    return 1


def show(book_id: int) -> str:
    return str(book_id)


def not_a_view() -> None:
    db.commit_on_success(count)  # expect: mypy[arg-type] pyright[reportCallIssue, reportArgumentType]


def parameters_kept() -> None:
    db.commit_on_success(show)("seven")  # expect: mypy[arg-type] pyright[reportArgumentType]
    db.manual_commit(show)()  # expect: mypy[call-arg] pyright[reportCallIssue]


def reports_are_read_only() -> None:
    report = db.check_health()
    report.binds[0].ok = True  # expect: mypy[misc] pyright[reportAttributeAccessIssue]
    get_recorded_queries()[0].statement = "SELECT 1"  # expect: mypy[misc] pyright[reportAttributeAccessIssue]
