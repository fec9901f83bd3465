"""No input makes the content service answer 5xx: schemathesis generates requests from
the service's own OpenAPI document and sends them to a real server process, with a real
template and fragment in place of generated ids, so bodies reach the checks."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.testing import StackInfo, no_server_errors, serving
from itinera.content.config import ContentSettings

EXAMPLES_PER_OPERATION = int(os.environ.get("ITINERA_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def server(topics_created: StackInfo) -> Iterator[str]:
    """The content service, with the profile service its previews read profiles from."""
    with (
        serving(topics_created, "profile") as profiles,
        serving(topics_created, "content", ITINERA_PROFILE_SERVICE_URL=profiles) as url,
    ):
        yield url


def test_no_input_gets_a_server_error(server: str) -> None:
    token = mint_token(ContentSettings(), scopes=ALL_SCOPES, sandbox="fuzz")
    headers = {"Authorization": f"Bearer {token}"}
    fragment = httpx.post(
        f"{server}/v1/fragments",
        headers=headers,
        json={"id": "fuzzed", "name": "fuzzed", "type": "expression", "content": "Hi {{profile.name}}"},
    )
    template = httpx.post(
        f"{server}/v1/templates",
        headers=headers,
        json={
            "id": "fuzzed",
            "name": "fuzzed",
            "channel": "sms",
            "variants": {"en": {"text": 'Hi {{fragment id="fuzzed"}}'}},
        },
    )
    assert (fragment.status_code, template.status_code) == (201, 201)
    no_server_errors(
        server,
        token,
        at_least=12,
        examples=EXAMPLES_PER_OPERATION,
        path_parameters={"templateId": "fuzzed", "fragmentId": "fuzzed"},
    )
