"""Specification of bearer-token authentication (``itinera.common.auth``): tokens, and the
``require_scope`` dependency as a client meets it through a small FastAPI app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import jwt
import pytest
from fastapi import FastAPI, Security
from pydantic import SecretStr

from itinera.common.auth import (
    SERVICE_ISSUER,
    NoServiceKey,
    Principal,
    ServiceTokens,
    Verifier,
    mint_token,
    require_scope,
)
from itinera.common.errors import Unauthorized
from itinera.common.settings import CommonSettings
from itinera.common.web import problems

SECRET = "a-secret-for-the-auth-tests-only-0123456789"


@pytest.fixture(scope="module")
def settings() -> CommonSettings:
    return CommonSettings(auth_secret=SecretStr(SECRET), default_sandbox="prod")


def raw_token(claims: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def valid_claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": "partner",
        "scope": "things:read",
        "sandbox": "prod",
        "exp": int(time.time()) + 600,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


class TestAMintedToken:
    async def test_verifies_to_its_subject_scopes_and_sandbox(self, settings: CommonSettings) -> None:
        token = mint_token(settings, subject="ana", scopes=["a:read", "b:write"], sandbox="dev")

        principal = await Verifier(settings).verify(token)

        assert principal.subject == "ana"
        assert principal.scopes == frozenset({"a:read", "b:write"})
        assert principal.sandbox == "dev"
        assert principal.expires_at > time.time()
        assert principal.allows("a:read")
        assert not principal.allows("a:write")

    async def test_is_for_the_default_sandbox_unless_told(self, settings: CommonSettings) -> None:
        principal = await Verifier(settings).verify(mint_token(settings))
        assert principal.sandbox == "prod"

    async def test_carries_the_configured_audience_and_issuer(self) -> None:
        settings = CommonSettings(
            auth_secret=SecretStr(SECRET), auth_audience="itinera", auth_issuer="https://id"
        )
        token = mint_token(settings)

        assert (await Verifier(settings).verify(token)).subject == "developer"
        with pytest.raises(Unauthorized):
            await Verifier(settings.model_copy(update={"auth_audience": "someone-else"})).verify(token)


class TestARefusedToken:
    @pytest.mark.parametrize(
        ("token", "why"),
        [
            (raw_token(valid_claims(exp=int(time.time()) - 5)), "has expired"),
            (raw_token(valid_claims(), secret="another-secret-of-enough-length-0123456789"), "not valid"),
            (raw_token(valid_claims(sandbox=None)), "not valid"),
            (raw_token(valid_claims(sub=None)), "not valid"),
            (raw_token(valid_claims(exp=None)), "not valid"),
            (raw_token(valid_claims(sandbox="")), "must be strings"),
            (raw_token(valid_claims(sandbox=7)), "must be strings"),
            (raw_token(valid_claims(scope=["things:read"])), "must be strings"),
            ("not.a.jwt", "not valid"),
        ],
        ids=[
            "expired",
            "wrong-secret",
            "no-sandbox",
            "no-subject",
            "no-expiry",
            "empty-sandbox",
            "sandbox-not-text",
            "scope-not-text",
            "garbage",
        ],
    )
    async def test_is_unauthorized(self, settings: CommonSettings, token: str, why: str) -> None:
        with pytest.raises(Unauthorized, match=why) as caught:
            await Verifier(settings).verify(token)
        assert caught.value.status == 401

    async def test_signed_with_none_is_unauthorized(self, settings: CommonSettings) -> None:
        unsigned = jwt.encode(valid_claims(), "", algorithm="none")
        with pytest.raises(Unauthorized):
            await Verifier(settings).verify(unsigned)


SERVICE_SECRET = "a-service-secret-for-the-auth-tests-0123456789"
JWKS = "http://127.0.0.1:9/jwks.json"  # never fetched: a service token is checked with its own key


class TestAServiceToken:
    async def test_verifies_to_the_service_with_the_scopes_and_sandbox_of_the_call(
        self, settings: CommonSettings
    ) -> None:
        token = ServiceTokens(settings, "journeys").token("tenant-a", ["audiences:read"])

        principal = await Verifier(settings).verify(token)

        assert principal.subject == "service:journeys"
        assert principal.scopes == {"audiences:read"}
        assert principal.sandbox == "tenant-a"
        assert 0 < principal.expires_at - time.time() <= 300

    def test_is_minted_once_per_sandbox_and_scopes_until_it_nears_its_end(
        self, settings: CommonSettings
    ) -> None:
        tokens = ServiceTokens(settings, "journeys")

        first = tokens.token("a", ["profiles:read", "audiences:read"])

        assert tokens.token("a", ["audiences:read", "profiles:read"]) == first
        assert tokens.token("b", ["audiences:read", "profiles:read"]) != first
        assert tokens.token("a", ["audiences:read"]) != first
        assert (
            tokens.authorization("a", ["audiences:read"]) == f"Bearer {tokens.token('a', ['audiences:read'])}"
        )

    async def test_with_a_jwks_is_signed_and_checked_with_the_service_secret(self) -> None:
        production = CommonSettings(auth_jwks_url=JWKS, service_secret=SecretStr(SERVICE_SECRET))
        token = ServiceTokens(production, "journeys").token("prod", ["profiles:read"])

        assert (await Verifier(production).verify(token)).subject == "service:journeys"

    async def test_with_a_jwks_and_no_service_secret_cannot_be_minted_nor_accepted(self) -> None:
        production = CommonSettings(auth_jwks_url=JWKS)
        claims = valid_claims(iss=SERVICE_ISSUER, sub="service:journeys")

        with pytest.raises(NoServiceKey, match="ITINERA_SERVICE_SECRET"):
            ServiceTokens(production, "journeys").token("prod", ["profiles:read"])
        with pytest.raises(Unauthorized, match="ITINERA_SERVICE_SECRET is not set"):
            await Verifier(production).verify(raw_token(claims, SECRET))

    async def test_signed_with_another_key_is_refused(self, settings: CommonSettings) -> None:
        with_secret = CommonSettings(auth_secret=SecretStr(SECRET), service_secret=SecretStr(SERVICE_SECRET))
        forged = raw_token(valid_claims(iss=SERVICE_ISSUER, sub="service:journeys"), SECRET)

        with pytest.raises(Unauthorized, match="not valid"):
            await Verifier(with_secret).verify(forged)


class TestTheVerifiersCache:
    async def test_still_refuses_a_remembered_token_once_it_has_expired(
        self, settings: CommonSettings
    ) -> None:
        verifier = Verifier(settings)
        expiry = int(time.time()) + 1
        token = raw_token(valid_claims(exp=expiry))
        await verifier.verify(token)
        await asyncio.sleep(expiry - time.time() + 0.01)

        with pytest.raises(Unauthorized, match="has expired"):
            await verifier.verify(token)

    async def test_forgets_the_oldest_token_beyond_its_size(self, settings: CommonSettings) -> None:
        verifier = Verifier(settings, cache_size=2)
        tokens = [mint_token(settings, subject=f"s{n}") for n in range(3)]
        for token in tokens:
            await verifier.verify(token)
        assert list(verifier._cache) == tokens[1:]


def _app(settings: CommonSettings) -> FastAPI:
    app = FastAPI()
    app.state.verifier = Verifier(settings)
    problems.install(app)

    @app.get("/things")
    async def things(caller: Annotated[Principal, Security(require_scope("things:read"))]) -> dict[str, str]:
        return {"subject": caller.subject, "sandbox": caller.sandbox}

    return app


@pytest.fixture(scope="module")
async def http(settings: CommonSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_app(settings)), base_url="http://testserver"
    ) as client:
        yield client


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", **headers}


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://itinera.dev/problems/{slug}"
    assert body["status"] == status
    assert body["instance"] == "/things"
    return body


class TestAnEndpointThatRequiresAScope:
    async def test_serves_a_caller_holding_the_scope(
        self, http: httpx.AsyncClient, settings: CommonSettings
    ) -> None:
        response = await http.get("/things", headers=bearer(mint_token(settings, scopes=["things:read"])))
        assert response.status_code == 200
        assert response.json() == {"subject": "developer", "sandbox": "prod"}

    @pytest.mark.parametrize(
        "headers",
        [{}, {"authorization": "Basic dXNlcjpwYXNz"}, {"authorization": "Bearer "}, bearer("not.a.jwt")],
        ids=["no-header", "basic", "empty-bearer", "garbage"],
    )
    async def test_answers_401_with_a_bearer_challenge_without_a_valid_token(
        self, http: httpx.AsyncClient, headers: dict[str, str]
    ) -> None:
        response = await http.get("/things", headers=headers)

        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_answers_401_for_an_expired_token(
        self, http: httpx.AsyncClient, settings: CommonSettings
    ) -> None:
        response = await http.get("/things", headers=bearer(mint_token(settings, ttl_s=-60)))
        body = assert_problem(response, 401, "unauthorized")
        assert "expired" in body["detail"]

    async def test_answers_403_when_the_token_lacks_the_scope(
        self, http: httpx.AsyncClient, settings: CommonSettings
    ) -> None:
        response = await http.get("/things", headers=bearer(mint_token(settings, scopes=["things:write"])))

        body = assert_problem(response, 403, "forbidden")
        assert body["requiredScope"] == "things:read"

    async def test_answers_403_when_the_sandbox_header_names_another_sandbox(
        self, http: httpx.AsyncClient, settings: CommonSettings
    ) -> None:
        token = mint_token(settings, scopes=["things:read"], sandbox="prod")
        response = await http.get("/things", headers=bearer(token, **{"x-sandbox-name": "dev"}))

        body = assert_problem(response, 403, "forbidden")
        assert body["sandbox"] == "dev"

    async def test_serves_a_sandbox_header_that_names_the_tokens_sandbox(
        self, http: httpx.AsyncClient, settings: CommonSettings
    ) -> None:
        token = mint_token(settings, scopes=["things:read"], sandbox="dev")
        response = await http.get("/things", headers=bearer(token, **{"x-sandbox-name": "dev"}))
        assert response.json()["sandbox"] == "dev"
