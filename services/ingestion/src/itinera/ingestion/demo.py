"""The demo seed ``itinera run`` calls: a web-events dataset and a CRM-profiles
dataset, each with a streaming connection, created once and found again on later
runs, and a ready-to-paste curl command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from itinera.common.settings import CommonSettings

INLETS = (
    ("Demo web events", "https://ns.adobe.com/xdm/context/experienceevent"),
    ("Demo CRM profiles", "https://ns.adobe.com/xdm/context/profile"),
)


async def _inlet(http: httpx.AsyncClient, name: str, schema_id: str) -> dict[str, Any]:
    datasets = (await http.get("/v1/datasets")).raise_for_status().json()["items"]
    dataset = next((d for d in datasets if d["name"] == name), None)
    if dataset is None:
        dataset = (
            (
                await http.post(
                    "/v1/datasets",
                    json={"name": name, "schemaRef": {"id": schema_id}, "profileEnabled": True},
                )
            )
            .raise_for_status()
            .json()
        )
    connections = (await http.get("/v1/connections")).raise_for_status().json()["items"]
    connection = next((c for c in connections if c["name"] == name), None)
    if connection is None:
        connection = (
            (await http.post("/v1/connections", json={"name": name, "datasetId": dataset["id"]}))
            .raise_for_status()
            .json()
        )
    return {"dataset": dataset["id"], "connection": connection["id"]}


async def seed(settings: CommonSettings, token: str, url_of: Callable[[str], str]) -> list[str]:
    url = url_of("ingestion")
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {token}"}) as http:
        events = await _inlet(http, *INLETS[0])
        profiles = await _inlet(http, *INLETS[1])
    return [
        "",
        f"  Demo web events:   dataset {events['dataset']}, connection {events['connection']}",
        f"  Demo CRM profiles: dataset {profiles['dataset']}, connection {profiles['connection']}",
        "",
        "  Send an event (after the export TOKEN line below):",
        f"  curl -s -X POST {url}/collection/{events['connection']} \\",
        "    -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\",
        '    -d \'{"_id": "evt-1", "timestamp": "2026-01-01T10:00:00Z",',
        '         "eventType": "web.webpagedetails.pageViews",',
        '         "identityMap": {"Email": [{"id": "jane@example.com", "primary": true}]}}\'',
    ]
