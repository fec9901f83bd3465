"""No input makes the segmentation service answer 5xx: schemathesis generates requests from
the service's own OpenAPI document and sends them to a real server process."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.testing import StackInfo, no_server_errors, serving
from itinera.segmentation.config import SegmentationSettings

EXAMPLES_PER_OPERATION = int(os.environ.get("ITINERA_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def server(topics_created: StackInfo) -> Iterator[str]:
    with serving(topics_created, "segmentation") as url:
        yield url


def test_no_input_gets_a_server_error(server: str) -> None:
    token = mint_token(SegmentationSettings(), scopes=ALL_SCOPES, sandbox="fuzz")
    no_server_errors(server, token, at_least=14, examples=EXAMPLES_PER_OPERATION)
