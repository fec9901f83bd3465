"""XDM identities: the ``identityMap`` models and AEP's identity rules.

An identity is a (namespace code, value) pair. Records carry them in ``identityMap``
and in fields that a schema's identity descriptors mark. The rules here are AEP's
streaming guardrails: an ECID is exactly 38 digits; at most 20 identities per record;
a value is at most 1,024 characters; empty values and the placeholders "null",
"anonymous" and "invalid" are refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel

from itinera.common.errors import FieldError

MAX_IDENTITIES_PER_RECORD = 20
MAX_IDENTITY_LENGTH = 1024
PLACEHOLDER_VALUES = frozenset({"null", "anonymous", "invalid"})
_ECID = re.compile(r"[0-9]{38}")
STANDARD_NAMESPACE_IDS = {
    "CRMID": 1,
    "ECID": 4,
    "Email": 6,
    "Phone": 7,
    "AAID": 10,
    "Email_LC_SHA256": 11,
    "Phone_SHA256": 12,
    "IDFA": 20,
    "GAID": 21,
    "AdCloud": 411,
}
"""AEP's numeric ids of the standard identity namespaces, by code. Codes match
case-insensitively (:func:`standard_namespace_id`); a custom namespace's id is the
profile service's to give."""
_STANDARD_IDS = {code.lower(): number for code, number in STANDARD_NAMESPACE_IDS.items()}


def standard_namespace_id(code: str) -> int | None:
    """The id of a standard namespace, whatever the case of its code; ``None`` for others."""
    return _STANDARD_IDS.get(code.lower())


class AuthenticatedState(StrEnum):
    ambiguous = "ambiguous"
    authenticated = "authenticated"
    logged_out = "loggedOut"


class IdentityItem(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    id: str
    authenticated_state: AuthenticatedState = Field(
        default=AuthenticatedState.ambiguous, alias="authenticatedState"
    )
    primary: bool = False


class IdentityMap(RootModel[dict[str, list[IdentityItem]]]):
    """``{"Email": [{"id": "jane@example.com", "primary": true}], "ECID": [...]}``"""


@dataclass(frozen=True, slots=True)
class Identity:
    namespace: str
    id: str
    primary: bool = False
    authenticated_state: str = AuthenticatedState.ambiguous.value
    path: str = ""
    """Where the identity was found: a JSON Pointer into the entity."""

    @property
    def key(self) -> str:
        """The partition key form, ``namespace:id``."""
        return f"{self.namespace}:{self.id}"


def from_identity_map(entity: Mapping[str, Any]) -> list[Identity]:
    """The identities of ``identityMap`` (assumed schema-valid)."""
    found: list[Identity] = []
    identity_map = entity.get("identityMap")
    if not isinstance(identity_map, Mapping):
        return found
    for namespace, items in identity_map.items():
        if not isinstance(items, Sequence):
            continue
        for index, item in enumerate(items):
            if isinstance(item, Mapping) and isinstance(item.get("id"), str):
                found.append(
                    Identity(
                        namespace=namespace,
                        id=item["id"],
                        primary=bool(item.get("primary", False)),
                        authenticated_state=str(item.get("authenticatedState", "ambiguous")),
                        path=f"/identityMap/{_escape(namespace)}/{index}/id",
                    )
                )
    return found


def check(identities: Iterable[Identity], base_path: str = "") -> list[FieldError]:
    """Every way ``identities`` break AEP's identity rules."""
    problems: list[FieldError] = []
    identities = list(identities)
    for identity in identities:
        path = base_path + identity.path
        value = identity.id
        if not value.strip():
            problems.append(FieldError(path, "identity value is empty", "identity.empty"))
        elif value.strip().lower() in PLACEHOLDER_VALUES:
            problems.append(
                FieldError(path, f"identity value {value!r} is a placeholder", "identity.placeholder")
            )
        if len(value) > MAX_IDENTITY_LENGTH:
            problems.append(
                FieldError(
                    path,
                    f"identity value is {len(value)} characters; at most {MAX_IDENTITY_LENGTH}",
                    "identity.length",
                )
            )
        if identity.namespace.upper() == "ECID" and not _ECID.fullmatch(value):
            problems.append(FieldError(path, "an ECID is exactly 38 digits", "identity.ecid"))
        if not identity.namespace.strip():
            problems.append(FieldError(path, "identity namespace is empty", "identity.namespace"))
    distinct = {(i.namespace, i.id) for i in identities}
    if len(distinct) > MAX_IDENTITIES_PER_RECORD:
        problems.append(
            FieldError(
                base_path + "/identityMap",
                f"{len(distinct)} identities; a record may carry at most {MAX_IDENTITIES_PER_RECORD}",
                "identity.count",
            )
        )
    primaries = [i for i in identities if i.primary]
    if len({(i.namespace, i.id) for i in primaries}) > 1:
        problems.append(
            FieldError(
                base_path + primaries[1].path.rsplit("/", 1)[0] + "/primary",
                "more than one identity is marked primary",
                "identity.primary",
            )
        )
    return problems


def primary(identities: Sequence[Identity]) -> Identity | None:
    """The primary identity: the one marked primary, else the first found."""
    for identity in identities:
        if identity.primary:
            return identity
    return identities[0] if identities else None


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")
