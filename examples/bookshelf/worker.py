"""The nightly job: remind borrowers of overdue books. No Flask here.

It builds a :class:`~flask_typed_db.core.DatabaseCore` from the same settings as the
web app, so it works on the same database with the same models. Run it from cron::

    python -m bookshelf.worker          # --help says what it does
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from flask_typed_db.core import DatabaseCore

from .models import Base
from .models import Loan
from .models import utcnow
from .settings import DATABASE_URL_VARIABLE
from .settings import INSTANCE_PATH
from .settings import database_settings


@dataclass(frozen=True)
class Reminder:
    """One borrower reminded of one overdue book."""

    loan_id: int
    borrower: str
    title: str
    due_on: date
    days_overdue: int


@dataclass(frozen=True)
class NightlySummary:
    """What one run of :func:`send_overdue_reminders` saw and did."""

    run_at: datetime
    #: Loans not returned yet, overdue or not.
    open_loans: int
    #: Reminders sent by this run, most overdue first.
    reminders: tuple[Reminder, ...]
    #: Overdue loans whose borrower an earlier run already reminded.
    previously_reminded: int

    def __str__(self) -> str:
        lines = [
            f"Overdue check at {self.run_at:%Y-%m-%d %H:%M} UTC: {self.open_loans} open loans,"
            f" {len(self.reminders)} reminders sent,"
            f" {self.previously_reminded} overdue loans reminded before."
        ]
        lines += [
            f"  reminded {r.borrower}: {r.title!r} was due {r.due_on} ({r.days_overdue} days ago)"
            for r in self.reminders
        ]
        return "\n".join(lines)


def make_core(environ: Mapping[str, str] | None = None) -> DatabaseCore:
    """The worker's engines and sessions, from the web app's settings."""
    return DatabaseCore(database_settings(environ), Base, root_path=INSTANCE_PATH)


def send_overdue_reminders(core: DatabaseCore, now: datetime) -> NightlySummary:
    """Mark every overdue loan not reminded yet as reminded at ``now``, in one transaction.

    A loan is overdue when it is not returned and its due date is before ``now``'s
    date. Each loan is reminded once: a second run the same night finds nothing new.

    :param now: The run's time, a naive UTC datetime (see :func:`bookshelf.models.utcnow`).
    """
    today = now.date()
    is_open = Loan.returned_at.is_(None)
    is_overdue = sa.and_(is_open, Loan.due_on < today)
    count = sa.select(sa.func.count()).select_from(Loan)
    with core.transaction() as session:
        open_loans = session.execute(count.where(is_open)).scalar_one()
        previously_reminded = session.execute(
            count.where(is_overdue, Loan.reminded_at.is_not(None))
        ).scalar_one()
        # FOR UPDATE: a second job running at the same time waits, then skips these.
        loans = session.scalars(
            sa.select(Loan)
            .where(is_overdue, Loan.reminded_at.is_(None))
            .order_by(Loan.due_on, Loan.id)
            .with_for_update()
            .options(selectinload(Loan.book))
        ).all()
        reminders: list[Reminder] = []
        for loan in loans:
            loan.reminded_at = now
            reminders.append(
                Reminder(
                    loan_id=loan.id,
                    borrower=loan.borrower,
                    title=loan.book.title,
                    due_on=loan.due_on,
                    days_overdue=(today - loan.due_on).days,
                )
            )
    return NightlySummary(
        run_at=now,
        open_loans=open_loans,
        reminders=tuple(reminders),
        previously_reminded=previously_reminded,
    )


def main(argv: Sequence[str] = ()) -> None:
    """Run the job once against ``$BOOKSHELF_DATABASE_URL`` (or the demo's SQLite).

    :param argv: The command line's arguments: none but ``--help``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m bookshelf.worker",
        description=(
            "Remind borrowers of overdue books: mark every overdue loan that no earlier"
            " run reminded, in one transaction, and print what was done. Run it once a"
            " night, from cron or a scheduler; a second run the same night reminds nobody"
            " again."
        ),
        epilog=(
            f"The database is ${DATABASE_URL_VARIABLE}, as for the web app; unset, the"
            f" demo's SQLite file in {INSTANCE_PATH}. Create its tables with"
            " 'flask --app bookshelf.app init-db' first."
        ),
    )
    parser.parse_args(argv)
    with make_core() as core:
        if not sa.inspect(core.engine).has_table(Loan.__tablename__):
            raise SystemExit(
                "The bookshelf tables do not exist yet: run"
                " 'flask --app bookshelf.app init-db' first."
            )
        summary = send_overdue_reminders(core, utcnow())
    print(summary)


if __name__ == "__main__":
    main(sys.argv[1:])
