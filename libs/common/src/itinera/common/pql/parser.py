"""Text to syntax tree: the lark grammar, the tree builder and syntax-error reporting.

``parse`` also compiles the tree once (and throws the result away) so that everything
the engine does not support is reported here, with positions, and never later at
evaluation time.
"""

from __future__ import annotations

import math
from functools import cache
from importlib.resources import files
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr
from lark.tree import Meta

from itinera.common.pql import ast
from itinera.common.pql.errors import PqlError, Problem

_UNITS = {
    "millisecond": "millisecond",
    "second": "second",
    "minute": "minute",
    "hour": "hour",
    "day": "day",
    "week": "week",
    "month": "month",
    "year": "year",
    "decade": "decade",
    "century": "century",
    "centuries": "century",
    "millennium": "millennium",
    "millennia": "millennium",
}

_TERMINAL_NAMES = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "COMPARE": "a comparison (=, !=, <, <=, >, >=)",
    "UNIT": "a time unit (days, hours...)",
    "TIMES": "*, / or %",
    "LAMBDA_HEAD": "a lambda (x => ...)",
    "AGGREGATE": "sum, count, average, min or max ... over",
    "BINDING_COMMA": "','",
    "CHAIN": "CHAIN(",
    "WHAT": "WHAT(...)",
    "WHERE_CLAUSE": "WHERE(...)",
    "WHEN": "WHEN(...)",
    "COUNT": "COUNT(...)",
    "DOLLAR": "$1",
    "UP": "^",
}

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


@cache
def lark_parser() -> Lark:
    """The LALR(1) parser of ``grammar.lark``, built once."""
    grammar = files("itinera.common.pql").joinpath("grammar.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=True, maybe_placeholders=True)


def parse(text: str) -> ast.Expression:
    """The syntax tree of a PQL rule; raises ``PqlError`` naming every problem found."""
    expression, problems = parse_syntax(text)
    if expression is not None and not problems:
        from itinera.common.pql.compiler import check

        try:
            problems = check(expression)
        except RecursionError:
            problems = [too_deep(text)]
    if problems or expression is None:
        raise PqlError(problems)
    return expression


def parse_syntax(text: str) -> tuple[ast.Expression | None, list[Problem]]:
    """The tree and the syntax problems; the tree is ``None`` when the text does not parse."""
    given: object = text
    if not isinstance(given, str):
        return None, [Problem("a PQL rule must be text", 1, 1, 0, 0)]
    if not text.strip():
        return None, [Problem("the rule is empty", 1, 1, 0, len(text))]
    try:
        tree = lark_parser().parse(text)
    except UnexpectedInput as error:
        return None, [_syntax_problem(text, error)]
    builder = _TreeBuilder()
    try:
        expression = builder.transform(tree)
    except RecursionError:
        return None, [too_deep(text)]
    return expression, builder.problems


def too_deep(text: str) -> Problem:
    return Problem("the rule is nested too deeply", 1, 1, 0, len(text))


def unescape(body: str) -> str:
    """The value of a string literal's body (between the quotes).

    JSON escapes are understood; an unknown escape such as ``\\w`` keeps its backslash,
    so regular expressions written with single backslashes still mean what they say.
    """
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\" or i + 1 >= len(body):
            out.append(char)
            i += 1
            continue
        escaped = body[i + 1]
        if escaped in _ESCAPES:
            out.append(_ESCAPES[escaped])
            i += 2
        elif escaped == "u" and _is_hex(body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        else:
            out.append("\\" + escaped)
            i += 2
    return "".join(out)


def _is_hex(text: str) -> bool:
    return len(text) == 4 and all(c in "0123456789abcdefABCDEF" for c in text)


def _span(meta: Meta) -> ast.Span | None:
    if getattr(meta, "empty", True):
        return None
    return ast.Span(offset=meta.start_pos, end_offset=meta.end_pos, line=meta.line, column=meta.column)


def _token_span(token: Token) -> ast.Span:
    return ast.Span(
        offset=token.start_pos or 0,
        end_offset=token.end_pos or 0,
        line=token.line or 1,
        column=token.column or 1,
    )


def problem_at(span: ast.Span | None, message: str, construct: str | None = None) -> Problem:
    if span is None:
        return Problem(message, 1, 1, 0, 0, construct)
    return Problem(message, span.line, span.column, span.offset, span.end_offset, construct)


@v_args(meta=True)
class _TreeBuilder(Transformer[Token, ast.Expression]):
    """Builds ``ast`` nodes from lark's parse tree; semantic slips go to ``problems``."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[Problem] = []

    # Literals and names

    def string(self, meta: Meta, children: list[Token]) -> ast.Expression:
        return ast.Literal(unescape(children[0].value[1:-1]), span=_span(meta))

    def number(self, meta: Meta, children: list[Token]) -> ast.Expression:
        text = children[0].value
        value: int | float
        if any(c in text for c in ".eE"):
            value = float(text)
            if not math.isfinite(value):
                self.problems.append(problem_at(_span(meta), f"number {text} is out of range"))
                value = 0.0
        else:
            value = int(text)
        return ast.Literal(value, span=_span(meta))

    def true(self, meta: Meta, children: list[Token]) -> ast.Expression:
        return ast.Literal(True, span=_span(meta))

    def false(self, meta: Meta, children: list[Token]) -> ast.Expression:
        return ast.Literal(False, span=_span(meta))

    def null(self, meta: Meta, children: list[Token]) -> ast.Expression:
        return ast.Literal(None, span=_span(meta))

    def time_ref(self, meta: Meta, children: list[Token]) -> ast.Expression:
        word: Any = children[0].value
        return ast.TimeRef(word, span=_span(meta))

    def name(self, meta: Meta, children: list[Token]) -> ast.Expression:
        return ast.Name(children[0].value, span=_span(meta))

    def parameter(self, meta: Meta, children: list[Token]) -> ast.Expression:
        return ast.Parameter(int(children[0].value[1:]), span=_span(meta))

    def up(self, meta: Meta, children: list[Token]) -> ast.Expression:
        return ast.Up(len(children[0].value), span=_span(meta))

    def up_name(self, meta: Meta, children: list[Token]) -> ast.Expression:
        up_token, name = children
        up = ast.Up(len(up_token.value), span=_token_span(up_token))
        return ast.Field(up, name.value, span=_span(meta))

    def array(self, meta: Meta, children: list[Any]) -> ast.Expression:
        return ast.ListExpr(tuple(children[0] or ()), span=_span(meta))

    def arguments(self, meta: Meta, children: list[Any]) -> list[ast.Expression]:
        return children

    def call(self, meta: Meta, children: list[Any]) -> ast.Expression:
        name, arguments = children
        return ast.Call(name.value, tuple(arguments or ()), span=_span(meta))

    # Postfix forms

    def field(self, meta: Meta, children: list[Any]) -> ast.Expression:
        target, name = children
        return ast.Field(target, name.value, span=_span(meta))

    def method(self, meta: Meta, children: list[Any]) -> ast.Expression:
        # The span starts at the function's name, where problems with the call point.
        target, name, arguments = children
        whole = _span(meta)
        span = _token_span(name)
        if whole is not None:
            span = ast.Span(span.offset, whole.end_offset, span.line, span.column)
        return ast.MethodCall(target, name.value, tuple(arguments or ()), span=span)

    def filter(self, meta: Meta, children: list[Any]) -> ast.Expression:
        target, condition = children
        return ast.Filter(target, condition, span=_span(meta))

    # Operators

    def negate(self, meta: Meta, children: list[Any]) -> ast.Expression:
        operand = children[1]
        if (
            isinstance(operand, ast.Literal)
            and isinstance(operand.value, int | float)
            and not isinstance(operand.value, bool)
        ):
            return ast.Literal(-operand.value, span=_span(meta))
        return ast.Unary("-", operand, span=_span(meta))

    def arith(self, meta: Meta, children: list[Any]) -> ast.Expression:
        left, op, right = children
        return ast.Binary(op.value, left, right, span=_span(meta))

    def compare(self, meta: Meta, children: list[Any]) -> ast.Expression:
        left, op, right = children
        return ast.Binary(op.value, left, right, span=_span(meta))

    def in_(self, meta: Meta, children: list[Any]) -> ast.Expression:
        return ast.Binary("in", children[0], children[1], span=_span(meta))

    def not_in(self, meta: Meta, children: list[Any]) -> ast.Expression:
        return ast.Binary("notIn", children[0], children[1], span=_span(meta))

    def like(self, meta: Meta, children: list[Any]) -> ast.Expression:
        return ast.Binary("like", children[0], children[1], span=_span(meta))

    def and_(self, meta: Meta, children: list[Any]) -> ast.Expression:
        return ast.Binary("and", children[0], children[1], span=_span(meta))

    def or_(self, meta: Meta, children: list[Any]) -> ast.Expression:
        return ast.Binary("or", children[0], children[1], span=_span(meta))

    def not_(self, meta: Meta, children: list[Any]) -> ast.Expression:
        return ast.Unary("not", children[0], span=_span(meta))

    # Time

    def occurs(self, meta: Meta, children: list[Any]) -> ast.Expression:
        return ast.Occurs(children[0], children[1], span=_span(meta))

    def occurs_relative(self, meta: Meta, children: list[Any]) -> ast.OccursSpec:
        op, amount, unit, direction, time = children
        return ast.OccursRelative(
            op.value,
            self._whole_number(amount, "occurs", minimum=0),
            _canonical_unit(unit.value),
            direction.value,
            time,
            span=_span(meta),
        )

    def occurs_direction(self, meta: Meta, children: list[Any]) -> ast.OccursSpec:
        direction, time = children
        return ast.OccursDirection(direction.value, time, span=_span(meta))

    def occurs_on(self, meta: Meta, children: list[Any]) -> ast.OccursSpec:
        return ast.OccursOn(children[-1], span=_span(meta))

    def occurs_between(self, meta: Meta, children: list[Any]) -> ast.OccursSpec:
        return ast.OccursBetween(children[0], children[1], span=_span(meta))

    def relative_period(self, meta: Meta, children: list[Any]) -> ast.Expression:
        which, unit = children
        return ast.RelativePeriod(which.value, _canonical_unit(unit.value), span=_span(meta))

    # Binding forms

    def let(self, meta: Meta, children: list[Any]) -> ast.Expression:
        name, value, body = children
        return ast.Let(name.value, value, body, span=_span(meta))

    def lambda_(self, meta: Meta, children: list[Any]) -> ast.Expression:
        head, body = children
        params = head.value.rsplit("=>", 1)[0].strip().strip("()")
        names = tuple(part.strip() for part in params.split(","))
        return ast.Lambda(names, body, span=_span(meta))

    def bindings(self, meta: Meta, children: list[Any]) -> list[ast.Binding]:
        return [child for child in children if isinstance(child, ast.Binding)]

    def binding(self, meta: Meta, children: list[Any]) -> ast.Binding:
        name, source = children[0], children[2]
        condition = children[-1] if len(children) > 3 else None
        return ast.Binding(name.value, source, condition, span=_span(meta))

    def exists(self, meta: Meta, children: list[Any]) -> ast.Expression:
        return ast.Quantifier("exists", tuple(children[0]), span=_span(meta))

    def forall(self, meta: Meta, children: list[Any]) -> ast.Expression:
        return ast.Quantifier("forall", tuple(children[0]), span=_span(meta))

    def select(self, meta: Meta, children: list[Any]) -> ast.Expression:
        return ast.Select(children[0], span=_span(meta))

    def aggregate(self, meta: Meta, children: list[Any]) -> ast.Expression:
        function, value, binding = children
        return ast.Aggregate(function.value, value, binding, span=_span(meta))

    # CHAIN

    def chain(self, meta: Meta, children: list[Any]) -> ast.Expression:
        _, source, path, steps = children
        labels = [step.label for step in steps]
        for step in steps:
            if labels.count(step.label) > 1:
                self.problems.append(
                    problem_at(step.span, f"CHAIN step label {step.label} is used twice", "CHAIN")
                )
                break
        return ast.Chain(source, path, tuple(steps), span=_span(meta))

    def path(self, meta: Meta, children: list[Token]) -> tuple[str, ...]:
        return tuple(child.value for child in children)

    def steps(self, meta: Meta, children: list[ast.ChainStep]) -> list[ast.ChainStep]:
        return children

    def step(self, meta: Meta, children: list[Any]) -> ast.ChainStep:
        label = children[0].value
        clauses: dict[str, Any] = {}
        for kind, value, span in children[1:]:
            if kind in clauses:
                self.problems.append(problem_at(span, f"a CHAIN step takes one {kind.upper()}(...)", "CHAIN"))
            clauses[kind] = value
        if "what" not in clauses:
            self.problems.append(problem_at(_span(meta), "a CHAIN step needs WHAT(...)", "CHAIN"))
            clauses["what"] = ast.Literal(True)
        return ast.ChainStep(
            label,
            clauses["what"],
            clauses.get("where"),
            clauses.get("when"),
            clauses.get("count"),
            span=_span(meta),
        )

    def what(self, meta: Meta, children: list[Any]) -> tuple[str, Any, ast.Span | None]:
        return ("what", children[1], _span(meta))

    def where(self, meta: Meta, children: list[Any]) -> tuple[str, Any, ast.Span | None]:
        return ("where", children[1], _span(meta))

    def when(self, meta: Meta, children: list[Any]) -> tuple[str, Any, ast.Span | None]:
        return ("when", children[1], _span(meta))

    def count(self, meta: Meta, children: list[Any]) -> tuple[str, Any, ast.Span | None]:
        return ("count", self._whole_number(children[1], "CHAIN", minimum=1), _span(meta))

    def _whole_number(self, token: Token, construct: str, *, minimum: int) -> int:
        text = token.value
        if text.isdigit() and int(text) >= minimum:
            return int(text)
        self.problems.append(
            problem_at(
                _token_span(token),
                f"{construct} takes a whole number of at least {minimum} here, not {text}",
                construct,
            )
        )
        return minimum


def _canonical_unit(word: str) -> str:
    if word in _UNITS:
        return _UNITS[word]
    return _UNITS[word[:-1]]


def _describe_terminal(name: str) -> str:
    if name in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[name]
    try:
        pattern = lark_parser().get_terminal(name).pattern
    except KeyError:
        return name
    if isinstance(pattern, PatternStr):
        return repr(pattern.value)
    return name.lower()


def _expected(names: set[str] | frozenset[str]) -> str:
    described = sorted({_describe_terminal(name) for name in names if name != "$END"})
    if "$END" in names:
        described.append("the end of the rule")
    return ", ".join(described)


def _syntax_problem(text: str, error: UnexpectedInput) -> Problem:
    if isinstance(error, UnexpectedToken):
        token = error.token
        expected = _expected(error.accepts or error.expected)
        if token.type == "$END":
            offset = len(text)
            line, column = _position(text, offset)
            return Problem(f"the rule ends too early; expected {expected}", line, column, offset, offset)
        start = token.start_pos if token.start_pos is not None else 0
        end = token.end_pos if token.end_pos is not None else start + len(token.value)
        line, column = _position(text, start)
        return Problem(f"unexpected {token.value!r}; expected {expected}", line, column, start, end)
    if isinstance(error, UnexpectedCharacters):
        offset = error.pos_in_stream or 0
        line, column = _position(text, offset)
        expected = _expected(error.allowed or set())
        message = f"unexpected character {text[offset]!r}"
        if expected:
            message += f"; expected {expected}"
        return Problem(message, line, column, offset, offset + 1)
    if isinstance(error, UnexpectedEOF):
        offset = len(text)
        line, column = _position(text, offset)
        return Problem(
            f"the rule ends too early; expected {_expected(set(error.expected))}",
            line,
            column,
            offset,
            offset,
        )
    line, column = _position(text, 0)
    return Problem(str(error), line, column, 0, 0)


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column
