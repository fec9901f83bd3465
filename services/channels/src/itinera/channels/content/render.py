"""Rendering a message: the template's variant for the profile's language, each part
compiled once per (sandbox, template, version, locale, part, fragments' versions) and
rendered with ``{"profile": ..., "context": ...}``.

Only an email's HTML is HTML-escaped; its subject and text, and SMS, push and webhook
parts, are not (they are not HTML, and escaping would show ``&amp;`` to the reader).
A webhook payload given as an object has each of its texts rendered; given as one
text it is rendered with values escaped for JSON strings (``{{x}}``; ``{{{x}}}`` is raw)
and must then be JSON. A part that cannot compile, or renders with
errors, makes the message excluded (reason ``render``) with the first problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from itinera.common.render import Escaping, TemplateError, compile_cached
from itinera.common.render.locale import choose_locale

TEXT_PARTS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "html", "text"),
    "sms": ("text",),
    "push": ("title", "body"),
    "webhook": ("url",),
}


class RenderFailed(Exception):
    """Why a message could not be rendered."""


@dataclass(frozen=True)
class Fragments:
    """The fragments a template may include, by id: hashable, so that two messages of one
    template with the same fragments share one compiled template in the cache."""

    sources: tuple[tuple[str, str], ...]

    def __call__(self, fragment_id: str) -> str | None:
        for found, source in self.sources:
            if found == fragment_id:
                return source
        return None


def _variant(variants: Mapping[str, Any], default: str | None, profile: Mapping[str, Any]) -> str:
    if not variants:
        raise RenderFailed("the template has no variant")
    chosen = choose_locale(variants, default or "", profile)
    if isinstance(chosen, str) and chosen in variants:
        return chosen
    return default if default is not None and default in variants else next(iter(variants))


def fragments_for(
    locale: str, found: Mapping[str, Mapping[str, Any]], profile: Mapping[str, Any]
) -> Fragments | None:
    """The fragments' texts in the template's locale (else the fragment's own choice for
    the profile); None when the template includes none."""
    if not found:
        return None
    sources = []
    for fragment_id, row in sorted(found.items()):
        variants = row["variants"] or {}
        if not variants:
            continue
        chosen = locale if locale in variants else _variant(variants, row["default_locale"], profile)
        content = variants[chosen].get("content")
        if isinstance(content, str):
            sources.append((fragment_id, content))
    return Fragments(tuple(sources))


def _render(
    source: Any, key: tuple[Any, ...], data: Mapping[str, Any], fragments: Fragments | None, escape: Escaping
) -> str:
    if not isinstance(source, str):
        raise RenderFailed(f"{key[-1]} is not a text")
    try:
        template = compile_cached(source, key, fragments=fragments, escape=escape)
    except TemplateError as exc:
        raise RenderFailed(f"{key[-1]} does not compile: {exc}") from None
    rendered = template.render(data)
    if rendered.errors:
        raise RenderFailed(f"{key[-1]}: {rendered.errors[0]}")
    return rendered.text


def _render_tree(
    value: Any, key: tuple[Any, ...], data: Mapping[str, Any], fragments: Fragments | None
) -> Any:
    if isinstance(value, str):
        return _render(value, key, data, fragments, escape=False)
    if isinstance(value, Mapping):
        return {k: _render_tree(v, (*key, str(k)), data, fragments) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_tree(v, (*key, str(i)), data, fragments) for i, v in enumerate(value)]
    return value


def render_message(
    sandbox: str,
    template: Mapping[str, Any],
    channel: str,
    profile: Mapping[str, Any],
    context: Mapping[str, Any],
    fragments: Mapping[str, Mapping[str, Any]],
) -> tuple[str, dict[str, Any]]:
    """The locale chosen and the rendered parts of the message; raises RenderFailed."""
    variants: Mapping[str, Any] = template["variants"] or {}
    locale = _variant(variants, template["default_locale"], profile)
    variant: Mapping[str, Any] = variants[locale]
    loader = fragments_for(locale, fragments, profile)
    versions = tuple(sorted((f, int(row["version"])) for f, row in fragments.items()))
    base = (sandbox, template["id"], int(template["version"]), locale, versions)
    data = {"profile": profile, "context": context}
    parts: dict[str, Any] = {}
    for part in TEXT_PARTS[channel]:
        if variant.get(part) is not None:
            escape = channel == "email" and part == "html"
            parts[part] = _render(variant[part], (*base, part), data, loader, escape)
    if channel == "email":
        if not parts.get("html") and not parts.get("text"):
            raise RenderFailed("the email has neither html nor text")
        for name in ("sender", "replyTo"):
            if variant.get(name) is not None:
                parts[name] = _render_tree(variant[name], (*base, name), data, loader)
    elif channel == "sms" and not parts.get("text"):
        raise RenderFailed("the SMS has no text")
    elif channel == "push":
        if variant.get("data") is not None:
            parts["data"] = _render_tree(variant["data"], (*base, "data"), data, loader)
    elif channel == "webhook":
        if not parts.get("url"):
            raise RenderFailed("the webhook has no url")
        payload = variant.get("payload")
        if isinstance(payload, str):
            text = _render(payload, (*base, "payload"), data, loader, escape="json")
            try:
                parts["payload"] = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise RenderFailed("the rendered payload is not JSON") from None
        else:
            parts["payload"] = _render_tree(payload, (*base, "payload"), data, loader)
        if variant.get("headers") is not None:
            parts["headers"] = _render_tree(variant["headers"], (*base, "headers"), data, loader)
    return locale, parts
