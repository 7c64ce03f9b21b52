"""The documentation site (``make docs``) builds offline, without a warning, and its API
reference documents every public name.
"""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path
from types import ModuleType

import pytest

import flask_typed_db
import flask_typed_db.core

# The oldest-versions run (`make test-min`) installs no docs tools.
pytest.importorskip("sphinx", reason="the 'docs' dependency group is not installed")

DOCS = Path(__file__).parent.parent / "docs"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built as ``make docs`` builds it: warnings are errors."""
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(out / "doctrees"),
            str(DOCS),
            str(out / "html"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    return out / "html"


def inventory(site: Path) -> dict[str, str]:
    """The Python objects of the site's ``objects.inv`` (format 2): name -> page."""
    header, _, body = (site / "objects.inv").read_bytes().partition(b"zlib.\n")
    assert header.startswith(b"# Sphinx inventory version 2")
    objects: dict[str, str] = {}
    for line in zlib.decompress(body).decode().splitlines():
        # name domain:role priority uri display-name; the name may hold spaces.
        name, role, _, uri, _ = line.rsplit(" ", 4) if line.count(" ") > 4 else line.split(" ")
        if role.startswith("py:"):
            objects[name] = uri.partition("#")[0]
    return objects


@pytest.mark.parametrize("module", [flask_typed_db, flask_typed_db.core])
def test_api_reference_documents_every_public_name(site: Path, module: ModuleType) -> None:
    public: list[str] = [f"{module.__name__}.{name}" for name in module.__all__]
    objects = inventory(site)
    assert [name for name in public if objects.get(name) != "api.html"] == []


def test_every_page_is_in_the_site(site: Path) -> None:
    pages = {page.stem for page in DOCS.glob("*.md")}
    assert pages <= {page.stem for page in site.glob("*.html")}
