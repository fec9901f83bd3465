"""Documents and calls the content tests share."""

from __future__ import annotations

from typing import Any

import httpx

TEMPLATES = "/v1/templates"
FRAGMENTS = "/v1/fragments"


def email(template_id: str | None = "welcome-email", **properties: Any) -> dict[str, Any]:
    """An email template that can be published, in English and French."""
    body: dict[str, Any] = {
        "name": "Welcome",
        "channel": "email",
        "defaultLocale": "en",
        "variants": {
            "en": {
                "subject": "Welcome, {{profile.person.name.firstName}}",
                "html": "<p>Hi {{profile.person.name.firstName}}</p>",
                "text": "Hi {{profile.person.name.firstName}}",
                "sender": {"name": "Shop", "address": "hello@shop.example"},
            },
            "fr": {
                "subject": "Bienvenue, {{profile.person.name.firstName}}",
                "html": "<p>Bonjour {{profile.person.name.firstName}}</p>",
                "sender": {"name": "Boutique", "address": "bonjour@shop.example"},
            },
        },
        **properties,
    }
    if template_id is not None:
        body["id"] = template_id
    return body


async def created(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(path, json=body)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def published(http: httpx.AsyncClient, path: str, item_id: str) -> dict[str, Any]:
    response = await http.post(f"{path}/{item_id}/publish")
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def fragment(
    http: httpx.AsyncClient, fragment_id: str, content: str, kind: str = "expression", *, publish: bool = True
) -> None:
    await created(http, FRAGMENTS, {"id": fragment_id, "name": fragment_id, "type": kind, "content": content})
    if publish:
        await published(http, FRAGMENTS, fragment_id)
