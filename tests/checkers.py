"""mypy and pyright run from a test on files of its own, as `make typecheck` runs them:
for tests that assert what the checkers say, not only that they pass.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parent.parent


def _run(command: list[str]) -> str:
    completed = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=False, timeout=600
    )
    return completed.stdout


def mypy_output(paths: list[Path], cache_dir: Path) -> str:
    """What mypy prints for ``paths``, with the project's mypy.ini and error codes."""
    return _run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            "mypy.ini",
            "--cache-dir",
            str(cache_dir),
            "--show-error-codes",
            "--no-error-summary",
            *(str(path) for path in paths),
        ]
    )


def pyright_diagnostics(paths: list[Path], config_dir: Path) -> list[dict[str, Any]]:
    """pyright's diagnostics for ``paths`` in strict mode, with the project's stubs. A
    config of their own: the project's may exclude them (tests/typing/reject).
    """
    config = config_dir / "pyrightconfig.json"
    settings = {
        "typeCheckingMode": "strict",
        "pythonVersion": "3.11",
        "stubPath": str(ROOT / "stubs"),
    }
    config.write_text(json.dumps(settings), encoding="utf-8")
    output = _run(
        [
            sys.executable,
            "-m",
            "pyright",
            "--outputjson",
            "--pythonpath",
            sys.executable,
            "--project",
            str(config),
            *(str(path) for path in paths),
        ]
    )
    diagnostics: list[dict[str, Any]] = json.loads(output)["generalDiagnostics"]
    return diagnostics
