"""Templates' parts as the renderer sees them, the fragments it loads, and the problems
of compiling them, as the API reports them.

A variant's parts are its personalization templates, each named by its JSON Pointer in
the variant: ``subject``, ``html``, ``text`` (email), ``text`` (SMS), ``title``,
``body``, ``data/<key>`` (push), ``payload``, ``headers/<name>`` (webhook). Only an
email's ``html`` is HTML-escaped; a webhook's ``payload`` (a text that renders to JSON)
has its values escaped for JSON strings (``escape="json"``); the others are plain text
(``escape=False``).

Fragments are loaded by ``Fragments``, a loader over the texts of published fragment
versions read beforehand (the renderer's loader is synchronous; the database is not).
Two loaders holding the same fragment versions are equal, so a compiled template is
found again in ``compile_cached`` until a fragment it may include is published anew.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from asyncpg import Record as Row

from itinera.common.render import Escaping, Problem, Template, TemplateError, compile_cached, compile_template

REQUIRED: dict[str, tuple[str, ...]] = {
    "email": ("subject", "html"),
    "sms": ("text",),
    "push": ("title", "body"),
    "webhook": ("payload",),
}
"""The parts a published variant of each channel must have (not empty)."""
VISUAL_PARTS = frozenset({("email", "html")})
"""Where visual (HTML) fragments may be included; expression fragments go anywhere."""


def escape_segment(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True, slots=True)
class PartText:
    name: str
    """Its JSON Pointer in the variant, without the leading ``/``: ``html``, ``data/url``."""
    source: str
    escape: Escaping


def parts(channel: str, variant: Mapping[str, Any]) -> list[PartText]:
    """The templates of one variant, in a fixed order."""
    found: list[PartText] = []
    for name in ("subject", "html", "text", "title", "body", "payload"):
        value = variant.get(name)
        if isinstance(value, str):
            escape: Escaping = "json" if name == "payload" else (channel, name) in VISUAL_PARTS
            found.append(PartText(name, value, escape))
    for group in ("data", "headers"):
        values = variant.get(group)
        if isinstance(values, Mapping):
            for key in sorted(values):
                if isinstance(values[key], str):
                    found.append(PartText(f"{group}/{escape_segment(key)}", values[key], escape=False))
    return found


class _Recorder:
    """A loader that answers every fragment with empty text and remembers what was asked."""

    def __init__(self) -> None:
        self.asked: dict[str, None] = {}

    def __call__(self, fragment_id: str) -> str:
        self.asked.setdefault(fragment_id, None)
        return ""


def references(source: str) -> list[str]:
    """The fragment ids a text includes itself (not through other fragments), in order."""
    recorder = _Recorder()
    try:
        compile_template(source, fragments=recorder)
    except TemplateError:
        pass  # what the text includes is still what the compiler asked for
    return list(recorder.asked)


def references_of(texts: Iterable[str]) -> list[str]:
    found: dict[str, None] = {}
    for text in texts:
        for fragment_id in references(text):
            found.setdefault(fragment_id, None)
    return sorted(found)


class Unpublished(LookupError):
    def __str__(self) -> str:
        return "it has no published version"


@dataclass(frozen=True, slots=True)
class FragmentText:
    id: str
    type: str
    version: int | None
    """The published version; ``None``: the fragment exists only as a draft."""
    content: str | None
    fragments: tuple[str, ...]


class Fragments:
    """The renderer's fragment loader over fragment texts read beforehand (``None`` for
    an unknown id; an ``Unpublished`` error, which the renderer reports at the tag, for a
    fragment with no published version). Equal and hashed by the sandbox and the
    versions it holds, so it can be part of a compile cache key."""

    __slots__ = ("_key", "by_id")

    def __init__(
        self, sandbox: str, found: Iterable[FragmentText], draft: FragmentText | None = None
    ) -> None:
        self.by_id = {f.id: f for f in found}
        if draft is not None:
            self.by_id[draft.id] = draft
        pinned = tuple(sorted((f.id, f.version or 0) for f in self.by_id.values()))
        self._key = (sandbox, pinned, None if draft is None else draft.content)

    @classmethod
    def from_rows(cls, sandbox: str, rows: Iterable[Row], draft: FragmentText | None = None) -> Fragments:
        return cls(
            sandbox,
            (
                FragmentText(r["id"], r["type"], r["published_version"], r["content"], tuple(r["fragments"]))
                for r in rows
            ),
            draft,
        )

    def __call__(self, fragment_id: str) -> str | None:
        found = self.by_id.get(fragment_id)
        if found is None:
            return None
        if found.content is None:
            raise Unpublished(fragment_id)
        return found.content

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fragments) and other._key == self._key

    def __hash__(self) -> int:
        return hash(self._key)

    def visual(self, ids: Iterable[str]) -> list[str]:
        return [i for i in ids if (f := self.by_id.get(i)) is not None and f.type == "visual"]


@dataclass(frozen=True, slots=True)
class ContentProblem:
    """One reason a version cannot be published (or a part did not compile in a preview)."""

    path: str
    message: str
    code: str
    position: Problem | None = None

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"path": self.path, "message": self.message, "code": self.code}
        if self.position is not None:
            found = self.position.as_dict()
            body["position"] = {
                k: found[k] for k in ("line", "column", "offset", "endOffset", "construct", "fragment")
            }
        return body


def code_of(problem: Problem) -> str:
    if problem.construct == "fragment":
        return "cycle" if "includes itself" in problem.message else "fragment"
    return "template"


def compile_part(
    source: str, *, key: tuple[Any, ...] | None, fragments: Fragments, escape: Escaping
) -> tuple[Template | None, list[Problem]]:
    """The compiled part (through the process's compile cache when ``key`` is given) or
    every problem the renderer found."""
    try:
        if key is None:
            return compile_template(source, fragments=fragments, escape=escape), []
        return compile_cached(source, key, fragments=fragments, escape=escape), []
    except TemplateError as error:
        return None, list(error.problems)
