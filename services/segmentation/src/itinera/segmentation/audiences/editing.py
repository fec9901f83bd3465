"""Audiences created, replaced, patched and deleted through AEP's ``/audiences``.

An audience here is a segment definition (see :mod:`itinera.segmentation.definitions`),
so these are the definitions' operations, with the same checks and the same answers
(400 with every problem of the rule, 422 for a name taken, 409 for deleting an audience
other audiences name), under AEP's audience shape:

- a new audience is a ``SegmentDefinition`` (a PQL rule) in namespace ``AEPSegments``,
  ``published`` from the moment it is saved; an external audience's members are uploaded
  instead (``POST /v1/audiences/uploads``), and the other lifecycle states are refused
  with the reason, as is a ``lifecycleState`` of ``deleted`` (AEP's rule: delete it);
- a ``PUT`` replaces what AEP's update body carries (name, description, expression,
  schema, labels); ``evaluationInfo`` and ``mergePolicyId``, which that body does not
  carry, stay as they are unless given; the id and the namespace cannot change;
- a ``PATCH`` is a JSON Patch over the audience's editable fields (``/name``,
  ``/description``, ``/expression``, ``/labels``, ``/evaluationInfo``,
  ``/mergePolicyId``), the result checked as a ``PUT`` body is;
- ``labels`` (data usage labels) are kept and shown, not enforced.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import asyncpg
from pydantic import ValidationError

from itinera.common.errors import FieldError, NotFound, ValidationFailed
from itinera.common.web.patch import apply_patch, tokens
from itinera.common.web.problems import field_errors
from itinera.segmentation.audiences.schemas import LIFECYCLE, NAMESPACE, TYPE, AudienceIn, PatchOperationIn
from itinera.segmentation.definitions import repository
from itinera.segmentation.definitions import service as definitions
from itinera.segmentation.definitions.schemas import PROFILE_CLASS, DefinitionIn, DefinitionPatch, SchemaIn

EDITABLE = (
    "name",
    "description",
    "expression",
    "labels",
    "evaluationInfo",
    "mergePolicyId",
    "lifecycleState",
)
"""The fields a JSON Patch may change (``lifecycleState`` only to what it is)."""


def _check_fixed(body: AudienceIn, errors: list[FieldError]) -> None:
    """``type``, ``namespace`` and ``lifecycleState``: the one value each has here."""
    if body.type not in (None, TYPE):
        errors.append(
            FieldError(
                "/type",
                f"only {TYPE} audiences (a PQL rule) are defined here; an external audience's members "
                "are uploaded (POST /v1/audiences/uploads)",
                "enum",
            )
        )
    if body.namespace not in (None, NAMESPACE):
        errors.append(
            FieldError("/namespace", f"audiences here are in {NAMESPACE}; it cannot change", "const")
        )
    if body.lifecycleState == "deleted":
        errors.append(
            FieldError("/lifecycleState", "cannot be set to deleted: DELETE the audience instead", "enum")
        )
    elif body.lifecycleState not in (None, LIFECYCLE):
        errors.append(
            FieldError(
                "/lifecycleState",
                f"only {LIFECYCLE}: an audience is evaluated from the moment it is saved "
                "(draft, inactive and archived are not supported)",
                "enum",
            )
        )


def _raise_if_any(errors: list[FieldError]) -> None:
    if errors:
        raise ValidationFailed(f"the audience is not valid ({len(errors)} problem(s))", errors)


async def create(db: asyncpg.Connection, sandbox: str, body: AudienceIn, max_length: int) -> str:
    """A new audience; its id."""
    errors: list[FieldError] = []
    _check_fixed(body, errors)
    _raise_if_any(errors)
    definition = DefinitionIn(
        name=body.name,
        description=body.description,
        expression=body.expression,
        schema_=body.schema_ or SchemaIn(name=PROFILE_CLASS),
        evaluationInfo=body.evaluationInfo,
        mergePolicyId=body.mergePolicyId,
    )
    created = await definitions.create(db, sandbox, definition, max_length)
    await repository.set_labels(db, sandbox, uuid.UUID(created["id"]), list(dict.fromkeys(body.labels)))
    return str(created["id"])


async def replace(
    db: asyncpg.Connection, sandbox: str, audience_id: str, body: AudienceIn, max_length: int
) -> bool:
    """Replace the audience's fields as AEP's update body carries them; whether its rule changed."""
    errors: list[FieldError] = []
    _check_fixed(body, errors)
    key = definitions.parse_id(audience_id)
    for field in ("id", "audienceId"):
        given = getattr(body, field)
        if given is not None and (key is None or definitions.parse_id(given) != key):
            errors.append(
                FieldError(f"/{field}", f"this is audience {audience_id}; its id cannot change", "const")
            )
    _raise_if_any(errors)
    current = await _current(db, sandbox, audience_id)
    given_fields = body.model_fields_set
    patch: dict[str, Any] = {
        "name": body.name,
        "description": body.description,
        "expression": body.expression,
        "schema_": body.schema_,
    }
    if "evaluationInfo" in given_fields:
        patch["evaluationInfo"] = body.evaluationInfo
    if "mergePolicyId" in given_fields:
        patch["mergePolicyId"] = body.mergePolicyId
    return await _update(db, sandbox, current, patch, list(dict.fromkeys(body.labels)), max_length)


async def patch(
    db: asyncpg.Connection,
    sandbox: str,
    audience_id: str,
    operations: Sequence[PatchOperationIn],
    max_length: int,
) -> bool:
    """Apply a JSON Patch to the audience's editable fields; whether its rule changed."""
    current = await _current(db, sandbox, audience_id)
    errors = [
        FieldError(
            f"/{i}/path",
            f"{operation.path} cannot be changed; the fields a patch changes are {', '.join(EDITABLE)}",
            "read-only",
        )
        for i, operation in enumerate(operations)
        if tokens(operation.path)[0] not in EDITABLE
    ]
    _raise_if_any(errors)
    document = {
        "name": current["name"],
        "description": current["description"],
        "expression": current["expression"],
        "labels": current["labels"],
        "evaluationInfo": current["evaluationInfo"],
        "lifecycleState": LIFECYCLE,
    }
    if "mergePolicyId" in current:
        document["mergePolicyId"] = current["mergePolicyId"]
    patched = apply_patch(document, [op.model_dump(exclude_unset=True) for op in operations])
    try:
        body = AudienceIn.model_validate(patched)
    except ValidationError as exc:
        raise ValidationFailed(
            "the patched audience is not valid", field_errors(exc.errors(include_url=False))
        ) from None
    errors = []
    _check_fixed(body, errors)
    _raise_if_any(errors)
    changes: dict[str, Any] = {
        "name": body.name,
        "description": body.description,
        "mergePolicyId": body.mergePolicyId,
    }
    if body.expression.model_dump() != current["expression"]:
        changes["expression"] = body.expression
    if body.evaluationInfo is not None:
        changes["evaluationInfo"] = body.evaluationInfo
    return await _update(db, sandbox, current, changes, list(dict.fromkeys(body.labels)), max_length)


@contextmanager
def _audience(sandbox: str, audience_id: str) -> Iterator[None]:
    """A definition not found is this audience not found."""
    try:
        yield
    except NotFound:
        raise NotFound(f"no audience {audience_id!r} in sandbox {sandbox!r}") from None


async def _current(db: asyncpg.Connection, sandbox: str, audience_id: str) -> dict[str, Any]:
    """The audience as stored, the sandbox's definition writes held until the transaction
    ends (the lock the update takes too): what is compared and patched is what is replaced."""
    with _audience(sandbox, audience_id):
        if definitions.parse_id(audience_id) is not None:
            await repository.lock_sandbox(db, sandbox)
        return await definitions.get(db, sandbox, audience_id)


async def _update(
    db: asyncpg.Connection,
    sandbox: str,
    current: dict[str, Any],
    changes: dict[str, Any],
    labels: list[str],
    max_length: int,
) -> bool:
    """Write ``changes`` over ``current`` (read by :func:`_current`); whether the rule changed."""
    with _audience(sandbox, current["id"]):
        after = await definitions.update(db, sandbox, current["id"], DefinitionPatch(**changes), max_length)
    await repository.set_labels(db, sandbox, uuid.UUID(after["id"]), labels)
    return bool(current["expression"] != after["expression"])


async def delete(db: asyncpg.Connection, sandbox: str, audience_id: str) -> None:
    with _audience(sandbox, audience_id):
        await definitions.delete(db, sandbox, audience_id)
