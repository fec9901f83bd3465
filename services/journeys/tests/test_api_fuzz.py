"""No input makes the journeys service answer 5xx: schemathesis generates requests from
the service's own OpenAPI document and sends them to a real server process, with a real
journey, custom action, campaign and scheduled execution in place of generated ids, so
bodies reach the checks."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.testing import StackInfo, no_server_errors, serving
from itinera.journeys.config import JourneysSettings

EXAMPLES_PER_OPERATION = int(os.environ.get("ITINERA_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def server(topics_created: StackInfo) -> Iterator[str]:
    """The API alone (no worker keeps templates here), with templates not looked up, so
    that the live campaign and journey the fuzzing needs can be made, and neither
    audiences nor profiles asked of other services (none runs here: that would be a 503
    whatever the input)."""
    with serving(
        topics_created,
        "journeys",
        ITINERA_JOURNEYS_CHECK_TEMPLATES="false",
        ITINERA_JOURNEYS_CHECK_AUDIENCES="false",
        ITINERA_JOURNEYS_READ_PROFILES="false",
    ) as url:
        yield url


def test_no_input_gets_a_server_error(server: str) -> None:
    token = mint_token(JourneysSettings(), scopes=ALL_SCOPES, sandbox="fuzz")
    headers = {"Authorization": f"Bearer {token}"}
    journey = httpx.post(
        f"{server}/v1/journeys",
        headers=headers,
        json={"name": "fuzzed", "nodes": [{"id": "start", "type": "event", "eventType": "x"}]},
    )
    action = httpx.post(
        f"{server}/v1/actions",
        headers=headers,
        json={"name": f"fuzzed {journey.json()['id']}", "url": "https://api.example.com/{{id}}"},
    )
    assert (journey.status_code, action.status_code) == (201, 201)
    campaign = httpx.post(
        f"{server}/v1/campaigns",
        headers=headers,
        json={"name": "fuzzed", "type": "api", "channel": "email", "templateId": "fuzzed"},
    )
    audience = httpx.post(
        f"{server}/v1/campaigns",
        headers=headers,
        json={
            "name": "fuzzed",
            "type": "api",
            "mode": "audience",
            "audienceId": "a",
            "channel": "sms",
            "templateId": "t",
        },
    )
    assert (campaign.status_code, audience.status_code) == (201, 201)
    assert (
        httpx.post(f"{server}/v1/campaigns/{audience.json()['id']}/activate", headers=headers).status_code
        == 200
    )
    scheduled = httpx.post(
        f"{server}/ajo/im/executions/audience",
        headers=headers,
        json={"campaignId": audience.json()["id"], "schedule": {"executeAt": "2099-01-01T00:00:00Z"}},
    )
    assert scheduled.status_code == 202
    no_server_errors(
        server,
        token,
        at_least=28,
        examples=EXAMPLES_PER_OPERATION,
        path_parameters={
            "journeyId": journey.json()["id"],
            "actionId": action.json()["id"],
            "campaignId": campaign.json()["id"],
            "executionId": scheduled.json()["scheduleId"],
            "scheduleId": scheduled.json()["scheduleId"],
        },
    )
