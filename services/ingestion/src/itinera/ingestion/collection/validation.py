"""Validation of one inbound message: shape, dataset, XDM schema, identities.

A message is either the AEP streaming shape (``{header, body: {xdmMeta, xdmEntity}}``)
or a bare XDM entity bound for the connection's default dataset. Every reason a
message fails is collected (not just the first) with a JSON Pointer into the message
as sent, so ``/body/xdmEntity/identityMap/ECID/0/id`` for an enveloped message and
``/identityMap/ECID/0/id`` for a bare one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from itinera.common.errors import FieldError, NotFound
from itinera.common.xdm import identity as identities
from itinera.common.xdm.identity import Identity
from itinera.ingestion.catalog.service import Catalog, Connection, Dataset


@dataclass(frozen=True, slots=True)
class Accepted:
    dataset: Dataset
    entity: dict[str, Any]
    primary: Identity | None
    identities: tuple[Identity, ...] = ()
    """Every identity found, from ``identityMap`` and from identity descriptors."""


@dataclass(frozen=True, slots=True)
class Rejected:
    reasons: list[FieldError]
    dataset_id: str | None


def _too_deep(value: Any, limit: int) -> bool:
    """The cheap check every message gets: depth only, no paths, one level at a time
    (parsed JSON holds exact dicts and lists, so ``type() is`` is enough)."""
    level = [value]
    for _ in range(limit + 1):
        children: list[Any] = []
        for node in level:
            kind = type(node)
            if kind is dict:
                children += [v for v in node.values() if type(v) is dict or type(v) is list]
            elif kind is list:
                children += [v for v in node if type(v) is dict or type(v) is list]
        if not children:
            return False
        level = children
    return True


def depth_problem(value: Any, limit: int) -> FieldError | None:
    """Refuse nesting deeper than ``limit`` without recursing (bounded work); the path
    of the offending value is built only for a message that fails."""
    if not _too_deep(value, limit):
        return None
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        node, depth, path = stack.pop()
        if depth > limit:
            return FieldError(path, f"nesting deeper than {limit} levels", "depth")
        if isinstance(node, dict):
            stack.extend((v, depth + 1, f"{path}/{_escape(str(k))}") for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, depth + 1, f"{path}/{i}") for i, v in enumerate(node))
    return None


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _is_enveloped(message: Mapping[str, Any]) -> bool:
    return "header" in message and "body" in message


async def validate(
    message: Any,
    connection: Connection,
    catalog: Catalog,
    max_depth: int,
    bare_only: bool = False,
) -> Accepted | Rejected:
    if not isinstance(message, dict):
        return Rejected([FieldError("", "a message is a JSON object", "type")], None)
    deep = depth_problem(message, max_depth)
    if deep is not None:
        return Rejected([deep], None)
    if not bare_only and _is_enveloped(message):
        return await _validate_enveloped(message, connection, catalog)
    return await _validate_entity(message, "", connection.dataset_id, None, connection, catalog)


async def _validate_enveloped(
    message: dict[str, Any], connection: Connection, catalog: Catalog
) -> Accepted | Rejected:
    reasons: list[FieldError] = []
    header, body = message["header"], message["body"]
    if not isinstance(header, dict):
        reasons.append(FieldError("/header", "expected an object", "type"))
        header = {}
    if not isinstance(body, dict):
        reasons.append(FieldError("/body", "expected an object", "type"))
        body = {}
    dataset_id = header.get("datasetId", connection.dataset_id)
    if not isinstance(dataset_id, str) or not dataset_id:
        reasons.append(FieldError("/header/datasetId", "expected a dataset id", "type"))
        dataset_id = connection.dataset_id
    header_ref = _schema_ref(header.get("schemaRef"), "/header/schemaRef", reasons)
    meta = body.get("xdmMeta")
    meta_ref = None
    if meta is not None:
        if isinstance(meta, dict):
            meta_ref = _schema_ref(meta.get("schemaRef"), "/body/xdmMeta/schemaRef", reasons)
        else:
            reasons.append(FieldError("/body/xdmMeta", "expected an object", "type"))
    entity = body.get("xdmEntity")
    if entity is None:
        reasons.append(FieldError("/body/xdmEntity", "the XDM entity is required", "required"))
    elif not isinstance(entity, dict):
        reasons.append(FieldError("/body/xdmEntity", "expected an object", "type"))
    for name in ("imsOrgId", "flowId"):
        if name in header and not isinstance(header[name], str):
            reasons.append(FieldError(f"/header/{name}", "expected a string", "type"))
    if reasons:
        return Rejected(reasons, dataset_id)
    assert isinstance(entity, dict)
    return await _validate_entity(
        entity, "/body/xdmEntity", dataset_id, (header_ref, meta_ref), connection, catalog
    )


def _schema_ref(value: Any, path: str, reasons: list[FieldError]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        reasons.append(FieldError(f"{path}/id", "a schemaRef has a string id", "type"))
        return None
    ref: str = value["id"]
    return ref


async def _validate_entity(
    entity: dict[str, Any],
    base: str,
    dataset_id: str,
    schema_refs: tuple[str | None, str | None] | None,
    connection: Connection,
    catalog: Catalog,
) -> Accepted | Rejected:
    try:
        dataset = await catalog.dataset(connection.sandbox, dataset_id)
    except NotFound:
        where = "/header/datasetId" if base else ""
        return Rejected(
            [FieldError(where, f"no dataset {dataset_id!r} in sandbox {connection.sandbox!r}", "dataset")],
            dataset_id,
        )
    reasons: list[FieldError] = []
    if schema_refs is not None:
        for ref, path in zip(
            schema_refs, ("/header/schemaRef/id", "/body/xdmMeta/schemaRef/id"), strict=True
        ):
            if ref is not None and ref != dataset.schema_id:
                reasons.append(
                    FieldError(path, f"the dataset's schema is {dataset.schema_id}, not {ref}", "schemaRef")
                )
    if not dataset.validator.is_valid(entity):
        reasons.extend(dataset.validator.errors(entity, base))
    found = identities.from_identity_map(entity) + _descriptor_identities(entity, dataset)
    reasons.extend(identities.check(found, base))
    primary = identities.primary(found)
    if dataset.profile_enabled and primary is None:
        reasons.append(
            FieldError(
                f"{base}/identityMap",
                "a record of a profile-enabled dataset needs at least one identity",
                "identity.missing",
            )
        )
    if reasons:
        return Rejected(reasons, dataset.id)
    return Accepted(dataset, entity, primary, tuple(found))


def _descriptor_identities(entity: Mapping[str, Any], dataset: Dataset) -> list[Identity]:
    found = []
    for field in dataset.identity_fields:
        value = _resolve(entity, field.pointer)
        if isinstance(value, str):
            found.append(Identity(field.namespace, value, field.primary, "ambiguous", field.pointer))
    return found


def _resolve(document: Any, pointer: str) -> Any:
    node = document
    for token in pointer.lstrip("/").split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            node = node.get(token)
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node
