"""RFC 9457 problem+json for every error a client can see.

Expected failures raise :class:`~itinera.common.errors.ItineraError` subclasses;
FastAPI's own payload-shape errors become 422 problems with field paths; anything
unexpected is a 500 problem that names the request id and hides the internals.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from itinera.common.errors import PROBLEM_BASE, FieldError, ItineraError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


_PROBLEM_CONTENT: dict[str, Any] = {
    PROBLEM_JSON: {
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


def documented(description: str, **extra: Any) -> dict[str, Any]:
    """An OpenAPI response that is an RFC 9457 problem (for ``responses=``)."""
    return {"description": description, "content": _PROBLEM_CONTENT, **extra}


def problem_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    all_headers = dict(headers or {})
    if status == 401:
        all_headers.setdefault("WWW-Authenticate", "Bearer")
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=all_headers)


def pointer(location: Sequence[str | int]) -> str:
    """A JSON Pointer from a pydantic/FastAPI error location."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in location)


def field_errors(errors: Sequence[Any]) -> list[FieldError]:
    return [
        FieldError(pointer(e.get("loc", ())), str(e.get("msg", "invalid")), str(e.get("type", "invalid")))
        for e in errors
    ]


def _instance(request: Request) -> str:
    return request.url.path


async def _itinera_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ItineraError)
    body = exc.problem(_instance(request))
    if exc.status >= 500:
        log.error("request failed: %s", exc.detail)
    return problem_response(exc.status, body)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(exc.errors())
    return problem_response(
        422,
        {
            "type": PROBLEM_BASE + "invalid-request",
            "title": "Invalid request",
            "status": 422,
            "detail": f"the request does not have the expected shape ({len(errors)} problem(s))",
            "instance": _instance(request),
            "errors": [e.as_dict() for e in errors],
        },
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    return problem_response(
        exc.status_code,
        {
            "type": PROBLEM_BASE + slug,
            "title": str(exc.detail) if exc.status_code != 404 else "Not found",
            "status": exc.status_code,
            "detail": str(exc.detail),
            "instance": _instance(request),
        },
        dict(exc.headers or {}),
    )


def _is_unavailable(exc: BaseException) -> bool:
    """A dependency (database or broker) could not be reached or did not answer in time."""
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError

    unavailable = (
        OSError,
        TimeoutError,
        asyncpg.exceptions.ConnectionDoesNotExistError,
        asyncpg.exceptions.CannotConnectNowError,
        asyncpg.exceptions.TooManyConnectionsError,
        asyncpg.InterfaceError,
        KafkaConnectionError,
        KafkaTimeoutError,
        NodeNotReadyError,
    )
    return isinstance(exc, unavailable)


async def _unstorable(request: Request, exc: Exception) -> Response:
    """A value PostgreSQL cannot hold (a NUL character, a number out of range...)."""
    assert isinstance(exc, asyncpg.DataError)
    return problem_response(
        400,
        {
            "type": PROBLEM_BASE + "unstorable-value",
            "title": "Value cannot be stored",
            "status": 400,
            "detail": f"a value in the request cannot be stored: {exc.args[0] if exc.args else exc}",
            "instance": _instance(request),
        },
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    request_id = request.scope.get("state", {}).get("request_id", "")
    if _is_unavailable(exc):
        log.warning("a dependency is unavailable", extra={"path": request.url.path, "error": repr(exc)})
        return problem_response(
            503,
            {
                "type": PROBLEM_BASE + "unavailable",
                "title": "Service unavailable",
                "status": 503,
                "detail": "a dependency (database or broker) is unavailable; retry with backoff",
                "instance": _instance(request),
                "requestId": request_id,
            },
            {"Retry-After": "1", "x-request-id": request_id},
        )
    log.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(
        500,
        {
            "type": PROBLEM_BASE + "internal",
            "title": "Internal error",
            "status": 500,
            "detail": "the server failed to handle the request; it has been logged",
            "instance": _instance(request),
            "requestId": request_id,
        },
        # Sent by Starlette's outermost error middleware, outside RequestContext.
        {"x-request-id": request_id},
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(ItineraError, _itinera_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(asyncpg.DataError, _unstorable)
    app.add_exception_handler(Exception, _unexpected)
