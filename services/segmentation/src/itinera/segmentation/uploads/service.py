"""Uploaded audiences: a list of people, as a CSV of their identities, instead of a rule.

The CSV's header names identity namespaces (``Email``, ``CRMID``, ``ECID``, a custom
code...); each following line is one person, by one or more identities (those on one
line are the same person, so they link, as identities of one record always do). Every
person goes to the profile service as a profile record on ``itinera.records.v1``, of
the audience's own dataset (``audience-upload-<id>``), through the outbox in the
transaction that records the upload: the profile service resolves the identities
(creating profiles for people it has not seen, as AEP's uploads do, and following
merges) and the record's only attribute, ``_itinera.audienceUploads.u<id>.uploaded``,
is what the audience's rule reads. Membership then flows as for any streaming audience:
the profile's change reaches this service, the rule qualifies the profile, the entry is
announced on ``itinera.audiences.v1``.

Lines without any identity are skipped. An upload is all or nothing: a CSV with any
bad line is refused (400) with every problem's line and column (``/body/line/3/Email``,
the header being line 1), up to :data:`MAX_PROBLEMS`, and nothing is sent. More people
can be added to an uploaded audience by further uploads; its rule cannot be edited, and
removing people is not supported (delete the audience).
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from itinera.common.db.outbox import enqueue
from itinera.common.errors import BadRequest, Conflict, FieldError, NotFound, ValidationFailed
from itinera.common.kafka import topics
from itinera.common.kafka.envelope import Envelope
from itinera.segmentation.definitions import repository as definitions
from itinera.segmentation.definitions import service as definition_service
from itinera.segmentation.definitions.schemas import (
    DefinitionIn,
    EvaluationInfo,
    ExpressionIn,
    SchemaIn,
    Toggle,
)
from itinera.segmentation.definitions.service import parse_id
from itinera.segmentation.uploads import repository

RECORD_TYPE = "com.itinera.segmentation.upload.v1"
SOURCE = "/itinera/segmentation"
MAX_COLUMNS = 20
"""AEP's guardrail: at most 20 identities per record."""
MAX_VALUE = 1024
MAX_PROBLEMS = 100
_NAMESPACE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,127}")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def marker(audience_id: uuid.UUID) -> str:
    """The attribute an uploaded audience's records carry and its rule reads."""
    return f"_itinera.audienceUploads.u{audience_id.hex}.uploaded"


def dataset(audience_id: uuid.UUID) -> str:
    return f"audience-upload-{audience_id}"


@dataclass(frozen=True, slots=True)
class People:
    """A CSV read: its namespaces, and each person's identities as (namespace, value)."""

    namespaces: list[str]
    rows: list[list[tuple[str, str]]]

    @property
    def identities(self) -> int:
        return sum(len(row) for row in self.rows)


def read_csv(data: bytes, max_rows: int) -> People:
    """The people of an uploaded CSV (UTF-8, a header of namespaces); a 400 with every
    problem's line and column."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            "the CSV is not UTF-8", [FieldError("/body", f"byte {exc.start} is not UTF-8", "encoding")]
        ) from None
    lines = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [cell.strip() for cell in next(lines, [])]
    except csv.Error as exc:
        raise BadRequest("the CSV cannot be read", [FieldError("/body/line/1", str(exc), "csv")]) from None
    problems = _check_header(header)
    if problems:
        raise ValidationFailed("the CSV's header does not name identity namespaces", problems)
    rows: list[list[tuple[str, str]]] = []
    try:
        for cells in lines:
            line = lines.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) == max_rows:
                problems.append(FieldError("/body", f"more than {max_rows} people in one upload", "maxItems"))
                break
            rows.append(_person(cells, header, line, problems))
            if len(problems) >= MAX_PROBLEMS:
                break
    except csv.Error as exc:
        problems.append(FieldError(f"/body/line/{lines.line_num}", str(exc), "csv"))
    if not rows and not problems:
        problems.append(FieldError("/body", "no person after the header", "minItems"))
    if problems:
        shown = problems[:MAX_PROBLEMS]
        raise ValidationFailed(
            f"the CSV has {len(shown)}{'+' if len(problems) > MAX_PROBLEMS else ''} problem(s); "
            "nothing was uploaded",
            shown,
        )
    return People(header, rows)


def _check_header(header: list[str]) -> list[FieldError]:
    if not header or header == [""]:
        return [FieldError("/body/line/1", "a header of identity namespaces (Email, CRMID...)", "required")]
    problems = []
    if len(header) > MAX_COLUMNS:
        problems.append(
            FieldError("/body/line/1", f"at most {MAX_COLUMNS} namespaces per person", "maxItems")
        )
    seen: set[str] = set()
    for i, name in enumerate(header):
        if not _NAMESPACE.fullmatch(name):
            problems.append(FieldError(f"/body/line/1/{i}", f"{name!r} is not a namespace code", "namespace"))
        elif name.lower() in seen:
            problems.append(FieldError(f"/body/line/1/{i}", f"{name!r} is named twice", "unique"))
        seen.add(name.lower())
    return problems


def _person(
    cells: list[str], header: list[str], line: int, problems: list[FieldError]
) -> list[tuple[str, str]]:
    if len(cells) > len(header):
        problems.append(
            FieldError(f"/body/line/{line}", f"{len(cells)} cells for {len(header)} columns", "maxItems")
        )
    person = []
    for namespace, cell in zip(header, cells, strict=False):
        value = cell.strip()
        if not value:
            continue
        if len(value) > MAX_VALUE or _UNSTORABLE.search(value):
            problems.append(
                FieldError(
                    f"/body/line/{line}/{namespace}",
                    f"at most {MAX_VALUE} characters, without NUL or lone surrogates",
                    "identity",
                )
            )
            continue
        person.append((namespace, value))
    return person


def records(sandbox: str, audience_id: uuid.UUID, upload_id: uuid.UUID, people: People) -> list[Envelope]:
    """One profile record per person, keyed by its first identity (the primary one)."""
    now = datetime.now(UTC)
    key = f"u{audience_id.hex}"
    found = []
    for i, person in enumerate(people.rows):
        identity_map: dict[str, list[dict[str, Any]]] = {}
        for j, (namespace, value) in enumerate(person):
            identity_map.setdefault(namespace, []).append({"id": value, "primary": j == 0})
        record_id = str(uuid.uuid5(upload_id, str(i)))
        namespace, value = person[0]
        found.append(
            Envelope(
                type=RECORD_TYPE,
                source=SOURCE,
                sandbox=sandbox,
                key=f"{namespace}:{value}",
                id=record_id,
                time=now,
                data={
                    "_id": record_id,
                    "identityMap": identity_map,
                    "_itinera": {"audienceUploads": {key: {"uploaded": True}}},
                },
                extensions={"itinera_dataset": dataset(audience_id)},
            )
        )
    return found


def _summary(upload_id: uuid.UUID, people: People) -> dict[str, Any]:
    return {
        "uploadId": str(upload_id),
        "namespaces": people.namespaces,
        "people": len(people.rows),
        "identities": people.identities,
    }


async def _send(
    db: asyncpg.Connection, sandbox: str, audience_id: uuid.UUID, people: People
) -> dict[str, Any]:
    upload_id = uuid.uuid4()
    await repository.insert(
        db, sandbox, upload_id, audience_id, people.namespaces, len(people.rows), people.identities
    )
    await enqueue(db, topics.RECORDS.name, records(sandbox, audience_id, upload_id, people))
    return _summary(upload_id, people)


async def create(
    db: asyncpg.Connection, sandbox: str, name: str, description: str, people: People, max_length: int
) -> dict[str, Any]:
    """A new uploaded audience with its first people: (its definition, the upload)."""
    audience_id = uuid.uuid4()
    definition = DefinitionIn.model_validate(
        {
            "name": name,
            "description": description,
            "expression": ExpressionIn(value=f"{marker(audience_id)} = true"),
            "schema": SchemaIn(name="_xdm.context.profile"),
            "evaluationInfo": EvaluationInfo(batch=Toggle(enabled=True), continuous=Toggle(enabled=True)),
        }
    )
    created = await definition_service.create(
        db, sandbox, definition, max_length, audience_id, origin="upload"
    )
    return {"audience": created, "upload": await _send(db, sandbox, audience_id, people)}


async def add(db: asyncpg.Connection, sandbox: str, audience: str, people: People) -> dict[str, Any]:
    """More people for an uploaded audience: the upload."""
    key = parse_id(audience)
    row = await definitions.get(db, sandbox, key, for_update=True) if key is not None else None
    if key is None or row is None:
        raise NotFound(f"no audience {audience!r} in sandbox {sandbox!r}")
    if row["origin"] != "upload":
        raise Conflict(
            f"audience {audience} is defined by a rule; people are uploaded only to uploaded audiences"
        )
    return await _send(db, sandbox, key, people)


async def history(db: asyncpg.Connection, sandbox: str, audience: str) -> dict[str, Any]:
    key = parse_id(audience)
    row = await definitions.get(db, sandbox, key) if key is not None else None
    if key is None or row is None:
        raise NotFound(f"no audience {audience!r} in sandbox {sandbox!r}")
    uploads = await repository.of_audience(db, sandbox, key)
    return {
        "audienceId": str(key),
        "uploads": [
            {
                "uploadId": str(u["id"]),
                "namespaces": list(u["namespaces"]),
                "people": u["rows"],
                "identities": u["identities"],
                "createdAt": u["created_at"].isoformat().replace("+00:00", "Z"),
            }
            for u in uploads
        ],
    }
