"""What becomes of a message request, decided in the transaction that records it.

The checks, in order; the first that fails excludes the message with its reason:

1. ``no-template``: the template is not in the store (never published, or deleted), or
   is of another channel;
2. ``consent`` (marketing messages only): the profile opted out of the channel
   (``consents.marketing.<email|sms|push>.val``), of all marketing
   (``consents.marketing.any.val``), or, for the address itself, in
   ``consents.idSpecific.<Email|Phone|ECID...>.<address>.marketing.<channel>.val``.
   Opting out is ``n`` or ``dn`` (default no); any other value, and no value at all,
   allows the message: as in AJO, an empty consent field counts as consent;
3. ``suppressed``: the address, or for email its domain (or a domain above it), is on
   the suppression list;
4. ``not-allowed`` (email only): the sandbox's allowed list is in force and neither the
   address nor its domain (nor a domain above it) is on it; with the list in force and
   empty, every email is excluded (AJO's allowed list);
5. ``capped``: a frequency capping rule of the channel (or of all channels) has already
   let through its ``max`` messages of the profile this period;
6. ``quiet-hours``: the profile's local time is inside quiet hours whose action is
   ``discard``; with ``queue`` the message is kept and sent when the window closes;
7. ``no-address``: the profile has no address for the channel (email:
   ``personalEmail.address``; SMS: ``mobilePhone.number``; push: the first token of
   ``pushNotificationDetails`` that is not ``denylisted``; webhook: the template's URL);
8. ``render``: the template does not render (see :mod:`itinera.channels.content.render`).

A message that passes is ``rendered``, due at once or when its quiet hours end.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from itinera.channels.content.render import RenderFailed, render_message
from itinera.channels.rules import repository as rules
from itinera.channels.rules.timing import period_start, window_end, zone_of
from itinera.channels.suppression.repository import Screened

OPTED_OUT = frozenset({"n", "dn"})
_ID_NAMESPACES = {"email": ("Email",), "sms": ("Phone",), "push": ("ECID", "FCM", "APNS")}


@dataclass
class Policies:
    """The sandbox's capping rules and quiet hours, read once per batch."""

    capping: Sequence[asyncpg.Record]
    quiet: Sequence[asyncpg.Record]


@dataclass
class Batch:
    """What the checks of one consumed batch share: what the suppression and allowed
    lists say of the batch's addresses (looked up at once, by channel and address as
    given), and the messages taken for delivery so far in the batch, by profile
    (channel, category): not yet stored when a later message of the profile is checked,
    they count towards its caps."""

    lists: Screened = field(default_factory=Screened)
    taken: dict[uuid.UUID, list[tuple[str, str]]] = field(default_factory=dict)

    def take(self, profile_id: uuid.UUID, channel: str, category: str) -> None:
        self.taken.setdefault(profile_id, []).append((channel, category))


@dataclass
class Decision:
    state: str
    reason: str | None = None
    detail: str | None = None
    address: str | None = None
    locale: str | None = None
    content: dict[str, Any] | None = None
    next_attempt_at: datetime | None = None
    queued_until: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def address_of(channel: str, profile: Mapping[str, Any]) -> str | None:
    if channel == "email":
        found = _get(profile, "personalEmail", "address")
    elif channel == "sms":
        found = _get(profile, "mobilePhone", "number")
    elif channel == "push":
        devices = profile.get("pushNotificationDetails")
        found = (
            next(
                (
                    d["token"]
                    for d in devices or ()
                    if isinstance(d, Mapping)
                    and isinstance(d.get("token"), str)
                    and d["token"]
                    and not d.get("denylisted")
                ),
                None,
            )
            if isinstance(devices, list)
            else None
        )
    else:
        return None
    return found.strip() if isinstance(found, str) and found.strip() else None


def opted_out(channel: str, profile: Mapping[str, Any], address: str | None) -> bool:
    marketing = _get(profile, "consents", "marketing")
    if _get(marketing, "any", "val") in OPTED_OUT:
        return True
    if channel in ("email", "sms", "push") and _get(marketing, channel, "val") in OPTED_OUT:
        return True
    if address is None or channel not in _ID_NAMESPACES:
        return False
    specific = _get(profile, "consents", "idSpecific")
    if not isinstance(specific, Mapping):
        return False
    for namespace in _ID_NAMESPACES[channel]:
        identities = specific.get(namespace)
        if not isinstance(identities, Mapping):
            continue
        for identity, consents in identities.items():
            same = identity.lower() == address.lower() if channel == "email" else identity == address
            if same and _get(consents, "marketing", channel, "val") in OPTED_OUT:
                return True
    return False


def _applies(rule: asyncpg.Record, channel: str, category: str) -> bool:
    return rule["channel"] in ("all", channel) and (rule["category"] == "all" or category == "marketing")


async def capped(
    conn: asyncpg.Connection,
    sandbox: str,
    profile_id: uuid.UUID,
    channel: str,
    category: str,
    policies: Policies,
    now: datetime,
    batch: Batch | None = None,
) -> str | None:
    """The name of the first rule that caps the message, or None. ``batch``: the
    messages of the profile taken earlier in this batch, not yet stored, count too."""
    for rule in policies.capping:
        if not _applies(rule, channel, category):
            continue
        taken = await rules.sent_since(
            conn,
            sandbox,
            profile_id,
            period_start(now, rule["period"]),
            None if rule["channel"] == "all" else channel,
            rule["category"] == "marketing",
        )
        if batch is not None:
            taken += sum(
                1
                for was_channel, was_category in batch.taken.get(profile_id, ())
                if rule["channel"] in ("all", was_channel)
                and (rule["category"] == "all" or was_category == "marketing")
            )
        if taken >= rule["max_count"]:
            return str(rule["name"])
    return None


def quiet(
    channel: str,
    category: str,
    profile: Mapping[str, Any],
    policies: Policies,
    now: datetime,
    default_zone: str,
) -> tuple[str, datetime, str] | None:
    """The action (queue or discard), when the window closes, and the rule's name, when
    the profile's local time is inside quiet hours; discard wins over queue."""
    found: tuple[str, datetime, str] | None = None
    zone = zone_of(profile, default_zone)
    for rule in policies.quiet:
        if not _applies(rule, channel, category):
            continue
        closes = window_end(now, zone, rule["start_time"], rule["end_time"], rule["days"])
        if closes is None:
            continue
        if rule["action"] == "discard":
            return "discard", closes, str(rule["name"])
        if found is None or closes > found[1]:
            found = ("queue", closes, str(rule["name"]))
    return found


async def decide(
    conn: asyncpg.Connection,
    sandbox: str,
    request: Mapping[str, Any],
    template: Mapping[str, Any] | None,
    fragments: Mapping[str, Mapping[str, Any]],
    policies: Policies,
    now: datetime,
    default_zone: str,
    batch: Batch,
) -> Decision:
    """What becomes of the request; ``batch`` holds the suppressed and not allowed
    addresses of the batch's requests, looked up before (see :class:`Batch`)."""
    channel, category = request["channel"], request["category"]
    profile: Mapping[str, Any] = request["profile"]
    if template is None:
        return Decision("excluded", "no-template", f"no template {request.get('templateId')!r} is published")
    if template["channel"] not in (None, channel):
        return Decision(
            "excluded", "no-template", f"the template is for {template['channel']}, not {channel}"
        )
    address = address_of(channel, profile)
    if category == "marketing" and opted_out(channel, profile, address):
        return Decision(
            "excluded", "consent", f"the profile opted out of {channel} marketing", address=address
        )
    if address is not None:
        why = batch.lists.suppressed.get((channel, address))
        if why is not None:
            return Decision("excluded", "suppressed", f"{address} is suppressed ({why})", address=address)
        if (channel, address) in batch.lists.not_allowed:
            return Decision(
                "excluded", "not-allowed", f"{address} is not on the allowed list", address=address
            )
    rule = await capped(conn, sandbox, request["_profile"], channel, category, policies, now, batch)
    if rule is not None:
        return Decision("excluded", "capped", f"frequency capping rule {rule!r}", address=address)
    held = quiet(channel, category, profile, policies, now, default_zone)
    if held is not None and held[0] == "discard":
        return Decision("excluded", "quiet-hours", f"quiet hours {held[2]!r}", address=address)
    if address is None and channel != "webhook":
        return Decision("excluded", "no-address", f"the profile has no {channel} address")
    try:
        locale, content = render_message(
            sandbox, template, channel, profile, request.get("context") or {}, fragments
        )
    except RenderFailed as exc:
        return Decision("excluded", "render", str(exc), address=address)
    if channel == "webhook":
        address = str(content["url"])
    due = held[1] if held is not None else now
    return Decision(
        "rendered",
        address=address,
        locale=locale,
        content=content,
        next_attempt_at=due,
        queued_until=held[1] if held is not None else None,
    )
