"""OpenAPI descriptions of the problem+json answers every endpoint may give."""

from __future__ import annotations

from typing import Any

from itinera.common.web.problems import documented

PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: documented("Invalid input, with every reason and its path"),
    401: documented("Missing or invalid bearer token"),
    403: documented("Missing scope, or the sandbox differs from the token's"),
    404: documented("Unknown resource in this sandbox"),
    422: documented("The request does not have the expected shape"),
    503: documented(
        "The database or the broker is unavailable; retry with backoff",
        headers={"Retry-After": {"schema": {"type": "integer"}}},
    ),
}
