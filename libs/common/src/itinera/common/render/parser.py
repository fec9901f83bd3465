"""Template text to syntax tree: tags, expressions and blocks, with positioned problems.

A template is text with tags. ``{{...}}`` outputs an expression HTML-escaped,
``{{{...}}}`` outputs it raw, ``{{#name ...}}``/``{{else}}``/``{{/name}}`` delimit
blocks, ``{{!-- --}}`` and ``{{! }}`` are comments. The ``{%...%}`` forms of AJO's
expression language do the same: ``{%= expression %}`` outputs (escaped),
``{%#if ...%}``/``{%else if ...%}``/``{%else%}``/``{%/if%}`` delimit blocks and
``{% let name = expression %}`` assigns. ``\\{{`` is a literal ``{{``; ``~`` inside a
``{{`` tag's braces trims the whitespace on that side.

Expressions are one language for both forms: literals, paths, ``[lists]``,
``helper(a, b)``, ``value.helper(b)``, Handlebars' ``helper a b`` and ``(helper a b)``,
``= != < <= > >=``, ``+ - * / %``, ``and``, ``or`` and ``?:``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from itinera.common.render import ast
from itinera.common.render.errors import Problem, Source

MAX_NESTING = 100
"""Blocks and parentheses deeper than this are refused rather than risking recursion limits."""

BLOCKS = ("if", "unless", "each", "with")
_KEYWORDS = {"and", "or", "true", "false", "null", "undefined"}
_OPENERS = re.compile(r"\\\{\{|\{\{|\{%")
_NAME = re.compile(r"[^\s!\"#%&'()*+,./;<=>@\[\\\]^`{|}~?:\-]+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[lL]?", re.ASCII)
"""Numbers are written in ASCII digits; other digits (``²``, ``٣``) are name characters."""
_SPACE = re.compile(r"\s+")
_OPERATORS = ("?:", "!=", "<=", ">=", "==", "=", "<", ">", "+", "-", "*", "/", "%")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class _Fail(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


@dataclass(slots=True)
class _Tag:
    kind: str  # "mustache", "raw", "expr", "stmt", "comment"
    start: int
    end: int
    body_start: int
    body_end: int
    trim_before: bool = False
    trim_after: bool = False


@dataclass(slots=True)
class _Token:
    type: str  # str num name qname data up ( ) [ ] , . | op eof
    value: str
    start: int
    end: int
    spaced: bool


def unescape(body: str) -> str:
    """A string literal's value: JSON escapes, ``\\'``; an unknown escape keeps its backslash."""
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
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _scan_tags(source: Source, problems: list[Problem]) -> list[str | _Tag]:
    text = source.text
    pieces: list[str | _Tag] = []
    pos = 0
    while True:
        match = _OPENERS.search(text, pos)
        if match is None:
            pieces.append(text[pos:])
            return pieces
        start = match.start()
        opener = match.group()
        if opener == "\\{{":
            pieces.append(text[pos:start] + "{{")
            pos = start + 3
            continue
        pieces.append(text[pos:start])
        tag = _read_tag(source, start, opener)
        if tag is None:
            problems.append(source.problem(f"this {opener} is never closed", start, start + 2))
            return pieces
        pieces.append(tag)
        pos = tag.end


def _find_close(text: str, pos: int, closer: str) -> int:
    """Where ``closer`` starts, skipping quoted strings; -1 when there is none."""
    quote = ""
    i = pos
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 2
                continue
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif text.startswith(closer, i):
            return i
        i += 1
    return -1


def _read_tag(source: Source, start: int, opener: str) -> _Tag | None:
    text = source.text
    if opener == "{%":
        close = _find_close(text, start + 2, "%}")
        if close < 0:
            return None
        if text.startswith("=", start + 2):
            return _Tag("expr", start, close + 2, start + 3, close)
        return _Tag("stmt", start, close + 2, start + 2, close)
    if text.startswith("{{!--", start):
        close = text.find("--}}", start + 5)
        return None if close < 0 else _Tag("comment", start, close + 4, start, start)
    if text.startswith("{{!", start):
        close = text.find("}}", start + 3)
        return None if close < 0 else _Tag("comment", start, close + 2, start, start)
    raw = text.startswith("{{{", start)
    body_start = start + (3 if raw else 2)
    trim_before = text.startswith("~", body_start)
    if trim_before:
        body_start += 1
    closer = "}}}" if raw else "}}"
    close = _find_close(text, body_start, closer)
    if close < 0:
        return None
    body_end = close
    trim_after = close > body_start and text[close - 1] == "~"
    if trim_after:
        body_end -= 1
    return _Tag(
        "raw" if raw else "mustache",
        start,
        close + len(closer),
        body_start,
        body_end,
        trim_before,
        trim_after,
    )


def _tokenize(source: Source, start: int, end: int) -> list[_Token]:
    text = source.text
    tokens: list[_Token] = []
    pos = start
    spaced = True
    while pos < end:
        space = _SPACE.match(text, pos, end)
        if space:
            pos = space.end()
            spaced = True
            continue
        char = text[pos]
        previous = tokens[-1].type if tokens else ""
        if char in "\"'":
            close = _string_end(text, pos, end)
            if close < 0:
                raise _Fail(source.problem("this string is never closed", pos, end))
            tokens.append(_Token("str", unescape(text[pos + 1 : close]), pos, close + 1, spaced))
            pos = close + 1
        elif char == "`":
            close = text.find("`", pos + 1, end)
            if close < 0:
                raise _Fail(source.problem("this ` is never closed", pos, end))
            tokens.append(_Token("qname", text[pos + 1 : close], pos, close + 1, spaced))
            pos = close + 1
        elif char == "[" and previous == ".":
            close = text.find("]", pos + 1, end)
            if close < 0:
                raise _Fail(source.problem("this [ is never closed", pos, end))
            tokens.append(_Token("qname", text[pos + 1 : close], pos, close + 1, spaced))
            pos = close + 1
        elif char == "@":
            name = _NAME.match(text, pos + 1, end)
            if name is None:
                raise _Fail(source.problem("expected a name after @", pos, pos + 1))
            tokens.append(_Token("data", name.group(), pos, name.end(), spaced))
            pos = name.end()
        elif text.startswith("../", pos):
            tokens.append(_Token("up", "../", pos, pos + 3, spaced))
            pos += 3
        elif "0" <= char <= "9":
            number = _NUMBER.match(text, pos, end)
            assert number is not None
            tokens.append(_Token("num", number.group(), pos, number.end(), spaced))
            pos = number.end()
        elif char in "()[],.|":
            tokens.append(_Token(char, char, pos, pos + 1, spaced))
            pos += 1
        else:
            for op in _OPERATORS:
                if text.startswith(op, pos) and pos + len(op) <= end:
                    tokens.append(_Token("op", "=" if op == "==" else op, pos, pos + len(op), spaced))
                    pos += len(op)
                    break
            else:
                name = _NAME.match(text, pos, end)
                if name is None:
                    raise _Fail(source.problem(f"unexpected character {char!r}", pos, pos + 1))
                tokens.append(_Token("name", name.group(), pos, name.end(), spaced))
                pos = name.end()
        spaced = False
    tokens.append(_Token("eof", "", end, end, True))
    return tokens


def _string_end(text: str, pos: int, end: int) -> int:
    quote = text[pos]
    i = pos + 1
    while i < end:
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i
        i += 1
    return -1


_ARGUMENT_STARTS = {"str", "num", "name", "qname", "data", "up", "[", "("}
_COMPARISONS = {"=", "!=", "<", "<=", ">", ">="}


class _Expressions:
    """A recursive-descent parser over one tag's tokens."""

    def __init__(self, source: Source, tokens: list[_Token], is_helper: Callable[[str], bool]) -> None:
        self.source = source
        self.tokens = tokens
        self.i = 0
        self.depth = 0
        self.is_helper = is_helper

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> _Token:
        token = self.tokens[self.i]
        if self.i < len(self.tokens) - 1:
            self.i += 1
        return token

    def fail(self, message: str, token: _Token | None = None) -> _Fail:
        token = token or self.tok
        what = "the end of the tag" if token.type == "eof" else repr(token.value)
        return _Fail(
            self.source.problem(message.replace("{found}", what), token.start, max(token.end, token.start))
        )

    def expect(self, type_: str, what: str) -> _Token:
        if self.tok.type != type_:
            raise self.fail(f"expected {what}, found {{found}}")
        return self.next()

    def at_op(self, *ops: str) -> bool:
        return self.tok.type == "op" and self.tok.value in ops

    def at_word(self, word: str) -> bool:
        return self.tok.type == "name" and self.tok.value == word

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail("the expression is nested too deeply")

    # Handlebars calls: ``helper a b`` where the head is a bare name followed by arguments.

    def starts_call(self) -> bool:
        head, nxt = self.tok, self.peek()
        if head.type != "name" or head.value in _KEYWORDS or head.value == "this":
            return False
        if nxt.type not in _ARGUMENT_STARTS or nxt.type == "(":
            return False
        if nxt.type == "name" and nxt.value in ("and", "or"):
            return False
        return not (nxt.type == "name" and nxt.value == "as" and self.peek(2).type == "|")

    def top(self) -> ast.Expression:
        """An expression, or a Handlebars call ``helper arg...``."""
        if not self.starts_call():
            return self.expression()
        head = self.next()
        if not self.is_helper(head.value):
            raise self.fail(f"unknown helper {head.value!r}", head)
        args: list[ast.Expression] = []
        while self.tok.type in _ARGUMENT_STARTS and not (self.at_word("as") and self.peek().type == "|"):
            if self.tok.type == "name" and self.peek().type == "op" and self.peek().value == "=":
                raise self.fail(f"{head.value} takes no named arguments ({self.tok.value}=...)")
            args.append(self.unary())
        end = args[-1].end if args else head.end
        return ast.Call(head.start, end, head.value, tuple(args), head.end)

    def expression(self) -> ast.Expression:
        self.enter()
        value = self.disjunction()
        if self.at_op("?:"):
            self.next()
            fallback = self.expression()
            value = ast.Default(value.start, fallback.end, value, fallback)
        self.depth -= 1
        return value

    def disjunction(self) -> ast.Expression:
        left = self.conjunction()
        while self.at_word("or"):
            self.next()
            right = self.conjunction()
            left = ast.Binary(left.start, right.end, "or", left, right)
        return left

    def conjunction(self) -> ast.Expression:
        left = self.comparison()
        while self.at_word("and"):
            self.next()
            right = self.comparison()
            left = ast.Binary(left.start, right.end, "and", left, right)
        return left

    def comparison(self) -> ast.Expression:
        left = self.additive()
        if self.tok.type == "op" and self.tok.value in _COMPARISONS:
            op = self.next().value
            right = self.additive()
            left = ast.Binary(left.start, right.end, op, left, right)  # type: ignore[arg-type]
            if self.tok.type == "op" and self.tok.value in _COMPARISONS:
                raise self.fail("comparisons do not chain; use and")
        return left

    def additive(self) -> ast.Expression:
        left = self.multiplicative()
        while self.at_op("+", "-"):
            op = self.next().value
            right = self.multiplicative()
            left = ast.Binary(left.start, right.end, op, left, right)  # type: ignore[arg-type]
        return left

    def multiplicative(self) -> ast.Expression:
        left = self.unary()
        while self.at_op("*", "/", "%"):
            op = self.next().value
            right = self.unary()
            left = ast.Binary(left.start, right.end, op, left, right)  # type: ignore[arg-type]
        return left

    def unary(self) -> ast.Expression:
        if self.at_op("-"):
            minus = self.next()
            self.enter()
            operand = self.unary()
            self.depth -= 1
            if isinstance(operand, ast.Literal) and type(operand.value) in (int, float):
                return ast.Literal(minus.start, operand.end, -operand.value)  # type: ignore[operator]
            return ast.Negate(minus.start, operand.end, operand)
        return self.postfix(self.primary())

    def postfix(self, value: ast.Expression) -> ast.Expression:
        while self.tok.type == ".":
            dot = self.next()
            token = self.tok
            if token.type in ("name", "qname", "num") and self.peek().type == "(" and not self.peek().spaced:
                if token.type != "name":
                    raise self.fail("expected a helper name", token)
                self.next()
                args = self.arguments()
                value = ast.Call(
                    value.start, self.tokens[self.i - 1].end, token.value, (value, *args), token.end
                )
                continue
            segment = self.segment(dot)
            if isinstance(value, ast.Path):
                value = ast.Path(
                    value.start, token.end, value.kind, value.name, (*value.segments, segment), value.up, ""
                )
            elif isinstance(value, ast.Member):
                value = ast.Member(value.start, token.end, value.target, (*value.segments, segment))
            else:
                value = ast.Member(value.start, token.end, value, (segment,))
        return value

    def segment(self, dot: _Token) -> str | int:
        token = self.tok
        if token.type == "num" and token.value.isdigit():
            self.next()
            return int(token.value)
        if token.type in ("name", "qname"):
            self.next()
            return int(token.value) if token.value.isdigit() else token.value
        raise self.fail("expected a name after '.', found {found}")

    def arguments(self) -> tuple[ast.Expression, ...]:
        self.expect("(", "'('")
        args: list[ast.Expression] = []
        if self.tok.type != ")":
            while True:
                self.enter()
                args.append(self.top())
                self.depth -= 1
                if self.tok.type == ",":
                    self.next()
                    continue
                break
        self.expect(")", "',' or ')'")
        return tuple(args)

    def primary(self) -> ast.Expression:
        token = self.tok
        if token.type == "str":
            self.next()
            return ast.Literal(token.start, token.end, token.value)
        if token.type == "num":
            self.next()
            text = token.value.rstrip("lL")
            if any(c in text for c in ".eE"):
                number = float(text)
                if number != number or number in (float("inf"), float("-inf")):
                    raise self.fail(f"number {text} is out of range", token)
                return ast.Literal(token.start, token.end, number)
            return ast.Literal(token.start, token.end, int(text))
        if token.type == "[":
            self.next()
            items: list[ast.Expression] = []
            if self.tok.type != "]":
                while True:
                    self.enter()
                    items.append(self.expression())
                    self.depth -= 1
                    if self.tok.type == ",":
                        self.next()
                        continue
                    break
            close = self.expect("]", "',' or ']'")
            return ast.ListExpr(token.start, close.end, tuple(items))
        if token.type == "(":
            self.next()
            self.enter()
            inner = self.top()
            self.depth -= 1
            self.expect(")", "')'")
            return inner
        if token.type == "name" and token.value in ("true", "false"):
            self.next()
            return ast.Literal(token.start, token.end, token.value == "true")
        if token.type == "name" and token.value in ("null", "undefined"):
            self.next()
            return ast.Literal(token.start, token.end, None)
        if token.type == "name" and self.peek().type == "(":
            self.next()
            if token.value in ("and", "or"):
                raise self.fail(f"{token.value} is an operator", token)
            args = self.arguments()
            return ast.Call(token.start, self.tokens[self.i - 1].end, token.value, args, token.end)
        return self.path()

    def path(self) -> ast.Expression:
        token = self.tok
        if token.type == "data":
            self.next()
            if token.value == "root":
                return ast.Path(token.start, token.end, "root", "@root", ())
            return ast.Path(token.start, token.end, "data", token.value, ())
        up = 0
        while self.tok.type == "up":
            self.next()
            up += 1
        token = self.tok
        if token.type == "." and (self.peek().type in ("eof", ")", "|") or self.peek().spaced):
            self.next()
            return ast.Path(token.start, token.end, "this", "this", (), up)
        if token.type == "name" and token.value == "this":
            self.next()
            return ast.Path(token.start, token.end, "this", "this", (), up)
        if (
            token.type in ("name", "qname") and token.value not in _KEYWORDS | {"as"}
        ) or token.type == "qname":
            self.next()
            if up:
                return ast.Path(token.start, token.end, "this", "this", (token.value,), up)
            return ast.Path(token.start, token.end, "name", token.value, ())
        raise self.fail("expected a value, found {found}")


@dataclass
class _Open:
    kind: str
    tag: _Tag
    params: tuple[str, ...] = ()
    value: ast.Expression | None = None
    branches: list[ast.Branch] = field(default_factory=list)
    body: list[ast.Statement] = field(default_factory=list)
    otherwise: list[ast.Statement] | None = None
    chained: int = 0


class _Builder:
    def __init__(self, source: Source, is_helper: Callable[[str], bool]) -> None:
        self.source = source
        self.is_helper = is_helper
        self.problems: list[Problem] = []
        self.root: list[ast.Statement] = []
        self.stack: list[_Open] = []

    @property
    def out(self) -> list[ast.Statement]:
        if not self.stack:
            return self.root
        top = self.stack[-1]
        return top.body if top.otherwise is None else top.otherwise

    def tag(self, tag: _Tag) -> None:
        text = self.source.text
        body = text[tag.body_start : tag.body_end]
        stripped = body.lstrip()
        offset = tag.body_start + len(body) - len(stripped)
        try:
            if tag.kind in ("raw", "expr"):
                self.out.append(
                    ast.Output(tag.start, tag.end, self.parse_expr(tag, offset), tag.kind == "expr")
                )
            elif stripped.startswith("#"):
                self.open(tag, offset + 1)
            elif stripped.startswith("/"):
                self.close(tag, offset + 1)
            elif re.match(r"else(\s|$)", stripped):
                self.otherwise(tag, offset + 4)
            elif stripped.startswith((">", "^")):
                what = "partials" if stripped[0] == ">" else "inverse sections"
                raise _Fail(
                    self.source.problem(f"{what} are not supported; use fragments", tag.start, tag.end)
                )
            elif tag.kind == "stmt":
                self.let(tag, offset)
            else:
                self.mustache(tag, offset)
        except _Fail as failure:
            self.problems.append(failure.problem)
        except RecursionError:
            self.problems.append(self.source.problem("the tag is nested too deeply", tag.start, tag.end))

    def parser(self, start: int, end: int) -> _Expressions:
        return _Expressions(self.source, _tokenize(self.source, start, end), self.is_helper)

    def parse_expr(self, tag: _Tag, start: int) -> ast.Expression:
        parser = self.parser(start, tag.body_end)
        if parser.tok.type == "eof":
            raise parser.fail("expected an expression, found {found}")
        value = parser.top()
        if parser.tok.type != "eof":
            raise parser.fail("unexpected {found}")
        return value

    def mustache(self, tag: _Tag, start: int) -> None:
        parser = self.parser(start, tag.body_end)
        head = parser.tok
        if (
            head.type == "name"
            and head.value in ("fragment", "executionMetadata")
            and parser.peek().type == "name"
        ):
            parser.next()
            named = self.named_arguments(parser, head)
            if head.value == "fragment":
                self.out.append(self.fragment(tag, head, named))
            else:
                self.out.append(self.metadata(tag, head, named))
            return
        self.out.append(ast.Output(tag.start, tag.end, self.parse_expr(tag, start), True))

    def named_arguments(self, parser: _Expressions, head: _Token) -> dict[str, tuple[_Token, ast.Expression]]:
        named: dict[str, tuple[_Token, ast.Expression]] = {}
        while parser.tok.type != "eof":
            name = parser.expect("name", "name=value")
            if not (parser.at_op("=")):
                raise parser.fail(
                    f"{head.value} takes name=value arguments; expected '=' after {name.value!r}"
                )
            parser.next()
            if name.value in named:
                raise parser.fail(f"{name.value} is given twice", name)
            named[name.value] = (name, parser.unary())
        return named

    def fragment(
        self, tag: _Tag, head: _Token, named: dict[str, tuple[_Token, ast.Expression]]
    ) -> ast.Fragment:
        if "id" not in named:
            raise _Fail(self.source.problem('a fragment needs id="..."', tag.start, tag.end, "fragment"))
        _, id_value = named.pop("id")
        if not (isinstance(id_value, ast.Literal) and isinstance(id_value.value, str)):
            raise _Fail(
                self.source.problem(
                    "a fragment id must be a string literal", id_value.start, id_value.end, "fragment"
                )
            )
        render = True
        if "mode" in named:
            _, mode = named.pop("mode")
            if not (isinstance(mode, ast.Literal) and mode.value == "inline"):
                raise _Fail(self.source.problem('the only fragment mode is "inline"', mode.start, mode.end))
        if "render" in named:
            _, flag = named.pop("render")
            if not (isinstance(flag, ast.Literal) and isinstance(flag.value, bool)):
                raise _Fail(self.source.problem("render takes true or false", flag.start, flag.end))
            render = flag.value
        params = tuple((name, value) for name, (_, value) in named.items())
        return ast.Fragment(tag.start, tag.end, id_value.value, render, params)

    def metadata(
        self, tag: _Tag, head: _Token, named: dict[str, tuple[_Token, ast.Expression]]
    ) -> ast.Metadata:
        if set(named) != {"key", "value"}:
            raise _Fail(
                self.source.problem('executionMetadata takes key="..." and value=...', tag.start, tag.end)
            )
        key = named["key"][1]
        if not (isinstance(key, ast.Literal) and isinstance(key.value, str)):
            raise _Fail(self.source.problem("the metadata key must be a string literal", key.start, key.end))
        return ast.Metadata(tag.start, tag.end, key.value, named["value"][1])

    def let(self, tag: _Tag, start: int) -> None:
        parser = self.parser(start, tag.body_end)
        if not parser.at_word("let"):
            raise parser.fail("expected let, #if, #unless, else or a closing tag in {% %}, found {found}")
        parser.next()
        name = parser.expect("name", "a variable name")
        if name.value in _KEYWORDS or name.value in ("this", "let", "as"):
            raise parser.fail(f"{name.value} cannot be a variable name", name)
        if not parser.at_op("="):
            raise parser.fail("expected '=' after the variable name, found {found}")
        parser.next()
        value = parser.top()
        if parser.tok.type != "eof":
            raise parser.fail("unexpected {found}")
        self.out.append(ast.Let(tag.start, tag.end, name.value, value))

    def open(self, tag: _Tag, start: int) -> None:
        parser = self.parser(start, tag.body_end)
        head = parser.tok
        if head.type != "name":
            raise parser.fail("expected a block name, found {found}")
        if head.value not in BLOCKS:
            known = "if, unless, each or with"
            self.stack.append(_Open(head.value, tag, (), ast.Literal(tag.start, tag.end, None)))
            raise parser.fail(f"unknown block helper {head.value!r}; blocks are {known}", head)
        if len(self.stack) >= MAX_NESTING:
            raise parser.fail("blocks are nested too deeply", head)
        parser.next()
        try:
            self.stack.append(self.block(parser, head, tag))
        except _Fail:
            # The block still opens, so its closing tag is not a second problem.
            self.stack.append(_Open(head.value, tag, (), ast.Literal(tag.start, tag.end, None)))
            raise

    def block(self, parser: _Expressions, head: _Token, tag: _Tag) -> _Open:
        if parser.tok.type == "eof":
            raise parser.fail(f"#{head.value} needs a value")
        value = parser.top()
        params: tuple[str, ...] = ()
        if parser.at_word("as"):
            if head.value not in ("each", "with"):
                raise parser.fail(f"#{head.value} takes no block parameters")
            parser.next()
            parser.expect("|", "'|'")
            names: list[str] = []
            while parser.tok.type == "name":
                names.append(parser.next().value)
            parser.expect("|", "a name or '|'")
            if not names or len(names) > (2 if head.value == "each" else 1):
                raise parser.fail(
                    f"#{head.value} names {'one or two' if head.value == 'each' else 'one'} parameters"
                )
            params = tuple(names)
        if parser.tok.type != "eof":
            raise parser.fail("unexpected {found}")
        return _Open(head.value, tag, params, value)

    def otherwise(self, tag: _Tag, start: int) -> None:
        if not self.stack:
            raise _Fail(self.source.problem("else outside a block", tag.start, tag.end))
        top = self.stack[-1]
        parser = self.parser(start, tag.body_end)
        if parser.tok.type == "eof":
            if top.otherwise is not None:
                raise _Fail(self.source.problem(f"#{top.kind} already has an else", tag.start, tag.end))
            self.finish_branch(top, tag)
            top.otherwise = []
            return
        if not parser.at_word("if") or top.kind not in ("if", "unless"):
            raise parser.fail("expected {{else}} or {{else if ...}}, found {found}")
        if top.otherwise is not None:
            raise _Fail(self.source.problem(f"#{top.kind} already has an else", tag.start, tag.end))
        parser.next()
        if parser.tok.type == "eof":
            raise parser.fail("else if needs a condition")
        value = parser.top()
        if parser.tok.type != "eof":
            raise parser.fail("unexpected {found}")
        if top.kind == "unless":
            # ``{{#unless a}}x{{else if b}}y{{/unless}}``: the else part is an ``if`` block.
            self.finish_branch(top, tag)
            top.otherwise = []
            top.chained += 1
            self.stack.append(_Open("if", tag, (), value, chained=-1))
            return
        self.finish_branch(top, tag)
        top.value = value
        top.tag = tag

    def finish_branch(self, top: _Open, tag: _Tag) -> None:
        if top.kind in ("if", "unless") and top.value is not None:
            top.branches.append(ast.Branch(top.tag.start, tag.start, top.value, tuple(top.body)))
            top.body = []
            top.value = None

    def close(self, tag: _Tag, start: int) -> None:
        parser = self.parser(start, tag.body_end)
        name = parser.expect("name", "the block name")
        if parser.tok.type != "eof":
            raise parser.fail("unexpected {found}")
        if not self.stack:
            raise _Fail(self.source.problem(f"/{name.value} closes no block", tag.start, tag.end))
        while True:
            top = self.stack[-1]
            if top.kind != name.value and not (top.chained == -1 and name.value == self.stack[-2].kind):
                raise _Fail(
                    self.source.problem(
                        f"/{name.value} closes #{top.kind}, opened at line {self.line(top)}",
                        tag.start,
                        tag.end,
                    )
                )
            self.stack.pop()
            node = self.node(top, tag)
            self.out.append(node)
            if top.chained != -1:
                return

    def line(self, top: _Open) -> int:
        return self.source.position(top.tag.start)[0]

    def node(self, top: _Open, tag: _Tag) -> ast.Statement:
        start = top.tag.start
        if top.kind in ("if", "unless"):
            self.finish_branch(top, tag)
            otherwise = tuple(top.otherwise or ())
            if top.chained == -1 and top.branches:
                start = top.branches[0].start
            return ast.If(start, tag.end, tuple(top.branches), otherwise, top.kind == "unless")
        assert top.value is not None
        body = tuple(top.body)
        otherwise = tuple(top.otherwise or ())
        if top.kind == "each":
            return ast.Each(start, tag.end, top.value, top.params, body, otherwise)
        return ast.With(start, tag.end, top.value, top.params, body, otherwise)


def parse(source: Source, is_helper: Callable[[str], bool]) -> tuple[ast.Template, list[Problem]]:
    """The tree of a template and every problem found; the tree is only usable without problems."""
    problems: list[Problem] = []
    pieces = _scan_tags(source, problems)
    for i, piece in enumerate(pieces):
        if isinstance(piece, _Tag):
            if piece.trim_before and i > 0 and isinstance(pieces[i - 1], str):
                pieces[i - 1] = str(pieces[i - 1]).rstrip()
            if piece.trim_after and i + 1 < len(pieces) and isinstance(pieces[i + 1], str):
                pieces[i + 1] = str(pieces[i + 1]).lstrip()
    builder = _Builder(source, is_helper)
    builder.problems = problems
    position = 0
    for piece in pieces:
        if isinstance(piece, str):
            if piece:
                builder.out.append(ast.Text(position, position + len(piece), piece))
                position += len(piece)
            continue
        position = piece.end
        if piece.kind != "comment":
            builder.tag(piece)
    for top in reversed(builder.stack):
        if top.chained == -1:
            continue
        problems.append(source.problem(f"#{top.kind} is never closed", top.tag.start, top.tag.end))
    problems.sort(key=lambda problem: problem.offset)
    return ast.Template(tuple(builder.root)), problems
