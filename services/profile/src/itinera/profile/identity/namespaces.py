"""Identity namespaces: the standard ones and each sandbox's custom ones.

A namespace has an AEP shape (``code``, ``name``, ``idType``, ``id``...) and two graph
settings: ``uniquePerGraph`` (a graph holds at most one value of it) and ``priority``
(stronger links win a conflict). Standard namespaces may have their graph settings
changed per sandbox; a sandbox may add custom namespaces. Emails are matched
case-insensitively: values of Email-type namespaces are stored lower-cased.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg

from itinera.common.errors import Conflict, FieldError, NotFound, ValidationFailed
from itinera.common.xdm.identity import STANDARD_NAMESPACE_IDS as _ID
from itinera.profile.identity.graph import Node, Rules

ID_TYPES = ("COOKIE", "CROSS_DEVICE", "DEVICE", "EMAIL", "MOBILE", "NON_PEOPLE", "PHONE")
_EPOCH = datetime(2019, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Namespace:
    code: str
    id: int
    name: str
    id_type: str
    description: str = ""
    unique_per_graph: bool = False
    priority: int = 0
    custom: bool = False
    created_at: datetime = _EPOCH
    updated_at: datetime = _EPOCH

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "code": self.code,
            "name": self.name,
            "description": self.description,
            "idType": self.id_type,
            "status": "ACTIVE",
            "custom": self.custom,
            "createTime": int(self.created_at.timestamp() * 1000),
            "updateTime": int(self.updated_at.timestamp() * 1000),
            "uniquePerGraph": self.unique_per_graph,
            "priority": self.priority,
        }


# Priorities: person identifiers above device and cookie identifiers, as AEP's defaults.
STANDARD: tuple[Namespace, ...] = (
    Namespace("CRMID", _ID["CRMID"], "CRM ID", "CROSS_DEVICE", "Customer id from a CRM", True, 100),
    Namespace("Email", _ID["Email"], "Email", "EMAIL", "Email address", False, 90),
    Namespace(
        "Email_LC_SHA256",
        _ID["Email_LC_SHA256"],
        "Emails (SHA256, lowercased)",
        "EMAIL",
        "Hashed email",
        False,
        85,
    ),
    Namespace("Phone", _ID["Phone"], "Phone", "PHONE", "Phone number", False, 80),
    Namespace(
        "Phone_SHA256", _ID["Phone_SHA256"], "Phone (SHA256)", "PHONE", "Hashed phone number", False, 75
    ),
    Namespace("IDFA", _ID["IDFA"], "Apple IDFA", "DEVICE", "Apple advertising id", False, 60),
    Namespace("GAID", _ID["GAID"], "Google Ad ID", "DEVICE", "Google advertising id", False, 60),
    Namespace("AAID", _ID["AAID"], "Adobe Analytics ID", "DEVICE", "Adobe Analytics id", False, 50),
    Namespace("ECID", _ID["ECID"], "Experience Cloud ID", "COOKIE", "Experience Cloud id", False, 40),
    Namespace("AdCloud", _ID["AdCloud"], "AdCloud", "COOKIE", "Advertising cloud id", False, 30),
)
_STANDARD = {n.code.lower(): n for n in STANDARD}


def normalise(namespace: Namespace | None, value: str) -> str:
    """The stored form of a value: Email-type namespaces match case-insensitively."""
    if namespace is not None and namespace.id_type == "EMAIL":
        return value.strip().lower()
    return value


def _row(row: asyncpg.Record) -> Namespace:
    return Namespace(
        code=row["code"],
        id=row["id"],
        name=row["name"],
        id_type=row["id_type"],
        description=row["description"],
        unique_per_graph=row["unique_per_graph"],
        priority=row["priority"],
        custom=row["custom"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def all_of(conn: asyncpg.Connection, sandbox: str) -> list[Namespace]:
    """Standard namespaces (with this sandbox's settings) and custom ones, by id."""
    rows = await conn.fetch("SELECT * FROM namespaces WHERE sandbox = $1", sandbox)
    stored = {r["code"].lower(): r for r in rows}
    found = []
    for standard in STANDARD:
        row = stored.pop(standard.code.lower(), None)
        found.append(
            replace(
                standard,
                unique_per_graph=row["unique_per_graph"],
                priority=row["priority"],
                updated_at=row["updated_at"],
            )
            if row is not None
            else standard
        )
    found.extend(_row(r) for r in stored.values())
    return sorted(found, key=lambda n: n.id)


def by_code(namespaces: Iterable[Namespace]) -> dict[str, Namespace]:
    """Namespaces by lower-cased code: codes match case-insensitively."""
    return {n.code.lower(): n for n in namespaces}


_SEEN: dict[tuple[str, str], Namespace] = {}
"""Custom namespaces found before, by (sandbox, lower-cased code). A namespace is never
deleted and its code and type never change, which is all :func:`node_of` uses."""


async def node_of(conn: asyncpg.Connection, sandbox: str, code: str, value: str) -> Node:
    """The node of one identity, its value normalised by its namespace; the database is
    asked only about a custom namespace not seen before."""
    key = code.lower()
    namespace = _STANDARD.get(key) or _SEEN.get((sandbox, key))
    if namespace is None:
        namespace = next((n for n in await all_of(conn, sandbox) if n.code.lower() == key), None)
        if namespace is not None:
            _SEEN[(sandbox, key)] = namespace
    return Node(namespace.code if namespace else code, normalise(namespace, value))


async def get(conn: asyncpg.Connection, sandbox: str, ref: str) -> Namespace:
    """By code (case-insensitive) or numeric id."""
    for namespace in await all_of(conn, sandbox):
        if ref.lower() == namespace.code.lower() or ref == str(namespace.id):
            return namespace
    raise NotFound(f"no identity namespace {ref!r} in sandbox {sandbox!r}")


def rules(namespaces: Sequence[Namespace], max_identities: int) -> Rules:
    return Rules(
        unique=frozenset(n.code for n in namespaces if n.unique_per_graph),
        priority={n.code: n.priority for n in namespaces},
        max_identities=max_identities,
    )


def _check(body: dict[str, Any], creating: bool) -> list[FieldError]:
    errors = []
    if creating:
        code = body.get("code")
        if not isinstance(code, str) or (not code.isalnum() and not code.replace("_", "").isalnum()):
            errors.append(FieldError("/code", "letters, digits and underscores only", "pattern"))
        elif len(code) > 64:
            errors.append(FieldError("/code", "at most 64 characters", "maxLength"))
        if not isinstance(body.get("name"), str) or not body["name"].strip():
            errors.append(FieldError("/name", "a display name is required", "required"))
        id_type = body.get("idType")
        if not isinstance(id_type, str) or id_type.upper() not in ID_TYPES:
            errors.append(FieldError("/idType", f"one of {', '.join(ID_TYPES)}", "enum"))
    if "description" in body and not isinstance(body["description"], str):
        errors.append(FieldError("/description", "expected a string", "type"))
    if "uniquePerGraph" in body and not isinstance(body["uniquePerGraph"], bool):
        errors.append(FieldError("/uniquePerGraph", "expected a boolean", "type"))
    priority = body.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 1000:
        errors.append(FieldError("/priority", "an integer from 0 to 1000", "range"))
    return errors


async def create(conn: asyncpg.Connection, sandbox: str, body: dict[str, Any]) -> Namespace:
    errors = _check(body, creating=True)
    if errors:
        raise ValidationFailed("the namespace is not valid", errors)
    if body["code"].lower() in _STANDARD:
        raise Conflict(f"{body['code']!r} is a standard namespace")
    try:
        row = await conn.fetchrow(
            """INSERT INTO namespaces (sandbox, code, name, description, id_type, unique_per_graph, priority)
               VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *""",
            sandbox,
            body["code"],
            body["name"].strip(),
            body.get("description", ""),
            body["idType"].upper(),
            body.get("uniquePerGraph", False),
            body.get("priority", 0),
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"namespace code {body['code']!r} exists") from None
    return _row(row)


async def update(conn: asyncpg.Connection, sandbox: str, ref: str, body: dict[str, Any]) -> Namespace:
    """Change the description (custom ones) and the graph settings (any)."""
    current = await get(conn, sandbox, ref)
    errors = _check(body, creating=False)
    if errors:
        raise ValidationFailed("the namespace is not valid", errors)
    unique = body.get("uniquePerGraph", current.unique_per_graph)
    priority = body.get("priority", current.priority)
    description = body.get("description", current.description)
    await conn.execute(
        """INSERT INTO namespaces
               (sandbox, code, name, description, id_type, unique_per_graph, priority, custom)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (sandbox, code) DO UPDATE
           SET description = EXCLUDED.description, unique_per_graph = EXCLUDED.unique_per_graph,
               priority = EXCLUDED.priority, updated_at = now()""",
        sandbox,
        current.code,
        current.name,
        description,
        current.id_type,
        unique,
        priority,
        current.custom,
    )
    return await get(conn, sandbox, current.code)
