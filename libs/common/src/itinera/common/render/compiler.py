"""Syntax tree to Python closures, and the ``Template`` that runs them.

Compiling resolves what can be resolved once: block parameters and ``@index``-style
variables get slots, helper names and arities are checked, regular expressions are
compiled, fragments are loaded (cycles and depth refused) and compiled in. Rendering
only calls closures over a ``Frame``: the data, the ``let`` variables, the stack of
contexts (``this``), the slots and the output with its counters.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from itinera.common.render import ast
from itinera.common.render.errors import Problem, Source, TemplateError, UndefinedPath
from itinera.common.render.helpers import HELPERS, Helper, like_pattern
from itinera.common.render.parser import parse
from itinera.common.render.values import (
    Escaping,
    arithmetic,
    escaper,
    is_number,
    order,
    same,
    to_text,
    truthy,
)

FragmentLoader = Callable[[str], str | None]
"""Gives a fragment's template text by id, or ``None`` when there is no such fragment."""
Expr = Callable[["Frame"], Any]
Run = Callable[["Frame"], None]

_MISSING: Any = object()
_PLAIN = frozenset({str, int, float, bool, type(None), dict, list, datetime})


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one render, so no template and no data can exhaust memory or time."""

    max_output_chars: int = 1_000_000
    """Output beyond this stops the render; it is also the longest text or list a helper may make."""
    max_iterations: int = 10_000
    """Iterations of every ``each`` of one render, together."""
    max_fragment_depth: int = 4
    """Fragments within fragments, the template's own being depth 1."""
    max_metadata_chars: int = 2048
    """``executionMetadata`` keys and values together, as AJO's 2 KB per action."""


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    undefined_paths: list[UndefinedPath] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "undefinedPaths": [path.as_dict() for path in self.undefined_paths],
            "errors": [problem.as_dict() for problem in self.errors],
            "metadata": dict(self.metadata),
        }


class _Stop(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


class Frame:
    """One render's state."""

    __slots__ = (
        "ctx",
        "errors",
        "iterations",
        "limits",
        "metadata",
        "metadata_size",
        "now",
        "out",
        "rng",
        "root",
        "seed",
        "size",
        "slots",
        "undefined",
        "vars",
    )

    def __init__(
        self, root: dict[str, Any], slots: int, limits: Limits, now: datetime, seed: int | None
    ) -> None:
        self.root = root
        self.vars: dict[str, Any] = {}
        self.ctx: list[Any] = [root]
        self.slots: list[Any] = [None] * slots
        self.out: list[str] = []
        self.size = 0
        self.iterations = 0
        self.limits = limits
        self.undefined: dict[UndefinedPath, None] = {}
        self.errors: dict[Problem, None] = {}
        self.metadata: dict[str, str] = {}
        self.metadata_size = 0
        self.now = now
        self.seed = seed
        self.rng: random.Random | None = None

    def random(self) -> float:
        if self.rng is None:
            self.rng = random.Random(self.seed)
        return self.rng.random()


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled template; ``render`` is safe to call from many threads at once."""

    source: str
    escape: Escaping
    limits: Limits
    reads: frozenset[str]
    """The data paths the template reads by name (``profile.person.name.firstName``...)."""
    _body: Run = field(repr=False)
    _slots: int = field(repr=False)
    _source: Source = field(repr=False)

    def render(
        self, data: Mapping[str, Any] | None = None, *, now: datetime | None = None, seed: int | None = None
    ) -> Rendered:
        """The text for ``data``, with the paths it lacked and the errors met; never raises on the data.

        ``now`` is the moment date helpers see (default: the current time, UTC); ``seed``
        makes ``random()`` repeatable.
        """
        root = data if type(data) is dict else dict(data) if isinstance(data, Mapping) else {}
        moment = datetime.now(UTC) if now is None else now if now.tzinfo else now.replace(tzinfo=UTC)
        frame = Frame(root, self._slots, self.limits, moment, seed)
        try:
            self._body(frame)
        except _Stop as stop:
            frame.errors[stop.problem] = None
        except RecursionError:
            problem = self._source.problem("the data is nested too deeply to render", 0, 0)
            frame.errors[problem] = None
        text = "".join(frame.out)[: self.limits.max_output_chars]
        return Rendered(text, list(frame.undefined), list(frame.errors), frame.metadata)


@dataclass(slots=True)
class _Scope:
    params: dict[str, int] = field(default_factory=dict)
    data: dict[str, int] | None = None
    """``each`` only: the slots of ``index``, ``key``, ``first`` and ``last``."""


def compile_template(
    source: str,
    *,
    fragments: FragmentLoader | None = None,
    escape: Escaping = True,
    limits: Limits | None = None,
) -> Template:
    """Compiles ``source`` once; raises ``TemplateError`` naming every problem found.

    ``fragments`` gives the text of the fragments ``{{fragment id="..."}}`` names; without
    it a template naming a fragment does not compile. ``escape=False`` is for plain-text
    channels (SMS, push): ``{{x}}`` then outputs like ``{{{x}}}``; ``escape="json"`` for
    a text that renders to a JSON document (a webhook's payload): ``{{x}}`` then outputs
    what may sit between the quotes of a JSON string, ``{{{x}}}`` still the raw text.
    """
    given: object = source
    if not isinstance(given, str):
        raise TemplateError([Problem("a template must be text", 1, 1, 0, 0)])
    compiler = _Compiler(fragments, escape, limits or Limits())
    text = Source(source)
    body = compiler.template(text)
    if compiler.problems:
        raise TemplateError(sorted(compiler.problems, key=lambda p: (p.fragment is not None, p.offset)))
    return Template(source, escape, compiler.limits, frozenset(compiler.reads), body, compiler.slots, text)


def _sequence(runs: list[Run]) -> Run:
    if not runs:
        return lambda frame: None
    if len(runs) == 1:
        return runs[0]
    items = tuple(runs)

    def run(frame: Frame) -> None:
        for item in items:
            item(frame)

    return run


def walk(value: Any, segments: tuple[str | int, ...]) -> Any:
    """Keys read from dicts (and every item of a list); ``_MISSING`` when a key is absent.

    Only dict keys and list items are ever read: no attribute of any object is reachable.
    """
    for segment in segments:
        if type(value) is dict:
            value = (
                value.get(segment, _MISSING) if type(segment) is str else value.get(str(segment), _MISSING)
            )
            if value is _MISSING:
                return _MISSING
        elif isinstance(value, dict):
            value = dict.get(value, segment if type(segment) is str else str(segment), _MISSING)
            if value is _MISSING:
                return _MISSING
        elif isinstance(value, list):
            if type(segment) is int:
                if not 0 <= segment < len(value):
                    return _MISSING
                value = value[segment]
                continue
            gathered: list[Any] = []
            for item in value:
                if isinstance(item, dict):
                    found = dict.get(item, segment, _MISSING)
                    if found is _MISSING:
                        continue
                    if isinstance(found, list):
                        gathered.extend(found)
                    else:
                        gathered.append(found)
            value = gathered
        else:
            return _MISSING
    if type(value) in _PLAIN or isinstance(value, dict | list | datetime):
        return value
    return _MISSING


class _Compiler:
    def __init__(self, loader: FragmentLoader | None, escape: Escaping, limits: Limits) -> None:
        self.loader = loader
        self.escape = escape
        self.limits = limits
        self.problems: list[Problem] = []
        self.slots = 0
        self.reads: set[str] = set()
        self.fragment_stack: list[str] = []
        self.fragment_bodies: dict[str, Run | None] = {}
        self.source = Source("")
        self.scopes: list[_Scope] = []

    def slot(self) -> int:
        self.slots += 1
        return self.slots - 1

    def problem(self, message: str, node: ast.Node, construct: str | None = None) -> None:
        self.problems.append(self.source.problem(message, node.start, node.end, construct))

    def template(self, source: Source) -> Run:
        outer_source, outer_scopes = self.source, self.scopes
        self.source, self.scopes = source, []
        try:
            tree, problems = parse(source, HELPERS.__contains__)
            self.problems.extend(problems)
            return self.body(tree.body)
        except RecursionError:
            self.problems.append(source.problem("the template is nested too deeply", 0, len(source.text)))
            return _sequence([])
        finally:
            self.source, self.scopes = outer_source, outer_scopes

    # Statements

    def body(self, statements: tuple[ast.Statement, ...]) -> Run:
        return _sequence([self.statement(statement) for statement in statements])

    def statement(self, node: ast.Statement) -> Run:
        if isinstance(node, ast.Text):
            return self.text(node)
        if isinstance(node, ast.Output):
            return self.output(node)
        if isinstance(node, ast.If):
            return self.if_(node)
        if isinstance(node, ast.Each):
            return self.each(node)
        if isinstance(node, ast.With):
            return self.with_(node)
        if isinstance(node, ast.Let):
            return self.let(node)
        if isinstance(node, ast.Fragment):
            return self.fragment(node)
        return self.metadata(node)

    def overflow(self, node: ast.Node) -> Problem:
        limit = self.limits.max_output_chars
        return self.source.problem(
            f"the output exceeds {limit} characters; rendering stopped", node.start, node.end
        )

    def text(self, node: ast.Text) -> Run:
        text, where, size = node.text, self.overflow(node), len(node.text)

        def run(frame: Frame) -> None:
            frame.out.append(text)
            frame.size += size
            if frame.size > frame.limits.max_output_chars:
                raise _Stop(where)

        return run

    def output(self, node: ast.Output) -> Run:
        value_of = self.expression(node.expression)
        escape = escaper(self.escape) if node.escape else None
        where = self.overflow(node)
        no_text = self.source.problem("a map has no text; output a key of it", node.start, node.end)

        def run(frame: Frame) -> None:
            value = value_of(frame)
            text = value if type(value) is str else to_text(value)
            if text is None:
                frame.errors[no_text] = None
                return
            if escape is not None:
                text = escape(text)
            frame.out.append(text)
            frame.size += len(text)
            if frame.size > frame.limits.max_output_chars:
                raise _Stop(where)

        return run

    def if_(self, node: ast.If) -> Run:
        branches = tuple(
            (self.expression(branch.condition), self.body(branch.body)) for branch in node.branches
        )
        otherwise = self.body(node.otherwise)
        negate = node.negate

        def run(frame: Frame) -> None:
            for condition, body in branches:
                if truthy(condition(frame)) != negate:
                    body(frame)
                    return
            otherwise(frame)

        return run

    def each(self, node: ast.Each) -> Run:
        items_of = self.expression(node.items)
        otherwise = self.body(node.otherwise)
        data = {name: self.slot() for name in ("index", "key", "first", "last")}
        scope = _Scope({name: self.slot() for name in node.params}, data)
        value_slot = scope.params[node.params[0]] if node.params else None
        key_slot = scope.params[node.params[1]] if len(node.params) > 1 else None
        self.scopes.append(scope)
        body = self.body(node.body)
        self.scopes.pop()
        index_slot, key_data, first_slot, last_slot = data["index"], data["key"], data["first"], data["last"]
        limit = self.limits.max_iterations
        too_many = self.source.problem(
            f"more than {limit} iterations; rendering stopped", node.start, node.end, "each"
        )

        def run(frame: Frame) -> None:
            items = items_of(frame)
            if isinstance(items, dict):
                pairs: list[tuple[Any, Any]] = list(items.items())
            elif isinstance(items, list):
                pairs = list(enumerate(items))
            else:
                pairs = []
            if not pairs:
                otherwise(frame)
                return
            slots, ctx = frame.slots, frame.ctx
            last = len(pairs) - 1
            for index, (key, item) in enumerate(pairs):
                frame.iterations += 1
                if frame.iterations > limit:
                    raise _Stop(too_many)
                slots[index_slot] = index
                slots[key_data] = key
                slots[first_slot] = index == 0
                slots[last_slot] = index == last
                if value_slot is not None:
                    slots[value_slot] = item
                if key_slot is not None:
                    slots[key_slot] = key
                ctx.append(item)
                body(frame)
                ctx.pop()

        return run

    def with_(self, node: ast.With) -> Run:
        value_of = self.expression(node.value)
        otherwise = self.body(node.otherwise)
        scope = _Scope({name: self.slot() for name in node.params})
        value_slot = scope.params[node.params[0]] if node.params else None
        self.scopes.append(scope)
        body = self.body(node.body)
        self.scopes.pop()

        def run(frame: Frame) -> None:
            value = value_of(frame)
            if not truthy(value):
                otherwise(frame)
                return
            if value_slot is not None:
                frame.slots[value_slot] = value
            frame.ctx.append(value)
            body(frame)
            frame.ctx.pop()

        return run

    def let(self, node: ast.Let) -> Run:
        name, value_of = node.name, self.expression(node.value)

        def run(frame: Frame) -> None:
            frame.vars[name] = value_of(frame)

        return run

    def metadata(self, node: ast.Metadata) -> Run:
        key, value_of = node.key, self.expression(node.value)
        limit = self.limits.max_metadata_chars
        too_long = self.source.problem(
            f"execution metadata exceeds {limit} characters; the rest is dropped", node.start, node.end
        )

        def run(frame: Frame) -> None:
            text = to_text(value_of(frame)) or ""
            room = limit - frame.metadata_size - len(key)
            if room < len(text):
                frame.errors[too_long] = None
                text = text[: max(room, 0)]
            frame.metadata[key] = text
            frame.metadata_size += len(key) + len(text)

        return run

    def fragment(self, node: ast.Fragment) -> Run:
        body = self.fragment_body(node)
        params = tuple((name, self.expression(value)) for name, value in node.params)
        render = node.render

        def run(frame: Frame) -> None:
            if body is None:
                return
            saved = [(name, frame.vars.get(name, _MISSING)) for name, _ in params]
            for name, value_of in params:
                frame.vars[name] = value_of(frame)
            ctx, frame.ctx = frame.ctx, [frame.root]
            if render:
                body(frame)
            else:
                out, size = frame.out, frame.size
                frame.out = []
                body(frame)
                frame.out, frame.size = out, size
            frame.ctx = ctx
            for name, value in saved:
                if value is _MISSING:
                    frame.vars.pop(name, None)
                else:
                    frame.vars[name] = value

        return run

    def fragment_body(self, node: ast.Fragment) -> Run | None:
        fragment_id = node.id
        if fragment_id in self.fragment_stack:
            chain = " → ".join([*self.fragment_stack[self.fragment_stack.index(fragment_id) :], fragment_id])
            self.problem(f"fragment {fragment_id!r} includes itself: {chain}", node, "fragment")
            return None
        if fragment_id in self.fragment_bodies:
            return self.fragment_bodies[fragment_id]
        if len(self.fragment_stack) + 1 >= self.limits.max_fragment_depth:
            self.problem(
                f"fragments are nested more than {self.limits.max_fragment_depth - 1} deep", node, "fragment"
            )
            return None
        text: str | None = None
        if self.loader is None:
            self.problem("this template cannot include fragments (no fragment loader)", node, "fragment")
            return None
        try:
            text = self.loader(fragment_id)
        except Exception as error:  # the loader is the caller's code; its failure is a problem of this tag
            self.problem(f"fragment {fragment_id!r} could not be loaded: {error}", node, "fragment")
            return None
        if not isinstance(text, str):
            self.problem(f"unknown fragment {fragment_id!r}", node, "fragment")
            return None
        self.fragment_stack.append(fragment_id)
        try:
            body = self.template(Source(text, fragment_id))
        finally:
            self.fragment_stack.pop()
        self.fragment_bodies[fragment_id] = body
        return body

    # Expressions

    def expression(self, node: ast.Expression) -> Expr:
        if isinstance(node, ast.Literal):
            value = node.value
            return lambda frame: value
        if isinstance(node, ast.Path):
            return self.path(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Binary):
            return self.binary(node)
        if isinstance(node, ast.Default):
            value_of, fallback = self.expression(node.value), self.expression(node.fallback)

            def default(frame: Frame) -> Any:
                value = value_of(frame)
                return fallback(frame) if value is None or value == "" else value

            return default
        if isinstance(node, ast.Negate):
            operand = self.expression(node.operand)

            def negate(frame: Frame) -> Any:
                value = operand(frame)
                return -value if is_number(value) else None

            return negate
        if isinstance(node, ast.ListExpr):
            items = tuple(self.expression(item) for item in node.items)
            return lambda frame: [item(frame) for item in items]
        target, segments = self.expression(node.target), node.segments

        def member(frame: Frame) -> Any:
            value = walk(target(frame), segments)
            return None if value is _MISSING else value

        return member

    def path_text(self, node: ast.Path) -> str:
        head = {"name": node.name, "this": "this", "root": "@root", "data": f"@{node.name}"}[node.kind]
        if node.kind == "this" and node.up:
            head = "../" * node.up
            parts = [str(segment) for segment in node.segments]
            return head + ".".join(parts) if parts else head + "this"
        return ".".join([head, *(str(segment) for segment in node.segments)])

    def path(self, node: ast.Path) -> Expr:
        segments = node.segments
        missing = self.source.undefined(self.path_text(node), node.start, node.end)

        def finish(value: Any, frame: Frame) -> Any:
            if segments:
                value = walk(value, segments)
            if value is _MISSING or value is None:
                frame.undefined[missing] = None
                return None
            return value

        if node.kind == "data":
            for scope in reversed(self.scopes):
                if scope.data is not None:
                    break
            else:
                self.problem(f"@{node.name} is only defined inside #each", node)
                return lambda frame: None
            if node.name not in scope.data:
                self.problem(
                    f"unknown data variable @{node.name}; there are @index, @key, @first and @last", node
                )
                return lambda frame: None
            data_slot = scope.data[node.name]
            return lambda frame: finish(frame.slots[data_slot], frame)
        if node.kind == "root":
            return lambda frame: finish(frame.root, frame)
        if node.kind == "this":
            up = node.up

            def this(frame: Frame) -> Any:
                ctx = frame.ctx
                return finish(ctx[-1 - up] if up < len(ctx) else frame.root, frame)

            return this
        name = node.name
        for scope in reversed(self.scopes):
            if name in scope.params:
                param_slot = scope.params[name]
                return lambda frame: finish(frame.slots[param_slot], frame)
        self.reads.add(".".join([name, *(str(segment) for segment in segments)]))

        def lookup(frame: Frame) -> Any:
            value = frame.vars.get(name, _MISSING)
            if value is _MISSING:
                ctx = frame.ctx[-1]
                if ctx is not frame.root and isinstance(ctx, dict) and name in ctx:
                    value = dict.get(ctx, name)
                else:
                    value = dict.get(frame.root, name, _MISSING)
            return finish(value, frame)

        return lookup

    def binary(self, node: ast.Binary) -> Expr:
        left, right, op = self.expression(node.left), self.expression(node.right), node.op
        if op == "and":
            return lambda frame: truthy(left(frame)) and truthy(right(frame))
        if op == "or":
            return lambda frame: truthy(left(frame)) or truthy(right(frame))
        if op == "=":
            return lambda frame: same(left(frame), right(frame))
        if op == "!=":

            def differs(frame: Frame) -> bool:
                first, second = left(frame), right(frame)
                return first is not None and second is not None and not same(first, second)

            return differs
        if op in ("<", "<=", ">", ">="):
            accept = {"<": (-1,), "<=": (-1, 0), ">": (1,), ">=": (1, 0)}[op]
            return lambda frame: order(left(frame), right(frame)) in accept
        return lambda frame: arithmetic(op, left(frame), right(frame))

    def call(self, node: ast.Call) -> Expr:
        name = node.name
        helper = HELPERS.get(name)
        at_name = ast.Literal(node.start, node.name_end, None)
        if helper is None:
            hint = (
                "; AJO's personalization has no now(), use getCurrentZonedDateTime()" if name == "now" else ""
            )
            self.problem(f"unknown helper {name!r}{hint}", at_name, "helper")
            return lambda frame: None
        count = len(node.args)
        if not helper.minimum <= count <= helper.maximum:
            wanted = (
                str(helper.minimum)
                if helper.minimum == helper.maximum
                else f"{helper.minimum} to {helper.maximum}"
            )
            self.problem(f"{name} takes {wanted} arguments, not {count}", node, "helper")
            return lambda frame: None
        args: list[Expr] = []
        for index, arg in enumerate(node.args):
            if index == helper.pattern:
                args.append(self.pattern(name, arg))
            elif index == helper.item_path:
                args.append(self.item_path(name, arg))
            else:
                args.append(self.expression(arg))
        return self.invoke(node, helper, tuple(args))

    def pattern(self, name: str, arg: ast.Expression) -> Expr:
        if not (isinstance(arg, ast.Literal) and isinstance(arg.value, str)):
            self.problem(f"the pattern of {name} must be a string literal", arg, "helper")
            return lambda frame: None
        try:
            compiled = like_pattern(arg.value) if name == "like" else re.compile(arg.value)
        except re.error as error:
            self.problem(f"invalid regular expression: {error}", arg, "helper")
            return lambda frame: None
        return lambda frame: compiled

    def item_path(self, name: str, arg: ast.Expression) -> Expr:
        if isinstance(arg, ast.Path) and arg.kind == "name":
            path = (arg.name, *(str(segment) for segment in arg.segments))
        elif isinstance(arg, ast.Literal) and isinstance(arg.value, str) and arg.value:
            path = tuple(arg.value.split("."))
        else:
            self.problem(f'the second argument of {name} names a key of the items (price, or "price")', arg)
            return lambda frame: None
        return lambda frame: path

    def invoke(self, node: ast.Call, helper: Helper, args: tuple[Expr, ...]) -> Expr:
        fn, env, limit = helper.fn, helper.env, self.limits.max_output_chars
        too_big = self.source.problem(
            f"{node.name} made a value longer than {limit}; rendering stopped", node.start, node.end, "helper"
        )
        failed = self.source.problem(f"{node.name} failed", node.start, node.end, "helper")

        def call(frame: Frame) -> Any:
            values = [arg(frame) for arg in args]
            try:
                result = fn(frame, *values) if env else fn(*values)
            except Exception:  # a helper must never end a render; the call gives null and is reported
                frame.errors[failed] = None
                return None
            if isinstance(result, str | list) and len(result) > limit:
                raise _Stop(too_big)
            return result

        return call
