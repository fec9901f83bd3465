"""The AEP streaming API (``/collection/...``) and the native dataset endpoint.

Bodies are read as bytes and parsed with orjson rather than through pydantic models:
this is the hot path, and a refused message must be kept as it was sent. The OpenAPI
document still describes the bodies (``openapi_extra``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Security

from itinera.common.auth import Principal, require_scope
from itinera.common.errors import (
    BadRequest,
    FieldError,
    PayloadTooLarge,
    ValidationFailed,
)
from itinera.common.service import CurrentRuntime
from itinera.common.web import bodies
from itinera.common.web.problems import problem_response
from itinera.common.web.responses import Json
from itinera.ingestion.catalog.service import Catalog, Connection
from itinera.ingestion.collection.service import Ingestor, Outcome, Submission
from itinera.ingestion.config import IngestionSettings
from itinera.ingestion.responses import PROBLEMS

router = APIRouter(tags=["streaming ingestion"], responses=PROBLEMS)
Ingest = Annotated[Principal, Security(require_scope("ingest:write"))]

NATIVE_CHUNK = 1000

_SCHEMA_REF = {
    "type": "object",
    "required": ["id"],
    "properties": {"id": {"type": "string"}, "contentType": {"type": "string"}},
}
_MESSAGE = {
    "type": "object",
    "description": (
        "Either the AEP streaming message {header, body: {xdmMeta, xdmEntity}} or a bare XDM "
        "entity, which goes to the connection's default dataset."
    ),
    "properties": {
        "header": {
            "type": "object",
            "properties": {
                "schemaRef": _SCHEMA_REF,
                "imsOrgId": {"type": "string"},
                "datasetId": {"type": "string"},
                "flowId": {"type": "string"},
                "source": {"type": "object", "properties": {"name": {"type": "string"}}},
            },
        },
        "body": {
            "type": "object",
            "properties": {
                "xdmMeta": {"type": "object", "properties": {"schemaRef": _SCHEMA_REF}},
                "xdmEntity": {"type": "object"},
            },
        },
    },
}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _settings(runtime: CurrentRuntime) -> IngestionSettings:
    settings = runtime.settings
    assert isinstance(settings, IngestionSettings)
    return settings


def _ingestor(runtime: CurrentRuntime) -> Ingestor:
    ingestor: Ingestor = runtime.state["ingestor"]
    return ingestor


def _catalog(runtime: CurrentRuntime) -> Catalog:
    catalog: Catalog = runtime.state["catalog"]
    return catalog


def _parse(raw: bytes) -> Any:
    if not raw.strip():
        raise BadRequest("the body is empty", [FieldError("", "expected a JSON document", "empty")])
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            "the body is not valid JSON",
            [FieldError("", f"{exc.msg} at line {exc.lineno}, column {exc.colno}", "json")],
        ) from None


def _refusal(outcome: Outcome) -> dict[str, Any]:
    reasons = [r.as_dict() for r in outcome.reasons]
    return {
        "xactionId": outcome.xaction_id,
        "status": 400,
        "message": "; ".join(f"{r['path'] or '/'}: {r['message']}" for r in reasons),
        "errors": reasons,
    }


@router.post(
    "/collection/{CONNECTION_ID}",
    summary="Send one message",
    openapi_extra=_json_body(_MESSAGE),
    responses={
        200: {"description": "Accepted and durable in Kafka"},
        413: PROBLEMS[400] | {"description": "The body is larger than 1 MB"},
        415: PROBLEMS[400] | {"description": "Content-Type is not application/json"},
    },
)
async def send_message(
    CONNECTION_ID: str,
    request: Request,
    caller: Ingest,
    runtime: CurrentRuntime,
    syncValidation: Annotated[
        bool,
        Query(description="Accepted for AEP compatibility: validation is always synchronous."),
    ] = False,
) -> Any:
    received_ms = int(time.time() * 1000)
    settings = _settings(runtime)
    connection = await _catalog(runtime).connection(CONNECTION_ID, caller.sandbox)
    bodies.content_type(request, ("application/json",))
    raw = await bodies.read(request, settings.ingestion_max_message_bytes)
    submission = _submission(raw)
    (outcome,) = await _ingestor(runtime).ingest(connection, [submission], "http")
    if not outcome.accepted:
        error = ValidationFailed(
            f"the message was refused ({len(outcome.reasons)} reason(s)); "
            "it is kept in the dead-letter store",
            list(outcome.reasons),
            extra={"xactionId": outcome.xaction_id, "inletId": connection.id},
        )
        return problem_response(400, error.problem(request.url.path))
    return Json({"inletId": connection.id, "xactionId": outcome.xaction_id, "receivedTimeMs": received_ms})


def _submission(raw: bytes) -> Submission:
    if not raw.strip():
        return Submission(None, raw, refusal=FieldError("", "the body is empty", "empty"))
    try:
        return Submission(orjson.loads(raw), raw)
    except orjson.JSONDecodeError as exc:
        return Submission(
            None,
            raw,
            refusal=FieldError("", f"not valid JSON: {exc.msg} at line {exc.lineno}", "json"),
        )


@router.post(
    "/collection/batch/{CONNECTION_ID}",
    summary="Send several messages",
    status_code=207,
    openapi_extra=_json_body(
        {
            "type": "object",
            "required": ["messages"],
            "properties": {"messages": {"type": "array", "items": _MESSAGE}},
        }
    ),
    responses={
        207: {"description": "One response per message, in order"},
        413: PROBLEMS[400] | {"description": "The body is larger than 1 MB"},
        415: PROBLEMS[400] | {"description": "Content-Type is not application/json"},
    },
)
async def send_batch(CONNECTION_ID: str, request: Request, caller: Ingest, runtime: CurrentRuntime) -> Any:
    received_ms = int(time.time() * 1000)
    settings = _settings(runtime)
    connection = await _catalog(runtime).connection(CONNECTION_ID, caller.sandbox)
    bodies.content_type(request, ("application/json",))
    document = _parse(await bodies.read(request, settings.ingestion_max_message_bytes))
    if not isinstance(document, dict) or not isinstance(document.get("messages"), list):
        raise BadRequest(
            'the body must be {"messages": [...]}',
            [FieldError("/messages", "expected an array of messages", "type")],
        )
    messages = document["messages"]
    if not messages:
        raise BadRequest("the batch is empty", [FieldError("/messages", "at least one message", "minItems")])
    outcomes = await _ingestor(runtime).ingest(connection, [Submission(m) for m in messages], "http")
    return Json(
        {
            "inletId": connection.id,
            "batchId": str(uuid.uuid4()),
            "receivedTimeMs": received_ms,
            "responses": [{"xactionId": o.xaction_id} if o.accepted else _refusal(o) for o in outcomes],
        },
        status_code=207,
    )


@router.post(
    "/v1/datasets/{dataset_id}/events",
    summary="Send XDM entities to a dataset (JSON array or NDJSON)",
    tags=["native ingestion"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
    responses={
        200: {"description": "Every record accepted"},
        207: {"description": "Some records refused; see results"},
        413: PROBLEMS[400] | {"description": "The body is over the native limit"},
        415: PROBLEMS[400] | {"description": "Not JSON or NDJSON"},
    },
)
async def send_to_dataset(dataset_id: str, request: Request, caller: Ingest, runtime: CurrentRuntime) -> Any:
    settings = _settings(runtime)
    dataset = await _catalog(runtime).dataset(caller.sandbox, dataset_id)
    connection = Connection(
        sandbox=caller.sandbox, id="", name="native", dataset_id=dataset.id, source_name="native"
    )
    content_type = bodies.content_type(request, ("application/json", "application/x-ndjson"))
    ingestor = _ingestor(runtime)
    results: list[dict[str, Any]] = []
    refused = 0
    index = 0
    if content_type == "application/json":
        document = _parse(await bodies.read(request, settings.ingestion_max_native_bytes))
        if not isinstance(document, list):
            raise BadRequest(
                "the body must be a JSON array of entities",
                [FieldError("", "expected an array", "type")],
            )
        batches: AsyncIterator[list[Submission]] = _chunks(document)
    else:
        batches = _ndjson(request, settings.ingestion_max_native_bytes)
    async for batch in batches:
        for outcome in await ingestor.ingest(connection, batch, "native", bare_only=True):
            if outcome.accepted:
                results.append({"index": index, "xactionId": outcome.xaction_id, "status": 200})
            else:
                refused += 1
                results.append({"index": index, **_refusal(outcome)})
            index += 1
    if index == 0:
        raise BadRequest("no entities in the body", [FieldError("", "at least one entity", "minItems")])
    return Json(
        {
            "datasetId": dataset.id,
            "accepted": index - refused,
            "refused": refused,
            "results": results,
        },
        status_code=207 if refused else 200,
    )


async def _chunks(items: list[Any]) -> AsyncIterator[list[Submission]]:
    for start in range(0, len(items), NATIVE_CHUNK):
        yield [Submission(item) for item in items[start : start + NATIVE_CHUNK]]


async def _ndjson(request: Request, limit: int) -> AsyncIterator[list[Submission]]:
    """Lines as they stream in, in chunks, so a large upload is not held whole."""
    size = 0
    pending = b""
    batch: list[Submission] = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                batch.append(_submission(line))
        if len(batch) >= NATIVE_CHUNK:
            yield batch
            batch = []
    if pending.strip():
        batch.append(_submission(pending))
    if batch:
        yield batch
