"""The bookshelf worker: the nightly overdue-loan job through DatabaseCore."""

from __future__ import annotations

from datetime import date
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bookshelf import worker
from bookshelf.models import Author
from bookshelf.models import Book
from bookshelf.models import Loan
from bookshelf.models import utcnow
from bookshelf.seed import seed
from bookshelf.worker import NightlySummary
from bookshelf.worker import Reminder
from bookshelf.worker import send_overdue_reminders
from flask_typed_db.core import DatabaseCore

#: The run's time; no microseconds, which MariaDB does not store.
NOW = datetime(2024, 5, 10, 3, 0)
TODAY = NOW.date()
DAY = timedelta(days=1)
EARLIER_RUN = datetime(2024, 5, 5, 3, 0)


def add_loans(core: DatabaseCore) -> dict[str, int]:
    """One loan per case the job must tell apart; returns their ids by name."""
    cases: dict[str, tuple[date, datetime | None, datetime | None]] = {
        # name: (due on, returned at, reminded at)
        "long_overdue": (date(2024, 4, 20), None, None),
        "overdue": (date(2024, 5, 1), None, None),
        "due_yesterday": (date(2024, 5, 9), None, None),
        "due_today": (TODAY, None, None),
        "due_later": (date(2024, 6, 1), None, None),
        "returned_late": (date(2024, 5, 1), datetime(2024, 5, 8, 12, 0), None),
        "reminded_before": (date(2024, 4, 25), None, EARLIER_RUN),
    }
    loans: dict[str, Loan] = {}
    with core.transaction() as session:
        author = Author(name="Octavia E. Butler")
        for number, (name, (due_on, returned_at, reminded_at)) in enumerate(cases.items()):
            book = Book(title=f"Book {name}", isbn=f"978000000{number:04d}", author=author)
            loans[name] = Loan(
                book=book,
                borrower=name.title(),
                lent_at=datetime(2024, 4, 1, 10, 0),
                due_on=due_on,
                returned_at=returned_at,
                reminded_at=reminded_at,
            )
            session.add(loans[name])
        session.flush()
        return {name: loan.id for name, loan in loans.items()}


def reminded_at(core: DatabaseCore) -> dict[int, datetime | None]:
    """Each loan's ``reminded_at``, read in a new session."""
    with core.sessionmaker() as session:
        return {loan.id: loan.reminded_at for loan in session.scalars(sa.select(Loan))}


def test_job_reminds_exactly_the_overdue_loans_and_commits(core: DatabaseCore) -> None:
    ids = add_loans(core)
    before = reminded_at(core)

    summary = send_overdue_reminders(core, NOW)

    assert summary == NightlySummary(
        run_at=NOW,
        open_loans=6,
        reminders=(
            Reminder(
                ids["long_overdue"], "Long_Overdue", "Book long_overdue", date(2024, 4, 20), 20
            ),
            Reminder(ids["overdue"], "Overdue", "Book overdue", date(2024, 5, 1), 9),
            Reminder(
                ids["due_yesterday"], "Due_Yesterday", "Book due_yesterday", date(2024, 5, 9), 1
            ),
        ),
        previously_reminded=1,
    )
    reminded = {ids["long_overdue"], ids["overdue"], ids["due_yesterday"]}
    expected = {
        loan_id: NOW if loan_id in reminded else value for loan_id, value in before.items()
    }
    assert reminded_at(core) == expected


def test_second_run_reminds_nobody_again(core: DatabaseCore) -> None:
    add_loans(core)
    send_overdue_reminders(core, NOW)
    after_first = reminded_at(core)

    summary = send_overdue_reminders(core, NOW + timedelta(hours=1))

    assert summary.reminders == ()
    assert summary.previously_reminded == 4
    assert summary.open_loans == 6
    assert reminded_at(core) == after_first


def test_next_night_reminds_the_loan_that_became_overdue(core: DatabaseCore) -> None:
    ids = add_loans(core)
    send_overdue_reminders(core, NOW)

    summary = send_overdue_reminders(core, NOW + timedelta(days=1))

    assert [r.loan_id for r in summary.reminders] == [ids["due_today"]]
    assert summary.reminders[0].days_overdue == 1


def test_job_that_fails_midway_marks_nothing(
    core: DatabaseCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_loans(core)
    before = reminded_at(core)
    made: list[int] = []

    def failing_reminder(**fields: Any) -> Reminder:
        made.append(1)
        if len(made) == 2:
            raise RuntimeError("mail server down")
        return Reminder(**fields)

    monkeypatch.setattr(worker, "Reminder", failing_reminder)

    with pytest.raises(RuntimeError, match="mail server down"):
        send_overdue_reminders(core, NOW)

    assert reminded_at(core) == before


def test_summary_reads_as_a_report() -> None:
    summary = NightlySummary(
        run_at=NOW,
        open_loans=3,
        reminders=(Reminder(7, "Ada", "Solaris", date(2024, 5, 1), 9),),
        previously_reminded=1,
    )

    assert str(summary) == (
        "Overdue check at 2024-05-10 03:00 UTC: 3 open loans, 1 reminders sent,"
        " 1 overdue loans reminded before.\n"
        "  reminded Ada: 'Solaris' was due 2024-05-01 (9 days ago)"
    )


def test_main_runs_the_job_on_the_configured_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'nightly.sqlite'}"
    monkeypatch.setenv("BOOKSHELF_DATABASE_URL", url)
    with worker.make_core() as core:
        assert core.engine.url.database == str(tmp_path / "nightly.sqlite")
        core.create_all()
        with core.transaction() as session:
            seed(session, utcnow())

    worker.main()
    worker.main()

    first, second = capsys.readouterr().out.split("Overdue check at")[1:]
    assert "3 open loans, 2 reminders sent, 0 overdue loans reminded before." in first
    assert "reminded Ada: 'A Wizard of Earthsea'" in first
    assert "reminded Grace: 'Invisible Cities'" in first
    assert "0 reminders sent, 2 overdue loans reminded before." in second


def test_main_without_tables_says_to_run_init_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOOKSHELF_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite'}")

    with pytest.raises(SystemExit, match="init-db"):
        worker.main()
