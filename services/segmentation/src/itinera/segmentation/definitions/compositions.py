"""Compositions: an audience made of others, by union, intersection or exclusion.

A composition is an ordinary audience definition whose rule is written from the
operation (``inSegment("a") or inSegment("b")``, ``... and ...``, ``inSegment("a") and
not (inSegment("b") or ...)``), so every check of a definition applies (the audiences
exist, no cycle, streaming only when the rule can stream) and it is evaluated like any
other, audiences it names first.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, Field

from itinera.segmentation.definitions import service
from itinera.segmentation.definitions.schemas import (
    DefinitionIn,
    Description,
    EvaluationInfo,
    ExpressionIn,
    Name,
    SchemaIn,
)

Operation = Literal["union", "intersection", "exclusion"]


class CompositionIn(BaseModel):
    name: Name
    description: Description = ""
    operation: Operation = Field(
        description="`union` (in any), `intersection` (in all), `exclusion` (in the first, in no other)"
    )
    audiences: list[uuid.UUID] = Field(min_length=2, max_length=50, description="Audience ids, at least two")
    evaluationInfo: EvaluationInfo | None = None


def rule(operation: Operation, audiences: list[uuid.UUID]) -> str:
    named = [f'inSegment("{a}")' for a in dict.fromkeys(audiences)]
    if operation == "union":
        return " or ".join(named)
    if operation == "intersection":
        return " and ".join(named)
    return f"{named[0]} and not ({' or '.join(named[1:])})"


async def create(
    db: asyncpg.Connection, sandbox: str, body: CompositionIn, max_length: int
) -> dict[str, Any]:
    definition = DefinitionIn.model_validate(
        {
            "name": body.name,
            "description": body.description,
            "expression": ExpressionIn(value=rule(body.operation, body.audiences)),
            "schema": SchemaIn(name="_xdm.context.profile"),
            "evaluationInfo": body.evaluationInfo,
        }
    )
    return await service.create(db, sandbox, definition, max_length)
