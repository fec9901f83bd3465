"""OpenAPI descriptions of the problem+json answers every endpoint may give."""

from __future__ import annotations

from typing import Any

_PROBLEM = {
    "application/problem+json": {
        "schema": {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "instance": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "path": {"type": "string"},
                            "message": {"type": "string"},
                            "code": {"type": "string"},
                        },
                    },
                },
            },
        }
    }
}

PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid input, with every reason and its path", "content": _PROBLEM},
    401: {"description": "Missing or invalid bearer token", "content": _PROBLEM},
    403: {
        "description": "Missing scope, or the sandbox differs from the token's",
        "content": _PROBLEM,
    },
    404: {"description": "Unknown resource in this sandbox", "content": _PROBLEM},
    422: {"description": "The request does not have the expected shape", "content": _PROBLEM},
    503: {
        "description": "The database or the broker is unavailable; retry with backoff",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        "content": _PROBLEM,
    },
}
