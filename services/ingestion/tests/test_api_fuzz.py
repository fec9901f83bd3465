"""No input makes the service answer 5xx: schemathesis generates requests from the
service's own OpenAPI document and sends them to a real server process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.devstack import free_port
from itinera.common.testing import StackInfo, environment_for
from itinera.ingestion.config import IngestionSettings

EXAMPLES_PER_OPERATION = int(os.environ.get("ITINERA_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def server(topics_created: StackInfo) -> Iterator[str]:
    port = free_port()
    env = environment_for(topics_created, ITINERA_LOG_LEVEL="ERROR")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "itinera.common.cli",
            "serve",
            "ingestion",
            "--role",
            "api",
            "--port",
            str(port),
        ],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the ingestion server did not start")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


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


@pytest.fixture(scope="module")
def api(server: str) -> Any:
    return schemathesis.openapi.from_url(f"{server}/openapi.json")


def test_no_input_gets_a_server_error(api: Any, auth_header: dict[str, str], inlet: dict[str, str]) -> None:
    """Every operation, with bodies, parameters and headers generated from the schema."""
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 15, "the OpenAPI document lost operations"
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Any) -> None:
            for name, value in inlet.items():
                if case.path_parameters and name in case.path_parameters:
                    case.path_parameters[name] = value
            case.call_and_validate(headers=auth_header, checks=[not_a_server_error], timeout=30)

        call()
