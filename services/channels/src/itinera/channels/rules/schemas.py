"""``/v1/capping/rules`` and ``/v1/quiet-hours`` bodies and answers."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from itinera.common.web.problems import documented

_NUL = "\x00"


def _storable(text: str) -> str:
    if _NUL in text or any("\ud800" <= c <= "\udfff" for c in text):
        raise ValueError("NUL characters and lone surrogates are not allowed")
    return text


Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256), AfterValidator(_storable)
]


def _naive(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("a local time has no offset: the profile's time zone applies")
    return value


LocalTime = Annotated[time, AfterValidator(_naive)]
RuleChannel = Literal["all", "email", "sms", "push", "webhook"]
PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: documented("No valid bearer token"),
    403: documented("The token lacks the scope, or is for another sandbox"),
    404: documented("No such rule in the sandbox"),
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CappingRuleIn(Strict):
    name: Name
    channel: RuleChannel = Field(description="One channel, or `all`: messages of every channel count")
    max: int = Field(ge=0, le=1_000_000, description="The most messages a profile may get in a period")
    period: Literal["day", "week", "month"] = Field(description="Calendar periods in UTC")
    category: Literal["marketing", "all"] = Field(
        default="marketing", description="Which messages count and are capped"
    )


class CappingRuleOut(CappingRuleIn):
    id: str
    createdAt: datetime
    updatedAt: datetime


class QuietHoursIn(Strict):
    name: Name
    channel: RuleChannel = "all"
    start: LocalTime = Field(description="Local time the window opens, `HH:MM`")
    end: LocalTime = Field(description="Local time it closes; not after `start`: the next day")
    days: list[Annotated[int, Field(ge=1, le=7)]] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5, 6, 7],
        min_length=1,
        max_length=7,
        description="ISO weekdays (1 = Monday) on which the window opens",
    )
    action: Literal["queue", "discard"] = Field(
        default="queue", description="Hold messages until the window closes, or exclude them"
    )
    category: Literal["marketing", "all"] = "marketing"


class QuietHoursOut(QuietHoursIn):
    id: str
    createdAt: datetime
    updatedAt: datetime


class CappingRulePage(BaseModel):
    items: list[CappingRuleOut]


class QuietHoursPage(BaseModel):
    items: list[QuietHoursOut]
