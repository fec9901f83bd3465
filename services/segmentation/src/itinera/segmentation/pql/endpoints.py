"""PQL for rule editors and tests: evaluate an expression against a given profile, or
validate it (problems with positions, attributes read, streaming eligibility).

- ``POST /v1/pql/evaluate``: ``{expression, profile, events?, now?}``; the profile may
  carry its events as ``xEvent``; or ``{expression, profileId, now?}`` for a profile of
  the projection, with its most recent events. The answer is ``{result, qualifies}`` (the value, and
  whether it makes the profile a member: true, or a non-empty list); an expression that is not
  valid PQL is a 400 listing every problem with its line, column and offsets.
- ``POST /v1/pql/validate``: ``{expression}``; always 200 for a string, with ``valid``
  and the analysis.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Request, Security
from pydantic import AwareDatetime, BaseModel, Field

from itinera.common import pql
from itinera.common.auth import Principal, require_scope
from itinera.common.errors import FieldError, NotFound, ValidationFailed
from itinera.common.service import Db
from itinera.common.web.responses import Json
from itinera.segmentation.config import SegmentationSettings
from itinera.segmentation.definitions.service import allowing_profile_only
from itinera.segmentation.projection import repository as projection

router = APIRouter(tags=["pql"])
Reader = Annotated[Principal, Security(require_scope("audiences:read"))]


class Evaluation(BaseModel):
    expression: str = Field(min_length=1, description="A PQL expression")
    profile: dict[str, Any] | None = Field(
        default=None, description="An XDM profile; its events may be given as `xEvent`"
    )
    profileId: uuid.UUID | None = Field(
        default=None, description="Instead of `profile`: a profile of the projection, with its events"
    )
    events: list[dict[str, Any]] | None = Field(
        default=None, description="The profile's experience events (default: the profile's `xEvent`)"
    )
    now: AwareDatetime | None = Field(default=None, description="The moment of evaluation (default: now)")


class Validation(BaseModel):
    expression: str = Field(min_length=1, description="A PQL expression")


def _checked_length(request: Request, expression: str) -> None:
    settings: SegmentationSettings = request.app.state.settings
    limit = settings.segmentation_max_expression_length
    if len(expression) > limit:
        raise ValidationFailed(
            "the expression is too long",
            [FieldError("/expression", f"{len(expression)} characters; at most {limit}", "maxLength")],
        )


def _json(value: Any) -> Any:
    """A result as JSON: times as ISO-8601, exact decimals as numbers."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json(v) for v in value]
    return value


@router.post("/v1/pql/evaluate", summary="Evaluate a PQL expression against a profile", response_class=Json)
async def evaluate(request: Request, caller: Reader, body: Evaluation, db: Db) -> Json:
    _checked_length(request, body.expression)
    profile, events = body.profile or {}, body.events
    if body.profileId is not None:
        if body.profile is not None or body.events is not None:
            raise ValidationFailed(
                "give a profile or a profile id, not both",
                [FieldError("/profileId", "not with `profile` or `events`", "exclusive")],
            )
        settings: SegmentationSettings = request.app.state.settings
        found = await projection.profile(
            db, caller.sandbox, str(body.profileId), settings.segmentation_evaluation_events
        )
        if found is None:
            raise NotFound(f"profile {body.profileId} is not in the projection of sandbox {caller.sandbox!r}")
        profile, events = found
    try:
        rule = pql.compile_rule(body.expression)
    except pql.PqlError as exc:
        raise ValidationFailed(
            "the expression is not valid PQL",
            [FieldError("/expression", str(problem), "pql") for problem in exc.problems],
            extra={"problems": [p.as_dict() for p in exc.problems]},
        ) from None
    result = rule.evaluate(profile, now=body.now, events=events)
    return Json({"result": _json(result), "qualifies": pql.truthy(result)})


@router.post(
    "/v1/pql/validate", summary="Problems, attributes read and streaming eligibility", response_class=Json
)
async def validate(request: Request, caller: Reader, body: Validation, db: Db) -> Json:
    _checked_length(request, body.expression)
    found = await allowing_profile_only(db, caller.sandbox, body.expression)
    return Json(
        {
            "valid": not found.problems,
            "problems": [p.as_dict() for p in found.problems],
            "references": found.references,
            "audiences": found.segments,
            "streaming": {"eligible": found.streaming, "reasons": found.streaming_reasons},
            "lookbackSeconds": found.lookback.total_seconds() if found.lookback is not None else None,
            "timeDependent": found.time_dependent,
        }
    )
