"""The demo seed ``itinera run`` calls: the templates the demo journey and campaign send
(a welcome email in English and French, a reminder SMS, an order confirmation email),
created and published once and found again on later runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from itinera.common.settings import CommonSettings

SENDER = {"name": "Itinera demo shop", "address": "hello@shop.example"}
TEMPLATES: tuple[dict[str, Any], ...] = (
    {
        "id": "demo-welcome",
        "name": "Demo: welcome email",
        "channel": "email",
        "defaultLocale": "en",
        "variants": {
            "en": {
                "subject": 'Welcome, {{profile.person.name.firstName ?: "friend"}}!',
                "html": (
                    "<h1>Welcome{{#if profile.person.name.firstName}}, "
                    "{{profile.person.name.firstName}}{{/if}}!</h1>"
                    "<p>Thanks for signing up{{#if context.signupPage}} on "
                    "{{context.signupPage}}{{/if}}.</p>"
                    '<p><a href="https://shop.example/new-arrivals">See what is new</a></p>'
                ),
                "text": 'Welcome, {{profile.person.name.firstName ?: "friend"}}! Thanks for signing up.',
                "sender": SENDER,
            },
            "fr": {
                "subject": 'Bienvenue, {{profile.person.name.firstName ?: "cher client"}} !',
                "html": (
                    "<h1>Bienvenue{{#if profile.person.name.firstName}}, "
                    "{{profile.person.name.firstName}}{{/if}} !</h1><p>Merci de votre inscription.</p>"
                ),
                "text": "Bienvenue ! Merci de votre inscription.",
                "sender": SENDER,
            },
        },
    },
    {
        "id": "demo-reminder",
        "name": "Demo: welcome reminder SMS",
        "channel": "sms",
        "defaultLocale": "en",
        "variants": {
            "en": {"text": 'Hi {{profile.person.name.firstName ?: "there"}}, your welcome offer awaits.'}
        },
    },
    {
        "id": "demo-order-confirmation",
        "name": "Demo: order confirmation",
        "channel": "email",
        "defaultLocale": "en",
        "variants": {
            "en": {
                "subject": "Order {{context.orderId}} confirmed",
                "html": "<p>Thank you! Order <b>{{context.orderId}}</b> is confirmed.</p>",
                "text": "Thank you! Order {{context.orderId}} is confirmed.",
                "sender": SENDER,
            }
        },
    },
)


async def _template(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    found = await http.get(f"/v1/templates/{body['id']}")
    if found.status_code == 404:
        (await http.post("/v1/templates", json=body)).raise_for_status()
        found = await http.get(f"/v1/templates/{body['id']}")
    current = found.raise_for_status().json()
    if current.get("publishedVersion") is None:
        (await http.post(f"/v1/templates/{body['id']}/publish")).raise_for_status()
    return str(body["id"])


async def seed(settings: CommonSettings, token: str, url_of: Callable[[str], str]) -> list[str]:
    url = url_of("content")
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {token}"}) as http:
        published = [await _template(http, body) for body in TEMPLATES]
    return ["", f"  Demo templates:  {', '.join(published)} ({url}/v1/templates)"]
