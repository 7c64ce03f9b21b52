"""What docs/migrating.md says about models without Flask and about checking the move.

The page's ``python`` blocks run in ``tests/test_docs.py``. The files it shows (blocks
with a ``:caption:``: ``myapp/__init__.py``, ``tests/__init__.py``,
``tests/test_imports.py``) are written here into a small project, with the models and
app that the page describes, and run as the page says: by unittest and pytest, in new
interpreters.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask

PAGE = Path(__file__).parent.parent / "docs" / "migrating.md"
CODE_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
CAPTIONED_BLOCK = re.compile(
    r"^```\{code-block\} python\n:caption: (?P<caption>[^\n]+)\n\n(?P<code>.*?)^```",
    re.MULTILINE | re.DOTALL,
)

MODELS = """
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Thing(Base):
    __tablename__ = "thing"
    id: Mapped[int] = mapped_column(primary_key=True)
"""

APP = """
from flask import Flask

from flask_typed_db import Database
from myapp.models import Base

db = Database(Base)


def create_app(config=None):
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    app.config.update(config or {})
    db.init_app(app)
    return app
"""

#: A test of the app with a config key that has no effect.
CONFIG_TEST = """
from myapp.app import create_app
from tests import TestCase


class ConfigTest(TestCase):
    def setUp(self):
        super().setUp()
        self.app = create_app({"SQLALCHEMY_TRACK_MODIFICATIONS": True})

    def test_app_is_made(self):
        self.assertIsNotNone(self.app)
"""

#: A tests package without the page's filters.
PLAIN_TESTS_PACKAGE = "from unittest import TestCase\n"


def captioned(caption: str) -> str:
    """The code of the page's block with this caption."""
    blocks = {
        match["caption"]: match["code"]
        for match in CAPTIONED_BLOCK.finditer(PAGE.read_text(encoding="utf-8"))
    }
    return blocks[caption]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The page's layout: a package whose ``__init__`` imports no Flask, its models and
    app, and the tests the page shows.
    """
    files = {
        "myapp/__init__.py": captioned("myapp/__init__.py"),
        "myapp/models.py": MODELS,
        "myapp/app.py": APP,
        "tests/__init__.py": captioned("tests/__init__.py"),
        "tests/test_imports.py": captioned("tests/test_imports.py"),
    }
    for name, source in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(source), encoding="utf-8")
    return tmp_path


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the project's Python with ``args``, in the project, as a user would."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"}
    env["PYTHONPATH"] = str(project)
    return subprocess.run(
        [sys.executable, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def append(path: Path, line: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + line + "\n", encoding="utf-8")


# -- Import checks ----------------------------------------------------------------------


def test_import_checks_pass_under_unittest_and_pytest(project: Path) -> None:
    unittest_run = run(project, "-m", "unittest", "tests.test_imports")
    assert unittest_run.returncode == 0, unittest_run.stderr
    assert "Ran 2 tests" in unittest_run.stderr

    pytest_run = run(project, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests")
    assert pytest_run.returncode == 0, pytest_run.stdout
    assert "2 passed" in pytest_run.stdout


def test_import_check_fails_on_a_leftover_flask_sqlalchemy_import(project: Path) -> None:
    # Installed, as Flask-Migrate's dependency: the import alone works.
    assert run(project, "-c", "import flask_sqlalchemy").returncode == 0
    append(project / "myapp" / "app.py", "from flask_sqlalchemy import SQLAlchemy")

    result = run(project, "-m", "unittest", "tests.test_imports")

    assert result.returncode == 1
    assert "ERROR: test_app_does_not_import_flask_sqlalchemy" in result.stderr
    assert "import of flask_sqlalchemy halted" in result.stderr


def test_import_check_fails_on_models_that_import_flask(project: Path) -> None:
    append(project / "myapp" / "models.py", "from flask import current_app")

    result = run(project, "-m", "unittest", "tests.test_imports")

    assert result.returncode == 1
    assert "ERROR: test_models_do_not_import_flask" in result.stderr


def test_package_app_factory_imports_flask_only_when_called(project: Path) -> None:
    code = (
        "import sys; import myapp.models; assert 'flask' not in sys.modules;"
        " from flask.cli import ScriptInfo; print(ScriptInfo('myapp').load_app().name)"
    )

    result = run(project, "-c", code)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "myapp.app\n"  # what 'flask --app myapp' finds


# -- Config warnings under unittest -----------------------------------------------------


def test_python_w_option_cannot_name_the_warning_category(project: Path) -> None:
    (project / "tests" / "__init__.py").write_text(PLAIN_TESTS_PACKAGE, encoding="utf-8")
    (project / "tests" / "test_config.py").write_text(CONFIG_TEST, encoding="utf-8")

    result = run(
        project, "-W", "error::flask_typed_db.core.ConfigWarning", "-m", "unittest", "tests"
    )

    assert result.returncode == 0, result.stderr  # the key went through
    assert result.stderr.startswith(
        "Invalid -W option ignored: invalid module name: 'flask_typed_db.core'\n"
    )


def test_filter_set_at_import_alone_is_undone_by_unittests_runner(project: Path) -> None:
    filter_at_import = (
        "import warnings\nfrom unittest import TestCase\n"
        "from flask_typed_db.core import ConfigWarning\n"
        'warnings.simplefilter("error", ConfigWarning)\n'
    )
    (project / "tests" / "__init__.py").write_text(filter_at_import, encoding="utf-8")
    (project / "tests" / "test_config.py").write_text(CONFIG_TEST, encoding="utf-8")

    result = run(project, "-m", "unittest", "tests.test_config")

    assert result.returncode == 0, result.stderr
    assert "ConfigWarning: 'SQLALCHEMY_TRACK_MODIFICATIONS' has no effect" in result.stderr


def test_tests_package_of_the_page_fails_a_test_on_a_config_warning(project: Path) -> None:
    (project / "tests" / "test_config.py").write_text(CONFIG_TEST, encoding="utf-8")

    result = run(project, "-m", "unittest", "tests.test_config")

    assert result.returncode == 1
    assert "ERROR: test_app_is_made" in result.stderr
    assert "ConfigWarning: 'SQLALCHEMY_TRACK_MODIFICATIONS' has no effect" in result.stderr


def test_tests_package_of_the_page_fails_an_app_made_at_import(project: Path) -> None:
    made_at_import = "from myapp.app import create_app\n"
    made_at_import += 'app = create_app({"SQLALCHEMY_TRACK_MODIFICATIONS": True})\n'
    (project / "tests" / "test_module_app.py").write_text(made_at_import, encoding="utf-8")

    result = run(project, "-m", "unittest", "tests.test_module_app")

    assert result.returncode == 1
    assert "ConfigWarning: 'SQLALCHEMY_TRACK_MODIFICATIONS' has no effect" in result.stderr


def test_user_warnings_as_errors_catch_config_warnings(project: Path) -> None:
    (project / "tests" / "__init__.py").write_text(PLAIN_TESTS_PACKAGE, encoding="utf-8")
    (project / "tests" / "test_config.py").write_text(CONFIG_TEST, encoding="utf-8")

    result = run(project, "-W", "error::UserWarning", "-m", "unittest", "tests.test_config")

    assert result.returncode == 1
    assert "ConfigWarning: 'SQLALCHEMY_TRACK_MODIFICATIONS' has no effect" in result.stderr


# -- Flask-Login ------------------------------------------------------------------------


def test_flask_login_logs_in_and_loads_the_pages_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flask_login = pytest.importorskip("flask_login")
    module = ModuleType("docs_migrating_login")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.chdir(tmp_path)  # the page's first app writes SQLite files
    for block in CODE_BLOCK.findall(PAGE.read_text(encoding="utf-8")):
        exec(compile(block, "migrating.md", "exec"), module.__dict__)
    login_block = captioned("The Flask layer, with Flask-Login")
    exec(compile(login_block, "migrating.md, Flask-Login", "exec"), module.__dict__)
    # The page's names, as the page defines them: no types to check them against here.
    namespace: dict[str, Any] = module.__dict__
    app, shop_db, customer = (
        namespace["create_shop_app"](),
        namespace["shop_db"],
        namespace["Customer"],
    )
    assert isinstance(app, Flask)
    app.secret_key = "test"
    namespace["login_manager"].init_app(app)

    @app.post("/login/<email>")
    def log_in(email: str) -> str:
        user = customer.by_email(shop_db.session, email)
        return str(flask_login.login_user(user))

    @app.get("/me")
    def me() -> str:
        user = flask_login.current_user
        return str(user.email) if user.is_authenticated else "nobody"

    with app.app_context():
        shop_db.create_all()
        shop_db.session.add(customer(email="grace@example.org"))
        shop_db.session.commit()
    client = app.test_client()
    assert client.get("/me").text == "nobody"
    assert client.post("/login/grace@example.org").text == "True"
    assert client.get("/me").text == "grace@example.org"  # loaded by load_user
