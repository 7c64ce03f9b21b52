"""Sphinx configuration: the Markdown pages of docs/ (MyST) and the API reference,
generated from the docstrings (api.md). ``make docs`` builds it with warnings as errors.

The build is offline: there is no intersphinx, so names from Python, Flask, Werkzeug and
SQLAlchemy are shown as code rather than linked. Every reference to one of our own
names must resolve (``nitpicky``); references to those projects are let through by
``nitpick_ignore_regex`` below.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil

from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer

# -- Project ----------------------------------------------------------------------------

project = "flask-typed-db"
release = importlib.metadata.version("flask-typed-db")
version = release

# -- General ----------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "myst_parser",
]
exclude_patterns = ["_build"]
# Single backticks in docstrings are code, as in Markdown.
default_role = "code"
nitpicky = True
# Other projects' names: shown as code, not linked, since the build fetches nothing.
nitpick_ignore_regex = [
    (r"py:.*", r"(typing|typing_extensions|collections|contextlib|datetime|json|os|time)\b.*"),
    (r"py:.*", r"(flask|werkzeug|click|sqlalchemy|pytest|_pytest)\b.*"),
    # Names that the modules import for type checkers only: autodoc sees them bare.
    (
        r"py:class",
        r"(Flask|App|ResponseReturnValue|Engine|Connection|Row|AsyncSession|AsyncEngine"
        r"|async_sessionmaker|_sessionmaker|sa\.\w+)",
    ),
    # Type variables, named as typing's conventions go (T, T1, Ts, T_co, P...):
    # placeholders, with no page of their own.
    (r"py:class", r"(flask_typed_db\..*\.)?[A-Z][0-9]?(s|_co|_contra)?"),
]

# -- Autodoc ----------------------------------------------------------------------------

autodoc_member_order = "bysource"
# Types in the parameter list, where a reader looks for them, not in the signature.
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
# Show the alias by name in signatures, linked, rather than spelled out.
autodoc_type_aliases = {"BindKeys": "flask_typed_db.core.BindKeys"}

# -- MyST -------------------------------------------------------------------------------

# Anchors for ## and ### headings, so pages can link to a section: page.md#section.
myst_heading_anchors = 3

# -- HTML -------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"flask-typed-db {release}"
html_copy_source = False
html_show_copyright = False
html_use_index = False
html_domain_indices = False
pygments_style = "default"
pygments_style_dark = "github-dark"


def document_reexported_data(  # noqa: PLR0917  # the signature Sphinx calls
    app: Sphinx, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    """Give a re-exported constant or type alias the ``#:`` comment it has where it is
    defined. autodoc reads such comments only in the module the directive names
    (``flask_typed_db.core``), which re-exports them from private modules; without
    this, an alias would show the docstring of its type (``types.UnionType``).
    """
    if what != "data":
        return
    package_name, _, attribute = name.rpartition(".")
    package = importlib.import_module(package_name)
    for module in pkgutil.iter_modules(package.__path__, f"{package_name}."):
        comments = ModuleAnalyzer.for_module(module.name).find_attr_docs()
        comment = comments.get(("", attribute))
        if comment is not None:
            lines[:] = list(comment)
            return
    raise ValueError(f"{name} has no '#:' comment in the modules of {package_name}.")


def document_inherited_members(app: Sphinx) -> None:
    """Document what a public class inherits from the private classes of its jobs
    (``Database`` from its sessions, queries and units of work) as if the class defined
    it: with its overloads, and after the class's own members, each base's in source
    order. autodoc looks both up by the documented name (``Database.paginate``), where
    the defining module has ``QueryHelpers.paginate``, and would otherwise show the
    implementation's signature and sort alphabetically.
    """
    for package_name in ("flask_typed_db", "flask_typed_db.core"):
        package = importlib.import_module(package_name)
        for name in package.__all__:
            cls = getattr(package, name)
            if isinstance(cls, type):
                _adopt_inherited_members(cls)


def _adopt_inherited_members(cls: type) -> None:
    own = ModuleAnalyzer.for_module(cls.__module__)
    own.analyze()
    position = max(own.tagorder.values(), default=0)
    for base in cls.__mro__[1:]:
        if not base.__module__.startswith("flask_typed_db."):
            continue
        theirs = ModuleAnalyzer.for_module(base.__module__)
        theirs.analyze()
        prefix = f"{base.__name__}."
        for qualname in sorted(theirs.tagorder, key=theirs.tagorder.__getitem__):
            member = qualname.removeprefix(prefix)
            documented = f"{cls.__name__}.{member}"
            if qualname == member or "." in member or documented in own.tagorder:
                continue
            position += 1
            own.tagorder[documented] = position
            if qualname in theirs.overloads:
                theirs.overloads[documented] = theirs.overloads[qualname]


def setup(app: Sphinx) -> None:
    app.connect("autodoc-process-docstring", document_reexported_data)
    app.connect("builder-inited", document_inherited_members)
