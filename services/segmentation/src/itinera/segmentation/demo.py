"""The demo seed ``itinera run`` calls: two audiences of the demo store's customers
(bought in the last 30 days; gold loyalty tier in France), evaluated in batch, and a
nightly schedule evaluating every batch audience, created once and found again on later
runs. Saving an audience evaluates it over the profiles already there; a segment job
(``POST /data/core/ups/segment/jobs``) evaluates it again at any time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from itinera.common.settings import CommonSettings

AUDIENCES: tuple[dict[str, Any], ...] = (
    {
        "name": "Demo: bought in the last 30 days",
        "description": "Customers with a purchase in the last 30 days.",
        "expression": {
            "type": "PQL",
            "format": "pql/text",
            "value": 'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 30 days before now]',
        },
        "schema": {"name": "_xdm.context.profile"},
    },
    {
        "name": "Demo: gold customers in France",
        "description": "Gold loyalty tier, living in France.",
        "expression": {
            "type": "PQL",
            "format": "pql/text",
            "value": 'loyalty.tier = "gold" and homeAddress.countryCode = "FR"',
        },
        "schema": {"name": "_xdm.context.profile"},
    },
)


NIGHTLY = {
    "name": "Demo: nightly",
    "type": "batch_segmentation",
    "properties": {"segments": ["*"]},
    "schedule": "0 0 2 * * ?",
    "state": "active",
}


async def seed(settings: CommonSettings, token: str, url_of: Callable[[str], str]) -> list[str]:
    url = url_of("segmentation")
    lines = [""]
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {token}"}) as http:
        listed = (await http.get("/data/core/ups/segment/definitions", params={"limit": 100})).json()
        names = {d["name"]: d["id"] for d in listed.get("segments", [])}
        for body in AUDIENCES:
            audience_id = names.get(body["name"])
            if audience_id is None:
                audience_id = (
                    (await http.post("/data/core/ups/segment/definitions", json=body))
                    .raise_for_status()
                    .json()["id"]
                )
            lines.append(f"  Demo audience:   '{body['name']}' ({audience_id})")
        schedules = (await http.get("/data/core/ups/config/schedules")).json()["children"]
        if not any(s["name"] == NIGHTLY["name"] for s in schedules):
            (await http.post("/data/core/ups/config/schedules", json=NIGHTLY)).raise_for_status()
    lines.append(
        f"                   members: {url}/v1/audiences/<id>/members; evaluated nightly at 02:00 UTC"
    )
    return lines
