"""No input makes the service answer 5xx: schemathesis generates requests from the
service's own OpenAPI document and sends them to a real server process."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.testing import StackInfo, no_server_errors, serving
from itinera.ingestion.config import IngestionSettings

EXAMPLES_PER_OPERATION = int(os.environ.get("ITINERA_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def server(topics_created: StackInfo) -> Iterator[str]:
    with serving(topics_created, "ingestion") as url:
        yield url


@pytest.fixture(scope="module")
def auth_header() -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(IngestionSettings(), scopes=ALL_SCOPES)}"}


@pytest.fixture(scope="module")
def inlet(server: str, auth_header: dict[str, str]) -> dict[str, str]:
    """A real dataset and connection, so generated bodies reach validation."""
    dataset = httpx.post(
        f"{server}/v1/datasets",
        json={"name": "fuzzed", "schemaRef": {"id": "https://ns.adobe.com/xdm/context/experienceevent"}},
        headers=auth_header,
    ).json()
    connection = httpx.post(
        f"{server}/v1/connections", json={"name": "fuzzed", "datasetId": dataset["id"]}, headers=auth_header
    ).json()
    return {"dataset_id": dataset["id"], "CONNECTION_ID": connection["id"]}


def test_no_input_gets_a_server_error(
    server: str, auth_header: dict[str, str], inlet: dict[str, str]
) -> None:
    """Every operation, with bodies, parameters and headers generated from the schema."""
    token = auth_header["Authorization"].removeprefix("Bearer ")
    no_server_errors(server, token, at_least=15, examples=EXAMPLES_PER_OPERATION, path_parameters=inlet)
