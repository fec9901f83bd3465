"""Merge policies (AEP shape, ``/data/core/ups/config/mergePolicies``) and profile
look-ups (``/v1/profiles``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Security
from fastapi.responses import Response

from itinera.common.auth import Principal, require_scope
from itinera.common.errors import BadRequest, FieldError, NotFound
from itinera.common.service import Db
from itinera.profile.identity import namespaces as ns
from itinera.profile.identity import repository as graph
from itinera.profile.identity.graph import Node
from itinera.profile.profiles import policies, service, updates

router = APIRouter(tags=["profiles"])
Reader = Annotated[Principal, Security(require_scope("profiles:read"))]
Writer = Annotated[Principal, Security(require_scope("profiles:write"))]
POLICIES = "/data/core/ups/config/mergePolicies"
PolicyId = Annotated[str | None, Query(max_length=64)]


@router.get(POLICIES, summary="List merge policies")
async def list_policies(caller: Reader, db: Db) -> dict[str, Any]:
    async with db.transaction():
        found = await policies.all_of(db, caller.sandbox)
    return {"_page": {"count": len(found)}, "children": [p.view(caller.sandbox) for p in found]}


@router.post(POLICIES, summary="Create a merge policy (at most 5 per sandbox)")
async def create_policy(body: Annotated[dict[str, Any], Body()], caller: Writer, db: Db) -> dict[str, Any]:
    async with db.transaction():
        return (await policies.save(db, caller.sandbox, body)).view(caller.sandbox)


@router.get(POLICIES + "/{mergePolicyId}", summary="Get a merge policy")
async def get_policy(mergePolicyId: str, caller: Reader, db: Db) -> dict[str, Any]:
    return (await policies.get(db, caller.sandbox, mergePolicyId)).view(caller.sandbox)


@router.put(POLICIES + "/{mergePolicyId}", summary="Replace a merge policy")
async def replace_policy(
    mergePolicyId: str, body: Annotated[dict[str, Any], Body()], caller: Writer, db: Db
) -> dict[str, Any]:
    async with db.transaction():
        return (await policies.save(db, caller.sandbox, body, mergePolicyId)).view(caller.sandbox)


@router.delete(POLICIES + "/{mergePolicyId}", status_code=204, summary="Delete a merge policy")
async def delete_policy(mergePolicyId: str, caller: Writer, db: Db) -> Response:
    async with db.transaction():
        await policies.delete(db, caller.sandbox, mergePolicyId)
    return Response(status_code=204)


@router.get("/v1/profiles/{profileId}", summary="A profile, merged by a merge policy (default: the default)")
async def get_profile(
    profileId: str, caller: Reader, db: Db, mergePolicyId: PolicyId = None
) -> dict[str, Any]:
    async with db.transaction():
        policy = await policies.get(db, caller.sandbox, mergePolicyId)
    return await service.view(db, caller.sandbox, profileId, policy)


@router.patch(
    "/v1/profiles/{profileId}/attributes", summary="Set attributes (journeys' update-profile action)"
)
async def patch_attributes(
    profileId: str, attributes: Annotated[Any, Body()], caller: Writer, db: Db
) -> dict[str, Any]:
    async with db.transaction():
        return await updates.update_attributes(db, caller.sandbox, profileId, attributes)


@router.delete("/v1/profiles", summary="Delete a profile: its fragments, events and identities")
async def delete_profile(
    caller: Writer, db: Db, identity: Annotated[str, Query(min_length=3, max_length=1200)]
) -> dict[str, Any]:
    node = await _identity(db, caller.sandbox, identity)
    profile_id = await graph.profile_of(db, caller.sandbox, node)
    if profile_id is None:
        raise NotFound(f"no profile with identity {node.key} in sandbox {caller.sandbox!r}")
    async with db.transaction():
        return await updates.delete_profile(db, caller.sandbox, profile_id)


async def _identity(db: Db, sandbox: str, identity: str) -> Node:
    namespace, sep, value = identity.partition(":")
    if not sep or not namespace or not value:
        raise BadRequest(
            "identity is Namespace:value", [FieldError("/query/identity", "Namespace:value", "pattern")]
        )
    return await ns.node_of(db, sandbox, namespace, value)


@router.get("/v1/profiles", summary="The profile of an identity (identity=Namespace:value)")
async def find_profile(
    caller: Reader,
    db: Db,
    identity: Annotated[str, Query(min_length=3, max_length=1200)],
    mergePolicyId: PolicyId = None,
) -> dict[str, Any]:
    node = await _identity(db, caller.sandbox, identity)
    profile_id = await graph.profile_of(db, caller.sandbox, node)
    if profile_id is None:
        raise NotFound(f"no profile with identity {node.key} in sandbox {caller.sandbox!r}")
    async with db.transaction():
        policy = await policies.get(db, caller.sandbox, mergePolicyId)
    return await service.view(db, caller.sandbox, profile_id, policy, identity=node)
