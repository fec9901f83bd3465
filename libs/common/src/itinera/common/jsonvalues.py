"""Whether a JSON value a client sent can be stored and sent on.

A request body parsed as JSON can still hold what the next step cannot take: text with a
NUL character or a lone surrogate (PostgreSQL's text and UTF-8 refuse them), integers
beyond 64 bits (orjson and PostgreSQL's ``jsonb`` indexes refuse them) or nesting too
deep to walk. :func:`json_problems` names each such place by its JSON Pointer, so the
answer is a 422 with field paths rather than a 500 later.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from itinera.common.errors import FieldError

MAX_DEPTH = 32
INT_RANGE = (-(2**63), 2**64 - 1)
"""What orjson writes: signed and unsigned 64-bit integers."""


def json_problems(value: Any, path: str = "", depth: int = 0, max_depth: int = MAX_DEPTH) -> list[FieldError]:
    """What keeps ``value`` (at ``path``) from being stored and sent as JSON."""
    if depth > max_depth:
        return [FieldError(path, f"nested more than {max_depth} levels deep", "depth")]
    if isinstance(value, str):
        if "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
            return [FieldError(path, "NUL characters and lone surrogates are not allowed", "string")]
        return []
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return []
    if isinstance(value, int):
        if not INT_RANGE[0] <= value <= INT_RANGE[1]:
            return [FieldError(path, "an integer of at most 64 bits is expected", "range")]
        return []
    if isinstance(value, Mapping):
        found: list[FieldError] = []
        for key, item in value.items():
            pointer = f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"
            if isinstance(key, str):
                found += json_problems(key, pointer, depth + 1, max_depth)
            found += json_problems(item, pointer, depth + 1, max_depth)
        return found
    if isinstance(value, list | tuple):
        return [
            problem
            for number, item in enumerate(value)
            for problem in json_problems(item, f"{path}/{number}", depth + 1, max_depth)
        ]
    return [FieldError(path, f"{type(value).__name__} is not a JSON value", "type")]
