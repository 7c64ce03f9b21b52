"""``flask_typed_db.core`` works in a process where Flask cannot be imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

#: Runs in a fresh interpreter: make every import of Flask fail, then use the core.
SCRIPT = textwrap.dedent(
    """
    import sys
    from importlib.abc import MetaPathFinder


    class NoFlask(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "flask" or name.startswith("flask."):
                raise ImportError(f"{name} is blocked by this test")
            return None


    sys.meta_path.insert(0, NoFlask())
    sys.modules["flask"] = None
    try:
        import flask
    except ImportError:
        pass
    else:
        raise AssertionError("the test failed to block Flask")

    import sqlalchemy as sa
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

    import flask_typed_db
    import flask_typed_db.core
    from flask_typed_db.core import DatabaseCore


    class Base(DeclarativeBase):
        pass


    class AuthBase(DeclarativeBase):
        metadata = sa.MetaData(info={"bind_key": "auth"})


    class Report(Base):
        __tablename__ = "report"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]


    class Login(AuthBase):
        __tablename__ = "login"
        id: Mapped[int] = mapped_column(primary_key=True)


    config = {"SQLALCHEMY_DATABASE_URI": "sqlite://", "SQLALCHEMY_BINDS": {"auth": "sqlite://"}}
    with DatabaseCore(config, Base, AuthBase) as core:
        core.create_all()
        with core.transaction() as session:
            session.add(Report(title="nightly"))
            session.add(Login())
        with core.sessionmaker() as session:
            assert session.scalars(sa.select(Report.title)).all() == ["nightly"]
            assert session.get_bind(Login) is core.engines["auth"]
            assert session.scalar(sa.select(sa.func.count()).select_from(Login)) == 1

    try:
        flask_typed_db.Database
    except ImportError:
        pass
    else:
        raise AssertionError("Database should need Flask")

    flask_modules = [name for name, module in sys.modules.items()
                     if name.split(".")[0] == "flask" and module is not None]
    assert not flask_modules, flask_modules
    print("core works without flask")
    """
)


def test_core_imports_and_works_without_flask(tmp_path: Path) -> None:
    script = tmp_path / "no_flask.py"
    script.write_text(SCRIPT)
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "core works without flask"


def test_importing_the_package_does_not_import_flask(tmp_path: Path) -> None:
    code = "import sys, flask_typed_db, flask_typed_db.core; print('flask' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
