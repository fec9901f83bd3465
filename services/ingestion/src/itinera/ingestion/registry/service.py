"""The schema registry: built-in XDM resources plus each sandbox's tenant resources.

Global (built-in) classes, field groups and data types come from ``schemas/xdm``.
Each class is also offered as a global *schema* with every standard field group of
that class, so a dataset can use the standard model without defining anything.
Tenant schemas compose one class with field groups (built-in or tenant) through
``allOf``; tenant field groups put their fields under ``_<tenantId>``. Identity
descriptors mark a field of a tenant schema as an identity of a namespace.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import jsonschema_rs

from itinera.common.errors import Conflict, FieldError, NotFound, ValidationFailed
from itinera.common.web.patch import apply_patch
from itinera.common.xdm.schemas import SchemaLibrary, SchemaResource
from itinera.ingestion.catalog import repository as catalog_repository
from itinera.ingestion.registry import repository

IDENTITY_DESCRIPTOR = "xdm:descriptorIdentity"
DESCRIPTOR_TYPES = (
    "xdm:descriptorIdentity",
    "xdm:alternateDisplayInfo",
    "xdm:descriptorReferenceIdentity",
    "xdm:descriptorOneToOne",
    "xdm:descriptorRelationship",
)
KINDS = {"schemas": "schemas", "fieldgroups": "mixins", "mixins": "mixins"}


@dataclass(frozen=True, slots=True)
class IdentityField:
    """An identity descriptor, reduced to what validation needs."""

    pointer: str
    namespace: str
    primary: bool


def _timestamp_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


class Registry:
    def __init__(self, library: SchemaLibrary, tenant_id: str, ims_org: str) -> None:
        self.library = library
        self.tenant_id = tenant_id
        self.ims_org = ims_org

    # -- global container ---------------------------------------------------------

    def global_resources(self, kind: str) -> list[dict[str, Any]]:
        if kind == "classes":
            return [self._global_view(r, "classes") for r in self.library.classes()]
        if kind in ("fieldgroups", "mixins"):
            return [self._global_view(r, "mixins") for r in self.library.field_groups()]
        if kind == "datatypes":
            return [self._global_view(r, "datatypes") for r in self.library.data_types()]
        if kind == "schemas":
            return [self.standard_schema(c.id) for c in self.library.classes()]
        raise NotFound(f"the global container has no {kind}")

    def global_resource(self, kind: str, ref: str) -> dict[str, Any]:
        for resource in self.global_resources(kind):
            if ref in (resource["$id"], resource["meta:altId"]):
                return resource
        raise NotFound(f"no global {kind} resource {ref!r}")

    def standard_schema(self, class_id: str) -> dict[str, Any]:
        """A class with every standard field group extending it, as a global schema."""
        cls = self.library.get(class_id)
        groups = self.library.field_groups_for(class_id)
        return {
            "$id": cls.id,
            "meta:altId": _alt_id(cls.id),
            "meta:resourceType": "schemas",
            "meta:containerId": "global",
            "meta:class": cls.id,
            "version": "1.0",
            "title": f"{cls.title} (standard field groups)",
            "description": f"The {cls.title} class with every standard field group.",
            "type": "object",
            "allOf": [{"$ref": cls.id}, *({"$ref": g.id} for g in groups)],
            "meta:extends": [cls.id, *(g.id for g in groups)],
        }

    def _global_view(self, resource: SchemaResource, resource_type: str) -> dict[str, Any]:
        view = copy.deepcopy(resource.document)
        view.update(
            {
                "$id": resource.id,
                "meta:altId": _alt_id(resource.id),
                "meta:resourceType": resource_type,
                "meta:containerId": "global",
                "version": "1.0",
                "title": resource.title,
            }
        )
        return view

    # -- tenant container ---------------------------------------------------------

    def tenant_view(self, row: asyncpg.Record) -> dict[str, Any]:
        document: dict[str, Any] = dict(row["document"])
        document.update(
            {
                "$id": row["id"],
                "meta:altId": row["alt_id"],
                "meta:resourceType": row["kind"],
                "meta:containerId": "tenant",
                "meta:tenantNamespace": f"_{self.tenant_id}",
                "version": f"1.{row['version'] - 1}",
                "title": row["title"],
                "imsOrg": self.ims_org,
                "meta:registryMetadata": {
                    "repo:createdDate": _timestamp_ms(row["created_at"]),
                    "repo:lastModifiedDate": _timestamp_ms(row["updated_at"]),
                },
            }
        )
        return document

    async def list_tenant(self, conn: asyncpg.Connection, sandbox: str, kind: str) -> list[dict[str, Any]]:
        rows = await repository.list_resources(conn, sandbox, KINDS.get(kind, kind))
        return [self.tenant_view(r) for r in rows]

    async def get_tenant(self, conn: asyncpg.Connection, sandbox: str, kind: str, ref: str) -> dict[str, Any]:
        row = await repository.get_resource(conn, sandbox, KINDS.get(kind, kind), ref)
        if row is None:
            raise NotFound(f"no tenant {kind} resource {ref!r} in sandbox {sandbox!r}")
        return self.tenant_view(row)

    async def create_field_group(
        self, conn: asyncpg.Connection, sandbox: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        document = await self._check_field_group(conn, sandbox, body)
        hex_id = secrets.token_hex(24)
        resource_id = f"https://ns.adobe.com/{self.tenant_id}/mixins/{hex_id}"
        try:
            row = await repository.insert_resource(
                conn,
                sandbox,
                "mixins",
                resource_id,
                f"_{self.tenant_id}.mixins.{hex_id}",
                document["title"],
                document,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a field group titled {document['title']!r} exists") from None
        await repository.notify_catalog_changed(conn, sandbox)
        return self.tenant_view(row)

    async def create_schema(
        self, conn: asyncpg.Connection, sandbox: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        document = await self._check_schema(conn, sandbox, body)
        hex_id = secrets.token_hex(24)
        resource_id = f"https://ns.adobe.com/{self.tenant_id}/schemas/{hex_id}"
        try:
            row = await repository.insert_resource(
                conn,
                sandbox,
                "schemas",
                resource_id,
                f"_{self.tenant_id}.schemas.{hex_id}",
                document["title"],
                document,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a schema titled {document['title']!r} exists") from None
        await repository.notify_catalog_changed(conn, sandbox)
        return self.tenant_view(row)

    async def replace(
        self, conn: asyncpg.Connection, sandbox: str, kind: str, ref: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        stored_kind = KINDS.get(kind, kind)
        row = await repository.get_resource(conn, sandbox, stored_kind, ref)
        if row is None:
            raise NotFound(f"no tenant {kind} resource {ref!r}")
        if stored_kind == "schemas":
            document = await self._check_schema(conn, sandbox, body)
            if _class_of(document) != _class_of(row["document"]):
                raise ValidationFailed(
                    "a schema's class cannot change",
                    [
                        FieldError(
                            "/allOf",
                            "the class must stay " + str(_class_of(row["document"])),
                            "class",
                        )
                    ],
                )
        else:
            document = await self._check_field_group(conn, sandbox, body)
        try:
            updated = await repository.update_resource(conn, sandbox, row["id"], document["title"], document)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a resource titled {document['title']!r} exists") from None
        await repository.notify_catalog_changed(conn, sandbox)
        return self.tenant_view(updated)

    async def patch(
        self, conn: asyncpg.Connection, sandbox: str, kind: str, ref: str, operations: list[Any]
    ) -> dict[str, Any]:
        """JSON Patch (RFC 6902: add, remove, replace) on the stored document."""
        row = await repository.get_resource(conn, sandbox, KINDS.get(kind, kind), ref)
        if row is None:
            raise NotFound(f"no tenant {kind} resource {ref!r}")
        document = apply_patch(dict(row["document"]), operations)
        return await self.replace(conn, sandbox, kind, row["id"], document)

    async def delete(self, conn: asyncpg.Connection, sandbox: str, kind: str, ref: str) -> None:
        row = await repository.get_resource(conn, sandbox, KINDS.get(kind, kind), ref)
        if row is None:
            raise NotFound(f"no tenant {kind} resource {ref!r}")
        users = await repository.referencing_schemas(conn, sandbox, row["id"])
        users += await catalog_repository.datasets_using(conn, sandbox, row["id"])
        if users:
            raise Conflict(f"{row['id']} is in use", extra={"usedBy": users})
        await repository.delete_resource(conn, sandbox, row["id"])
        await repository.notify_catalog_changed(conn, sandbox)

    # -- descriptors ----------------------------------------------------------------

    async def create_descriptor(
        self, conn: asyncpg.Connection, sandbox: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        document = await self._check_descriptor(conn, sandbox, body)
        descriptor_id = secrets.token_hex(24)
        row = await repository.insert_descriptor(conn, sandbox, descriptor_id, document)
        await repository.notify_catalog_changed(conn, sandbox)
        return self.descriptor_view(row)

    async def replace_descriptor(
        self, conn: asyncpg.Connection, sandbox: str, descriptor_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        if await repository.get_descriptor(conn, sandbox, descriptor_id) is None:
            raise NotFound(f"no descriptor {descriptor_id!r}")
        document = await self._check_descriptor(conn, sandbox, body)
        row = await repository.replace_descriptor(conn, sandbox, descriptor_id, document)
        await repository.notify_catalog_changed(conn, sandbox)
        return self.descriptor_view(row)

    def descriptor_view(self, row: asyncpg.Record) -> dict[str, Any]:
        return {
            "@id": row["id"],
            **row["document"],
            "imsOrg": self.ims_org,
            "version": "1",
            "meta:containerId": "tenant",
        }

    async def identity_fields(
        self, conn: asyncpg.Connection, sandbox: str, schema_id: str
    ) -> list[IdentityField]:
        rows = await repository.descriptors_for(conn, sandbox, schema_id)
        return [
            IdentityField(
                pointer=r["document"]["xdm:sourceProperty"],
                namespace=r["document"]["xdm:namespace"],
                primary=bool(r["document"].get("xdm:isPrimary", False)),
            )
            for r in rows
            if r["type"] == IDENTITY_DESCRIPTOR
        ]

    # -- resolution for validation --------------------------------------------------

    async def resolve(
        self, conn: asyncpg.Connection, sandbox: str, schema_id: str
    ) -> tuple[str, dict[str, Any], dict[str, dict[str, Any]]]:
        """(class id, the union JSON Schema, the tenant resources it needs) of a schema."""
        try:
            resource = self.library.get(schema_id)
        except KeyError:
            pass
        else:
            if resource.kind != "class":
                raise NotFound(f"{schema_id} is not a schema or class")
            return resource.id, self.library.union_schema(resource.id), {}
        row = await repository.get_resource(conn, sandbox, "schemas", schema_id)
        if row is None:
            raise NotFound(f"no schema {schema_id!r} in sandbox {sandbox!r}")
        document = row["document"]
        class_id = _class_of(document)
        groups = [ref for ref in _refs(document) if ref != class_id]
        builtin = [g for g in groups if self._is_builtin(g)]
        tenant_ids = [g for g in groups if not self._is_builtin(g)]
        tenant_rows = await repository.get_by_ids(conn, sandbox, tenant_ids)
        resources = {r["id"]: _as_resource(r["id"], r["document"]) for r in tenant_rows}
        assert class_id is not None
        union = self.library.union_schema(
            class_id, builtin, extra=[{"$ref": t} for t in tenant_ids if t in resources]
        )
        return class_id, union, resources

    # -- checks ---------------------------------------------------------------------

    def _is_builtin(self, resource_id: str) -> bool:
        try:
            self.library.get(resource_id)
        except KeyError:
            return False
        return True

    async def _check_schema(
        self, conn: asyncpg.Connection, sandbox: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        errors = _common_checks(body)
        refs = _refs(body)
        classes: list[str] = []
        groups: list[tuple[int, str]] = []
        tenant_rows = {r["id"]: r for r in await repository.get_by_ids(conn, sandbox, refs)}
        for index, ref in enumerate(refs):
            path = f"/allOf/{index}/$ref"
            try:
                resource = self.library.get(ref)
            except KeyError:
                row = tenant_rows.get(ref)
                if row is None or row["kind"] != "mixins":
                    errors.append(FieldError(path, f"no class or field group {ref!r}", "reference"))
                else:
                    groups.append((index, ref))
                continue
            if resource.kind == "class":
                classes.append(ref)
            elif resource.kind == "fieldgroup":
                groups.append((index, ref))
            else:
                errors.append(FieldError(path, f"{ref} is a data type; use a field group", "reference"))
        if not isinstance(body.get("allOf"), list) or not refs:
            errors.append(FieldError("/allOf", "allOf must list a class and field groups", "required"))
        elif len(classes) != 1:
            errors.append(
                FieldError(
                    "/allOf",
                    f"a schema implements exactly one class; found {len(classes)}",
                    "class",
                )
            )
        else:
            for index, ref in groups:
                extends = self._extends(ref, tenant_rows)
                if classes[0] not in extends:
                    errors.append(
                        FieldError(f"/allOf/{index}/$ref", f"{ref} does not extend {classes[0]}", "class")
                    )
        if errors:
            raise ValidationFailed("the schema is not valid", errors)
        return _clean(body, ("type", "title", "description", "allOf", "meta:immutableTags"))

    def _extends(self, ref: str, tenant_rows: Mapping[str, asyncpg.Record]) -> tuple[str, ...]:
        try:
            return self.library.get(ref).extends
        except KeyError:
            return tuple(tenant_rows[ref]["document"].get("meta:intendedToExtend", ()))

    async def _check_field_group(
        self, conn: asyncpg.Connection, sandbox: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        errors = _common_checks(body)
        extends = body.get("meta:intendedToExtend")
        if not isinstance(extends, list) or not extends:
            errors.append(
                FieldError(
                    "/meta:intendedToExtend",
                    "list the classes this field group extends",
                    "required",
                )
            )
        else:
            for index, class_id in enumerate(extends):
                if not isinstance(class_id, str) or not self._is_class(class_id):
                    errors.append(
                        FieldError(f"/meta:intendedToExtend/{index}", f"no class {class_id!r}", "reference")
                    )
        namespace = f"_{self.tenant_id}"
        definitions = body.get("definitions")
        if not isinstance(definitions, dict) or not definitions:
            errors.append(FieldError("/definitions", "a field group defines its fields here", "required"))
        else:
            for name, definition in definitions.items():
                props = definition.get("properties") if isinstance(definition, dict) else None
                if not isinstance(props, dict):
                    errors.append(FieldError(f"/definitions/{name}/properties", "expected an object", "type"))
                    continue
                for field_name in props:
                    if field_name != namespace:
                        errors.append(
                            FieldError(
                                f"/definitions/{name}/properties/{field_name}",
                                f"custom fields belong under {namespace}",
                                "tenant",
                            )
                        )
        if not errors:
            try:
                jsonschema_rs.meta.validate(_as_resource("urn:check", body))
            except jsonschema_rs.ValidationError as exc:
                errors.append(FieldError("/definitions", f"not a valid JSON Schema: {exc.message}", "schema"))
            except (jsonschema_rs.ReferencingError, ValueError) as exc:
                errors.append(FieldError("/definitions", f"not a valid JSON Schema: {exc}", "schema"))
        if errors:
            raise ValidationFailed("the field group is not valid", errors)
        return _clean(body, ("type", "title", "description", "definitions", "allOf", "meta:intendedToExtend"))

    def _is_class(self, class_id: str) -> bool:
        try:
            return self.library.get(class_id).kind == "class"
        except KeyError:
            return False

    async def _check_descriptor(
        self, conn: asyncpg.Connection, sandbox: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        errors: list[FieldError] = []
        kind = body.get("@type")
        if kind not in DESCRIPTOR_TYPES:
            errors.append(FieldError("/@type", f"one of {', '.join(DESCRIPTOR_TYPES)}", "enum"))
        source = body.get("xdm:sourceSchema")
        schema_row = None
        if not isinstance(source, str):
            errors.append(FieldError("/xdm:sourceSchema", "the $id of a tenant schema", "required"))
        else:
            schema_row = await repository.get_resource(conn, sandbox, "schemas", source)
            if schema_row is None:
                errors.append(FieldError("/xdm:sourceSchema", f"no tenant schema {source!r}", "reference"))
        prop = body.get("xdm:sourceProperty")
        if not isinstance(prop, str) or not prop.startswith("/") or prop == "/":
            errors.append(
                FieldError(
                    "/xdm:sourceProperty",
                    "a JSON Pointer to a field, e.g. /_tenant/loyaltyId",
                    "pointer",
                )
            )
        if kind == IDENTITY_DESCRIPTOR:
            namespace = body.get("xdm:namespace")
            if not isinstance(namespace, str) or not namespace.strip():
                errors.append(FieldError("/xdm:namespace", "the identity namespace code", "required"))
            if "xdm:isPrimary" in body and not isinstance(body["xdm:isPrimary"], bool):
                errors.append(FieldError("/xdm:isPrimary", "expected a boolean", "type"))
        if errors:
            raise ValidationFailed("the descriptor is not valid", errors)
        assert schema_row is not None
        document = dict(body)
        document["xdm:sourceSchema"] = schema_row["id"]
        document.setdefault("xdm:sourceVersion", 1)
        document.pop("@id", None)
        return document

    async def stats(self, conn: asyncpg.Connection, sandbox: str) -> dict[str, Any]:
        counts = await repository.count_resources(conn, sandbox)
        return {
            "imsOrg": self.ims_org,
            "tenantId": self.tenant_id,
            "sandbox": sandbox,
            "counts": {
                "schemas": counts.get("schemas", 0),
                "mixins": counts.get("mixins", 0),
                "datatypes": len(self.library.data_types()),
                "classes": len(self.library.classes()),
                "unions": len(self.library.classes()),
            },
        }


def _alt_id(resource_id: str) -> str:
    """``https://ns.adobe.com/xdm/context/profile`` -> ``_xdm.context.profile``."""
    path = resource_id.split("://", 1)[-1].split("/", 1)[-1]
    return "_" + path.replace("/", ".")


def _refs(document: Mapping[str, Any]) -> list[str]:
    all_of = document.get("allOf")
    if not isinstance(all_of, list):
        return []
    return [item["$ref"] for item in all_of if isinstance(item, dict) and isinstance(item.get("$ref"), str)]


def _class_of(document: Mapping[str, Any]) -> str | None:
    refs = _refs(document)
    return refs[0] if refs else None


def _common_checks(body: Mapping[str, Any]) -> list[FieldError]:
    errors = []
    if body.get("type", "object") != "object":
        errors.append(FieldError("/type", "must be 'object'", "enum"))
    title = body.get("title")
    if not isinstance(title, str) or not title.strip():
        errors.append(FieldError("/title", "a non-empty title is required", "required"))
    elif len(title) > 256:
        errors.append(FieldError("/title", "at most 256 characters", "maxLength"))
    if "description" in body and not isinstance(body["description"], str):
        errors.append(FieldError("/description", "expected a string", "type"))
    return errors


def _clean(body: Mapping[str, Any], keep: tuple[str, ...]) -> dict[str, Any]:
    document = {k: copy.deepcopy(v) for k, v in body.items() if k in keep}
    document.setdefault("type", "object")
    document.setdefault("description", "")
    return document


def _as_resource(resource_id: str, document: Mapping[str, Any]) -> dict[str, Any]:
    """A tenant document as a JSON Schema resource: its ``$id`` set, metadata kept."""
    resource = {k: v for k, v in document.items() if not k.startswith("meta:registry")}
    resource["$id"] = resource_id
    resource.setdefault("$schema", "https://json-schema.org/draft/2020-12/schema")
    return resource
