"""Request bodies read as bytes, for endpoints that take something else than a JSON
model (raw JSON kept as sent, NDJSON, CSV): the content type checked, the size bounded
while reading, so an oversized body is refused before it is all in memory."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

from fastapi import Request

from itinera.common.errors import FieldError, PayloadTooLarge, UnsupportedMediaType, ValidationFailed


def content_type(request: Request, allowed: tuple[str, ...]) -> str:
    """The request's media type (lower-cased, without parameters), one of ``allowed``;
    a 415 naming them otherwise."""
    found = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if found not in allowed:
        raise UnsupportedMediaType(
            f"Content-Type must be {' or '.join(allowed)}, not {found or 'missing'!r}",
            extra={"accepted": list(allowed)},
        )
    return found


async def read(request: Request, limit: int) -> bytes:
    """The body, at most ``limit`` bytes; a 413 as soon as it is known to be larger."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def form_file(request: Request, body: bytes, field: str) -> tuple[str | None, bytes]:
    """The file sent as ``field`` of a ``multipart/form-data`` body (RFC 7578): its file
    name (None when none was given) and its content; a 400 at ``/body/<field>`` when the
    body has no such part or is not multipart at all."""
    header = request.headers.get("content-type", "")
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + header.encode("latin-1", "replace") + b"\r\n\r\n" + body
    )
    if message.is_multipart():
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == field:
                content = part.get_payload(decode=True)
                return part.get_filename(), content if isinstance(content, bytes) else b""
    raise ValidationFailed(
        f"the form has no file {field!r}",
        [FieldError(f"/body/{field}", f"a multipart/form-data part named {field!r} is required", "required")],
    )
