"""Identity namespaces and graph look-ups: AEP-shaped under ``/data/core``, native
under ``/v1/identities``."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Security

from itinera.common.auth import Principal, require_scope
from itinera.common.errors import BadRequest, FieldError, NotFound
from itinera.common.service import Db
from itinera.profile.identity import namespaces as ns
from itinera.profile.identity import rebuild, repository
from itinera.profile.identity.graph import Node

router = APIRouter(tags=["identity"])
Reader = Annotated[Principal, Security(require_scope("identity:read"))]
Writer = Annotated[Principal, Security(require_scope("identity:write"))]


def xid_of(node: Node) -> str:
    """AEP's opaque identity string; here the URL-safe base64 of ``namespace:value``."""
    return base64.urlsafe_b64encode(node.key.encode()).decode().rstrip("=")


def from_xid(xid: str) -> tuple[str, str]:
    try:
        text = base64.urlsafe_b64decode(xid + "=" * (-len(xid) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    namespace, sep, value = text.partition(":")
    if not sep or not namespace or not value:
        raise BadRequest(
            "xid is not an identity string this API gave", [FieldError("/query/xid", "invalid", "xid")]
        )
    return namespace, value


async def _node(
    db: Db, sandbox: str, namespace: str | None, value: str | None, xid: str | None = None
) -> Node:
    if xid:
        namespace, value = from_xid(xid)
    if not namespace or not value:
        raise BadRequest(
            "name the identity: xid, or a namespace and an id",
            [FieldError("/query", "xid, or nsc/namespace and id", "required")],
        )
    known = await ns.all_of(db, sandbox)
    match = next((n for n in known if namespace.lower() == n.code.lower() or namespace == str(n.id)), None)
    return Node(match.code if match else namespace, ns.normalise(match, value))


@router.get("/data/core/idnamespace/identities", summary="List identity namespaces")
async def list_namespaces(caller: Reader, db: Db) -> list[dict[str, Any]]:
    return [n.view() for n in await ns.all_of(db, caller.sandbox)]


@router.post("/data/core/idnamespace/identities", summary="Create a custom identity namespace")
async def create_namespace(body: Annotated[dict[str, Any], Body()], caller: Writer, db: Db) -> dict[str, Any]:
    async with db.transaction():
        return (await ns.create(db, caller.sandbox, body)).view()


@router.get("/data/core/idnamespace/identities/{ID}", summary="Get a namespace by id or code")
async def get_namespace(ID: str, caller: Reader, db: Db) -> dict[str, Any]:
    return (await ns.get(db, caller.sandbox, ID)).view()


@router.put(
    "/data/core/idnamespace/identities/{ID}", summary="Update a namespace's description and graph settings"
)
async def update_namespace(
    ID: str, body: Annotated[dict[str, Any], Body()], caller: Writer, db: Db
) -> dict[str, Any]:
    """A change of ``uniquePerGraph`` or ``priority`` applies to the graphs already
    stored too: they are resolved again in the background (``/v1/identities/rebuilds``)."""
    async with db.transaction():
        before = await ns.get(db, caller.sandbox, ID)
        after = await ns.update(db, caller.sandbox, ID, body)
        await rebuild.request(db, caller.sandbox, before, after)
        return after.view()


@router.get("/data/core/identity/identity", summary="The xid of an identity")
async def identity_xid(
    caller: Reader,
    db: Db,
    namespace: Annotated[str | None, Query(max_length=128)] = None,
    nsc: Annotated[str | None, Query(max_length=128)] = None,
    id: Annotated[str | None, Query(max_length=1024)] = None,
) -> dict[str, str]:
    node = await _node(db, caller.sandbox, namespace or nsc, id)
    return {"xid": xid_of(node)}


@router.get("/data/core/identity/cluster/members", summary="The identities in the same graph (AEP shape)")
async def cluster_members(
    caller: Reader,
    db: Db,
    xid: Annotated[str | None, Query(max_length=2048)] = None,
    nsc: Annotated[str | None, Query(max_length=128)] = None,
    namespace: Annotated[str | None, Query(max_length=128)] = None,
    nsid: Annotated[str | None, Query(max_length=32)] = None,
    id: Annotated[str | None, Query(max_length=1024)] = None,
) -> dict[str, Any]:
    node = await _node(db, caller.sandbox, namespace or nsc or nsid, id, xid)
    pid = await repository.profile_of(db, caller.sandbox, node)
    rows = await repository.members_of_profile(db, caller.sandbox, pid) if pid else []
    if xid:
        members: list[Any] = [xid_of(Node(r["namespace"], r["value"])) for r in rows]
        cluster: dict[str, Any] = {"xid": xid, "members": members}
    else:
        members = [{"namespace": r["namespace"], "id": r["value"]} for r in rows]
        cluster = {"compositeXid": {"namespace": node.namespace, "id": node.value}, "members": members}
    return {"clusters": [cluster]}


@router.get(
    "/v1/identities/graph", summary="An identity's graph: profile, members, refused and evicted links"
)
async def graph(
    caller: Reader,
    db: Db,
    namespace: Annotated[str, Query(min_length=1, max_length=128)],
    id: Annotated[str, Query(min_length=1, max_length=1024)],
) -> dict[str, Any]:
    node = await _node(db, caller.sandbox, namespace, id)
    pid = await repository.profile_of(db, caller.sandbox, node)
    evicted = await repository.is_evicted(db, caller.sandbox, node)
    if pid is None and not evicted:
        raise NotFound(f"no identity {node.key} in sandbox {caller.sandbox!r}")
    rows = await repository.members_of_profile(db, caller.sandbox, pid) if pid else []
    members = [Node(r["namespace"], r["value"]) for r in rows] or [node]
    decisions = await repository.decisions_around(db, caller.sandbox, members)
    return {
        "identity": {"namespace": node.namespace, "id": node.value},
        "profileId": pid,
        "evicted": evicted,
        "members": [
            {
                "namespace": r["namespace"],
                "id": r["value"],
                "firstSeen": r["first_seen"].isoformat(),
                "lastSeen": r["last_seen"].isoformat(),
            }
            for r in rows
        ],
        "links": [
            {
                "from": {"namespace": d["a_namespace"], "id": d["a_value"]},
                "to": {"namespace": d["b_namespace"], "id": d["b_value"]},
                "decision": d["decision"],
                "decidedAt": d["decided_at"].isoformat(),
            }
            for d in decisions
        ],
    }


@router.get(
    "/v1/identities/rebuilds",
    summary="Graphs resolved again after namespaces' graph settings changed, newest first",
)
async def rebuilds(caller: Reader, db: Db, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict[str, Any]:
    return {"rebuilds": await rebuild.listed(db, caller.sandbox, limit)}
