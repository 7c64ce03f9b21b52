"""The session class is part of the type: code that must be rejected. Each marked line
must get exactly the named errors from each checker.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from flask_typed_db import Database
from flask_typed_db.core import DatabaseCore
from flask_typed_db.core import RoutingSession

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
