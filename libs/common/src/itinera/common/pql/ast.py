"""The typed syntax tree of a PQL rule.

Nodes are frozen dataclasses; sequences are tuples so trees are hashable. Every node
may carry the ``Span`` of text it was parsed from. Spans never take part in equality,
so a tree printed by ``to_text`` and parsed again equals the original.

Names are not resolved here: ``Name("X")`` is a bound variable or an attribute of the
implicit context depending on where it appears, which the compiler and the analysis
decide with their scopes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal as Lit

Scalar = str | int | float | bool | None

COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
ARITHMETIC = ("+", "-", "*", "/", "%")
BinaryOperator = Lit[
    "and", "or", "=", "!=", "<", "<=", ">", ">=", "in", "notIn", "like", "+", "-", "*", "/", "%"
]
TimeWord = Lit["now", "today", "yesterday", "tomorrow"]
PeriodWord = Lit["this", "last", "next"]
Direction = Lit["before", "after", "from"]
TIME_UNITS = (
    "millisecond",
    "second",
    "minute",
    "hour",
    "day",
    "week",
    "month",
    "year",
    "decade",
    "century",
    "millennium",
)
"""Canonical unit names; the parser accepts plurals (``days``, ``centuries``...)."""


@dataclass(frozen=True, slots=True)
class Span:
    offset: int
    end_offset: int
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Node:
    span: Span | None = field(default=None, compare=False, repr=False, kw_only=True)


class Expression(Node):
    """Any PQL expression."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Literal(Expression):
    """A string, number, boolean or ``null``."""

    value: Scalar


@dataclass(frozen=True, slots=True)
class ListExpr(Expression):
    """``[1, 4, 7]``"""

    items: tuple[Expression, ...]


@dataclass(frozen=True, slots=True)
class Name(Expression):
    """A bare identifier: a variable in scope, ``xEvent``, or an attribute of the context."""

    name: str


@dataclass(frozen=True, slots=True)
class Parameter(Expression):
    """``$1``: an explicit reference to an input parameter (the profile)."""

    index: int


@dataclass(frozen=True, slots=True)
class Up(Expression):
    """``^`` (``^^``...): the context ``levels`` filters out from the current one."""

    levels: int


@dataclass(frozen=True, slots=True)
class TimeRef(Expression):
    """``now``, ``today``, ``yesterday``, ``tomorrow``."""

    word: TimeWord


@dataclass(frozen=True, slots=True)
class RelativePeriod(Expression):
    """``this month``, ``last week``, ``next year``: only valid as an ``occurs`` time."""

    which: PeriodWord
    unit: str


@dataclass(frozen=True, slots=True)
class Field(Expression):
    """``target.name``"""

    target: Expression
    name: str


@dataclass(frozen=True, slots=True)
class MethodCall(Expression):
    """``target.name(args)``: string, array, map, object, date and aggregation functions."""

    target: Expression
    name: str
    args: tuple[Expression, ...]


@dataclass(frozen=True, slots=True)
class Call(Expression):
    """``name(args)``: ``date``, ``if``, ``inSegment``, ``currentMonth``..."""

    name: str
    args: tuple[Expression, ...]


@dataclass(frozen=True, slots=True)
class Filter(Expression):
    """``target[condition]``: the items of an array for which the condition holds."""

    target: Expression
    condition: Expression


@dataclass(frozen=True, slots=True)
class Unary(Expression):
    """``not x`` (also written ``!x``) and ``-x``."""

    op: Lit["not", "-"]
    operand: Expression


@dataclass(frozen=True, slots=True)
class Binary(Expression):
    op: BinaryOperator
    left: Expression
    right: Expression


@dataclass(frozen=True, slots=True)
class Lambda(Expression):
    """``x => body`` or ``(k, v) => body``."""

    params: tuple[str, ...]
    body: Expression


@dataclass(frozen=True, slots=True)
class Binding(Node):
    """``X from source where condition`` inside ``exists``, ``forall``, ``select``..."""

    name: str
    source: Expression
    condition: Expression | None = None


@dataclass(frozen=True, slots=True)
class Quantifier(Expression):
    """``exists X from A where C`` / ``forall X from A where C`` (several bindings allowed)."""

    kind: Lit["exists", "forall"]
    bindings: tuple[Binding, ...]


@dataclass(frozen=True, slots=True)
class Select(Expression):
    """``select X from A where C``: the items of ``A`` for which ``C`` holds."""

    binding: Binding


@dataclass(frozen=True, slots=True)
class Aggregate(Expression):
    """``sum X.price over X from A where C`` (also ``count``, ``average``, ``min``, ``max``)."""

    function: str
    value: Expression
    binding: Binding


@dataclass(frozen=True, slots=True)
class Let(Expression):
    """``let S = value in body``"""

    name: str
    value: Expression
    body: Expression


@dataclass(frozen=True, slots=True)
class OccursRelative(Node):
    """``occurs <= 3 days before now``"""

    op: str
    amount: int
    unit: str
    direction: Direction
    time: Expression


@dataclass(frozen=True, slots=True)
class OccursDirection(Node):
    """``occurs before today``"""

    direction: Direction
    time: Expression


@dataclass(frozen=True, slots=True)
class OccursOn(Node):
    """``occurs last week``, ``occurs on date(2019, 12, 31)``"""

    time: Expression


@dataclass(frozen=True, slots=True)
class OccursBetween(Node):
    """``occurs between date(2015, 1, 8) and date(2017, 7, 1)``"""

    start: Expression
    end: Expression


OccursSpec = OccursRelative | OccursDirection | OccursOn | OccursBetween


@dataclass(frozen=True, slots=True)
class Occurs(Expression):
    """``subject occurs spec``: a timestamp compared with a period of time."""

    subject: Expression
    spec: OccursSpec


@dataclass(frozen=True, slots=True)
class ChainStep(Node):
    """``A: WHAT(cond) WHERE(cond) WHEN(spec) COUNT(n)``"""

    label: str
    what: Expression
    where: Expression | None = None
    when: OccursSpec | None = None
    count: int | None = None


@dataclass(frozen=True, slots=True)
class Chain(Expression):
    """``CHAIN(xEvent, timestamp, [steps])``: events matching the steps in time order."""

    source: Expression
    time_field: tuple[str, ...]
    steps: tuple[ChainStep, ...]
