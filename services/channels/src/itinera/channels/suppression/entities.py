"""What an entry of the suppression list may be: an email address, a phone number or a
push token (``addresses``), or an email domain (``domains``), kept as
:func:`itinera.channels.suppression.repository.normal` keeps them."""

from __future__ import annotations

import re

from itinera.channels.suppression.repository import normal
from itinera.common.errors import FieldError

_EMAIL = re.compile(r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,62})\.)+[a-z0-9-]{1,63}$")
_PHONE = re.compile(r"^\+?[0-9]{3,20}$")
_TOKEN = re.compile(r"^[\x21-\x7e]{1,1024}$")


class InvalidEntry(ValueError):
    """What is wrong with an entry: the field at fault (``type`` or ``entityValue``), why,
    and the problem's code."""

    def __init__(self, field: str, message: str, code: str) -> None:
        super().__init__(message)
        self.field, self.message, self.code = field, message, code

    def at(self, path: str) -> FieldError:
        """The problem, for an entry found at ``path``."""
        return FieldError(f"{path}/{self.field}", self.message, self.code)


def entity(kind: str, type_text: str | None, value: str) -> tuple[str, str]:
    """The entity type and the value as kept of an entry of ``kind`` (``addresses``:
    ``email`` by default, ``phone``, ``pushToken``; ``domains``: ``domain``);
    :class:`InvalidEntry` otherwise."""
    kind_of = (type_text or ("email" if kind == "addresses" else "domain")).strip()
    if kind == "addresses":
        entity_type = {"email": "email", "phone": "phone", "pushtoken": "pushToken"}.get(kind_of.lower())
        pattern = {"email": _EMAIL, "phone": _PHONE, "pushToken": _TOKEN}.get(entity_type or "")
    else:
        entity_type = "domain" if kind_of.lower() == "domain" else None
        pattern = _DOMAIN
    if entity_type is None:
        raise InvalidEntry("type", f"{kind_of!r} is not a type of {kind}", "enum")
    kept = normal(value, entity_type)
    if pattern is None or not pattern.fullmatch(kept):
        raise InvalidEntry("entityValue", f"not a valid {entity_type}", "format")
    return entity_type, kept
