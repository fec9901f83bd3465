"""The commands the deployment files run (``itinera migrate``, ``itinera topics
create``) and the development token command, as processes against the real stack."""

from __future__ import annotations

import asyncio
import sys

import jwt

from itinera.common.settings import CommonSettings
from itinera.common.testing import StackInfo, environment_for


async def itinera(stack: StackInfo, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "itinera.common.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=environment_for(stack),
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode()


class TestDeploymentCommands:
    async def test_migrate_applies_once_and_then_finds_nothing_to_do(self, infrastructure: StackInfo) -> None:
        first = await itinera(infrastructure, "migrate", "ingestion")
        again = await itinera(infrastructure, "migrate", "ingestion")
        assert first[0] == 0, first[1]
        assert again == (0, "ingestion: 0 migration(s) applied\n")

    async def test_topics_create_is_idempotent(self, infrastructure: StackInfo) -> None:
        await itinera(infrastructure, "topics", "create")
        status, out = await itinera(infrastructure, "topics", "create")
        assert (status, out) == (0, "0 topic(s) created\n")

    async def test_an_unknown_service_is_a_clear_error(self, infrastructure: StackInfo) -> None:
        status, out = await itinera(infrastructure, "migrate", "nosuch")
        assert status != 0
        assert "unknown service 'nosuch'; installed: ingestion" in out


class TestTokenCommand:
    async def test_mints_a_development_token_with_the_asked_scopes_and_sandbox(
        self, infrastructure: StackInfo
    ) -> None:
        status, out = await itinera(infrastructure, "token", "--scope", "ingest:write", "--sandbox", "dev")
        assert status == 0
        secret = CommonSettings().auth_secret.get_secret_value()  # what the command signed with
        claims = jwt.decode(out.strip(), secret, algorithms=["HS256"])
        assert (claims["scope"], claims["sandbox"], claims["sub"]) == ("ingest:write", "dev", "developer")
        assert claims["exp"] - claims["iat"] == 12 * 3600
