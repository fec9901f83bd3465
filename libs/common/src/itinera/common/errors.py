"""The one error hierarchy: every expected failure carries its HTTP status and renders
as RFC 9457 ``application/problem+json``.

Validation failures carry field paths (``FieldError``) so a client can point at the
offending value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

PROBLEM_BASE = "https://itinera.dev/problems/"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One reason a value was refused.

    ``path`` is a JSON Pointer into the submitted document (``/body/xdmEntity/_id``);
    ``code`` is a short machine-readable word (``required``, ``type``, ``identity``...).
    """

    path: str
    message: str
    code: str = "invalid"

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "code": self.code}


@dataclass
class ItineraError(Exception):
    """Base of every expected failure. Subclasses fix ``status`` and ``slug``."""

    detail: str
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __str__(self) -> str:
        return self.detail

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + self.slug

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance is not None:
            body["instance"] = instance
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        body.update(self.extra)
        return body


class BadRequest(ItineraError):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class ValidationFailed(BadRequest):
    slug = "validation-failed"
    title = "Validation failed"


class Unauthorized(ItineraError):
    status = 401
    slug = "unauthorized"
    title = "Unauthorized"


class Forbidden(ItineraError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class NotFound(ItineraError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(ItineraError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class PreconditionFailed(ItineraError):
    status = 412
    slug = "precondition-failed"
    title = "Precondition failed"


class PayloadTooLarge(ItineraError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(ItineraError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class Unprocessable(ItineraError):
    status = 422
    slug = "unprocessable"
    title = "Unprocessable request"


class ServiceUnavailable(ItineraError):
    status = 503
    slug = "unavailable"
    title = "Service unavailable"
