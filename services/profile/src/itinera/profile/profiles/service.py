"""The merged view of a profile, computed on read for any merge policy."""

from __future__ import annotations

from typing import Any

import asyncpg

from itinera.common.errors import NotFound
from itinera.profile.identity import repository as graph
from itinera.profile.identity.graph import Node
from itinera.profile.profiles import repository
from itinera.profile.profiles.merge import merge
from itinera.profile.profiles.policies import MergePolicy


async def resolve_id(
    conn: asyncpg.Connection, sandbox: str, profile_id: str
) -> tuple[str, list[asyncpg.Record]]:
    """The live id and its members (with first and last seen): a merged id leads to the
    profile it was merged into."""
    members = await graph.members_of_profile(conn, sandbox, profile_id)
    if members:
        return profile_id, members
    survivor = await graph.merged_into(conn, sandbox, profile_id)
    if survivor is None:
        raise NotFound(f"no profile {profile_id!r} in sandbox {sandbox!r}")
    return survivor, await graph.members_of_profile(conn, sandbox, survivor)


async def view(
    conn: asyncpg.Connection, sandbox: str, profile_id: str, policy: MergePolicy, identity: Node | None = None
) -> dict[str, Any]:
    """The profile as ``policy`` merges it. With identity stitching off (``none``), only
    the fragments of ``identity`` (the one asked about) are merged."""
    live, rows = await resolve_id(conn, sandbox, profile_id)
    members = [Node(r["namespace"], r["value"]) for r in rows]
    used = members if policy.identity_graph == "pdg" or identity is None else [identity]
    fragments = await repository.fragments_of(conn, sandbox, used)
    return {
        "profileId": live,
        **({"requestedProfileId": profile_id} if live != profile_id else {}),
        "mergePolicyId": policy.id,
        "identities": [{"namespace": n.namespace, "id": n.value} for n in members],
        "entity": merge(fragments, policy.attribute_merge, policy.dataset_order),
        "sources": sorted({f.dataset_id for f in fragments}),
        "lastModifiedAt": max((f.record_time for f in fragments), default=None),
        "eventCount": await repository.event_count(conn, sandbox, used),
    }


async def default_view(conn: asyncpg.Connection, sandbox: str, identity: Node) -> dict[str, Any] | None:
    """The default policy's view of the profile holding ``identity``, as
    ``profile_views`` keeps it, in one statement; None when the stored view cannot
    answer (no default policy yet, a policy without identity stitching, a view older
    than the policy's last change), so the caller merges on read instead."""
    row = await conn.fetchrow(
        """SELECT p.id AS policy_id, m.profile_id, v.entity, v.sources, v.last_modified,
                  coalesce(v.policy_id = p.id AND v.updated_at >= p.updated_at, false) AS fresh,
                  (SELECT jsonb_agg(jsonb_build_array(o.namespace, o.value) ORDER BY o.namespace, o.value)
                   FROM members o WHERE o.sandbox = $1 AND o.profile_id = m.profile_id) AS identities
           FROM merge_policies p
           LEFT JOIN members m ON m.sandbox = $1 AND m.namespace = $2 AND m.value = $3
           LEFT JOIN profile_views v ON v.sandbox = $1 AND v.profile_id = m.profile_id
           WHERE p.sandbox = $1 AND p.is_default AND p.identity_graph = 'pdg'""",
        sandbox,
        identity.namespace,
        identity.value,
    )
    if row is None:
        return None
    if row["profile_id"] is None:
        raise NotFound(f"no profile with identity {identity.key} in sandbox {sandbox!r}")
    if not row["fresh"]:
        return None
    return {
        "profileId": str(row["profile_id"]),
        "mergePolicyId": str(row["policy_id"]),
        "identities": [{"namespace": n, "id": v} for n, v in row["identities"]],
        "entity": row["entity"],
        "sources": row["sources"],
        "lastModifiedAt": row["last_modified"],
    }
