"""Fragments: drafts saved as sent, published when they compile, deleted while nothing
published includes them.

Publishing checks, reporting every problem at once:

- the content is not empty (``required``);
- the content compiles where a template would include it: the fragments it includes
  are published (``fragment``), it does not include itself, directly or through others
  (``cycle``: the draft is what the others would include), and they are not nested too
  deep; any other problem of the text is ``template``. A problem in another fragment's
  text names that fragment in ``position.fragment``;
- an expression fragment includes no visual fragment (``visual-fragment``);
- then, every published template that includes it, directly or through others, still
  compiles with this version in place of the published one (``used-by``: the new
  version would nest the template's fragments too deep, say): templates always include
  a fragment's latest published version, so publishing it changes them at once.

Deleting a fragment that a published template or fragment includes, directly or
through other fragments, is a 409 naming them (``usedBy``); publishing a template locks
the fragments it reaches (``FOR SHARE``), so the check and a concurrent publication do
not miss each other.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg
from asyncpg import Record as Row

from itinera.common.errors import Conflict, FieldError, ValidationFailed
from itinera.common.render import Template
from itinera.content import rendering
from itinera.content.fragments import repository
from itinera.content.fragments.schemas import FragmentIn
from itinera.content.rendering import ContentProblem, Fragments, FragmentText, compile_part
from itinera.content.templates import service as templates
from itinera.content.templates.schemas import PreviewData
from itinera.content.templates.service import refuse
from itinera.content.versioning import service as versioning
from itinera.content.versioning.repository import FRAGMENTS as KIND
from itinera.content.versioning.repository import TEMPLATES

FRAGMENTS = "/v1/fragments"
NO_LOCALE = "und"
"""The one variant of a fragment's record: BCP 47's "undetermined" language, as a
fragment is included in every locale of a template."""


def document_of(body: FragmentIn) -> dict[str, Any]:
    document: dict[str, Any] = body.model_dump(mode="json", exclude={"id"})
    return document


def check_size(body: FragmentIn, max_part_chars: int) -> None:
    if len(body.content) > max_part_chars:
        raise ValidationFailed(
            f"the content has {len(body.content)} characters; at most {max_part_chars}",
            [FieldError("/content", f"at most {max_part_chars} characters", "maxLength")],
        )


def _usage(rows: list[Row]) -> list[dict[str, Any]]:
    return [{"kind": r["kind"], "id": r["id"], "version": r["version"]} for r in rows]


def version_view(fragment_id: str, row: Row, problems: list[ContentProblem] | None = None) -> dict[str, Any]:
    document = row["document"]
    body = {
        "fragmentId": fragment_id,
        **versioning.summary(row),
        "name": document["name"],
        "description": document.get("description", ""),
        "type": document["type"],
        "content": document["content"],
        "fragments": list(row["fragments"]),
    }
    if problems is not None:
        body["problems"] = [p.as_dict() for p in problems]
    return body


async def create(db: asyncpg.Connection, sandbox: str, body: FragmentIn) -> dict[str, Any]:
    fragment_id = await versioning.create(
        db,
        KIND,
        sandbox,
        body.id,
        body.name,
        body.description,
        body.type,
        document_of(body),
        rendering.references(body.content),
    )
    return await get(db, sandbox, fragment_id)


async def replace(
    db: asyncpg.Connection, sandbox: str, fragment_id: str, body: FragmentIn, if_match: str | None = None
) -> dict[str, Any]:
    if body.id is not None and body.id != fragment_id:
        raise ValidationFailed(
            f"the body names fragment {body.id!r}, the path {fragment_id!r}",
            [FieldError("/id", "must be the path's id, or absent", "mismatch")],
        )
    await versioning.replace(
        db,
        KIND,
        sandbox,
        fragment_id,
        body.name,
        body.description,
        body.type,
        document_of(body),
        rendering.references(body.content),
        if_match,
    )
    return await get(db, sandbox, fragment_id)


async def get(db: asyncpg.Connection, sandbox: str, fragment_id: str) -> dict[str, Any]:
    row, versions = await versioning.item(db, KIND, sandbox, fragment_id)
    latest = await versioning.version(db, KIND, sandbox, fragment_id, row["latest_version"])
    body = versioning.item_view(KIND, row, versions)
    body["content"] = latest["document"]["content"]
    body["fragments"] = list(latest["fragments"])
    body["usedBy"] = _usage(await repository.users(db, sandbox, fragment_id))
    return body


async def get_version(db: asyncpg.Connection, sandbox: str, fragment_id: str, number: int) -> dict[str, Any]:
    row = await versioning.version(db, KIND, sandbox, fragment_id, number)
    problems = await problems_of(db, sandbox, fragment_id, row) if row["status"] == "draft" else None
    return version_view(fragment_id, row, problems)


def _as_included(
    fragment_id: str, kind: str, loader: Fragments
) -> tuple[Template | None, list[ContentProblem]]:
    """The fragment compiled as a template including it would be (so a chain leading
    back to it is a cycle), or its problems at ``/content``: positions in its own text
    name no fragment, those in another's name that one. A visual fragment is
    HTML-escaped, as in an email's ``html``; an expression fragment is not."""
    wrapper = '{{fragment id="' + fragment_id + '"}}'
    template, found = compile_part(wrapper, key=None, fragments=loader, escape=kind == "visual")
    problems = []
    for problem in found:
        if problem.fragment == fragment_id:
            position: Any = dataclasses.replace(problem, fragment=None)
        else:
            position = problem if problem.fragment is not None else None
        problems.append(ContentProblem("/content", problem.message, rendering.code_of(problem), position))
    return template, problems


async def problems_of(
    db: asyncpg.Connection, sandbox: str, fragment_id: str, row: Row, *, lock: bool = False
) -> list[ContentProblem]:
    """What keeps the version ``row`` from being published; none: it can be."""
    document = row["document"]
    content, kind = document["content"], document["type"]
    problems: list[ContentProblem] = []
    if not content.strip():
        problems.append(ContentProblem("/content", "a published fragment needs content", "required"))
    included = list(row["fragments"])
    draft = FragmentText(fragment_id, kind, row["version"], content, tuple(included))
    loader = Fragments.from_rows(sandbox, await repository.reached(db, sandbox, included, lock=lock), draft)
    problems += _as_included(fragment_id, kind, loader)[1]
    if kind == "expression":
        for other in loader.visual(i for i in included if i != fragment_id):
            problems.append(
                ContentProblem(
                    "/content",
                    f"{other!r} is a visual fragment: an expression fragment cannot include it",
                    "visual-fragment",
                )
            )
    return problems


async def problems_in_users(
    db: asyncpg.Connection, sandbox: str, fragment_id: str, row: Row
) -> list[ContentProblem]:
    """What the version ``row``, published, would break in the published templates that
    include the fragment, directly or through others: each template compiled again as
    it would be then (nesting that the new version makes too deep, for one). Reported
    at ``/content``, code ``used-by``, naming the template, its version and the part."""
    document = row["document"]
    draft = FragmentText(
        fragment_id, document["type"], row["version"], document["content"], tuple(row["fragments"])
    )
    problems: list[ContentProblem] = []
    for user in await repository.users(db, sandbox, fragment_id):
        if user["kind"] != "template":
            continue  # included by templates, checked with them; or by none yet
        version = await versioning.version(db, TEMPLATES, sandbox, user["id"], user["version"])
        for found in await templates.problems_of(db, sandbox, user["id"], version, draft=draft):
            problems.append(
                ContentProblem(
                    "/content",
                    f"template {user['id']!r} v{user['version']} includes this fragment and would not "
                    f"compile at {found.path}: {found.message}",
                    "used-by",
                    found.position,
                )
            )
    return problems


async def publish(
    db: asyncpg.Connection, sandbox: str, fragment_id: str, if_match: str | None = None
) -> dict[str, Any]:
    _, draft = await versioning.start_publish(db, KIND, sandbox, fragment_id, if_match)
    problems = await problems_of(db, sandbox, fragment_id, draft, lock=True)
    if not problems:
        problems = await problems_in_users(db, sandbox, fragment_id, draft)
    if problems:
        raise refuse(f"version {draft['version']} of fragment {fragment_id!r}", problems)
    document = draft["document"]
    record = {
        "name": document["name"],
        "fragmentType": document["type"],
        "defaultLocale": NO_LOCALE,
        "variants": {NO_LOCALE: {"content": document["content"]}},
        "fragments": list(draft["fragments"]),
    }
    published = await versioning.finish_publish(db, KIND, sandbox, fragment_id, draft["version"], record)
    return version_view(fragment_id, published)


async def delete(db: asyncpg.Connection, sandbox: str, fragment_id: str, if_match: str | None = None) -> None:
    row = await versioning.locked(db, KIND, sandbox, fragment_id, if_match)
    users = await repository.users(db, sandbox, fragment_id)
    if users:
        named = ", ".join(f"{u['kind']} {u['id']} v{u['version']}" for u in users)
        raise Conflict(
            f"published content includes fragment {fragment_id!r}: {named}",
            extra={"usedBy": _usage(users)},
        )
    await versioning.delete(db, KIND, sandbox, fragment_id, row)


async def preview(
    db: asyncpg.Connection,
    sandbox: str,
    fragment_id: str,
    body: PreviewData,
    read: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Render a version of the fragment (by default the latest: the draft, else the
    published one) as a template including it would, with the fragments it includes at
    their published versions, for ``body.profile`` or ``read`` (the profile service's
    answer for the profile the body names) and ``body.context``. A visual fragment is
    HTML-escaped, as in an email's ``html``; an expression fragment is not, as in text."""
    profile = body.profile if read is None else read.get("entity") or {}
    version = await versioning.chosen_version(db, KIND, sandbox, fragment_id, body.version)
    number = version["version"]
    document = version["document"]
    included = list(version["fragments"])
    shown = FragmentText(fragment_id, document["type"], number, document["content"], tuple(included))
    loader = Fragments.from_rows(sandbox, await repository.reached(db, sandbox, included), shown)
    template, errors = _as_included(fragment_id, document["type"], loader)
    text, undefined = None, []
    if template is not None:
        rendered = template.render({"profile": profile, "context": body.context})
        text, undefined = rendered.text, [u.as_dict() for u in rendered.undefined_paths]
        errors = [ContentProblem("/content", p.message, "render", p) for p in rendered.errors]
    return {
        "fragmentId": fragment_id,
        **({"profileId": read.get("profileId")} if read is not None else {}),
        "version": number,
        "text": text,
        "undefinedPaths": undefined,
        "errors": [e.as_dict() for e in errors],
    }


async def listing(
    db: asyncpg.Connection, sandbox: str, *, kind: str | None, status: str | None, start: int, limit: int
) -> dict[str, Any]:
    return await versioning.listing(
        db, KIND, sandbox, FRAGMENTS, extra=kind, status=status, start=start, limit=limit
    )
