"""JSON Patch (RFC 6902) for the APIs whose contract takes one: ``add``, ``remove`` and
``replace``, applied in order to a copy of the document. A problem names the operation
by its index (``/2/path``), as the request body's pointer."""

from __future__ import annotations

import copy
from typing import Any

from itinera.common.errors import FieldError, ValidationFailed

OPERATIONS = ("add", "remove", "replace")


def tokens(path: str) -> list[str]:
    """A JSON Pointer's reference tokens, unescaped (``/a~1b`` is ``["a/b"]``)."""
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def apply_patch(document: dict[str, Any], operations: list[Any]) -> dict[str, Any]:
    """``document`` with ``operations`` applied (the document itself is not changed)."""
    result = copy.deepcopy(document)
    for index, op in enumerate(operations):
        if not isinstance(op, dict) or op.get("op") not in OPERATIONS:
            raise ValidationFailed(
                "unsupported JSON Patch operation",
                [FieldError(f"/{index}/op", "one of add, remove, replace", "enum")],
            )
        path = op.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValidationFailed(
                "bad JSON Patch path", [FieldError(f"/{index}/path", "a JSON Pointer", "pointer")]
            )
        if op["op"] != "remove" and "value" not in op:
            raise ValidationFailed(
                f"JSON Patch {op['op']} without a value",
                [FieldError(f"/{index}/value", "required by add and replace", "required")],
            )
        names = tokens(path)
        parent: Any = result
        try:
            for token in names[:-1]:
                parent = parent[int(token)] if isinstance(parent, list) else parent[token]
            last = names[-1]
            if isinstance(parent, list):
                position = len(parent) if last == "-" else int(last)
                if op["op"] == "add":
                    parent.insert(position, op.get("value"))
                elif op["op"] == "remove":
                    parent.pop(position)
                else:
                    parent[position] = op.get("value")
            elif isinstance(parent, dict):
                if op["op"] == "remove":
                    del parent[last]
                elif op["op"] == "replace" and last not in parent:
                    raise KeyError(last)
                else:
                    parent[last] = op.get("value")
            else:
                raise KeyError(last)
        except (KeyError, IndexError, ValueError, TypeError):
            raise ValidationFailed(
                "JSON Patch path does not exist",
                [FieldError(f"/{index}/path", f"{path} does not exist in the document", "pointer")],
            ) from None
    return result
