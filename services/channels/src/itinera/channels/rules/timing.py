"""When quiet hours hold a message back, and where a capping period starts; no I/O.

A quiet-hours window runs from ``start`` to ``end`` in the profile's local time (its
XDM ``timeZone``, an IANA name; the configured default when it has none or an unknown
one), starting on each of its ``days`` (ISO weekdays, 1 = Monday). A window whose end is
not after its start runs overnight: 21:00 to 08:00 on Friday ends on Saturday at 08:00.
Capping periods are calendar periods in UTC: the day from midnight, the week from
Monday, the month from its first day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone_of(profile: Mapping[str, Any], default: str) -> ZoneInfo:
    name = profile.get("timeZone")
    if not isinstance(name, str):
        preferences = profile.get("preferences")
        name = preferences.get("timeZone") if isinstance(preferences, Mapping) else None
    for candidate in (name, default):
        if isinstance(candidate, str) and candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def window_end(now: datetime, zone: ZoneInfo, start: time, end: time, days: Iterable[int]) -> datetime | None:
    """When the window that ``now`` falls in ends (UTC), or None when it falls in none."""
    local = now.astimezone(zone)
    allowed = set(days)
    overnight = end <= start
    # The window may have started today, or (overnight) yesterday.
    for offset in (0, -1) if overnight else (0,):
        day = local.date() + timedelta(days=offset)
        if day.isoweekday() not in allowed:
            continue
        opens = datetime.combine(day, start, zone)
        closes = datetime.combine(day + timedelta(days=1) if overnight else day, end, zone)
        if opens <= local < closes:
            return closes.astimezone(UTC)
    return None


def period_start(now: datetime, period: str) -> datetime:
    day = datetime.combine(now.astimezone(UTC).date(), time(0), UTC)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.isoweekday() - 1)
    return day.replace(day=1)
