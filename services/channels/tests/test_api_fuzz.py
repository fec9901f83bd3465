"""No input makes the channels service answer 5xx: schemathesis generates requests from
the service's own OpenAPI document and sends them to a real server process, with a real
capping rule in place of generated rule ids, so bodies reach the checks."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from itinera.channels.config import ChannelsSettings
from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.testing import StackInfo, no_server_errors, serving

EXAMPLES_PER_OPERATION = int(os.environ.get("ITINERA_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def server(topics_created: StackInfo) -> Iterator[str]:
    with serving(topics_created, "channels") as url:
        yield url


def test_no_input_gets_a_server_error(server: str) -> None:
    token = mint_token(ChannelsSettings(), scopes=ALL_SCOPES, sandbox="fuzz")
    headers = {"Authorization": f"Bearer {token}"}
    rule = httpx.post(
        f"{server}/v1/capping/rules",
        headers=headers,
        json={"name": "fuzzed", "channel": "email", "max": 3, "period": "day"},
    )
    assert rule.status_code == 201, rule.text
    no_server_errors(
        server,
        token,
        at_least=15,
        examples=EXAMPLES_PER_OPERATION,
        path_parameters={"ruleId": rule.json()["id"]},
    )
