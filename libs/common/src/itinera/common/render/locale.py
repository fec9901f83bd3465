"""Which locale variant of a message a profile gets.

A template holds its parts once per locale (BCP 47 tags: ``en``, ``fr``, ``fr-CA``,
``zh-Hant-TW``) and names a default. The profile says what it reads in XDM's
``preferredLanguage``, at the profile's root (field group "Preference details").
``choose_locale`` looks that tag up as RFC 4647's lookup does, ignoring case and
taking ``_`` for ``-`` (``fr_CA`` is common in imported data):

1. the tag itself (``fr-CA``);
2. the tag shortened one subtag at a time (``fr``), dropping a one-letter extension
   singleton left at the end (``de-x-informal`` -> ``de``);
3. another variant of the same language, the first in alphabetical order (a profile
   in ``fr-CA`` reads a template with ``fr-FR`` and ``en`` in French);
4. the default.

The content service (preview) and the channels (sending) both choose with it, so a
preview shows what is sent. A pure function: no I/O, never raises on the profile.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

_TAG = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*")


def canonical(tag: str) -> str:
    """A BCP 47 tag in its conventional case: language lower, script title case,
    region upper, the rest lower (``FR-ca`` -> ``fr-CA``, ``zh-hant-tw`` -> ``zh-Hant-TW``)."""
    parts = tag.replace("_", "-").split("-")
    out = [parts[0].lower()]
    singleton = False
    for part in parts[1:]:
        if singleton or len(part) == 1:
            singleton = True
            out.append(part.lower())
        elif len(part) == 2 and part.isalpha():
            out.append(part.upper())
        elif len(part) == 4 and part.isalpha():
            out.append(part.title())
        else:
            out.append(part.lower())
    return "-".join(out)


def fallbacks(tag: str) -> list[str]:
    """``tag`` and its shorter forms, longest first, in lower case: ``zh-hant-tw``,
    ``zh-hant``, ``zh``. Empty when ``tag`` is not a language tag."""
    text = tag.strip().replace("_", "-")
    if not _TAG.fullmatch(text):
        return []
    parts = text.lower().split("-")
    found: list[str] = []
    while parts:
        found.append("-".join(parts))
        parts.pop()
        if len(parts) > 1 and len(parts[-1]) == 1:
            parts.pop()
    return found


def preferred_language(profile: Mapping[str, Any] | None) -> str | None:
    """The profile's ``preferredLanguage``, when it is text."""
    if not isinstance(profile, Mapping):
        return None
    value = profile.get("preferredLanguage")
    return value if isinstance(value, str) and value.strip() else None


def choose_locale(variants: Collection[str], default: str, profile: Mapping[str, Any] | None) -> str:
    """The variant (as ``variants`` spells it) for the profile's preferred language,
    else ``default``."""
    wanted = preferred_language(profile)
    if wanted is None or not variants:
        return default
    by_lower: dict[str, str] = {}
    for variant in sorted(variants):
        by_lower.setdefault(variant.lower().replace("_", "-"), variant)
    candidates = fallbacks(wanted)
    for candidate in candidates:
        if candidate in by_lower:
            return by_lower[candidate]
    if candidates:
        language = candidates[-1]
        for lower, variant in sorted(by_lower.items()):
            if lower.split("-")[0] == language:
                return variant
    return default
