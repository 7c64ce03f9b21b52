"""The bookshelf's commands as a person runs them, each in a process of its own: every
one answers ``--help`` without doing its work, its help reads as plain text, and
``init-db`` says what it did and nothing more.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent.parent / "examples"
FLASK = [sys.executable, "-m", "flask", "--app", "bookshelf.app"]
WORKER = [sys.executable, "-m", "bookshelf.worker"]
#: What reStructuredText or Sphinx markup looks like, which a terminal shows raw.
MARKUP = re.compile(r"``|:(func|class|meth|mod|data|attr):|^\s*\.\. ", re.MULTILINE)


def run(command: Sequence[str], database: Path) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as ``make demo`` does, on the SQLite file ``database``."""
    environ = {
        **os.environ,
        "PYTHONPATH": str(EXAMPLES),
        "BOOKSHELF_DATABASE_URL": f"sqlite:///{database}",
    }
    return subprocess.run(
        command, env=environ, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(WORKER, id="worker"),
        pytest.param([*FLASK, "init-db"], id="init-db"),
        pytest.param(FLASK, id="flask"),
        pytest.param([*FLASK, "db", "upgrade"], id="db-upgrade"),
    ],
)
def test_every_entry_point_answers_help_without_running(
    command: list[str], tmp_path: Path
) -> None:
    database = tmp_path / "bookshelf.sqlite"

    answer = run([*command, "--help"], database)

    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.startswith(("usage: ", "Usage: "))
    assert answer.stderr == ""
    assert not MARKUP.search(answer.stdout), answer.stdout
    assert not database.exists()  # nothing connected, nothing was made


def test_worker_help_says_what_it_does_and_where(tmp_path: Path) -> None:
    answer = run([*WORKER, "--help"], tmp_path / "bookshelf.sqlite")

    assert "overdue" in answer.stdout
    assert "BOOKSHELF_DATABASE_URL" in answer.stdout


def test_worker_rejects_an_unknown_argument(tmp_path: Path) -> None:
    database = tmp_path / "bookshelf.sqlite"

    answer = run([*WORKER, "--dry-run"], database)

    assert answer.returncode == 2
    assert "unrecognized arguments: --dry-run" in answer.stderr
    assert not database.exists()


def test_init_db_reports_what_it_did_and_nothing_else(tmp_path: Path) -> None:
    database = tmp_path / "bookshelf.sqlite"

    first = run([*FLASK, "init-db", "--seed"], database)
    again = run([*FLASK, "init-db", "--seed"], database)

    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    assert first.stdout.splitlines() == [
        f"Tables ready in sqlite:///{database}",
        "Added 4 authors, 7 books and 4 loans.",
    ]
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""
    assert again.stdout.splitlines() == [
        f"Tables ready in sqlite:///{database}",
        "The sample data is already there; nothing added.",
    ]


def test_init_db_still_shows_a_migration_error(tmp_path: Path) -> None:
    # A database stamped with a revision these migrations do not have.
    database = tmp_path / "bookshelf.sqlite"
    assert run([*FLASK, "init-db"], database).returncode == 0
    with_unknown_revision = [
        sys.executable,
        "-c",
        "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]);"
        " db.execute(\"UPDATE alembic_version SET version_num = 'abc123'\"); db.commit()",
        str(database),
    ]
    assert subprocess.run(with_unknown_revision, check=False).returncode == 0

    answer = run([*FLASK, "init-db"], database)

    assert answer.returncode == 1
    assert "Can't locate revision identified by 'abc123'" in answer.stderr


def test_flask_db_upgrade_still_logs_each_migration(tmp_path: Path) -> None:
    # 'flask db' is the migrations tool: there, alembic says what it runs.
    answer = run([*FLASK, "db", "upgrade"], tmp_path / "bookshelf.sqlite")

    assert answer.returncode == 0, answer.stderr
    assert "Running upgrade  -> 6bd03b7e4d51" in answer.stderr
