"""The package as published: what the wheel and the sdist hold, and the README's quick
start, run and type-checked against the wheel installed in a fresh venv, not src/.

Offline: the wheel is built with the build backend of ``[build-system]`` (a test
dependency) and installed alone (``--no-deps``) into a new venv, which reaches its
dependencies in this venv through a ``.pth`` file placed after its own site-packages:
``flask_typed_db`` is the wheel's, Flask and SQLAlchemy are this venv's, and
``pip check`` confirms they meet the wheel's declared requirements.
"""

from __future__ import annotations

import contextlib
import email
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
CONSOLE_BLOCK = re.compile(r"^```console\n(.*?)^```", re.MULTILINE | re.DOTALL)
#: The first line of a quick-start block names its file.
FILE_HEADER = re.compile(r"# (myapp/\w+\.py)\n")
#: What running the tests, the demo and the docs build leave in the tree.
LEFT_BEHIND = [
    "examples/instance/bookshelf.sqlite",
    "examples/bookshelf/__pycache__/app.cpython-311.pyc",
    "tests/__pycache__/conftest.cpython-311-pytest-9.2.0.pyc",
    "tests/.pytest_cache/v/cache/lastfailed",
    "tests/typing/.mypy_cache/3.11/cache.db",
    "docs/_build/html/index.html",
    "benchmarks/results.sqlite",
]


def run(command: list[str | Path], cwd: Path, **env: str | None) -> str:
    """Run ``command``, fail with its output unless it succeeds, and return its stdout.

    :param env: Variables to set, or to unset with ``None``.
    """
    environ = {**os.environ, **env}
    result = subprocess.run(
        command,
        cwd=cwd,
        env={name: value for name, value in environ.items() if value is not None},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def build(kind: str, source: Path, outdir: Path) -> Path:
    """Build the ``"wheel"`` or the ``"sdist"`` of ``source`` through its PEP 517 hook."""
    backend = PYPROJECT["build-system"]["build-backend"]
    hook = (
        "import importlib, sys; backend = importlib.import_module(sys.argv[1]);"
        " print(getattr(backend, f'build_{sys.argv[2]}')(sys.argv[3]))"
    )
    output = run([sys.executable, "-c", hook, backend, kind, outdir], cwd=source)
    return outdir / output.split()[-1]


def quick_start() -> tuple[dict[str, str], str]:
    """The README's quick-start files by path, and the console session that runs them."""
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("## Quick start\n")[1].split("\n## ")[0]
    files: dict[str, str] = {}
    for block in PYTHON_BLOCK.findall(section):
        header = FILE_HEADER.match(block)
        assert header is not None, f"a quick-start block does not name its file:\n{block}"
        files[header[1]] = block
    (session,) = CONSOLE_BLOCK.findall(section)
    return files, str(session)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build("wheel", ROOT, tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def venv_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a new venv in which the wheel is installed, as a user installs it."""
    venv = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=venv)
    python = venv / "bin" / "python"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--no-index",
            "--no-deps",
            wheel,
        ],
        cwd=venv,
    )
    site_packages = run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=venv
    )
    dependencies = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(site_packages.strip()) / "zz_dependencies.pth").write_text(
        "".join(f"{path}\n" for path in sorted(dependencies)), "utf-8"
    )
    return python


def test_wheel_is_what_the_fresh_venv_imports(venv_python: Path) -> None:
    where = run(
        [venv_python, "-c", "import flask_typed_db; print(flask_typed_db.__file__)"], cwd=ROOT
    )
    assert Path(where.strip()).is_relative_to(venv_python.parent.parent)
    # The wheel's requirements (Flask, SQLAlchemy, ...) are met by what it can import.
    run([sys.executable, "-m", "pip", "--python", venv_python, "check"], cwd=ROOT)


def test_wheel_holds_the_package_its_marker_and_its_index_page(wheel: Path) -> None:
    package = ROOT / "src" / "flask_typed_db"
    sources = {
        path.relative_to(package.parent).as_posix()
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = next(name.split("/")[0] for name in names if ".dist-info/" in name)
        metadata = email.message_from_bytes(archive.read(f"{dist_info}/METADATA"))
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()

    assert "flask_typed_db/py.typed" in sources
    assert {name for name in names if not name.startswith(dist_info)} == sources
    assert metadata["Requires-Python"] == PYPROJECT["project"]["requires-python"]
    assert set(metadata.get_all("Provides-Extra") or []) == set(
        PYPROJECT["project"]["optional-dependencies"]
    )
    assert metadata["Description-Content-Type"] == "text/markdown"
    page = (ROOT / PYPROJECT["project"]["readme"]).read_text("utf-8")
    assert str(metadata.get_payload()).strip() == page.strip()
    assert "flask_typed_db=flask_typed_db.pytest_plugin" in entry_points.replace(" ", "")


@pytest.fixture
def tracked_tree(tmp_path: Path) -> Path:
    """A copy of the files git tracks: the tree of a clean clone."""
    if not (ROOT / ".git").exists():
        pytest.skip("builds the sdist from a git checkout, and this is not one")
    tree = tmp_path / "tree"
    for name in run(["git", "ls-files", "-z"], cwd=ROOT).split("\0"):
        if name and (ROOT / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tree / name)
    return tree


def sdist_names(sdist: Path) -> set[str]:
    """The files of ``sdist``, relative to its top folder."""
    with tarfile.open(sdist) as archive:
        return {member.name.split("/", 1)[1] for member in archive.getmembers() if member.isfile()}


def test_sdist_holds_the_release_sources_and_nothing_a_run_left_behind(
    tracked_tree: Path, tmp_path: Path
) -> None:
    tracked = {
        path.relative_to(tracked_tree).as_posix()
        for path in tracked_tree.rglob("*")
        if path.is_file()
    }
    for name in LEFT_BEHIND:
        (tracked_tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tracked_tree / name).write_text("left behind", "utf-8")
    project = PYPROJECT["project"]
    includes = [
        *PYPROJECT["tool"]["flit"]["sdist"]["include"],
        "pyproject.toml",
        project["readme"],
        *project["license-files"],
        "src/flask_typed_db/",
    ]

    names = sdist_names(build("sdist", tracked_tree, tmp_path / "dist"))

    assert sorted(names & set(LEFT_BEHIND)) == []
    expected = {
        name
        for name in tracked
        if any(name == include or name.startswith(include) for include in includes)
    }
    assert names == expected | {"PKG-INFO"}


def test_sdist_tests_run_from_it_against_the_installed_wheel(
    venv_python: Path, tmp_path: Path
) -> None:
    sdist = build("sdist", ROOT, tmp_path / "dist")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    unpacked = tmp_path / sdist.name.removesuffix(".tar.gz")
    pytest_in_sdist: list[str | Path] = [venv_python, "-m", "pytest", "-p", "no:cacheprovider"]
    # On SQLite only: this run is about the files, not the servers.
    sqlite_only = {"TEST_POSTGRES_URL": None, "TEST_MARIADB_URL": None, "CI": None}

    # Every test module imports: what they need (benchmarks/, stubs/, mypy.ini) is there.
    output = run([*pytest_in_sdist, "--collect-only", "-qq"], cwd=unpacked, **sqlite_only)
    assert re.search(r"^tests/test_docs\.py: \d+$", output, re.MULTILINE), output
    # Running the whole suite takes minutes; these read docs/ and run the example's
    # migrations, from the sdist's files.
    output = run(
        [*pytest_in_sdist, "-q", "tests/test_docs.py", "tests/examples/test_bookshelf_cli.py"],
        cwd=unpacked,
        **sqlite_only,
    )
    assert re.search(r"^\d+ passed", output, re.MULTILINE), output


def test_readme_quick_start_runs_from_the_installed_wheel(
    venv_python: Path, tmp_path: Path
) -> None:
    files, session = quick_start()
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text, "utf-8")

    with served(session, venv_python, project) as base_url:
        for command, shown in commands(session):
            if re.fullmatch(r"flask --app [\w.]+ run &", command):
                continue  # served above
            if match := re.fullmatch(
                r"curl (?:-X (\w+) )?http://127\.0\.0\.1:5000(/\S*)", command
            ):
                request = urllib.request.Request(base_url + match[2], method=match[1] or "GET")
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        output = response.read().decode()
                except urllib.error.HTTPError as error:
                    log = (tmp_path / "server.log").read_text()
                    pytest.fail(f"{command}: {error}; the server's log:\n{log}")
            elif match := re.fullmatch(r"python -m ([\w.]+)", command):
                # From another directory: the worker still finds the app's database.
                output = run([venv_python, "-m", match[1]], cwd=elsewhere, PYTHONPATH=str(project))
            else:
                pytest.fail(f"the quick start runs {command!r}, and this test cannot")
            assert output.splitlines() == shown, command

    assert (project / "instance" / "myapp.sqlite").is_file()
    assert list(elsewhere.iterdir()) == []


def commands(session: str) -> list[tuple[str, list[str]]]:
    """Each ``$ command`` of a console session, with the lines it printed."""
    result: list[tuple[str, list[str]]] = []
    for line in session.splitlines():
        if line.startswith("$ "):
            result.append((line.removeprefix("$ "), []))
        else:
            result[-1][1].append(line)
    return result


@contextlib.contextmanager
def served(session: str, python: Path, project: Path) -> Generator[str, None, None]:
    """Serve the app that ``session`` serves (``flask --app NAME run &``) on a free port,
    from ``project``; yield its URL.
    """
    (app,) = re.findall(r"^\$ flask --app ([\w.]+) run &$", session, re.MULTILINE)
    log_path = project.parent / "server.log"  # with the traceback of any error
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [python, "-m", "flask", "--app", app, "run", "--port", "0"],
            cwd=project,
            stdout=log,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 60
        while not (started := re.search(r"Running on (http://\S+)", log_path.read_text())):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the app did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield started[1]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_readme_quick_start_type_checks_as_written(venv_python: Path, tmp_path: Path) -> None:
    files, _ = quick_start()
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, "utf-8")
    run(
        [sys.executable, "-m", "mypy", "--strict", "myapp", "--python-executable", venv_python],
        cwd=tmp_path,
    )
    (tmp_path / "pyrightconfig.json").write_text('{"typeCheckingMode": "strict"}', "utf-8")
    run([sys.executable, "-m", "pyright", "--pythonpath", venv_python, "myapp"], cwd=tmp_path)
    # What the README says of them.
    readme = (ROOT / "README.md").read_text("utf-8")
    assert "`mypy --strict myapp` and\npyright in strict mode pass" in readme
