"""What a rule reads and how it can be evaluated, without running it.

``analyse`` reports the attribute paths a rule reads, the audiences it names, the
longest look-back into the profile's events it needs, whether its value can change
with the passing of time alone and when (``Timing``), and whether AEP's streaming
segmentation rules allow it to be evaluated as events arrive.

The streaming rules are AEP's current ones (since May 2025): a rule qualifies when it
reads only profile attributes and audience memberships, or when its events sit in one
condition (a single event, or several in one strictly ordered ``CHAIN``) constrained to
a window of at most 24 hours. Rules that aggregate events (``count``, ``sum``...), read
event values outside such a condition, combine separate event conditions, or consist of
a negated event only are evaluated in batch. A rule combining an event with
``inSegment`` streams only when every audience it names is profile-only, which the
caller can vouch for with ``profile_only_segments``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from itinera.common.pql import ast
from itinera.common.pql.compiler import METHODS, check
from itinera.common.pql.errors import Problem
from itinera.common.pql.functions import FIXED_UNITS, UNIT_UPPER_BOUND
from itinera.common.pql.parser import parse_syntax, too_deep

STREAMING_WINDOW = timedelta(hours=24)
LONGEST_LOOKBACK = timedelta(days=366 * 1000)
"""A look-back longer than this reads every event (its ``lookback`` is None): the
same events in practice, and no date arithmetic runs off the calendar (year 1)."""
_EVENTS = "xEvent"
_EVENT_TIME = "timestamp"
_PASS_THROUGH_METHODS = frozenset({"filter", "distinct", "head", "topN", "bottomN"})
_AGGREGATING_METHODS = frozenset({"count", "sum", "average", "min", "max", "groupBy", "map", "intersection"})
_CURRENT = {"currentMonth": "month", "currentYear": "year", "currentDayOfMonth": "day"}
"""The functions reading the calendar, and the unit of the period each reads."""

Path = tuple[str, ...]


@dataclass(frozen=True)
class Timing:
    """When the passing of time alone can change a rule's value, for whoever must look
    again no later than it does. Periods are the engine's: UTC days, weeks from Monday,
    months, years..."""

    calendar: frozenset[str] = frozenset()
    """The units of the periods at whose start the value can change, whatever the
    events: ``day`` for ``person.birthDate occurs today``, ``month`` for ``currentMonth()``."""
    event_calendar: frozenset[str] = frozenset()
    """The units of the periods an event's ``timestamp`` is tested against (``day`` for
    ``xEvent[timestamp occurs yesterday]``): the start of one can change the value only
    while an event lies within the look-back, or is dated later."""
    event_offsets: frozenset[timedelta] = frozenset()
    """How long after an event's ``timestamp`` (negative: before it) a test of it against
    ``now`` can change: 0 and 24 hours for ``timestamp occurs <= 24 hours before now``
    (a future-dated event reaches now; 24 hours later it leaves the window)."""
    unforeseen: bool = False
    """Whether the rule reads ``now`` in another way (``person.birthDate occurs <= 30 days
    before now``, ``now.getDayOfMonth()``), which can change its value at moments no event
    and no calendar foretell."""


@dataclass(frozen=True)
class Analysis:
    problems: list[Problem]
    references: list[str]
    segments: list[str]
    streaming: bool
    streaming_reasons: list[str]
    lookback: timedelta | None
    time_dependent: bool
    timing: Timing


@dataclass
class _EventUse:
    kind: str
    """``chain``, ``exists``, ``forall``, ``select``, ``filter``, ``aggregate`` or ``values``."""
    window: timedelta | None
    negated: bool


@dataclass
class _Findings:
    references: set[Path] = field(default_factory=set)
    segments: set[str] = field(default_factory=set)
    named_segments_only: bool = True
    in_segment: bool = False
    time_dependent: bool = False
    events: list[_EventUse] = field(default_factory=list)
    calendar: set[str] = field(default_factory=set)
    event_calendar: set[str] = field(default_factory=set)
    event_offsets: set[timedelta] = field(default_factory=set)
    unforeseen: bool = False
    anchors: set[int] = field(default_factory=set)
    """The ``id`` of each time an event's ``timestamp`` is tested against, accounted for
    in ``event_calendar`` or ``event_offsets``."""


def analyse(text: str, *, profile_only_segments: Collection[str] = ()) -> Analysis:
    """Analyses a rule; never raises, whatever ``text`` holds."""
    try:
        expression, problems = parse_syntax(text)
        if expression is not None and not problems:
            problems = check(expression)
    except RecursionError:
        expression, problems = None, [too_deep(text)]
    if expression is None:
        return Analysis(problems, [], [], False, ["the rule does not parse"], None, False, Timing())
    findings = _Findings()
    try:
        _Walker(findings).root(expression)
    except RecursionError:
        problems = [*problems, too_deep(text)]
    reasons = _streaming_reasons(findings, problems, set(profile_only_segments))
    windows = [use.window for use in findings.events if use.window is not None]
    lookback = max(windows) if findings.events and len(windows) == len(findings.events) else None
    if lookback is not None and lookback > LONGEST_LOOKBACK:
        lookback = None
    return Analysis(
        problems=problems,
        references=sorted(_render(path) for path in _leaves(findings.references)),
        segments=sorted(findings.segments),
        streaming=not reasons,
        streaming_reasons=reasons,
        lookback=lookback,
        time_dependent=findings.time_dependent,
        timing=Timing(
            calendar=frozenset(findings.calendar),
            event_calendar=frozenset(findings.event_calendar),
            event_offsets=frozenset(findings.event_offsets),
            unforeseen=findings.unforeseen,
        ),
    )


def _render(path: Path) -> str:
    return ".".join(path)


def _leaves(paths: set[Path]) -> set[Path]:
    """Drops the paths that only lead to longer ones also read."""
    kept = {path for path in paths if path}
    prefixes = {path[:end] for path in kept for end in range(1, len(path))}
    return kept - prefixes


def _streaming_reasons(findings: _Findings, problems: list[Problem], profile_only: set[str]) -> list[str]:
    if problems:
        return ["the rule has problems"]
    reasons: list[str] = []
    uses = findings.events
    if any(use.kind in ("aggregate", "values") for use in uses):
        reasons.append("it aggregates or reads values across events (count, sum, xEvent.x...)")
    if len(uses) > 1:
        reasons.append(
            f"it has {len(uses)} separate event conditions; streaming needs them in one CHAIN, "
            "ordered in time"
        )
    if len(uses) == 1:
        use = uses[0]
        if use.negated:
            reasons.append("its only event condition is negated")
        if use.window is None:
            reasons.append("its event condition has no time window of 24 hours or less")
        elif use.window > STREAMING_WINDOW:
            reasons.append(f"its event condition looks back {_describe(use.window)}, more than 24 hours")
    if uses and findings.in_segment:
        if not findings.named_segments_only or not findings.segments <= profile_only:
            reasons.append("it combines events with inSegment of audiences not known to be profile-only")
    return reasons


def _describe(window: timedelta) -> str:
    if window % timedelta(days=1) == timedelta(0):
        return f"{window.days} days"
    if window % timedelta(hours=1) == timedelta(0):
        return f"{int(window.total_seconds() // 3600)} hours"
    return str(window)


# Time windows: how far before now the events a condition accepts can lie.
# ``None`` means unconstrained (or bounded only by absolute dates, which grow older).


def _base_back(time: ast.Expression) -> timedelta | None:
    """How long before now the period ``time`` can start."""
    if isinstance(time, ast.TimeRef):
        return {
            "now": timedelta(0),
            "today": timedelta(days=1),
            "yesterday": timedelta(days=2),
            "tomorrow": timedelta(0),
        }[time.word]
    if isinstance(time, ast.RelativePeriod):
        unit = UNIT_UPPER_BOUND.get(time.unit)
        if unit is None:
            return None
        return {"this": unit, "last": unit * 2, "next": timedelta(0)}[time.which]
    return None


def _spec_window(spec: ast.OccursSpec) -> timedelta | None:
    match spec:
        case ast.OccursRelative(op=op, amount=amount, unit=unit, direction=direction, time=time):
            base = _base_back(time)
            if base is None or unit not in UNIT_UPPER_BOUND:
                return None
            if direction == "before":
                if op not in ("<", "<=", "="):
                    return None
                try:
                    return base + UNIT_UPPER_BOUND[unit] * amount
                except OverflowError:
                    return None
            return None if op == "!=" else base
        case ast.OccursDirection(direction=direction, time=time):
            return None if direction == "before" else _base_back(time)
        case ast.OccursOn(time=time):
            return _base_back(time)
        case ast.OccursBetween(start=start):
            return _base_back(start)


# How time moves a test of an event's time (``Timing``).


def _calendar_unit(time: ast.Expression) -> str | None:
    """The unit of the calendar period ``time`` names; None for ``now`` and the rest."""
    if isinstance(time, ast.TimeRef):
        return None if time.word == "now" else "day"
    if isinstance(time, ast.RelativePeriod):
        return time.unit
    return None


def _now_offsets(spec: ast.OccursSpec) -> frozenset[timedelta] | None:
    """When, after the time ``t`` it tests, a test anchored on ``now`` can change: at
    ``t`` itself when it compares ``t`` with now, at ``t + d`` when with ``d`` before now
    (``t - d`` after now), and a unit earlier too when it asks for that one unit (``=``).
    None when the units follow the calendar (months, years), whose length varies."""
    if not isinstance(spec, ast.OccursRelative):
        return frozenset({timedelta(0)})
    step = FIXED_UNITS.get(spec.unit)
    if step is None:
        return None
    try:
        reach = step * spec.amount if spec.direction == "before" else -step * spec.amount
        if spec.op in ("<", "<="):
            return frozenset({timedelta(0), reach})
        if spec.op in ("=", "!="):
            return frozenset({reach - step, reach})
        return frozenset({reach})
    except OverflowError:
        return None


def _note_times(spec: ast.OccursSpec, found: _Findings | None) -> None:
    """Records how time moves ``spec`` applied to an event's ``timestamp`` (``found``
    None: to another time of the event, which ``Timing`` does not follow)."""
    if found is None:
        return
    times = (spec.start, spec.end) if isinstance(spec, ast.OccursBetween) else (spec.time,)
    for time in times:
        unit = _calendar_unit(time)
        if unit is not None:
            found.event_calendar.add(unit)
            found.anchors.add(id(time))
        elif isinstance(time, ast.TimeRef):
            offsets = _now_offsets(spec)
            if offsets is not None:
                found.event_offsets |= offsets
                found.anchors.add(id(time))


def _both(first: timedelta | None, second: timedelta | None) -> timedelta | None:
    if first is None:
        return second
    if second is None:
        return first
    return min(first, second)


def _window(condition: ast.Expression | None, is_time: Any, found: _Findings | None) -> timedelta | None:
    """The look-back a condition imposes on the event whose time ``is_time`` recognises;
    how time moves its tests of that time goes to ``found`` (see ``_note_times``)."""
    match condition:
        case ast.Binary(op="and", left=left, right=right):
            return _both(_window(left, is_time, found), _window(right, is_time, found))
        case ast.Binary(op="or", left=left, right=right):
            first, second = _window(left, is_time, found), _window(right, is_time, found)
            return None if first is None or second is None else max(first, second)
        case ast.Occurs(subject=subject, spec=spec) if is_time(subject):
            _note_times(spec, found)
            return _spec_window(spec)
    return None


class _Walker:
    """Visits the tree once, tracking where each value comes from.

    An origin is the attribute path a value was read from: ``("person", "name")`` in the
    profile, or ``("xEvent", "commerce")`` in the events; ``None`` when it is computed.
    """

    def __init__(self, findings: _Findings) -> None:
        self.found = findings

    def root(self, expression: ast.Expression) -> None:
        if isinstance(expression, ast.Lambda) and expression.params:
            self.walk(expression.body, {expression.params[0]: ()}, ((),), False, False)
        else:
            self.walk(expression, {}, ((),), False, False)

    def record(self, origin: Path | None) -> Path | None:
        if origin is not None:
            self.found.references.add(origin)
        return origin

    # Recognising event conditions

    def _event_chain(
        self, node: ast.Expression, scope: Mapping[str, Path | None]
    ) -> list[ast.Expression] | None:
        """The layers from ``node`` down to an unshadowed ``xEvent``, or ``None``."""
        layers: list[ast.Expression] = []
        current = node
        while True:
            layers.append(current)
            match current:
                case ast.Name(name=name):
                    return layers if name == _EVENTS and name not in scope else None
                case ast.Filter(target=target) | ast.Field(target=target):
                    current = target
                case ast.MethodCall(target=target, name=name) if name in _PASS_THROUGH_METHODS:
                    current = target
                case _:
                    return None

    def _layer_window(self, layers: list[ast.Expression]) -> tuple[timedelta | None, bool]:
        """The window the filters of an event chain impose, and whether it projects values."""
        window: timedelta | None = None
        projects = False
        for layer in layers:
            match layer:
                case ast.Filter(condition=condition):
                    window = _both(window, _window(condition, _context_time, self.found))
                case ast.MethodCall(name="filter", args=(argument,)):
                    window = _both(window, _element_window(argument, self.found))
                case ast.Field():
                    projects = True
        return window, projects

    def _claim(self, node: ast.Expression, scope: Mapping[str, Path | None], negated: bool) -> bool:
        """Records ``node`` as an event condition when it is one."""
        match node:
            case ast.Chain(source=source, time_field=time_field, steps=steps):
                layers = self._event_chain(source, scope)
                if layers is None:
                    return False
                window, _ = self._layer_window(layers)
                self._use("chain", _both(window, _chain_window(steps, time_field, self.found)), negated)
                return True
            case ast.Quantifier(kind=kind, bindings=bindings):
                return self._claim_bindings(kind, bindings, scope, negated != (kind == "forall"))
            case ast.Select(binding=binding):
                return self._claim_bindings("select", (binding,), scope, negated)
            case ast.Aggregate(binding=binding):
                return self._claim_bindings("aggregate", (binding,), scope, negated)
            case ast.MethodCall(target=target, name=name, args=args) if name in ("exists", "forall"):
                layers = self._event_chain(target, scope)
                if layers is None:
                    return False
                window, projects = self._layer_window(layers)
                window = _both(window, _element_window(args[0], self.found) if args else None)
                self._use("values" if projects else name, window, negated != (name == "forall"))
                return True
            case ast.MethodCall(target=target, name=name) if name in _AGGREGATING_METHODS:
                layers = self._event_chain(target, scope)
                if layers is None:
                    return False
                window, _ = self._layer_window(layers)
                self._use("aggregate", window, negated)
                return True
        layers = self._event_chain(node, scope)
        if layers is None:
            return False
        window, projects = self._layer_window(layers)
        self._use("values" if projects else "filter", window, negated)
        return True

    def _claim_bindings(
        self, kind: str, bindings: tuple[ast.Binding, ...], scope: Mapping[str, Path | None], negated: bool
    ) -> bool:
        for position, binding in enumerate(bindings):
            layers = self._event_chain(binding.source, scope)
            if layers is None:
                continue
            window, projects = self._layer_window(layers)

            def is_time(node: ast.Expression, variable: str = binding.name) -> bool:
                return _variable_time(node, variable)

            for later in bindings[position:]:
                window = _both(window, _window(later.condition, is_time, self.found))
            self._use("values" if projects else kind, window, negated)
            return True
        return False

    def _use(self, kind: str, window: timedelta | None, negated: bool) -> None:
        self.found.events.append(_EventUse(kind, window, negated))

    # The walk

    def walk(
        self,
        node: ast.Expression,
        scope: Mapping[str, Path | None],
        contexts: tuple[Path | None, ...],
        negated: bool,
        claimed: bool,
    ) -> Path | None:
        if not claimed and self._claim(node, scope, negated):
            claimed = True
        match node:
            case ast.Name(name=name):
                if name in scope:
                    return scope[name]
                if name == _EVENTS:  # the events are read, whether or not a field of them is
                    return self.record((_EVENTS,))
                context = contexts[-1]
                return self.record((*context, name) if context is not None else None)
            case ast.Field(target=target, name=name):
                origin = self.walk(target, scope, contexts, negated, claimed)
                return self.record((*origin, name) if origin is not None else None)
            case ast.Parameter():
                return ()
            case ast.Up(levels=levels):
                return contexts[-1 - levels] if levels < len(contexts) else None
            case ast.TimeRef() | ast.RelativePeriod():
                self.found.time_dependent = True
                if id(node) not in self.found.anchors:
                    unit = _calendar_unit(node)
                    if unit is None:
                        self.found.unforeseen = True
                    else:
                        self.found.calendar.add(unit)
                return None
            case ast.ListExpr(items=items):
                for item in items:
                    self.walk(item, scope, contexts, negated, False)
                return None
            case ast.Call(name=name, args=args):
                return self._call(name, args, scope, contexts, negated)
            case ast.MethodCall():
                return self._method(node, scope, contexts, negated, claimed)
            case ast.Filter(target=target, condition=condition):
                origin = self.walk(target, scope, contexts, negated, claimed)
                self.walk(condition, scope, (*contexts, origin), negated, False)
                return origin
            case ast.Unary(op=op, operand=operand):
                self.walk(operand, scope, contexts, negated != (op == "not"), False)
                return None
            case ast.Binary(left=left, right=right):
                self.walk(left, scope, contexts, negated, False)
                self.walk(right, scope, contexts, negated, False)
                return None
            case ast.Occurs(subject=subject, spec=spec):
                self.walk(subject, scope, contexts, negated, False)
                self._spec(spec, scope, contexts, negated)
                return None
            case ast.Quantifier(bindings=bindings):
                self._bindings(bindings, scope, contexts, negated, claimed)
                return None
            case ast.Select(binding=binding):
                self._bindings((binding,), scope, contexts, negated, claimed)
                return None
            case ast.Aggregate(value=value, binding=binding):
                inner = self._bindings((binding,), scope, contexts, negated, claimed)
                self.walk(value, inner, contexts, negated, False)
                return None
            case ast.Let(name=name, value=value, body=body):
                origin = self.walk(value, scope, contexts, negated, False)
                return self.walk(body, {**scope, name: origin}, contexts, negated, False)
            case ast.Lambda(params=params, body=body):
                self.walk(body, {**scope, **dict.fromkeys(params)}, contexts, negated, False)
                return None
            case ast.Chain():
                self._chain(node, scope, contexts, negated, claimed)
                return None
        return None

    def _call(
        self,
        name: str,
        args: tuple[ast.Expression, ...],
        scope: Mapping[str, Path | None],
        contexts: tuple[Path | None, ...],
        negated: bool,
    ) -> Path | None:
        if name == "inSegment":
            self.found.in_segment = True
            if args and isinstance(args[0], ast.Literal) and isinstance(args[0].value, str):
                self.found.segments.add(args[0].value)
            else:
                self.found.named_segments_only = False
        if name in _CURRENT:
            self.found.time_dependent = True
            self.found.calendar.add(_CURRENT[name])
        for arg in args:
            self.walk(arg, scope, contexts, negated, False)
        return None

    def _method(
        self,
        node: ast.MethodCall,
        scope: Mapping[str, Path | None],
        contexts: tuple[Path | None, ...],
        negated: bool,
        claimed: bool,
    ) -> Path | None:
        origin = self.walk(node.target, scope, contexts, negated, claimed)
        signature = METHODS.get(node.name)
        elements = signature.element_arguments if signature is not None else ()
        for index, arg in enumerate(node.args):
            if index in elements:
                self._element(arg, origin, scope, contexts, negated)
            else:
                self.walk(arg, scope, contexts, negated, False)
        if node.name in _PASS_THROUGH_METHODS:
            return origin
        if node.name == "get" and origin is not None and node.args:
            key = node.args[0]
            if isinstance(key, ast.Literal) and isinstance(key.value, str):
                if len(origin) == 2 and origin[0] == "segmentMembership":
                    self.found.segments.add(key.value)
                return self.record((*origin, key.value))
        return None

    def _element(
        self,
        node: ast.Expression,
        origin: Path | None,
        scope: Mapping[str, Path | None],
        contexts: tuple[Path | None, ...],
        negated: bool,
    ) -> None:
        if isinstance(node, ast.Lambda):
            bound = {**scope, **dict.fromkeys(node.params)}
            if node.params:
                bound[node.params[0]] = origin
            self.walk(node.body, bound, contexts, negated, False)
        else:
            self.walk(node, scope, (*contexts, origin), negated, False)

    def _bindings(
        self,
        bindings: tuple[ast.Binding, ...],
        scope: Mapping[str, Path | None],
        contexts: tuple[Path | None, ...],
        negated: bool,
        claimed: bool,
    ) -> Mapping[str, Path | None]:
        inner = dict(scope)
        for binding in bindings:
            origin = self.walk(binding.source, inner, contexts, negated, claimed)
            inner[binding.name] = origin
            if binding.condition is not None:
                self.walk(binding.condition, inner, contexts, negated, False)
        return inner

    def _spec(
        self,
        spec: ast.OccursSpec,
        scope: Mapping[str, Path | None],
        contexts: tuple[Path | None, ...],
        negated: bool,
    ) -> None:
        match spec:
            case ast.OccursRelative(time=time) | ast.OccursDirection(time=time) | ast.OccursOn(time=time):
                self.walk(time, scope, contexts, negated, False)
            case ast.OccursBetween(start=start, end=end):
                self.walk(start, scope, contexts, negated, False)
                self.walk(end, scope, contexts, negated, False)

    def _chain(
        self,
        node: ast.Chain,
        scope: Mapping[str, Path | None],
        contexts: tuple[Path | None, ...],
        negated: bool,
        claimed: bool,
    ) -> None:
        origin = self.walk(node.source, scope, contexts, negated, claimed)
        if origin is not None:
            self.record(origin + node.time_field)
        inner = dict(scope)
        for step in node.steps:
            for clause in (step.what, step.where):
                if clause is not None:
                    self.walk(clause, inner, (*contexts, origin), negated, False)
            if step.when is not None:
                self._spec(step.when, inner, contexts, negated)
            inner[step.label] = origin


def _context_time(node: ast.Expression) -> bool:
    return isinstance(node, ast.Name) and node.name == _EVENT_TIME


def _variable_time(node: ast.Expression, variable: str) -> bool:
    return (
        isinstance(node, ast.Field)
        and node.name == _EVENT_TIME
        and isinstance(node.target, ast.Name)
        and node.target.name == variable
    )


def _element_window(argument: ast.Expression, found: _Findings) -> timedelta | None:
    if isinstance(argument, ast.Lambda) and argument.params:
        parameter = argument.params[0]
        return _window(argument.body, lambda node: _variable_time(node, parameter), found)
    return _window(argument, _context_time, found)


def _chain_window(steps: tuple[ast.ChainStep, ...], time_field: Path, found: _Findings) -> timedelta | None:
    def is_time(node: ast.Expression) -> bool:
        names: list[str] = []
        while isinstance(node, ast.Field):
            names.append(node.name)
            node = node.target
        if not isinstance(node, ast.Name):
            return False
        return (node.name, *reversed(names)) == time_field

    noted = found if time_field == (_EVENT_TIME,) else None
    windows: list[timedelta | None] = []
    for step in steps:  # every step, for what ``noted`` learns of each
        window = None
        if step.when is not None:
            _note_times(step.when, noted)
            window = _spec_window(step.when)
        window = _both(window, _window(step.what, is_time, noted))
        windows.append(_both(window, _window(step.where, is_time, noted)))
    bounded = [window for window in windows if window is not None]
    return max(bounded) if bounded and len(bounded) == len(windows) else None
