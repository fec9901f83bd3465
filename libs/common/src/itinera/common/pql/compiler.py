"""Syntax tree to Python closures, and the ``Rule`` that runs them.

Compiling resolves every name once (a variable's slot, ``xEvent``, or an attribute of
the implicit context), compiles literal regular expressions and ``like`` patterns, and
reports whatever the engine does not support. Evaluating only calls closures over an
``Env``: the profile, its events, the moment of evaluation, the stack of implicit
contexts (the profile, then the item of each enclosing filter) and the variable slots.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from itinera.common.pql import ast
from itinera.common.pql import functions as fn
from itinera.common.pql.errors import PqlError, Problem
from itinera.common.pql.parser import parse, problem_at

Events = Sequence[Mapping[str, Any]] | Callable[[], Sequence[Mapping[str, Any]]]
"""A profile's events, or what gives them the first time the rule reads ``xEvent``: a
caller holding events in some encoded form decodes only those a rule actually reads
(``a and xEvent[...]`` never reads them when ``a`` is false)."""
Fn = Callable[["Env"], Any]
ElementFn = Callable[["Env", Any, Any, bool], Any]
TimeFn = Callable[["Env"], fn.Period | None]
SpecFn = Callable[["Env", Any], bool]

QUALIFYING_STATUSES = frozenset({"realized", "existing"})


@dataclass(frozen=True, slots=True)
class Signature:
    minimum: int
    maximum: int
    element_arguments: tuple[int, ...] = ()
    """Arguments evaluated once per item, with the item as context or as a lambda's parameter."""


METHODS: dict[str, Signature] = {
    **{name: Signature(1, 2) for name in fn.STRING_TESTS},
    "matches": Signature(1, 1),
    "regexGroup": Signature(1, 2),
    "intersects": Signature(1, 1),
    "intersection": Signature(1, 1),
    "subsetOf": Signature(1, 1),
    "supersetOf": Signature(1, 1),
    "includes": Signature(1, 1),
    "distinct": Signature(0, 0),
    "head": Signature(0, 0),
    "count": Signature(0, 0),
    "sum": Signature(0, 1, (0,)),
    "average": Signature(0, 1, (0,)),
    "min": Signature(0, 1, (0,)),
    "max": Signature(0, 1, (0,)),
    "filter": Signature(1, 1, (0,)),
    "map": Signature(1, 1, (0,)),
    "exists": Signature(1, 1, (0,)),
    "forall": Signature(1, 1, (0,)),
    "groupBy": Signature(1, 1, (0,)),
    "topN": Signature(2, 2, (0,)),
    "bottomN": Signature(2, 2, (0,)),
    "get": Signature(1, 1),
    "keys": Signature(0, 0),
    "values": Signature(0, 0),
    "isNull": Signature(0, 0),
    "isNotNull": Signature(0, 0),
    "getMonth": Signature(0, 0),
    "getYear": Signature(0, 0),
    "getDayOfMonth": Signature(0, 0),
}
"""The ``value.name(...)`` functions the engine knows."""

FUNCTIONS: dict[str, Signature] = {
    "date": Signature(3, 3),
    "if": Signature(3, 3),
    "inSegment": Signature(1, 1),
    "currentMonth": Signature(0, 0),
    "currentYear": Signature(0, 0),
    "currentDayOfMonth": Signature(0, 0),
    "mapEntry": Signature(2, 2),
}
"""The ``name(...)`` functions the engine knows."""

AGGREGATES = ("sum", "count", "average", "min", "max")


class Env:
    """What one evaluation sees."""

    __slots__ = ("_events", "_segment_source", "_segments", "contexts", "now", "root", "slots", "today")

    def __init__(
        self,
        root: Any,
        events: Events,
        now: datetime,
        segments: Mapping[str, str] | None,
        slot_count: int,
    ) -> None:
        self.root = root
        self._events = events
        self.now = now
        self.today = now.date()
        self.contexts: list[Any] = [root]
        self.slots: list[Any] = [None] * slot_count
        self._segments = segments
        self._segment_source = root

    def events(self) -> Sequence[Mapping[str, Any]]:
        events = self._events
        if callable(events):
            events = self._events = events()
        return events

    def segments(self) -> Mapping[str, str]:
        if self._segments is None:
            self._segments = segments_of(self._segment_source)
        return self._segments


def segments_of(profile: Any) -> dict[str, str]:
    """Audience id to status from AEP's ``segmentMembership`` (``{namespace: {id: {status}}}``).

    Ids from every namespace are kept; the ``ups`` namespace wins where two disagree.
    """
    found: dict[str, str] = {}
    membership = profile.get("segmentMembership") if isinstance(profile, Mapping) else None
    if not isinstance(membership, Mapping):
        return found
    for namespace, entries in membership.items():
        if not isinstance(entries, Mapping):
            continue
        for audience, entry in entries.items():
            status = entry.get("status") if isinstance(entry, Mapping) else None
            if isinstance(audience, str) and isinstance(status, str):
                if namespace == "ups" or audience not in found:
                    found[audience] = status
    return found


@dataclass(frozen=True, slots=True)
class _Scope:
    variables: Mapping[str, int]
    depth: int
    """How many implicit contexts are stacked: 1 for the profile alone."""

    def bind(self, name: str, slot: int) -> _Scope:
        return _Scope({**self.variables, name: slot}, self.depth)

    def deeper(self) -> _Scope:
        return _Scope(self.variables, self.depth + 1)


class Rule:
    """A compiled rule. ``evaluate`` returns the rule's value; ``qualifies`` its PQL truth."""

    __slots__ = ("_function", "_reads_membership", "_slot_count", "expression")

    def __init__(
        self, expression: ast.Expression, function: Fn, slot_count: int, reads_membership: bool
    ) -> None:
        self.expression = expression
        self._function = function
        self._slot_count = slot_count
        self._reads_membership = reads_membership

    def evaluate(
        self,
        profile: Mapping[str, Any],
        *,
        now: datetime | None = None,
        events: Events | None = None,
        segments: Mapping[str, str] | None = None,
    ) -> Any:
        """The rule's value for ``profile`` at ``now``. ``events``: the profile's events
        (default: its ``xEvent``), or a function giving them, called at most once and
        only if the rule reads them; ``segments``: its memberships (default: its
        ``segmentMembership``)."""
        root: Any = profile if type(profile) is dict or isinstance(profile, Mapping) else {}
        if events is None:
            found = root.get("xEvent")
            events = found if isinstance(found, list | tuple) else []
        if segments is not None and self._reads_membership:
            # Explicit memberships also answer `segmentMembership` look-ups.
            root = {
                **root,
                "segmentMembership": {"ups": {key: {"status": value} for key, value in segments.items()}},
            }
        env = Env(root, events, _utc(now), segments, self._slot_count)
        try:
            return self._function(env)
        except RecursionError:
            return None

    def qualifies(
        self,
        profile: Mapping[str, Any],
        *,
        now: datetime | None = None,
        events: Events | None = None,
        segments: Mapping[str, str] | None = None,
    ) -> bool:
        """Whether the profile is in the audience the rule defines."""
        return fn.truthy(self.evaluate(profile, now=now, events=events, segments=segments))

    def __repr__(self) -> str:
        from itinera.common.pql.printer import to_text

        return f"Rule({to_text(self.expression)!r})"


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        return now.replace(tzinfo=UTC)
    if now.tzinfo is UTC:
        return now
    return now.astimezone(UTC)


def compile_rule(expression: ast.Expression | str) -> Rule:
    """Compiles a rule (text or tree); raises ``PqlError`` with every problem found."""
    tree = parse(expression) if isinstance(expression, str) else expression
    compiler = _Compiler()
    try:
        function = compiler.compile_root(tree)
    except RecursionError:
        raise PqlError([problem_at(tree.span, "the rule is nested too deeply")]) from None
    if compiler.problems:
        raise PqlError(compiler.problems)
    return Rule(tree, function, compiler.slot_count, compiler.reads_membership)


def check(expression: ast.Expression) -> list[Problem]:
    """Every problem compiling ``expression`` would report."""
    compiler = _Compiler()
    compiler.compile_root(expression)
    return compiler.problems


def _constant(value: Any) -> Fn:
    return lambda env: value


def _get(value: Any, name: str) -> Any:
    """``fn.get``, reading a plain dict directly."""
    return value.get(name) if type(value) is dict else fn.get(value, name)


def _get_path(value: Any, names: tuple[str, ...]) -> Any:
    """``fn.get_path``, reading plain dicts (what decoded JSON is made of) directly."""
    for name in names:
        if type(value) is dict:
            value = value.get(name)
        elif value is None:
            return None
        else:
            value = fn.get(value, name)
    return value


_BOOLEAN_OPERATORS = frozenset({*ast.COMPARISONS, "and", "or", "in", "notIn", "like"})
_PYTHON_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _boolean(node: ast.Expression) -> bool:
    """Whether the compiled node always returns a bool (so ``fn.truthy`` of it is itself)."""
    return isinstance(node, ast.Binary) and node.op in _BOOLEAN_OPERATORS


def _literal_comparison(op: str, left: Fn, literal: Any) -> Fn | None:
    """``left op literal`` when the literal is a number, or a string compared with ``=``
    or ``!=`` that is no date or time: a value of the literal's own kind is compared
    directly, which is what ``fn.compare`` would conclude (numbers compare as numbers;
    two strings are equal only as equal text unless both read as times); any other
    value goes to ``fn.compare``. None when the literal is of another kind."""
    compare = _PYTHON_COMPARISONS[op]
    if fn.is_number(literal):

        def number(env: Env) -> bool:
            value = left(env)
            kind = type(value)
            if kind is int or kind is float:
                return compare(value, literal)
            return fn.compare(op, value, literal)

        return number
    if isinstance(literal, str) and op in ("=", "!=") and fn.as_time(literal) is None:

        def text(env: Env) -> bool:
            value = left(env)
            if type(value) is str:
                return compare(value, literal)
            return fn.compare(op, value, literal)

        return text
    return None


def _items(value: Any) -> Sequence[Any]:
    """What a binding iterates: an array's items, or a single object as one item."""
    if isinstance(value, list | tuple):
        return value
    if isinstance(value, Mapping):
        return (value,)
    return ()


class _Compiler:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.slot_count = 0
        self.reads_membership = False

    def problem(self, node: ast.Node | None, message: str, construct: str | None = None) -> None:
        self.problems.append(problem_at(node.span if node is not None else None, message, construct))

    def new_slot(self) -> int:
        self.slot_count += 1
        return self.slot_count - 1

    def compile_root(self, expression: ast.Expression) -> Fn:
        scope = _Scope({}, 1)
        if isinstance(expression, ast.Lambda):
            if len(expression.params) != 1:
                self.problem(expression, "a rule's lambda takes one parameter, the profile", "lambda")
            slot = self.new_slot()
            body = self.compile(expression.body, scope.bind(expression.params[0], slot))

            def with_profile(env: Env) -> Any:
                env.slots[slot] = env.root
                return body(env)

            return with_profile
        return self.compile(expression, scope)

    # Dispatch

    def compile(self, node: ast.Expression, scope: _Scope) -> Fn:
        match node:
            case ast.Literal(value=value):
                return _constant(value)
            case ast.ListExpr(items=items):
                return self._list(items, scope)
            case ast.Name(name=name):
                return self._name(node, name, scope)
            case ast.Field():
                return self._field(node, scope)
            case ast.Parameter(index=index):
                if index != 1:
                    self.problem(
                        node,
                        f"${index} is not available: a rule's only input is the profile, $1",
                        f"${index}",
                    )
                return lambda env: env.root
            case ast.Up(levels=levels):
                return self._up(node, levels, scope)
            case ast.TimeRef(word=word):
                return self._time_value(word)
            case ast.RelativePeriod(which=which, unit=unit):
                self.problem(node, f"'{which} {unit}' is a period of time and only follows occurs", "occurs")
                return _constant(None)
            case ast.Call():
                return self._call(node, scope)
            case ast.MethodCall():
                return self._method(node, scope)
            case ast.Filter(target=target, condition=condition):
                return self._filter(target, condition, scope)
            case ast.Unary(op=op, operand=operand):
                inner = self.compile(operand, scope)
                if op == "not":
                    return lambda env: not fn.truthy(inner(env))
                return lambda env: fn.negate(inner(env))
            case ast.Binary():
                return self._binary(node, scope)
            case ast.Occurs(subject=subject, spec=spec):
                moment = self.compile(subject, scope)
                test = self._occurs_spec(spec, scope)
                return lambda env: test(env, moment(env))
            case ast.Quantifier():
                return self._quantifier(node, scope)
            case ast.Select(binding=binding):
                return self._select(binding, scope)
            case ast.Aggregate():
                return self._aggregate(node, scope)
            case ast.Let(name=name, value=value, body=body):
                return self._let(name, value, body, scope)
            case ast.Lambda():
                self.problem(
                    node,
                    "a lambda is only allowed as the argument of filter, map, exists, forall, groupBy, "
                    "topN, bottomN, sum, average, min or max",
                    "lambda",
                )
                return _constant(None)
            case ast.Chain():
                return self._chain(node, scope)
        self.problem(node, f"{type(node).__name__} is not a PQL expression")
        return _constant(None)

    # Names and paths

    def _name(self, node: ast.Node, name: str, scope: _Scope) -> Fn:
        if name in scope.variables:
            slot = scope.variables[name]
            return lambda env: env.slots[slot]
        if name == "xEvent":
            return lambda env: env.events()
        if name == "segmentMembership" and scope.depth == 1:
            self.reads_membership = True
        return lambda env: _get(env.contexts[-1], name)

    def _field(self, node: ast.Field, scope: _Scope) -> Fn:
        names: list[str] = []
        base: ast.Expression = node
        while isinstance(base, ast.Field):
            names.append(base.name)
            base = base.target
        names.reverse()
        path = tuple(names)
        if isinstance(base, ast.Name) and base.name not in scope.variables and base.name != "xEvent":
            if base.name == "segmentMembership" and scope.depth == 1:
                self.reads_membership = True
            full = (base.name, *path)
            return lambda env: _get_path(env.contexts[-1], full)
        target = self.compile(base, scope)
        if len(path) == 1:
            name = path[0]
            return lambda env: _get(target(env), name)
        return lambda env: _get_path(target(env), path)

    def _up(self, node: ast.Node, levels: int, scope: _Scope) -> Fn:
        if levels >= scope.depth:
            self.problem(
                node,
                f"{'^' * levels} reaches above the profile: only {scope.depth - 1} filters enclose it",
                "^",
            )
            return _constant(None)
        index = -1 - levels
        return lambda env: env.contexts[index]

    def _list(self, items: tuple[ast.Expression, ...], scope: _Scope) -> Fn:
        compiled = [self.compile(item, scope) for item in items]
        if all(isinstance(item, ast.Literal) for item in items):
            constant = tuple(item.value for item in items if isinstance(item, ast.Literal))
            return lambda env: list(constant)
        return lambda env: [item(env) for item in compiled]

    # Time

    def _time_value(self, word: str) -> Fn:
        if word == "now":
            return lambda env: env.now
        offset = {"today": 0, "yesterday": -1, "tomorrow": 1}[word]
        step = timedelta(days=offset)
        return lambda env: _day_offset(env.today, step)

    def _time(self, node: ast.Expression, scope: _Scope) -> TimeFn:
        if isinstance(node, ast.TimeRef):
            word = node.word
            return lambda env: fn.time_word(word, env.now)
        if isinstance(node, ast.RelativePeriod):
            which, unit = node.which, node.unit
            return lambda env: fn.relative_period(which, unit, env.now)
        value = self.compile(node, scope)
        return lambda env: fn.as_period(value(env))

    def _occurs_spec(self, spec: ast.OccursSpec, scope: _Scope) -> SpecFn:
        match spec:
            case ast.OccursRelative(op=op, amount=amount, unit=unit, direction=direction, time=time):
                if op not in ast.COMPARISONS:
                    self.problem(spec, f"occurs does not compare with {op}", "occurs")
                if unit not in ast.TIME_UNITS:
                    self.problem(spec, f"{unit} is not a unit of time", "occurs")
                if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
                    self.problem(spec, "occurs takes a whole number of at least 0", "occurs")
                base = self._time(time, scope)
                return lambda env, subject: fn.occurs_relative(
                    subject, op, amount, unit, direction, base(env)
                )
            case ast.OccursDirection(direction=direction, time=time):
                period = self._time(time, scope)
                return lambda env, subject: fn.occurs_direction(subject, direction, period(env))
            case ast.OccursOn(time=time):
                period = self._time(time, scope)
                return lambda env, subject: fn.occurs_on(subject, period(env))
            case ast.OccursBetween(start=start, end=end):
                first, last = self._time(start, scope), self._time(end, scope)
                return lambda env, subject: fn.occurs_between(subject, first(env), last(env))

    # Operators

    def _binary(self, node: ast.Binary, scope: _Scope) -> Fn:
        op = node.op
        left = self.compile(node.left, scope)
        if op == "like" and isinstance(node.right, ast.Literal) and isinstance(node.right.value, str):
            pattern = fn.like_pattern(node.right.value)
            text = node.right.value
            return lambda env: fn.like(left(env), text, pattern)
        right = self.compile(node.right, scope)
        if op in ("and", "or"):
            first = left if _boolean(node.left) else lambda env: fn.truthy(left(env))
            second = right if _boolean(node.right) else lambda env: fn.truthy(right(env))
            if op == "and":
                return lambda env: first(env) and second(env)
            return lambda env: first(env) or second(env)
        if op in ast.COMPARISONS:
            if isinstance(node.right, ast.Literal):
                fast = _literal_comparison(op, left, node.right.value)
                if fast is not None:
                    return fast
            return lambda env: fn.compare(op, left(env), right(env))
        if op == "in":
            return lambda env: fn.in_list(left(env), right(env))
        if op == "notIn":
            return lambda env: fn.not_in_list(left(env), right(env))
        if op == "like":
            return lambda env: fn.like(left(env), right(env))
        if op in ast.ARITHMETIC:
            return lambda env: fn.arithmetic(op, left(env), right(env))
        self.problem(node, f"unknown operator {op}", f"operator {op}")
        return _constant(None)

    # Functions

    def _arity(self, node: ast.Call | ast.MethodCall, signature: Signature) -> bool:
        count = len(node.args)
        if signature.minimum <= count <= signature.maximum:
            return True
        if signature.minimum == signature.maximum:
            wanted = f"{signature.minimum} argument{'s' if signature.minimum != 1 else ''}"
        else:
            wanted = f"{signature.minimum} to {signature.maximum} arguments"
        self.problem(node, f"{node.name} takes {wanted}, not {count}", f"function {node.name}")
        return False

    def _call(self, node: ast.Call, scope: _Scope) -> Fn:
        signature = FUNCTIONS.get(node.name)
        if signature is None:
            self.problem(node, f"unknown function {node.name}", f"function {node.name}")
            for arg in node.args:
                self.compile(arg, scope)
            return _constant(None)
        if not self._arity(node, signature):
            return _constant(None)
        args = [self.compile(arg, scope) for arg in node.args]
        name = node.name
        if name == "date":
            return self._date(node, args)
        if name == "if":
            test, then, otherwise = args
            return lambda env: then(env) if fn.truthy(test(env)) else otherwise(env)
        if name == "inSegment":
            audience = args[0]

            def in_segment(env: Env) -> bool:
                key = audience(env)
                return isinstance(key, str) and env.segments().get(key) in QUALIFYING_STATUSES

            return in_segment
        if name == "currentMonth":
            return lambda env: env.now.month
        if name == "currentYear":
            return lambda env: env.now.year
        if name == "currentDayOfMonth":
            return lambda env: env.now.day
        key, value = args
        return lambda env: fn.MapEntry(key(env), value(env))

    def _date(self, node: ast.Call, args: list[Fn]) -> Fn:
        if all(isinstance(arg, ast.Literal) for arg in node.args):
            parts = [arg.value for arg in node.args if isinstance(arg, ast.Literal)]
            value = fn.date_value(*parts)
            if value is None:
                self.problem(
                    node, f"date({', '.join(map(str, parts))}) is not a calendar date", "function date"
                )
            return _constant(value)
        year, month, day = args
        return lambda env: fn.date_value(year(env), month(env), day(env))

    def _element(self, node: ast.Expression, scope: _Scope, owner: str) -> ElementFn:
        """An argument evaluated per item: a lambda, or an expression with the item as context."""
        if isinstance(node, ast.Lambda):
            if not 1 <= len(node.params) <= 2:
                self.problem(node, f"the lambda given to {owner} takes one or two parameters", "lambda")
            first = self.new_slot()
            inner = scope.bind(node.params[0], first)
            if len(node.params) >= 2:
                second = self.new_slot()
                inner = inner.bind(node.params[1], second)
                body = self.compile(node.body, inner)

                def pair(env: Env, item: Any, key: Any, keyed: bool) -> Any:
                    # Over a map the parameters are (key, value); over an array (item, index).
                    slots = env.slots
                    if keyed:
                        slots[first], slots[second] = key, item
                    else:
                        slots[first], slots[second] = item, key
                    return body(env)

                return pair
            body = self.compile(node.body, inner)

            def single(env: Env, item: Any, key: Any, keyed: bool) -> Any:
                env.slots[first] = item
                return body(env)

            return single
        body = self.compile(node, scope.deeper())

        def in_context(env: Env, item: Any, key: Any, keyed: bool) -> Any:
            contexts = env.contexts
            contexts.append(item)
            try:
                return body(env)
            finally:
                contexts.pop()

        return in_context

    def _method(self, node: ast.MethodCall, scope: _Scope) -> Fn:
        signature = METHODS.get(node.name)
        target = self.compile(node.target, scope)
        if signature is None:
            self.problem(node, f"unknown function {node.name}", f"function {node.name}")
            for arg in node.args:
                self.compile(arg, scope)
            return _constant(None)
        if not self._arity(node, signature):
            return _constant(None)
        name = node.name
        element = (
            self._element(node.args[0], scope, name) if signature.element_arguments and node.args else None
        )
        args = [
            self.compile(arg, scope)
            for index, arg in enumerate(node.args)
            if index not in signature.element_arguments
        ]
        if name in fn.STRING_TESTS:
            return self._string_test(name, target, args)
        if name in ("matches", "regexGroup"):
            return self._regex_method(node, target, args)
        if element is not None:
            return self._element_method(name, target, element, args)
        return self._plain_method(name, target, args)

    def _string_test(self, name: str, target: Fn, args: list[Fn]) -> Fn:
        part = args[0]
        case = args[1] if len(args) > 1 else _constant(True)
        return lambda env: fn.string_test(name, target(env), part(env), case(env))

    def _regex_method(self, node: ast.MethodCall, target: Fn, args: list[Fn]) -> Fn:
        pattern = node.args[0]
        regex: Callable[[Env], Any]
        if isinstance(pattern, ast.Literal) and isinstance(pattern.value, str):
            compiled = fn.compile_regex(pattern.value)
            if isinstance(compiled, str):
                self.problem(pattern, f"invalid regular expression: {compiled}", f"function {node.name}")
                regex = _constant(None)
            else:
                regex = _constant(compiled)
        else:
            source = args[0]

            def regex(env: Env) -> Any:
                return fn.regex_for(source(env))

        if node.name == "matches":
            return lambda env: fn.matches(target(env), regex(env))
        group = args[1] if len(args) > 1 else _constant(0)
        return lambda env: fn.regex_group(target(env), regex(env), group(env))

    def _element_method(self, name: str, target: Fn, element: ElementFn, args: list[Fn]) -> Fn:
        def each(env: Env, collection: Any) -> list[tuple[Any, Any]] | None:
            """(item, key) pairs of an array (key: index) or a map (key: the map's key)."""
            if isinstance(collection, list | tuple):
                return [(element(env, item, index, False), item) for index, item in enumerate(collection)]
            if isinstance(collection, Mapping):
                return [(element(env, item, key, True), item) for key, item in collection.items()]
            return None

        if name == "filter":

            def filter_(env: Env) -> Any:
                collection = target(env)
                if isinstance(collection, Mapping):
                    return {
                        key: item
                        for key, item in collection.items()
                        if fn.truthy(element(env, item, key, True))
                    }
                pairs = each(env, collection)
                return None if pairs is None else [item for result, item in pairs if fn.truthy(result)]

            return filter_
        if name == "map":

            def map_(env: Env) -> Any:
                collection = target(env)
                pairs = each(env, collection)
                if pairs is None:
                    return None
                results = [result for result, _ in pairs]
                return fn.entries_to_map(results) if isinstance(collection, Mapping) else results

            return map_
        if name in ("exists", "forall"):
            every = name == "forall"

            def quantify(env: Env) -> bool:
                collection = target(env)
                if collection is None:
                    return every
                if isinstance(collection, list | tuple):
                    pairs: Any = enumerate(collection)
                    keyed = False
                elif isinstance(collection, Mapping):
                    pairs = collection.items()
                    keyed = True
                else:
                    return False
                for key, item in pairs:
                    if fn.truthy(element(env, item, key, keyed)) != every:
                        return not every
                return every

            return quantify
        if name == "groupBy":

            def group_by(env: Env) -> Any:
                pairs = each(env, target(env))
                if pairs is None:
                    return None
                groups: dict[Any, list[Any]] = {}
                for result, item in pairs:
                    key = fn.group_key(result)
                    if key is not None:
                        groups.setdefault(key, []).append(item)
                return groups

            return group_by
        if name in ("topN", "bottomN"):
            amount = args[0]
            highest = name == "topN"

            def rank(env: Env) -> Any:
                collection = target(env)
                if not isinstance(collection, list | tuple):
                    return None
                scores = [element(env, item, index, False) for index, item in enumerate(collection)]
                return fn.ranked(collection, scores, amount(env), highest)

            return rank

        def projected(env: Env) -> Any:
            collection = target(env)
            if collection is None:
                return None
            pairs = each(env, collection)
            return None if pairs is None else [result for result, _ in pairs]

        return self._aggregation(name, projected)

    def _aggregation(self, name: str, values: Fn) -> Fn:
        if name == "sum":
            return lambda env: _sum(values(env))
        if name == "average":
            return lambda env: _sequence_or_none(values(env), fn.average)
        if name == "min":
            return lambda env: _sequence_or_none(values(env), lambda items: fn.extreme(items, False))
        if name == "max":
            return lambda env: _sequence_or_none(values(env), lambda items: fn.extreme(items, True))
        return lambda env: fn.count(values(env))

    def _plain_method(self, name: str, target: Fn, args: list[Fn]) -> Fn:
        if name in ("sum", "average", "min", "max", "count"):
            return self._aggregation(name, target)
        other = args[0] if args else _constant(None)
        simple: dict[str, Callable[[Any], Any]] = {
            "distinct": fn.distinct,
            "head": fn.head,
            "keys": fn.keys,
            "values": fn.values,
            "isNull": lambda value: value is None,
            "isNotNull": lambda value: value is not None,
            "getMonth": lambda value: fn.date_part(value, "month"),
            "getYear": lambda value: fn.date_part(value, "year"),
            "getDayOfMonth": lambda value: fn.date_part(value, "day"),
        }
        if name in simple:
            unary = simple[name]
            return lambda env: unary(target(env))
        binary: dict[str, Callable[[Any, Any], Any]] = {
            "intersects": fn.intersects,
            "intersection": fn.intersection,
            "subsetOf": fn.subset_of,
            "supersetOf": lambda left, right: fn.subset_of(right, left),
            "includes": lambda items, item: item is not None and fn.member(item, items),
            "get": fn.map_get,
        }
        operation = binary[name]
        return lambda env: operation(target(env), other(env))

    # Filters, quantifiers and bindings

    def _filter(self, target_node: ast.Expression, condition_node: ast.Expression, scope: _Scope) -> Fn:
        target = self.compile(target_node, scope)
        compiled = self.compile(condition_node, scope.deeper())
        condition = compiled if _boolean(condition_node) else lambda env: fn.truthy(compiled(env))

        def filter_(env: Env) -> Any:
            collection = target(env)
            if collection is None:
                return None
            if not isinstance(collection, list | tuple):
                if not isinstance(collection, Mapping):
                    return None
                collection = (collection,)
            contexts = env.contexts
            kept: list[Any] = []
            for item in collection:
                contexts.append(item)
                try:
                    if condition(env):
                        kept.append(item)
                finally:
                    contexts.pop()
            return kept

        return filter_

    def _binding(self, binding: ast.Binding, scope: _Scope) -> tuple[Fn, int, Fn | None, _Scope]:
        source = self.compile(binding.source, scope)
        slot = self.new_slot()
        inner = scope.bind(binding.name, slot)
        condition = self.compile(binding.condition, inner) if binding.condition is not None else None
        return source, slot, condition, inner

    def _quantifier(self, node: ast.Quantifier, scope: _Scope) -> Fn:
        every = node.kind == "forall"
        compiled: list[tuple[Fn, int, Fn | None]] = []
        current = scope
        for binding in node.bindings:
            source, slot, condition, current = self._binding(binding, current)
            compiled.append((source, slot, condition))

        def level(env: Env, depth: int) -> bool:
            source, slot, condition = compiled[depth]
            last = depth == len(compiled) - 1
            slots = env.slots
            for item in _items(source(env)):
                slots[slot] = item
                holds = condition is None or fn.truthy(condition(env))
                if holds and not last:
                    holds = level(env, depth + 1)
                if every and not holds:
                    return False
                if not every and holds:
                    return True
            return every

        return lambda env: level(env, 0)

    def _select(self, binding: ast.Binding, scope: _Scope) -> Fn:
        source, slot, condition, _ = self._binding(binding, scope)

        def select(env: Env) -> list[Any]:
            chosen: list[Any] = []
            for item in _items(source(env)):
                env.slots[slot] = item
                if condition is None or fn.truthy(condition(env)):
                    chosen.append(item)
            return chosen

        return select

    def _aggregate(self, node: ast.Aggregate, scope: _Scope) -> Fn:
        if node.function not in AGGREGATES:
            self.problem(node, f"unknown aggregation {node.function}", f"function {node.function}")
            return _constant(None)
        source, slot, condition, inner = self._binding(node.binding, scope)
        value = self.compile(node.value, inner)

        def values(env: Env) -> list[Any]:
            found: list[Any] = []
            for item in _items(source(env)):
                env.slots[slot] = item
                if condition is None or fn.truthy(condition(env)):
                    result = value(env)
                    if result is not None:
                        found.append(result)
            return found

        return self._aggregation(node.function, values)

    def _let(self, name: str, value_node: ast.Expression, body_node: ast.Expression, scope: _Scope) -> Fn:
        value = self.compile(value_node, scope)
        slot = self.new_slot()
        body = self.compile(body_node, scope.bind(name, slot))

        def let(env: Env) -> Any:
            env.slots[slot] = value(env)
            return body(env)

        return let

    # CHAIN

    def _chain(self, node: ast.Chain, scope: _Scope) -> Fn:
        source = self.compile(node.source, scope)
        time_field = node.time_field
        steps: list[tuple[int, Fn, Fn | None, SpecFn | None, int]] = []
        current = scope
        labels: set[str] = set()
        uses_labels = False
        for step in node.steps:
            if labels and _mentions(step, labels):
                uses_labels = True
            what = self.compile(step.what, current.deeper())
            where = self.compile(step.where, current.deeper()) if step.where is not None else None
            when = self._occurs_spec(step.when, current) if step.when is not None else None
            count = step.count if step.count is not None else 1
            if count < 1:
                self.problem(step, "COUNT takes a whole number of at least 1", "CHAIN")
            slot = self.new_slot()
            steps.append((slot, what, where, when, max(count, 1)))
            current = current.bind(step.label, slot)
            labels.add(step.label)

        def matches(env: Env, index: int, event: Any, moment: datetime) -> bool:
            _, what, where, when, _ = steps[index]
            contexts = env.contexts
            contexts.append(event)
            try:
                if not fn.truthy(what(env)):
                    return False
                if where is not None and not fn.truthy(where(env)):
                    return False
            finally:
                contexts.pop()
            return when is None or when(env, moment)

        def timeline(env: Env) -> list[tuple[datetime, Any]]:
            found: list[tuple[datetime, Any]] = []
            for event in _items(source(env)):
                if isinstance(event, Mapping):
                    moment = fn.as_instant(fn.get_path(event, time_field))
                    if moment is not None:
                        found.append((moment, event))
            found.sort(key=lambda pair: pair[0])
            return found

        def search(
            env: Env, events: list[tuple[datetime, Any]], index: int, start: int, after: datetime | None
        ) -> bool:
            if index == len(steps):
                return True
            slot, _, _, _, count = steps[index]
            for first in range(start, len(events)):
                moment, event = events[first]
                if after is not None and moment <= after:
                    continue
                if not matches(env, index, event, moment):
                    continue
                needed, last = count - 1, first
                position = first + 1
                while needed and position < len(events):
                    later, candidate = events[position]
                    if matches(env, index, candidate, later):
                        needed, last = needed - 1, position
                    position += 1
                if needed:
                    return False
                env.slots[slot] = events[last][1]
                if search(env, events, index + 1, last + 1, events[last][0]):
                    return True
                if not uses_labels:
                    # Without references between steps the earliest match is always the best.
                    return False
            return False

        return lambda env: search(env, timeline(env), 0, 0, None)


def _mentions(step: ast.ChainStep, labels: set[str]) -> bool:
    found = False

    def visit(node: Any) -> None:
        nonlocal found
        if isinstance(node, ast.Name) and node.name in labels:
            found = True
        elif isinstance(node, ast.Node):
            for value in vars_of(node):
                visit(value)
        elif isinstance(node, tuple):
            for value in node:
                visit(value)

    visit(step)
    return found


def vars_of(node: ast.Node) -> list[Any]:
    """A node's children (fields other than its span)."""
    return [getattr(node, name) for name in node.__dataclass_fields__ if name != "span"]


def _day_offset(today: date, step: timedelta) -> date | None:
    try:
        return today + step
    except OverflowError:
        return None


def _sum(values: Any) -> Any:
    if values is None:
        return 0
    return fn.total(values) if isinstance(values, list | tuple) else None


def _sequence_or_none(values: Any, operation: Callable[[Sequence[Any]], Any]) -> Any:
    if values is None:
        return None
    return operation(values) if isinstance(values, list | tuple) else None
