"""``AutoTableName`` names tables exactly as Flask-SQLAlchemy 3.1 does.

Each scenario below is the source of some models, run once on a base of ours and once on
Flask-SQLAlchemy's ``db.Model`` (its ``DeclarativeBase`` form and its legacy one): the
names, and which classes get a table of their own, must be the same, so that an app's
existing migrations still match its models after the move.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import re
import textwrap
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.model import camel_to_snake_case as flask_sqlalchemy_name
from sqlalchemy import orm
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import DeclarativeBaseNoMeta
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from flask_typed_db.core import AutoTableName
from flask_typed_db.core import camel_to_snake_case

#: The comparisons are with the release apps move from: Flask-SQLAlchemy 3.0 (in the
#: oldest versions we test with) takes no DeclarativeBase.
needs_flask_sqlalchemy_3_1 = pytest.mark.skipif(
    tuple(map(int, importlib.metadata.version("flask-sqlalchemy").split(".")[:2])) < (3, 1),
    reason="compares with Flask-SQLAlchemy 3.1, which is not installed",
)

#: Class names whose table names are worth a look, and FSA's own test cases.
NAMES = [
    "User",
    "HTTPResponse",
    "ABCDef",
    "ABC",
    "Model2",
    "V2Model",
    "Model2Fast",
    "OAuth2Token",
    "HTTP2Request",
    "UserST4",
    "AstV2Node",
    "FooBarSSE2",
    "get2HTTPResponse123Code",
    "getHTTPresponseCode",
    "LONGName4TestingCamelCase2snake_caseXYZ",
    "Snake_case",
    "_Private",
    "__test__Method",
    "Ünïcode",
    "ÄÖÜ",
    "X",
    "x",
]

#: The models of each scenario, defined on the base named ``Model``.
SCENARIOS = {
    "acronyms and digits": """
class HTTPResponse(Model):
    id: Mapped[int] = mapped_column(primary_key=True)

class ABCDef(Model):
    id: Mapped[int] = mapped_column(primary_key=True)

class Model2(Model):
    id: Mapped[int] = mapped_column(primary_key=True)

class V2Model(Model):
    id: Mapped[int] = mapped_column(primary_key=True)

class OAuth2Token(Model):
    id: Mapped[int] = mapped_column(primary_key=True)
""",
    "explicit name": """
class Ham(Model):
    __tablename__ = "spam"
    id: Mapped[int] = mapped_column(primary_key=True)
""",
    "explicit table": """
class Egg(Model):
    __table__ = sa.Table("eggs", Model.metadata, sa.Column("id", sa.Integer, primary_key=True))
""",
    "table already in the metadata": """
sa.Table("user_account", Model.metadata, sa.Column("id", sa.Integer, primary_key=True))

class UserAccount(Model):
    pass
""",
    "subclass on a table already in the metadata": """
class Duck(Model):
    id: Mapped[int] = mapped_column(primary_key=True)

sa.Table(
    "mallard",
    Model.metadata,
    sa.Column("id", sa.ForeignKey("duck.id"), primary_key=True),
)

class Mallard(Duck):
    pass
""",
    "joined-table inheritance": """
class Duck(Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(20))
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "duck"}

class RubberDuck(Duck):
    id: Mapped[int] = mapped_column(sa.ForeignKey("duck.id"), primary_key=True)
    __mapper_args__ = {"polymorphic_identity": "rubber"}

class SqueakyRubberDuck(RubberDuck):
    id: Mapped[int] = mapped_column(sa.ForeignKey("rubber_duck.id"), primary_key=True)
    __mapper_args__ = {"polymorphic_identity": "squeaky"}
""",
    "single-table inheritance": """
class Duck(Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(20))
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "duck"}

class Mallard(Duck):
    wingspan: Mapped[int | None]
    __mapper_args__ = {"polymorphic_identity": "mallard"}

class Teal(Mallard):
    __mapper_args__ = {"polymorphic_identity": "teal"}
""",
    "explicit name, then joined and single-table subclasses": """
class Duck(Model):
    __tablename__ = "DUCK"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(20))
    __mapper_args__ = {"polymorphic_on": "kind"}

class Daffy(Duck):
    id: Mapped[int] = mapped_column(sa.ForeignKey("DUCK.id"), primary_key=True)
    __mapper_args__ = {"polymorphic_identity": "daffy"}

class Donald(Duck):
    __mapper_args__ = {"polymorphic_identity": "donald"}
""",
    "primary key from __table_args__": """
class Goose(Model):
    id = sa.Column(sa.Integer)
    __table_args__ = (sa.PrimaryKeyConstraint("id"),)
""",
    "primary key from a plain mixin": """
class IdMixin:
    id: Mapped[int] = mapped_column(primary_key=True)

class Swan(IdMixin, Model):
    pass
""",
    "abstract base": """
class Timestamped(Model):
    __abstract__ = True
    id: Mapped[int] = mapped_column(primary_key=True)

class AuditLog(Timestamped):
    pass

class Halfway(AuditLog):
    __abstract__ = True

class AuditLogArchive(Halfway):
    id: Mapped[int] = mapped_column(sa.ForeignKey("audit_log.id"), primary_key=True)
""",
    "name from a plain mixin": """
class Named:
    __tablename__ = "from_mixin"

class Heron(Named, Model):
    id: Mapped[int] = mapped_column(primary_key=True)
""",
    "name from a declared_attr mixin, for joined subclasses too": """
class Upper:
    @orm.declared_attr.directive
    def __tablename__(cls) -> str:
        return cls.__name__.upper()

class Bird(Upper, Model):
    id: Mapped[int] = mapped_column(primary_key=True)

class Crow(Bird):
    id: Mapped[int] = mapped_column(sa.ForeignKey("BIRD.id"), primary_key=True)
""",
    "name from a declared_attr on a model, for its subclasses": """
class Bird(Model):
    id: Mapped[int] = mapped_column(primary_key=True)

    @orm.declared_attr.directive
    def __tablename__(cls) -> str:
        return f"{cls.__name__.lower()}s"

class Crow(Bird):
    id: Mapped[int] = mapped_column(sa.ForeignKey("birds.id"), primary_key=True)
""",
    "primary key from a declared_attr mixin on a subclass": """
class Duck(Model):
    id: Mapped[int] = mapped_column(primary_key=True)

class ChildId:
    @orm.declared_attr
    def id(cls) -> Mapped[int]:
        return mapped_column(sa.ForeignKey("duck.id"), primary_key=True)

class Decoy(ChildId, Duck):
    pass
""",
    "schema in __table_args__": """
sa.Table("robin", Model.metadata, sa.Column("id", sa.Integer, primary_key=True), schema="birds")

class Robin(Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    __table_args__ = {"schema": "birds", "extend_existing": True}
""",
    "no primary key": """
class Penguin(Model):
    name: Mapped[str]
""",
}


@dataclass(frozen=True)
class Naming:
    """What a model ended up with: its name, and whether it has a table of its own."""

    tablename: object
    own_tablename: bool
    table: str | None
    own_table: bool


def flask_sqlalchemy_2x() -> type[Any]:
    class FlaskBase(DeclarativeBase):
        pass

    return SQLAlchemy(model_class=FlaskBase).Model


def flask_sqlalchemy_2x_no_meta() -> type[Any]:
    class FlaskBase(DeclarativeBaseNoMeta):
        pass

    return SQLAlchemy(model_class=FlaskBase).Model


def flask_sqlalchemy_legacy() -> type[Any]:
    return SQLAlchemy().Model


def ours() -> type[Any]:
    class Base(AutoTableName, DeclarativeBase):
        pass

    return Base


def ours_no_meta() -> type[Any]:
    class Base(AutoTableName, DeclarativeBaseNoMeta):
        pass

    return Base


def run_scenario(source: str, model: type[Any]) -> dict[str, Naming] | str:
    """Define the scenario's models on ``model``; what each got, or the error raised."""
    namespace: dict[str, Any] = {
        "Model": model,
        "sa": sa,
        "orm": orm,
        "Mapped": Mapped,
        "mapped_column": mapped_column,
    }
    before = set(namespace)
    try:
        # Without this module's `from __future__ import annotations`: the annotations
        # are objects, not names SQLAlchemy would look up in a module.
        code = compile(textwrap.dedent(source), "<scenario>", "exec", dont_inherit=True)
        exec(code, namespace)
    except (sa_exc.ArgumentError, sa_exc.InvalidRequestError) as error:
        return f"{type(error).__name__}: {error}"
    results: dict[str, Naming] = {}
    for name, cls in namespace.items():
        if name in before or not isinstance(cls, type) or not issubclass(cls, model):
            continue
        table = cls.__dict__.get("__table__", getattr(cls, "__table__", None))
        tablename = getattr(cls, "__tablename__", None)
        results[name] = Naming(
            tablename=tablename if isinstance(tablename, str) else None,
            own_tablename="__tablename__" in cls.__dict__,
            table=table.name if isinstance(table, sa.Table) else None,
            own_table="__table__" in cls.__dict__,
        )
    return results


def without_class_names(outcome: dict[str, Naming] | str) -> dict[str, Naming] | str:
    # An error's message names the base: FlaskSQLAlchemyBase or Base.
    if isinstance(outcome, str):
        return re.sub(r"\b(FlaskSQLAlchemyBase|Base|Model)\b", "<base>", outcome)
    return outcome


@pytest.mark.parametrize("name", NAMES)
def test_table_name_of_a_class_name_is_flask_sqlalchemys(name: str) -> None:
    assert camel_to_snake_case(name) == flask_sqlalchemy_name(name)


def test_table_names_of_every_short_class_name_are_flask_sqlalchemys() -> None:
    # Every name of up to five characters from lower and upper case, digits and _.
    alphabet = "aB1_Z"
    for length in range(1, 6):
        for letters in itertools.product(alphabet, repeat=length):
            name = "".join(letters)
            assert camel_to_snake_case(name) == flask_sqlalchemy_name(name), name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("User", "user"),
        ("HTTPResponse", "http_response"),
        ("ABCDef", "abc_def"),
        ("Model2", "model2"),
        ("V2Model", "v2_model"),
        ("OAuth2Token", "o_auth2_token"),
        ("getHTTPresponseCode", "get_htt_presponse_code"),
    ],
)
def test_table_names_read_as_flask_sqlalchemy_writes_them(name: str, expected: str) -> None:
    assert camel_to_snake_case(name) == expected


@needs_flask_sqlalchemy_3_1
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize(
    ("base", "flask_sqlalchemy_bases"),
    [
        (ours, [flask_sqlalchemy_2x, flask_sqlalchemy_legacy]),
        (ours_no_meta, [flask_sqlalchemy_2x_no_meta]),
    ],
    ids=["DeclarativeBase", "DeclarativeBaseNoMeta"],
)
def test_models_get_the_names_and_tables_flask_sqlalchemy_gives_them(
    scenario: str, base: Any, flask_sqlalchemy_bases: list[Any]
) -> None:
    source = SCENARIOS[scenario]
    outcome = without_class_names(run_scenario(source, base()))
    # Only the scenario meant to fail does.
    assert isinstance(outcome, str) == (scenario == "no primary key"), outcome

    for flask_sqlalchemy_base in flask_sqlalchemy_bases:
        assert outcome == without_class_names(run_scenario(source, flask_sqlalchemy_base()))


def upper_case_name(cls: type) -> str:
    return cls.__name__.upper()


@needs_flask_sqlalchemy_3_1
@pytest.mark.parametrize(
    ("decorator", "tables"),
    [
        (orm.declared_attr, ["DUCK", "RUBBERDUCK"]),
        # Not a declared_attr to Flask-SQLAlchemy's check: generated names win.
        (orm.declared_attr.directive, ["duck", "rubber_duck"]),
    ],
    ids=["declared_attr", "declared_attr.directive"],
)
def test_name_from_a_declared_attr_on_the_base_is_used_where_flask_sqlalchemy_uses_it(
    decorator: Any, tables: list[str]
) -> None:
    class Base(AutoTableName, DeclarativeBase):
        __tablename__ = decorator(upper_case_name)

    class FlaskBase(DeclarativeBase):
        __tablename__ = decorator(upper_case_name)

    source = """
class Duck(Model):
    id: Mapped[int] = mapped_column(primary_key=True)

class RubberDuck(Duck):
    id: Mapped[int] = mapped_column(sa.ForeignKey(Duck.id), primary_key=True)
"""
    outcome = run_scenario(source, Base)

    assert outcome == run_scenario(source, SQLAlchemy(model_class=FlaskBase).Model)
    assert isinstance(outcome, dict)
    assert [naming.table for naming in outcome.values()] == tables


def test_single_table_subclass_shares_its_parents_table() -> None:
    outcome = run_scenario(SCENARIOS["single-table inheritance"], ours())

    assert outcome == {
        "Duck": Naming("duck", own_tablename=True, table="duck", own_table=True),
        "Mallard": Naming("duck", own_tablename=False, table="duck", own_table=False),
        "Teal": Naming("duck", own_tablename=False, table="duck", own_table=False),
    }


def test_joined_table_subclass_gets_a_table_of_its_own() -> None:
    outcome = run_scenario(SCENARIOS["joined-table inheritance"], ours())

    assert isinstance(outcome, dict)
    assert {name: naming.table for name, naming in outcome.items()} == {
        "Duck": "duck",
        "RubberDuck": "rubber_duck",
        "SqueakyRubberDuck": "squeaky_rubber_duck",
    }


def test_abstract_bases_get_no_name_and_their_subclasses_do() -> None:
    outcome = run_scenario(SCENARIOS["abstract base"], ours())

    assert isinstance(outcome, dict)
    assert outcome["Timestamped"].table is None
    assert not outcome["Timestamped"].own_tablename
    assert outcome["AuditLog"].table == "audit_log"
    assert not outcome["Halfway"].own_tablename
    assert outcome["AuditLogArchive"].table == "audit_log_archive"


def test_explicit_names_and_tables_are_kept() -> None:
    ham = run_scenario(SCENARIOS["explicit name"], ours())
    egg = run_scenario(SCENARIOS["explicit table"], ours())

    assert isinstance(ham, dict)
    assert isinstance(egg, dict)
    assert ham["Ham"].table == "spam"
    assert egg["Egg"].table == "eggs"


def test_base_itself_gets_no_name() -> None:
    base = ours()

    assert "__tablename__" not in base.__dict__
    assert base.metadata.tables == {}


def test_base_listing_the_mixin_after_declarative_base_is_refused() -> None:
    with pytest.raises(TypeError, match=r"class Base\(AutoTableName, DeclarativeBase\)"):

        class Base(DeclarativeBase, AutoTableName):  # pyright: ignore[reportUnusedClass]  # raises
            pass
