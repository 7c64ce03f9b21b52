"""The session class is part of the type: code that must be rejected. Each marked line
must get exactly the named errors from each checker.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from flask_typed_db import Database
from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import RoutingSession
from flask_typed_db.core import async_on_commit
from flask_typed_db.core import on_commit

from .models import Base
from .models import db


class AuditedSession(RoutingSession):
    def audit(self, action: str) -> None:
        pass


def default_class_has_no_custom_methods() -> None:
    db.session.audit("export")  # expect: mypy[attr-defined] pyright[reportAttributeAccessIssue, reportUnknownMemberType]


def custom_methods_keep_their_types() -> None:
    audited = Database(Base, session_class=AuditedSession)
    audited.session.audit(1)  # expect: mypy[arg-type] pyright[reportArgumentType]


def only_routing_sessions(settings: Mapping[str, object]) -> None:
    Database(Base, session_class=Session)  # expect: mypy[type-var] pyright[reportArgumentType]
    DatabaseCore(settings, Base, session_class=Session)  # expect: mypy[type-var] pyright[reportArgumentType]


def flask_sqlalchemy_attributes() -> None:
    db.Column  # expect: mypy[attr-defined] pyright[reportAttributeAccessIssue, reportUnknownMemberType]


def on_commit_callbacks_take_no_arguments(session: Session) -> None:
    db.on_commit(send_receipt)  # expect: mypy[arg-type] pyright[reportArgumentType]
    on_commit(session, send_receipt)  # expect: mypy[arg-type] pyright[reportArgumentType]
    db.on_commit(send_receipt(1))  # expect: mypy[arg-type] pyright[reportArgumentType]


async def on_commit_sessions_are_of_their_kind(session: Session) -> None:
    await async_on_commit(session, print)  # expect: mypy[arg-type] pyright[reportArgumentType]
    captured: list[int] = db.captured_on_commit().__enter__()  # expect: mypy[assignment] pyright[reportAssignmentType]
    print(captured)


def send_receipt(loan_id: int) -> bool:
    return loan_id > 0
