"""Syntax tree to canonical PQL text.

The output parses back to an equal tree: parentheses are added exactly where
precedence needs them (plus around ``not``'s operand, as AEP writes it), strings are
escaped, and keywords are written in one spelling (``not``, ``where``, ``CHAIN``).
"""

from __future__ import annotations

import math

from itinera.common.pql import ast

# Binding strength, weakest first.
_LOW, _OR, _AND, _NOT, _COMPARE, _ADD, _MULTIPLY, _NEGATE, _POSTFIX, _PRIMARY = range(10)
_BINARY_LEVEL = {
    "or": _OR,
    "and": _AND,
    **dict.fromkeys((*ast.COMPARISONS, "in", "notIn", "like"), _COMPARE),
    "+": _ADD,
    "-": _ADD,
    "*": _MULTIPLY,
    "/": _MULTIPLY,
    "%": _MULTIPLY,
}
_AGGREGATE_VALUE_START = frozenset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_$^(["0123456789')
_AGGREGATE_STOP_WORDS = ("over", "and", "or", "in", "notIn", "like", "occurs", "where", "from")
_TIME_KEYWORDS = frozenset({"this", "last", "next", "before", "after", "from", "on", "between"})
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def to_text(expression: ast.Expression) -> str:
    """Canonical text of ``expression``; ``parse(to_text(e)) == e``."""
    return _Printer().expression(expression, _LOW)


def string_literal(value: str) -> str:
    out = ['"']
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _literal(value: ast.Scalar) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return string_literal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} cannot be written in PQL")
        text = repr(value)
        return text if any(c in text for c in ".e") else text + ".0"
    return str(value)


class _Printer:
    def expression(self, node: ast.Expression, minimum: int) -> str:
        text, level = self._text(node)
        return f"({text})" if level < minimum else text

    def _text(self, node: ast.Expression) -> tuple[str, int]:
        match node:
            case ast.Literal(value=value):
                text = _literal(value)
                return text, (_NEGATE if text.startswith("-") else _PRIMARY)
            case ast.ListExpr(items=items):
                return "[" + self._arguments(items) + "]", _PRIMARY
            case ast.Name(name=name):
                return name, _PRIMARY
            case ast.Parameter(index=index):
                return f"${index}", _PRIMARY
            case ast.Up(levels=levels):
                return "^" * levels, _PRIMARY
            case ast.TimeRef(word=word):
                return word, _PRIMARY
            case ast.RelativePeriod(which=which, unit=unit):
                return f"{which} {unit}", _PRIMARY
            case ast.Field(target=target, name=name):
                return f"{self.expression(target, _POSTFIX)}.{name}", _POSTFIX
            case ast.MethodCall(target=target, name=name, args=args):
                return f"{self.expression(target, _POSTFIX)}.{name}({self._arguments(args)})", _POSTFIX
            case ast.Call(name=name, args=args):
                return f"{name}({self._arguments(args)})", _PRIMARY
            case ast.Filter(target=target, condition=condition):
                return f"{self.expression(target, _POSTFIX)}[{self.expression(condition, _LOW)}]", _POSTFIX
            case ast.Unary(op="not", operand=operand):
                return f"not ({self.expression(operand, _LOW)})", _NOT
            case ast.Unary(operand=operand):
                return f"-{self.expression(operand, _NEGATE)}", _NEGATE
            case ast.Binary(op=op, left=left, right=right):
                return self._binary(op, left, right)
            case ast.Occurs(subject=subject, spec=spec):
                return f"{self.expression(subject, _ADD)} occurs {self._spec(spec)}", _COMPARE
            case ast.Quantifier(kind=kind, bindings=bindings):
                return f"{kind} " + ", ".join(self._binding(binding) for binding in bindings), _LOW
            case ast.Select(binding=binding):
                return f"select {self._binding(binding)}", _LOW
            case ast.Aggregate(function=function, value=value, binding=binding):
                return f"{function} {self._aggregate_value(value)} over {self._binding(binding)}", _LOW
            case ast.Let(name=name, value=value, body=body):
                return f"let {name} = {self.expression(value, _ADD)} in {self.expression(body, _LOW)}", _LOW
            case ast.Lambda(params=params, body=body):
                head = params[0] if len(params) == 1 else "(" + ", ".join(params) + ")"
                return f"{head} => {self.expression(body, _LOW)}", _LOW
            case ast.Chain(source=source, time_field=time_field, steps=steps):
                rendered = ", ".join(self._step(step) for step in steps)
                return (
                    f"CHAIN({self.expression(source, _OR)}, {'.'.join(time_field)}, [{rendered}])",
                    _PRIMARY,
                )
        raise TypeError(f"cannot print {type(node).__name__}")

    def _arguments(self, items: tuple[ast.Expression, ...]) -> str:
        return ", ".join(self.expression(item, _LOW) for item in items)

    def _binary(self, op: str, left: ast.Expression, right: ast.Expression) -> tuple[str, int]:
        level = _BINARY_LEVEL[op]
        if level == _COMPARE:
            # Comparisons do not chain: both sides are sums.
            return f"{self.expression(left, _ADD)} {op} {self.expression(right, _ADD)}", level
        return f"{self.expression(left, level)} {op} {self.expression(right, level + 1)}", level

    def _binding(self, binding: ast.Binding) -> str:
        text = f"{binding.name} from {self.expression(binding.source, _OR)}"
        if binding.condition is not None:
            text += f" where {self.expression(binding.condition, _OR)}"
        return text

    def _aggregate_value(self, value: ast.Expression) -> str:
        text = self.expression(value, _ADD)
        word = text.split(" ", 1)[0].split("(", 1)[0]
        if text[0] not in _AGGREGATE_VALUE_START or word in _AGGREGATE_STOP_WORDS:
            return f"({text})"
        return text

    def _time(self, node: ast.Expression) -> str:
        text = self.expression(node, _POSTFIX)
        if not isinstance(node, ast.RelativePeriod) and text.split(".", 1)[0] in _TIME_KEYWORDS:
            # `last.x` would read as the start of `last week`.
            return f"({text})"
        return text

    def _spec(self, spec: ast.OccursSpec) -> str:
        match spec:
            case ast.OccursRelative(op=op, amount=amount, unit=unit, direction=direction, time=time):
                plural = _plural(unit) if amount != 1 else unit
                return f"{op} {amount} {plural} {direction} {self._time(time)}"
            case ast.OccursDirection(direction=direction, time=time):
                return f"{direction} {self._time(time)}"
            case ast.OccursOn(time=time):
                return self._time(time)
            case ast.OccursBetween(start=start, end=end):
                return f"between {self._time(start)} and {self._time(end)}"
        raise TypeError(f"cannot print {type(spec).__name__}")

    def _step(self, step: ast.ChainStep) -> str:
        parts = [f"{step.label}: WHAT({self.expression(step.what, _LOW)})"]
        if step.where is not None:
            parts.append(f"WHERE({self.expression(step.where, _LOW)})")
        if step.when is not None:
            parts.append(f"WHEN({self._spec(step.when)})")
        if step.count is not None:
            parts.append(f"COUNT({step.count})")
        return " ".join(parts)


def _plural(unit: str) -> str:
    return {"century": "centuries", "millennium": "millennia"}.get(unit, unit + "s")
