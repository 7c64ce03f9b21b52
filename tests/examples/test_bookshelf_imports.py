"""The models and the worker work where Flask cannot be imported."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

WITHOUT_FLASK = textwrap.dedent(
    """
    import sys

    sys.modules["flask"] = None  # any 'import flask' now raises ImportError

    import bookshelf.models
    import bookshelf.seed
    import bookshelf.settings
    from bookshelf import worker

    try:
        import bookshelf.app
    except ImportError:
        pass
    else:
        raise AssertionError("the Flask block did not work: bookshelf.app imported")

    loaded = sorted(n for n, m in sys.modules.items() if m is not None)
    assert not [n for n in loaded if n.split(".")[0] in {"flask", "werkzeug"}], loaded

    with worker.make_core() as core:
        core.create_all()
        with core.transaction() as session:
            bookshelf.seed.seed(session, bookshelf.models.utcnow())
    worker.main()
    """
)


def test_models_and_worker_run_without_flask(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(EXAMPLES), os.environ.get("PYTHONPATH")])),
        "BOOKSHELF_DATABASE_URL": f"sqlite:///{tmp_path / 'noflask.sqlite'}",
    }

    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_FLASK],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "2 reminders sent" in result.stdout
