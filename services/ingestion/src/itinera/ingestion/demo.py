"""The demo seed ``itinera run`` calls: a web-events dataset and a CRM-profiles
dataset, each with a streaming connection, created once and found again on later
runs; a small store's customers and their product views and purchases, generated here
(the same ones every run: their ids are fixed, so a second run changes nothing); and a
ready-to-paste curl command."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
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


FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "John")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman")
CITIES = (("Paris", "FR", "fr"), ("Lyon", "FR", "fr"), ("London", "GB", "en"), ("Berlin", "DE", "de"))
PRODUCTS = (
    ("SKU-TRAIL", "Trail shoes", 120.0),
    ("SKU-JACKET", "Rain jacket", 180.0),
    ("SKU-SOCKS", "Socks", 12.0),
)
CUSTOMERS = 40


def store(now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The demo store's customers (profile records) and what they did in the last weeks
    (experience events): the same every time for the same day."""
    rng = random.Random(7)
    records: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for n in range(CUSTOMERS):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = f"{first}.{last}.{n}@shop.example".lower()
        city, country, language = rng.choice(CITIES)
        identity = {"Email": [{"id": email, "primary": True}]}
        records.append(
            {
                "_id": f"demo-customer-{n}",
                "identityMap": identity,
                "person": {"name": {"firstName": first, "lastName": last}},
                "personalEmail": {"address": email},
                "homeAddress": {"city": city, "countryCode": country},
                "preferredLanguage": language,
                "loyalty": {
                    "tier": rng.choice(("bronze", "silver", "gold")),
                    "points": rng.randrange(0, 5000),
                },
            }
        )
        for k in range(rng.randrange(1, 6)):
            sku, name, price = rng.choice(PRODUCTS)
            bought = rng.random() < 0.4
            at = (now - timedelta(days=rng.randrange(0, 30), minutes=rng.randrange(0, 1440))).replace(
                microsecond=0
            )
            event: dict[str, Any] = {
                "_id": f"demo-event-{n}-{k}",
                "timestamp": at.isoformat().replace("+00:00", "Z"),
                "eventType": "commerce.purchases" if bought else "commerce.productViews",
                "identityMap": identity,
                "productListItems": [{"SKU": sku, "name": name, "priceTotal": price, "quantity": 1}],
            }
            event["commerce"] = (
                {"purchases": {"value": 1}, "order": {"priceTotal": price, "currencyCode": "EUR"}}
                if bought
                else {"productViews": {"value": 1}}
            )
            events.append(event)
    return records, events


async def _send(http: httpx.AsyncClient, connection: str, messages: list[dict[str, Any]]) -> int:
    """Messages sent in batches; how many were accepted."""
    accepted = 0
    for start in range(0, len(messages), 50):
        answer = await http.post(
            f"/collection/batch/{connection}", json={"messages": messages[start : start + 50]}
        )
        accepted += sum(1 for r in answer.json().get("responses", []) if r.get("status", 200) < 300)
    return accepted


async def seed(settings: CommonSettings, token: str, url_of: Callable[[str], str]) -> list[str]:
    url = url_of("ingestion")
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {token}"}) as http:
        events = await _inlet(http, *INLETS[0])
        profiles = await _inlet(http, *INLETS[1])
        today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
        customers, activity = store(today)
        sent_customers = await _send(http, profiles["connection"], customers)
        sent_events = await _send(http, events["connection"], activity)
    return [
        "",
        f"  Demo store:        {sent_customers} customers and {sent_events} product views and purchases sent",
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
