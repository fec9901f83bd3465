"""When a schedule fires (a scheduled campaign, a journey reading an audience), read
without a database.

- ``once``: at ``at``, or when the campaign is activated when it has none;
- ``cron``: the five-field expression of :mod:`itinera.journeys.definitions.timing`, read
  in its ``timeZone`` (wall-clock minutes: a time skipped by a daylight-saving change is
  skipped);
- ``every``: ``interval`` hours or days from ``startAt`` (else from the activation), in
  UTC.

No occurrence comes after the campaign's ``endAt``. Occurrences missed while no worker
ran are not caught up one by one: the next one fired is the first due, and the one after
it is the first after the time it fired.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from itinera.journeys.definitions.schemas import CronSchedule, Every, Once
from itinera.journeys.definitions.timing import parse_cron

Schedule = Once | CronSchedule | Every


def zone(name: str) -> ZoneInfo | None:
    """The IANA time zone, or None when there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _step(schedule: Every) -> timedelta:
    return (
        timedelta(hours=schedule.interval) if schedule.unit == "hours" else timedelta(days=schedule.interval)
    )


def _every_after(schedule: Every, anchor: datetime, after: datetime, inclusive: bool) -> datetime:
    start = schedule.startAt or anchor
    if start > after or (inclusive and start == after):
        return start
    step = _step(schedule)
    count = (after - start) // step + 1
    found = start + step * count
    if inclusive and found - step == after:
        return after
    return found


def _cron_after(schedule: CronSchedule, after: datetime) -> datetime:
    tz = zone(schedule.timeZone)
    if tz is None:
        raise ValueError(f"{schedule.timeZone!r} is not an IANA time zone")
    local = parse_cron(schedule.expression).next_after(after.astimezone(tz))
    return local.astimezone(UTC)


def first_run(schedule: Schedule, now: datetime, end_at: datetime | None) -> datetime | None:
    """The first occurrence of a campaign activated ``now`` (None: there is none before
    ``end_at``); ``ValueError`` when the schedule cannot be read."""
    try:
        if isinstance(schedule, Once):
            found = schedule.at or now
        elif isinstance(schedule, CronSchedule):
            found = _cron_after(schedule, now)
        else:
            found = _every_after(schedule, now, now, inclusive=True)
    except OverflowError:
        return None
    return None if end_at is not None and found > end_at else found


def next_run(
    schedule: Schedule, anchor: datetime, after: datetime, end_at: datetime | None
) -> datetime | None:
    """The first occurrence strictly after ``after`` (``anchor``: when the campaign was
    activated, where an ``every`` schedule without ``startAt`` counts from); None when
    there is none (a one-shot campaign, past ``end_at``, a schedule that cannot be read)."""
    if isinstance(schedule, Once):
        return None
    try:
        if isinstance(schedule, CronSchedule):
            found = _cron_after(schedule, after)
        else:
            found = _every_after(schedule, anchor, after, inclusive=False)
    except (OverflowError, ValueError):
        return None
    return None if end_at is not None and found > end_at else found
