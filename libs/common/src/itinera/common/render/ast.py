"""The syntax tree of a template: statements (text, outputs, blocks) holding expressions.

Nodes are frozen dataclasses; ``start``/``end`` are character offsets into the text the
node was parsed from. Names are not resolved here: the compiler decides, with its
scopes, whether ``item`` is a block parameter, a ``let`` variable or a key of the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal as Lit

Scalar = str | int | float | bool | None
BinaryOperator = Lit["and", "or", "=", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%"]
RootKind = Lit["name", "this", "root", "data"]


@dataclass(frozen=True, slots=True)
class Node:
    start: int
    end: int


# Expressions


@dataclass(frozen=True, slots=True)
class Literal(Node):
    value: Scalar


@dataclass(frozen=True, slots=True)
class ListExpr(Node):
    items: tuple[Expression, ...]


@dataclass(frozen=True, slots=True)
class Path(Node):
    """``profile.person.name``, ``this.name``, ``../title``, ``@index``, ``@root.profile``.

    ``kind`` says what the first part is: a ``name`` to resolve, ``this`` (the current
    context, ``up`` levels out for ``../``), the ``root`` data, or a ``data`` variable
    of the enclosing ``each`` (``@index``, ``@key``...), named by ``name``.
    """

    kind: RootKind
    name: str
    segments: tuple[str | int, ...]
    up: int = 0
    text: str = ""


@dataclass(frozen=True, slots=True)
class Member(Node):
    """Keys read from a computed value: ``get(m, "k").status``."""

    target: Expression
    segments: tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Call(Node):
    """A helper call, written ``f(a, b)``, ``a.f(b)``, ``(f a b)`` or ``{{f a b}}``."""

    name: str
    args: tuple[Expression, ...]
    name_end: int


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: BinaryOperator
    left: Expression
    right: Expression


@dataclass(frozen=True, slots=True)
class Negate(Node):
    operand: Expression


@dataclass(frozen=True, slots=True)
class Default(Node):
    """``value ?: fallback``: the fallback when the value is null or empty text."""

    value: Expression
    fallback: Expression


Expression = Literal | ListExpr | Path | Member | Call | Binary | Negate | Default


# Statements


@dataclass(frozen=True, slots=True)
class Text(Node):
    text: str


@dataclass(frozen=True, slots=True)
class Output(Node):
    expression: Expression
    escape: bool


@dataclass(frozen=True, slots=True)
class Branch(Node):
    condition: Expression
    body: tuple[Statement, ...]


@dataclass(frozen=True, slots=True)
class If(Node):
    """``if``/``else if``/``else``; ``unless`` is an ``If`` with ``negate``."""

    branches: tuple[Branch, ...]
    otherwise: tuple[Statement, ...]
    negate: bool = False


@dataclass(frozen=True, slots=True)
class Each(Node):
    items: Expression
    params: tuple[str, ...]
    body: tuple[Statement, ...]
    otherwise: tuple[Statement, ...]


@dataclass(frozen=True, slots=True)
class With(Node):
    value: Expression
    params: tuple[str, ...]
    body: tuple[Statement, ...]
    otherwise: tuple[Statement, ...]


@dataclass(frozen=True, slots=True)
class Let(Node):
    name: str
    value: Expression


@dataclass(frozen=True, slots=True)
class Fragment(Node):
    """``{{fragment id="..." mode="inline" render=false name=value...}}``."""

    id: str
    render: bool
    params: tuple[tuple[str, Expression], ...]


@dataclass(frozen=True, slots=True)
class Metadata(Node):
    """``{{executionMetadata key="k" value=expression}}``: recorded, never rendered."""

    key: str
    value: Expression


Statement = Text | Output | If | Each | With | Let | Fragment | Metadata


@dataclass(frozen=True, slots=True)
class Template:
    body: tuple[Statement, ...]
