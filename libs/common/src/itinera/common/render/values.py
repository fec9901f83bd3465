"""How template values behave: truth, equality, ordering, arithmetic and text.

Values are what the data holds (``None``, booleans, numbers, text, lists, dicts) and
the ``datetime`` values of the date helpers. Nothing here raises on any of them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from itinera.common.render.dates import as_datetime, iso

INT_LIMIT = 2**63
"""Integers beyond 64 bits are overflow, as in AJO's Java arithmetic: they give null."""

_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;", "`": "&#x60;", "=": "&#x3D;"}
)


_SPECIAL = re.compile(r"[&<>\"'`=]")


def escape_html(text: str) -> str:
    """Text safe inside HTML elements and quoted attributes (Handlebars escapes the same set)."""
    return text.translate(_ESCAPES) if _SPECIAL.search(text) else text


Escaping = bool | Literal["json"]
"""How ``{{x}}`` outputs: ``True`` HTML-escaped, ``False`` as it is, ``"json"`` escaped to
sit between the quotes of a JSON string."""

_JSON_SPECIAL = re.compile(r'["\\\x00-\x1f]')


def escape_json(text: str) -> str:
    """Text safe between the quotes of a JSON string: quotes, backslashes and control
    characters escaped as JSON escapes them."""
    return json.dumps(text, ensure_ascii=False)[1:-1] if _JSON_SPECIAL.search(text) else text


def escaper(escaping: Escaping) -> Callable[[str], str] | None:
    """The function ``{{x}}`` applies to its text; None when it outputs it as it is."""
    if escaping == "json":
        return escape_json
    return escape_html if escaping else None


def is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def truthy(value: Any) -> bool:
    """Handlebars truth: null, false, 0, empty text, empty lists and empty maps are false."""
    if value is None or value is False:
        return False
    if type(value) is int or type(value) is float:
        return value != 0
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


def same(left: Any, right: Any) -> bool:
    """Equality without coercion: ``1 = "1"`` is false, ``true = 1`` too; 1 equals 1.0."""
    if is_number(left) and is_number(right):
        return bool(left == right)
    if type(left) is not type(right):
        if isinstance(left, datetime) or isinstance(right, datetime):
            first, second = as_datetime(left), as_datetime(right)
            return first is not None and second is not None and first == second
        return False
    return bool(left == right)


def order(left: Any, right: Any) -> int | None:
    """-1, 0 or 1 for numbers, texts or date-times (a date-time against ISO text); None otherwise."""
    if is_number(left) and is_number(right):
        pass
    elif isinstance(left, str) and isinstance(right, str):
        pass
    elif isinstance(left, datetime) or isinstance(right, datetime):
        left, right = as_datetime(left), as_datetime(right)
        if left is None or right is None:
            return None
    else:
        return None
    return int((left > right) - (left < right))


def arithmetic(op: str, left: Any, right: Any) -> Any:
    """``+ - * / %`` on numbers; anything else, division by zero and overflow give null."""
    if not (is_number(left) and is_number(right)):
        return None
    try:
        if op == "+":
            result = left + right
        elif op == "-":
            result = left - right
        elif op == "*":
            result = left * right
        elif op == "/":
            if right == 0:
                return None
            if type(left) is int and type(right) is int and left % right == 0:
                result = left // right
            else:
                result = left / right
        else:
            if right == 0:
                return None
            result = (
                math.fmod(left, right) if type(left) is float or type(right) is float else _rem(left, right)
            )
    except OverflowError:
        return None
    if type(result) is int:
        return result if -INT_LIMIT <= result < INT_LIMIT else None
    return result if math.isfinite(result) else None


def _rem(left: int, right: int) -> int:
    remainder = abs(left) % abs(right)
    return -remainder if left < 0 else remainder


def number_text(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def to_text(value: Any) -> str | None:
    """The text a value renders as; ``None`` for maps, which have no text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int or type(value) is float:
        return number_text(value)
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, list):
        parts = [to_text(item) for item in value]
        return ",".join(part or "" for part in parts)
    return None
