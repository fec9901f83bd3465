"""The AEP Schema Registry API under ``/data/foundation/schemaregistry``.

Listing answers follow AEP's ``Accept`` header: ``application/vnd.adobe.xed-id+json``
(the default) gives summaries, ``application/vnd.adobe.xed+json`` full resources.
Resource ids in paths are the ``meta:altId`` or the URL-encoded ``$id``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Request, Security
from fastapi.responses import Response

from itinera.common.auth import Principal, require_scope
from itinera.common.errors import BadRequest, FieldError, NotFound
from itinera.common.service import CurrentRuntime, Db
from itinera.common.web.responses import Json
from itinera.ingestion.registry import repository
from itinera.ingestion.registry.service import Registry
from itinera.ingestion.responses import PROBLEMS

BASE = "/data/foundation/schemaregistry"
router = APIRouter(prefix=BASE, tags=["schema registry"], responses=PROBLEMS)

Reader = Annotated[Principal, Security(require_scope("catalog:read"))]
Writer = Annotated[Principal, Security(require_scope("catalog:write"))]
Container = Literal["global", "tenant"]
Kind = Literal["classes", "fieldgroups", "mixins", "datatypes", "schemas"]
TenantKind = Literal["fieldgroups", "mixins", "schemas"]
FULL = "application/vnd.adobe.xed+json"
JsonObject = Annotated[dict[str, Any], Body()]


def _registry(runtime: CurrentRuntime) -> Registry:
    registry: Registry = runtime.state["registry"]
    return registry


def _summary(resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "$id": resource["$id"],
        "meta:altId": resource["meta:altId"],
        "version": resource.get("version", "1.0"),
        "title": resource.get("title", ""),
    }


def _wants_full(request: Request) -> bool:
    return FULL in request.headers.get("accept", "")


def _listing(request: Request, container: str, kind: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    full = _wants_full(request)
    return {
        "results": resources if full else [_summary(r) for r in resources],
        "_page": {"orderby": "title", "next": None, "count": len(resources)},
        "_links": {"next": None, "global_schemas": {"href": f"{BASE}/global/schemas"}},
    }


@router.get("/stats", summary="The sandbox's tenant id and resource counts")
async def stats(caller: Reader, db: Db, runtime: CurrentRuntime) -> dict[str, Any]:
    return await _registry(runtime).stats(db, caller.sandbox)


@router.get("/{container}/descriptors", summary="List descriptors")
async def list_descriptors(
    container: Container, request: Request, caller: Reader, db: Db, runtime: CurrentRuntime
) -> Any:
    if container == "global":
        rows = []
    else:
        rows = await repository.list_descriptors(db, caller.sandbox)
    registry = _registry(runtime)
    if not _wants_full(request):
        return [r["id"] for r in rows]
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["type"], []).append(registry.descriptor_view(row))
    return grouped


@router.get("/{container}/descriptors/{descriptor_id}", summary="Get a descriptor")
async def get_descriptor(
    container: Container, descriptor_id: str, caller: Reader, db: Db, runtime: CurrentRuntime
) -> dict[str, Any]:
    row = (
        await repository.get_descriptor(db, caller.sandbox, descriptor_id) if container == "tenant" else None
    )
    if row is None:
        raise NotFound(f"no descriptor {descriptor_id!r}")
    return _registry(runtime).descriptor_view(row)


@router.post("/tenant/descriptors", status_code=201, summary="Create a descriptor")
async def create_descriptor(
    body: JsonObject, caller: Writer, db: Db, runtime: CurrentRuntime
) -> dict[str, Any]:
    async with db.transaction():
        return await _registry(runtime).create_descriptor(db, caller.sandbox, body)


@router.put("/tenant/descriptors/{descriptor_id}", summary="Replace a descriptor")
async def replace_descriptor(
    descriptor_id: str, body: JsonObject, caller: Writer, db: Db, runtime: CurrentRuntime
) -> dict[str, Any]:
    async with db.transaction():
        return await _registry(runtime).replace_descriptor(db, caller.sandbox, descriptor_id, body)


@router.delete("/tenant/descriptors/{descriptor_id}", status_code=204, summary="Delete a descriptor")
async def delete_descriptor(descriptor_id: str, caller: Writer, db: Db) -> Response:
    async with db.transaction():
        if not await repository.delete_descriptor(db, caller.sandbox, descriptor_id):
            raise NotFound(f"no descriptor {descriptor_id!r}")
        await repository.notify_catalog_changed(db, caller.sandbox)
    return Response(status_code=204)


@router.get("/{container}/{kind}", summary="List classes, field groups, data types or schemas")
async def list_resources(
    container: Container,
    kind: Kind,
    request: Request,
    caller: Reader,
    db: Db,
    runtime: CurrentRuntime,
) -> dict[str, Any]:
    registry = _registry(runtime)
    if container == "global":
        resources = registry.global_resources(kind)
    elif kind in ("classes", "datatypes"):
        resources = []  # tenant classes and data types are not supported
    else:
        resources = await registry.list_tenant(db, caller.sandbox, kind)
    return _listing(request, container, kind, resources)


@router.get("/{container}/{kind}/{ref:path}", summary="Get one resource by $id or meta:altId")
async def get_resource(
    container: Container, kind: Kind, ref: str, caller: Reader, db: Db, runtime: CurrentRuntime
) -> dict[str, Any]:
    registry = _registry(runtime)
    if container == "global":
        return registry.global_resource(kind, ref)
    if kind in ("classes", "datatypes"):
        raise NotFound(f"no tenant {kind} resource {ref!r}")
    return await registry.get_tenant(db, caller.sandbox, kind, ref)


@router.post("/tenant/{kind}", status_code=201, summary="Create a schema or a field group")
async def create_resource(
    kind: TenantKind, body: JsonObject, caller: Writer, db: Db, runtime: CurrentRuntime
) -> Any:
    registry = _registry(runtime)
    async with db.transaction():
        if kind == "schemas":
            created = await registry.create_schema(db, caller.sandbox, body)
        else:
            created = await registry.create_field_group(db, caller.sandbox, body)
    return Json(created, status_code=201)


@router.put("/tenant/{kind}/{ref:path}", summary="Replace a schema or a field group")
async def replace_resource(
    kind: TenantKind, ref: str, body: JsonObject, caller: Writer, db: Db, runtime: CurrentRuntime
) -> dict[str, Any]:
    async with db.transaction():
        return await _registry(runtime).replace(db, caller.sandbox, kind, ref, body)


@router.patch("/tenant/{kind}/{ref:path}", summary="Update a schema or a field group with JSON Patch")
async def patch_resource(
    kind: TenantKind,
    ref: str,
    caller: Writer,
    db: Db,
    runtime: CurrentRuntime,
    operations: Annotated[list[Any], Body()],
) -> dict[str, Any]:
    if not operations:
        raise BadRequest("the patch is empty", [FieldError("", "at least one operation", "minItems")])
    async with db.transaction():
        return await _registry(runtime).patch(db, caller.sandbox, kind, ref, operations)


@router.delete("/tenant/{kind}/{ref:path}", status_code=204, summary="Delete a schema or a field group")
async def delete_resource(
    kind: TenantKind, ref: str, caller: Writer, db: Db, runtime: CurrentRuntime
) -> Response:
    async with db.transaction():
        await _registry(runtime).delete(db, caller.sandbox, kind, ref)
    return Response(status_code=204)
