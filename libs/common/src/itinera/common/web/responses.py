"""A JSON response rendered with orjson, for handlers that build their body by hand
(the ingestion hot path, status codes chosen at run time)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class Json(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
