"""The dead letter: what ``itinera.dlq.v1`` carries.

One shape for both kinds of refusal: a message that failed validation at ingestion,
and a record that a consumer could not process after its retries. The original
payload travels with it (as JSON when it was JSON, else as base64), so nothing is lost.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field

from itinera.common.errors import FieldError


class Reason(BaseModel):
    path: str = ""
    message: str
    code: str = "invalid"

    @classmethod
    def of(cls, error: FieldError) -> Reason:
        return cls(path=error.path, message=error.message, code=error.code)


class Origin(BaseModel):
    """Where the refused record came from."""

    service: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    connection_id: str | None = Field(default=None, alias="connectionId")
    dataset_id: str | None = Field(default=None, alias="datasetId")

    model_config = {"populate_by_name": True}


class DeadLetter(BaseModel):
    id: str
    sandbox: str
    kind: Literal["validation", "processing"]
    received_at: datetime = Field(alias="receivedAt")
    origin: Origin
    reasons: list[Reason]
    attempts: int = 1
    payload: Any = None
    """The original value: parsed JSON when it parsed, else None (see ``payloadBase64``)."""
    payload_base64: str | None = Field(default=None, alias="payloadBase64")

    model_config = {"populate_by_name": True}

    @staticmethod
    def payload_fields(raw: bytes | None) -> dict[str, Any]:
        """Keep the original bytes: as JSON when they parse, else base64."""
        if raw is None:
            return {"payload": None}
        try:
            return {"payload": orjson.loads(raw)}
        except orjson.JSONDecodeError:
            return {"payload_base64": base64.b64encode(raw).decode()}

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", by_alias=True, exclude_none=True))
