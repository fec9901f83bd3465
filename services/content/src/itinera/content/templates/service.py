"""Templates: drafts saved as sent, published when every part compiles, previewed with
a profile.

Publishing checks, reporting every problem at once (``ContentProblem``, a JSON Pointer
into the template document and, for the renderer's problems, the position in the
part):

- the template has a variant, and one for its ``defaultLocale`` (``required``,
  ``default-locale``);
- each variant has its channel's parts (email: ``subject``, ``html`` and ``sender``;
  SMS: ``text``; push: ``title`` and ``body``; webhook: ``payload``) (``required``);
- every part compiles with the renderer, the fragments it includes being the published
  versions of the sandbox's fragments: an unknown fragment, one never published, a
  cycle, nesting too deep are the renderer's problems at the tag (``fragment``,
  ``cycle``); any other is ``template``;
- visual fragments are included in an email's ``html`` only (``visual-fragment``).

Publishing locks the fragments the template reaches (``FOR SHARE``), so none is
deleted before the version that includes it is committed.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from asyncpg import Record as Row

from itinera.common.errors import FieldError, ValidationFailed
from itinera.common.render.locale import choose_locale
from itinera.content import rendering
from itinera.content.fragments import repository as fragments
from itinera.content.rendering import ContentProblem, Fragments, FragmentText, compile_part, escape_segment
from itinera.content.templates.schemas import PreviewIn, TemplateIn
from itinera.content.versioning import service as versioning
from itinera.content.versioning.repository import TEMPLATES as KIND

TEMPLATES = "/v1/templates"


def document_of(body: TemplateIn) -> dict[str, Any]:
    document: dict[str, Any] = body.model_dump(mode="json", exclude={"id"}, exclude_none=True)
    return document


def _texts(document: dict[str, Any]) -> list[str]:
    return [
        part.source
        for variant in document["variants"].values()
        for part in rendering.parts(document["channel"], variant)
    ]


def check_size(body: TemplateIn, max_locales: int, max_part_chars: int) -> None:
    """Refuses, before anything is stored, more locales or longer parts than the settings allow."""
    errors: list[FieldError] = []
    if len(body.variants) > max_locales:
        errors.append(FieldError("/variants", f"at most {max_locales} locales", "maxProperties"))
    for locale, variant in body.variants.items():
        for part in rendering.parts(body.channel, variant.model_dump()):
            if len(part.source) > max_part_chars:
                errors.append(
                    FieldError(
                        f"/variants/{escape_segment(locale)}/{part.name}",
                        f"{len(part.source)} characters; at most {max_part_chars}",
                        "maxLength",
                    )
                )
    if errors:
        raise ValidationFailed(f"the template is too large: {errors[0].path}: {errors[0].message}", errors)


# Views


def tracking_of(document: dict[str, Any]) -> dict[str, bool] | None:
    """An email template's tracking (both, for one saved before templates had it)."""
    if document["channel"] != "email":
        return None
    return {"opens": True, "clicks": True, **(document.get("tracking") or {})}


def template_view(row: Row, versions: list[Row] | None = None, latest: Row | None = None) -> dict[str, Any]:
    body = versioning.item_view(KIND, row, versions)
    if latest is not None:
        body["defaultLocale"] = latest["document"]["defaultLocale"]
        body["variants"] = latest["document"]["variants"]
        body["fragments"] = list(latest["fragments"])
        body["tracking"] = tracking_of(latest["document"])
    return body


def version_view(template_id: str, row: Row, problems: list[ContentProblem] | None = None) -> dict[str, Any]:
    document = row["document"]
    body = {
        "templateId": template_id,
        **versioning.summary(row),
        "name": document["name"],
        "description": document.get("description", ""),
        "channel": document["channel"],
        "defaultLocale": document["defaultLocale"],
        "variants": document["variants"],
        "fragments": list(row["fragments"]),
        "tracking": tracking_of(document),
    }
    if problems is not None:
        body["problems"] = [p.as_dict() for p in problems]
    return body


# Operations


async def create(db: asyncpg.Connection, sandbox: str, body: TemplateIn) -> dict[str, Any]:
    document = document_of(body)
    template_id = await versioning.create(
        db,
        KIND,
        sandbox,
        body.id,
        body.name,
        body.description,
        body.channel,
        document,
        rendering.references_of(_texts(document)),
    )
    return await get(db, sandbox, template_id)


async def replace(
    db: asyncpg.Connection, sandbox: str, template_id: str, body: TemplateIn, if_match: str | None = None
) -> dict[str, Any]:
    if body.id is not None and body.id != template_id:
        raise ValidationFailed(
            f"the body names template {body.id!r}, the path {template_id!r}",
            [FieldError("/id", "must be the path's id, or absent", "mismatch")],
        )
    document = document_of(body)
    await versioning.replace(
        db,
        KIND,
        sandbox,
        template_id,
        body.name,
        body.description,
        body.channel,
        document,
        rendering.references_of(_texts(document)),
        if_match,
    )
    return await get(db, sandbox, template_id)


async def get(db: asyncpg.Connection, sandbox: str, template_id: str) -> dict[str, Any]:
    row, versions = await versioning.item(db, KIND, sandbox, template_id)
    latest = await versioning.version(db, KIND, sandbox, template_id, row["latest_version"])
    return template_view(row, versions, latest)


async def get_version(db: asyncpg.Connection, sandbox: str, template_id: str, number: int) -> dict[str, Any]:
    row = await versioning.version(db, KIND, sandbox, template_id, number)
    problems = await problems_of(db, sandbox, template_id, row) if row["status"] == "draft" else None
    return version_view(template_id, row, problems)


def cache_key(sandbox: str, template_id: str, row: Row, part: str, locale: str) -> tuple[Any, ...]:
    """A compiled part's key in the process's compile cache: published versions never
    change, and each replacement of a draft bumps its ``revision``."""
    return ("content", sandbox, "template", template_id, row["version"], row["revision"], part, locale)


async def _loader(
    db: asyncpg.Connection, sandbox: str, row: Row, *, lock: bool = False, draft: FragmentText | None = None
) -> Fragments:
    roots = [*row["fragments"], *(draft.fragments if draft is not None else ())]
    reached = await fragments.reached(db, sandbox, roots, lock=lock)
    return Fragments.from_rows(sandbox, reached, draft)


async def problems_of(
    db: asyncpg.Connection,
    sandbox: str,
    template_id: str,
    row: Row,
    *,
    lock: bool = False,
    draft: FragmentText | None = None,
) -> list[ContentProblem]:
    """What keeps the version ``row`` from being published; none: it can be. With a
    fragment's ``draft``, what would keep it from being published were the draft the
    fragment's published version (the draft's publication asks, of each published
    template that includes it)."""
    document = row["document"]
    channel, variants, default = document["channel"], document["variants"], document["defaultLocale"]
    problems: list[ContentProblem] = []
    if not variants:
        problems.append(
            ContentProblem("/variants", "a template needs a variant of one locale at least", "required")
        )
    elif default not in variants:
        problems.append(
            ContentProblem(
                "/defaultLocale", f"there is no variant for the default locale {default!r}", "default-locale"
            )
        )
    loader = await _loader(db, sandbox, row, lock=lock, draft=draft)
    for locale, variant in sorted(variants.items()):
        base = f"/variants/{escape_segment(locale)}"
        for name in rendering.REQUIRED[channel]:
            if not str(variant.get(name, "")).strip():
                problems.append(
                    ContentProblem(f"{base}/{name}", f"a published {channel} needs a {name}", "required")
                )
        if channel == "email" and variant.get("sender") is None:
            problems.append(ContentProblem(f"{base}/sender", "a published email needs a sender", "required"))
        for part in rendering.parts(channel, variant):
            path = f"{base}/{part.name}"
            key = None if draft is not None else cache_key(sandbox, template_id, row, part.name, locale)
            _, found = compile_part(part.source, key=key, fragments=loader, escape=part.escape)
            problems += [ContentProblem(path, p.message, rendering.code_of(p), p) for p in found]
            if (channel, part.name) not in rendering.VISUAL_PARTS:
                for fragment_id in loader.visual(rendering.references(part.source)):
                    problems.append(
                        ContentProblem(
                            path,
                            f"{fragment_id!r} is a visual fragment: only an email's html includes those",
                            "visual-fragment",
                        )
                    )
    return problems


def refuse(what: str, problems: list[ContentProblem]) -> ValidationFailed:
    detail = "; ".join(f"{p.path}: {p.message}" for p in problems[:3])
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return ValidationFailed(
        f"{what} cannot be published: {detail}{more}",
        [FieldError(p.path, p.message, p.code) for p in problems],
        extra={"problems": [p.as_dict() for p in problems]},
    )


async def publish(
    db: asyncpg.Connection, sandbox: str, template_id: str, if_match: str | None = None
) -> dict[str, Any]:
    _, draft = await versioning.start_publish(db, KIND, sandbox, template_id, if_match)
    problems = await problems_of(db, sandbox, template_id, draft, lock=True)
    if problems:
        raise refuse(f"version {draft['version']} of template {template_id!r}", problems)
    document = draft["document"]
    record = {
        "name": document["name"],
        "channel": document["channel"],
        "defaultLocale": document["defaultLocale"],
        "variants": document["variants"],
        "fragments": list(draft["fragments"]),
    }
    if document["channel"] == "email":
        record["tracking"] = tracking_of(document)
    published = await versioning.finish_publish(db, KIND, sandbox, template_id, draft["version"], record)
    return version_view(template_id, published)


async def delete(db: asyncpg.Connection, sandbox: str, template_id: str, if_match: str | None = None) -> None:
    row = await versioning.locked(db, KIND, sandbox, template_id, if_match)
    await versioning.delete(db, KIND, sandbox, template_id, row)


async def listing(
    db: asyncpg.Connection, sandbox: str, *, channel: str | None, status: str | None, start: int, limit: int
) -> dict[str, Any]:
    return await versioning.listing(
        db, KIND, sandbox, TEMPLATES, extra=channel, status=status, start=start, limit=limit
    )


# Preview


def _locale(document: dict[str, Any], body: PreviewIn, profile: dict[str, Any]) -> str:
    variants: dict[str, Any] = document["variants"]
    if not variants:
        raise ValidationFailed(
            "the version has no variant to preview", [FieldError("/version", "it has no variant", "required")]
        )
    if body.locale is not None:
        if body.locale not in variants:
            raise ValidationFailed(
                f"the version has no variant for {body.locale!r}",
                [FieldError("/locale", f"one of {', '.join(sorted(variants))}", "unknown-locale")],
            )
        return body.locale
    chosen = choose_locale(variants, document["defaultLocale"], profile)
    # A draft's default locale may have no variant yet: take the first there is.
    return chosen if chosen in variants else sorted(variants)[0]


async def preview(
    db: asyncpg.Connection,
    sandbox: str,
    template_id: str,
    body: PreviewIn,
    read: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Render a version for ``body.profile``, or for ``read``, the profile service's
    view of the profile the body names (``{profileId, entity, ...}``)."""
    profile = body.profile if read is None else read.get("entity") or {}
    version = await versioning.chosen_version(db, KIND, sandbox, template_id, body.version)
    number = version["version"]
    document = version["document"]
    locale = _locale(document, body, profile)
    loader = await _loader(db, sandbox, version)
    data = {"profile": profile, "context": body.context}
    parts: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for part in rendering.parts(document["channel"], document["variants"][locale]):
        path = f"/variants/{escape_segment(locale)}/{part.name}"
        key = cache_key(sandbox, template_id, version, part.name, locale)
        template, problems = compile_part(part.source, key=key, fragments=loader, escape=part.escape)
        if template is None:
            found = [ContentProblem(path, p.message, rendering.code_of(p), p).as_dict() for p in problems]
            parts[part.name] = {"text": None, "undefinedPaths": [], "errors": found}
            errors += found
            continue
        rendered = template.render(data)
        found = [ContentProblem(path, p.message, "render", p).as_dict() for p in rendered.errors]
        if document["channel"] == "webhook" and part.name == "payload" and not rendered.errors:
            try:
                orjson.loads(rendered.text)
            except orjson.JSONDecodeError as error:
                found.append(
                    ContentProblem(path, f"the rendered payload is not JSON: {error}", "json").as_dict()
                )
        parts[part.name] = {
            "text": rendered.text,
            "undefinedPaths": [u.as_dict() for u in rendered.undefined_paths],
            "errors": found,
        }
        errors += found
    return {
        "templateId": template_id,
        **({"profileId": read.get("profileId")} if read is not None else {}),
        "version": number,
        "locale": locale,
        "parts": parts,
        "errors": errors,
    }
