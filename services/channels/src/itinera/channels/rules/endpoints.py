"""Frequency capping rules and quiet hours of the caller's sandbox.

- ``/v1/capping/rules``: ``GET`` (all, oldest first), ``POST`` (201, ``Location``);
  ``/v1/capping/rules/{ruleId}``: ``GET``, ``PUT`` (replace), ``DELETE`` (204).
- ``/v1/quiet-hours`` and ``/v1/quiet-hours/{ruleId}``: the same for quiet hours.

Reads need ``channels:read``, writes ``channels:write``. Rules apply to messages taken
after the change; messages already queued keep the time they were given.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Response, Security

from itinera.channels.rules import repository
from itinera.channels.rules.schemas import (
    PROBLEMS,
    CappingRuleIn,
    CappingRuleOut,
    CappingRulePage,
    QuietHoursIn,
    QuietHoursOut,
    QuietHoursPage,
)
from itinera.common.auth import Principal, require_scope
from itinera.common.errors import NotFound
from itinera.common.service import Db

router = APIRouter(tags=["capping and quiet hours"], responses=PROBLEMS)
Reader = Annotated[Principal, Security(require_scope("channels:read"))]
Writer = Annotated[Principal, Security(require_scope("channels:write"))]
RULES = "/v1/capping/rules"
QUIET = "/v1/quiet-hours"


def _id(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"no {what} {value!r}") from None


@router.get(RULES, summary="The sandbox's frequency capping rules", response_model=CappingRulePage)
async def list_rules(caller: Reader, db: Db) -> dict[str, Any]:
    return {"items": [repository.rule_out(r) for r in await repository.capping_rules(db, caller.sandbox)]}


@router.post(RULES, status_code=201, summary="Add a frequency capping rule", response_model=CappingRuleOut)
async def create_rule(body: CappingRuleIn, response: Response, caller: Writer, db: Db) -> dict[str, Any]:
    row = await repository.save_capping_rule(db, caller.sandbox, uuid.uuid4(), body.model_dump(), create=True)
    assert row is not None
    response.headers["Location"] = f"{RULES}/{row['id']}"
    return repository.rule_out(row)


@router.get(RULES + "/{ruleId}", summary="A frequency capping rule", response_model=CappingRuleOut)
async def get_rule(ruleId: str, caller: Reader, db: Db) -> dict[str, Any]:
    row = await repository.capping_rule(db, caller.sandbox, _id(ruleId, "capping rule"))
    if row is None:
        raise NotFound(f"no capping rule {ruleId!r}")
    return repository.rule_out(row)


@router.put(RULES + "/{ruleId}", summary="Replace a frequency capping rule", response_model=CappingRuleOut)
async def replace_rule(ruleId: str, body: CappingRuleIn, caller: Writer, db: Db) -> dict[str, Any]:
    rule_id = _id(ruleId, "capping rule")
    row = await repository.save_capping_rule(db, caller.sandbox, rule_id, body.model_dump(), create=False)
    if row is None:
        raise NotFound(f"no capping rule {ruleId!r}")
    return repository.rule_out(row)


@router.delete(RULES + "/{ruleId}", status_code=204, summary="Delete a frequency capping rule")
async def delete_rule(ruleId: str, caller: Writer, db: Db) -> Response:
    if not await repository.delete_capping_rule(db, caller.sandbox, _id(ruleId, "capping rule")):
        raise NotFound(f"no capping rule {ruleId!r}")
    return Response(status_code=204)


@router.get(QUIET, summary="The sandbox's quiet hours", response_model=QuietHoursPage)
async def list_quiet_hours(caller: Reader, db: Db) -> dict[str, Any]:
    return {"items": [repository.quiet_out(r) for r in await repository.quiet_hours(db, caller.sandbox)]}


@router.post(QUIET, status_code=201, summary="Add quiet hours", response_model=QuietHoursOut)
async def create_quiet_hours(
    body: QuietHoursIn, response: Response, caller: Writer, db: Db
) -> dict[str, Any]:
    row = await repository.save_quiet_hours(db, caller.sandbox, uuid.uuid4(), body.model_dump(), create=True)
    assert row is not None
    response.headers["Location"] = f"{QUIET}/{row['id']}"
    return repository.quiet_out(row)


@router.get(QUIET + "/{ruleId}", summary="Quiet hours", response_model=QuietHoursOut)
async def get_quiet_hours(ruleId: str, caller: Reader, db: Db) -> dict[str, Any]:
    row = await repository.quiet_hour(db, caller.sandbox, _id(ruleId, "quiet hours"))
    if row is None:
        raise NotFound(f"no quiet hours {ruleId!r}")
    return repository.quiet_out(row)


@router.put(QUIET + "/{ruleId}", summary="Replace quiet hours", response_model=QuietHoursOut)
async def replace_quiet_hours(ruleId: str, body: QuietHoursIn, caller: Writer, db: Db) -> dict[str, Any]:
    rule_id = _id(ruleId, "quiet hours")
    row = await repository.save_quiet_hours(db, caller.sandbox, rule_id, body.model_dump(), create=False)
    if row is None:
        raise NotFound(f"no quiet hours {ruleId!r}")
    return repository.quiet_out(row)


@router.delete(QUIET + "/{ruleId}", status_code=204, summary="Delete quiet hours")
async def delete_quiet_hours(ruleId: str, caller: Writer, db: Db) -> Response:
    if not await repository.delete_quiet_hours(db, caller.sandbox, _id(ruleId, "quiet hours")):
        raise NotFound(f"no quiet hours {ruleId!r}")
    return Response(status_code=204)
