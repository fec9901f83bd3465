"""The demo seed ``itinera run`` calls: a welcome journey (a sign-up event, an email,
a wait for it to be opened or a minute, an SMS when it was not) and an API-triggered
campaign, created and made live once and found again on later runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from itinera.common.settings import CommonSettings

WELCOME_EVENT = "demo.signup"
WELCOME: dict[str, Any] = {
    "name": "Demo: welcome",
    "description": "A new customer signs up: an email, then an SMS if it was not opened within a minute.",
    "nodes": [
        {"id": "signup", "type": "event", "eventType": WELCOME_EVENT, "next": "welcome"},
        {
            "id": "welcome",
            "type": "message",
            "channel": "email",
            "templateId": "demo-welcome",
            "context": {"signupPage": "_journey.event.web.webPageDetails.name"},
            "next": "opened",
        },
        {
            "id": "opened",
            "type": "waitForEvent",
            "reaction": {"messageNode": "welcome", "on": "opened"},
            "timeout": "PT1M",
            "timeoutNext": "reminder",
        },
        {"id": "reminder", "type": "message", "channel": "sms", "templateId": "demo-reminder"},
    ],
}
CONFIRMATION: dict[str, Any] = {
    "name": "Demo: order confirmation",
    "description": "Sent when the shop's order system calls /ajo/im/executions/unitary.",
    "type": "api",
    "mode": "unitary",
    "channel": "email",
    "templateId": "demo-order-confirmation",
    "category": "transactional",
}


async def _journey(http: httpx.AsyncClient) -> dict[str, Any]:
    listed = (await http.get("/v1/journeys", params={"limit": 1000})).raise_for_status().json()["items"]
    found = next((j for j in listed if j["name"] == WELCOME["name"]), None)
    if found is None:
        found = (await http.post("/v1/journeys", json=WELCOME)).raise_for_status().json()
    if found.get("liveVersion") is None:
        version = found.get("draftVersion") or found["latestVersion"]
        await _once_templates_are_known(http, f"/v1/journeys/{found['id']}/versions/{version}/publish")
    journey: dict[str, Any] = found
    return journey


async def _once_templates_are_known(http: httpx.AsyncClient, path: str, wait_s: float = 60) -> httpx.Response:
    """Publish or activate, waiting while the only problems are templates this service has not heard
    of yet: the content service's demo seed publishes them, and they reach journeys
    through itinera.content.v1 a moment later."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        answer = await http.post(path)
        codes = (
            {p.get("code") for p in answer.json().get("problems", [])} if answer.status_code == 400 else set()
        )
        if codes != {"undefined-template"} or asyncio.get_running_loop().time() > deadline:
            return answer.raise_for_status()
        await asyncio.sleep(0.5)


async def _campaign(http: httpx.AsyncClient) -> dict[str, Any]:
    listed = (await http.get("/v1/campaigns", params={"limit": 1000})).raise_for_status().json()["items"]
    found = next((c for c in listed if c["name"] == CONFIRMATION["name"]), None)
    if found is None:
        found = (await http.post("/v1/campaigns", json=CONFIRMATION)).raise_for_status().json()
    if found["status"] == "draft":
        found = (await _once_templates_are_known(http, f"/v1/campaigns/{found['id']}/activate")).json()
    campaign: dict[str, Any] = found
    return campaign


async def seed(settings: CommonSettings, token: str, url_of: Callable[[str], str]) -> list[str]:
    url = url_of("journeys")
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {token}"}) as http:
        journey = await _journey(http)
        campaign = await _campaign(http)
    return [
        "",
        f"  Demo journey:  '{WELCOME['name']}' ({journey['id']}): an event of type {WELCOME_EVENT!r}",
        f"                 enters it; instances at {url}/v1/journeys/{journey['id']}/instances",
        f"  Demo campaign: '{CONFIRMATION['name']}' ({campaign['id']}), API-triggered:",
        f"                 POST {url}/ajo/im/executions/unitary",
    ]
