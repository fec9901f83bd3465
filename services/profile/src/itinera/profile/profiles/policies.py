"""Merge policies, AEP-shaped: at most five per sandbox, exactly one default.

A sandbox that has none gets the default AEP ships with (timestamp-ordered, identity
graph stitching on) the first time one is needed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from itinera.common.errors import Conflict, FieldError, NotFound, ValidationFailed

MAX_PER_SANDBOX = 5
PROFILE_CLASS = "_xdm.context.profile"


@dataclass(frozen=True, slots=True)
class MergePolicy:
    id: str
    name: str
    attribute_merge: str
    dataset_order: tuple[str, ...]
    identity_graph: str
    is_default: bool

    def view(self, sandbox: str) -> dict[str, Any]:
        attribute_merge: dict[str, Any] = {"type": self.attribute_merge}
        if self.attribute_merge == "dataSetPrecedence":
            attribute_merge["order"] = list(self.dataset_order)
        return {
            "id": self.id,
            "name": self.name,
            "imsOrgId": sandbox,
            "schema": {"name": PROFILE_CLASS},
            "version": 1,
            "identityGraph": {"type": self.identity_graph},
            "attributeMerge": attribute_merge,
            "default": self.is_default,
            "isActiveOnEdge": False,
        }


def _policy(row: asyncpg.Record) -> MergePolicy:
    return MergePolicy(
        id=str(row["id"]),
        name=row["name"],
        attribute_merge=row["attribute_merge"],
        dataset_order=tuple(row["dataset_order"]),
        identity_graph=row["identity_graph"],
        is_default=row["is_default"],
    )


def _check(body: dict[str, Any]) -> list[FieldError]:
    errors = []
    if not isinstance(body.get("name"), str) or not body["name"].strip():
        errors.append(FieldError("/name", "a name is required", "required"))
    schema = body.get("schema")
    if not isinstance(schema, dict) or schema.get("name") != PROFILE_CLASS:
        errors.append(FieldError("/schema/name", f"must be {PROFILE_CLASS}", "enum"))
    graph = body.get("identityGraph")
    if not isinstance(graph, dict) or graph.get("type") not in ("none", "pdg"):
        errors.append(FieldError("/identityGraph/type", "none or pdg", "enum"))
    merge = body.get("attributeMerge")
    if not isinstance(merge, dict) or merge.get("type") not in ("timestampOrdered", "dataSetPrecedence"):
        errors.append(FieldError("/attributeMerge/type", "timestampOrdered or dataSetPrecedence", "enum"))
    elif merge["type"] == "dataSetPrecedence":
        order = merge.get("order")
        if not isinstance(order, list) or not order or not all(isinstance(d, str) and d for d in order):
            errors.append(FieldError("/attributeMerge/order", "a non-empty list of dataset ids", "required"))
        elif len(set(order)) != len(order):
            errors.append(FieldError("/attributeMerge/order", "a dataset appears twice", "uniqueItems"))
    if "default" in body and not isinstance(body["default"], bool):
        errors.append(FieldError("/default", "expected a boolean", "type"))
    return errors


async def ensure_default(conn: asyncpg.Connection, sandbox: str) -> MergePolicy:
    row = await conn.fetchrow("SELECT * FROM merge_policies WHERE sandbox = $1 AND is_default", sandbox)
    if row is None:
        row = await conn.fetchrow(
            """INSERT INTO merge_policies (sandbox, id, name, attribute_merge, identity_graph, is_default)
               VALUES ($1, $2, 'timestamp-ordered-default', 'timestampOrdered', 'pdg', true)
               ON CONFLICT DO NOTHING RETURNING *""",
            sandbox,
            uuid.uuid4(),
        )
        if row is None:  # created concurrently
            row = await conn.fetchrow(
                "SELECT * FROM merge_policies WHERE sandbox = $1 AND is_default", sandbox
            )
    return _policy(row)


async def all_of(conn: asyncpg.Connection, sandbox: str) -> list[MergePolicy]:
    await ensure_default(conn, sandbox)
    rows = await conn.fetch(
        "SELECT * FROM merge_policies WHERE sandbox = $1 ORDER BY created_at, id", sandbox
    )
    return [_policy(r) for r in rows]


async def get(conn: asyncpg.Connection, sandbox: str, policy_id: str | None) -> MergePolicy:
    """A policy by id; the default when ``policy_id`` is None."""
    if policy_id is None:
        return await ensure_default(conn, sandbox)
    try:
        key = uuid.UUID(policy_id)
    except ValueError:
        raise NotFound(f"no merge policy {policy_id!r}") from None
    row = await conn.fetchrow("SELECT * FROM merge_policies WHERE sandbox = $1 AND id = $2", sandbox, key)
    if row is None:
        raise NotFound(f"no merge policy {policy_id!r} in sandbox {sandbox!r}")
    return _policy(row)


async def save(
    conn: asyncpg.Connection, sandbox: str, body: dict[str, Any], policy_id: str | None = None
) -> MergePolicy:
    """Create (``policy_id`` None) or replace a policy. Making one default unsets the other."""
    errors = _check(body)
    if errors:
        raise ValidationFailed("the merge policy is not valid", errors)
    await ensure_default(conn, sandbox)
    merge = body["attributeMerge"]
    make_default = bool(body.get("default", False))
    if policy_id is None:
        count = await conn.fetchval("SELECT count(*) FROM merge_policies WHERE sandbox = $1", sandbox)
        if count >= MAX_PER_SANDBOX:
            raise Conflict(f"a sandbox has at most {MAX_PER_SANDBOX} merge policies")
        key = uuid.uuid4()
    else:
        current = await get(conn, sandbox, policy_id)
        if current.is_default and not make_default:
            raise Conflict("the default merge policy stays default until another is made default")
        key = uuid.UUID(current.id)
    if make_default:
        await conn.execute(
            "UPDATE merge_policies SET is_default = false WHERE sandbox = $1 AND is_default AND id <> $2",
            sandbox,
            key,
        )
    try:
        row = await conn.fetchrow(
            """INSERT INTO merge_policies
                   (sandbox, id, name, attribute_merge, dataset_order, identity_graph, is_default)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (sandbox, id) DO UPDATE SET name = EXCLUDED.name,
                   attribute_merge = EXCLUDED.attribute_merge, dataset_order = EXCLUDED.dataset_order,
                   identity_graph = EXCLUDED.identity_graph, is_default = EXCLUDED.is_default,
                   updated_at = now()
               RETURNING *""",
            sandbox,
            key,
            body["name"].strip(),
            merge["type"],
            list(merge.get("order") or []),
            body["identityGraph"]["type"],
            make_default,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"a merge policy named {body['name']!r} exists") from None
    return _policy(row)


async def delete(conn: asyncpg.Connection, sandbox: str, policy_id: str) -> None:
    policy = await get(conn, sandbox, policy_id)
    if policy.is_default:
        raise Conflict("the default merge policy cannot be deleted; make another default first")
    await conn.execute(
        "DELETE FROM merge_policies WHERE sandbox = $1 AND id = $2", sandbox, uuid.UUID(policy.id)
    )
