"""The examples of docs/workers.md run: the first on its own, the rest as one module."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import TypeVar
from typing import cast

import pytest

import bookshelf.settings
from bookshelf.models import utcnow
from bookshelf.seed import seed
from flask_typed_db.core import DatabaseCore

PAGE = Path(__file__).parent.parent / "docs" / "workers.md"
CODE_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
F = TypeVar("F", bound=Callable[..., object])


def run_blocks(numbers: range, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Run the page's python blocks ``numbers`` (from 1), in order, as one new module."""
    blocks = CODE_BLOCK.findall(PAGE.read_text(encoding="utf-8"))
    # A registered module: SQLAlchemy resolves Mapped[...] annotations through it.
    module = ModuleType(f"docs_workers_{numbers.start}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for number in numbers:
        # dont_inherit: annotations are evaluated, as in a module without this file's
        # `from __future__ import annotations`.
        code = compile(
            blocks[number - 1], f"workers.md, example {number}", "exec", dont_inherit=True
        )
        exec(code, module.__dict__)
    return module.__dict__


def _shared_task(function: F) -> F:
    """Celery's ``shared_task`` as far as the page uses it: the task is still callable."""
    return function


@pytest.fixture(autouse=True)
def instance_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The examples' instance folder, and so their SQLite file, in a temporary folder."""
    monkeypatch.setattr(bookshelf.settings, "INSTANCE_PATH", tmp_path)
    monkeypatch.delenv(bookshelf.settings.DATABASE_URL_VARIABLE, raising=False)
    return tmp_path


def test_first_example_runs_on_its_own(
    instance_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = run_blocks(range(1, 2), monkeypatch)
    core = namespace["core"]
    assert isinstance(core, DatabaseCore)
    core = cast("DatabaseCore", core)  # isinstance() leaves its session class unknown
    with core:
        assert core.engine.url.database == str(instance_path / "bookshelf.sqlite")


def test_worker_examples_run_as_one_module(
    instance_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Celery is not a test dependency: a stand-in module with the one name the page uses.
    celery = ModuleType("celery")
    celery.shared_task = _shared_task  # type: ignore[attr-defined]  # a module's new attribute
    monkeypatch.setitem(sys.modules, "celery", celery)
    namespace = run_blocks(range(2, 5), monkeypatch)
    core, main, task = namespace["core"], namespace["main"], namespace["nightly_reminders"]
    assert isinstance(core, DatabaseCore)
    core = cast("DatabaseCore", core)  # isinstance() leaves its session class unknown
    assert callable(main)
    assert callable(task)

    with core:
        core.create_all()
        with core.transaction() as session:
            # Two of the sample loans are overdue, by 16 and 6 days.
            seed(session, utcnow())
        # main() makes a core of its own, on the same file.
        main()
        assert capsys.readouterr().out == "2 reminders\n"
        assert task() == 2
        remind_overdue = namespace["remind_overdue"]
        assert callable(remind_overdue)
        # By then the third open loan is overdue too; the returned one never is.
        assert remind_overdue(core, datetime(2100, 1, 1)) == 3
