"""Bearer JWT authentication with scopes and sandboxes.

Tokens carry ``sub``, ``scope`` (space-separated), ``sandbox`` and ``exp``. In
development they are HS256 with ``ITINERA_AUTH_SECRET``; in production they are
verified against the keys at ``ITINERA_AUTH_JWKS_URL``. AEP clients also send the
sandbox in ``x-sandbox-name``: when present it must match the token's.

A service calling another (journeys reading an audience or a profile) presents a token
it minted itself (:class:`ServiceTokens`): HS256 with ``ITINERA_SERVICE_SECRET``, issuer
``itinera-service``, subject ``service:<name>``, the one sandbox and the scopes of the
call, valid five minutes. Every service accepts such tokens beside its callers' (without
``ITINERA_SERVICE_SECRET``, only in development, signed with ``ITINERA_AUTH_SECRET``).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import Request

from itinera.common.errors import Forbidden, ServiceUnavailable, Unauthorized
from itinera.common.settings import CommonSettings

SANDBOX_HEADER = "x-sandbox-name"
ALL_SCOPES = (
    "ingest:write",
    "catalog:read",
    "catalog:write",
    "dlq:read",
    "identity:read",
    "identity:write",
    "profiles:read",
    "profiles:write",
    "audiences:read",
    "audiences:write",
    "journeys:read",
    "journeys:write",
    "content:read",
    "content:write",
    "channels:read",
    "channels:write",
)


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    scopes: frozenset[str]
    sandbox: str
    expires_at: float

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


def mint_token(
    settings: CommonSettings,
    *,
    subject: str = "developer",
    scopes: Iterable[str] = ALL_SCOPES,
    sandbox: str | None = None,
    ttl_s: int = 12 * 3600,
) -> str:
    """An HS256 development token signed with ``ITINERA_AUTH_SECRET``."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "scope": " ".join(scopes),
        "sandbox": sandbox or settings.default_sandbox,
        "iat": now,
        "exp": now + ttl_s,
    }
    if settings.auth_audience:
        claims["aud"] = settings.auth_audience
    if settings.auth_issuer:
        claims["iss"] = settings.auth_issuer
    return jwt.encode(claims, settings.auth_secret.get_secret_value(), algorithm="HS256")


class Verifier:
    """Verifies bearer tokens; remembers recent good ones until they expire."""

    def __init__(self, settings: CommonSettings, cache_size: int = 4096) -> None:
        self.settings = settings
        self._jwks = jwt.PyJWKClient(settings.auth_jwks_url) if settings.auth_jwks_url else None
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        self._cache_size = cache_size

    async def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None and cached.expires_at > time.time():
            self._cache.move_to_end(token)
            return cached
        principal = await self._decode(token)
        self._cache[token] = principal
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal

    async def _decode(self, token: str) -> Principal:
        options = {"require": ["exp", "sub", "sandbox"]}
        issuer = self.settings.auth_issuer
        try:
            if _from_a_service(token):
                key = service_key(self.settings)
                if key is None:
                    raise Unauthorized(
                        "tokens of services are not accepted: ITINERA_SERVICE_SECRET is not set"
                    )
                algorithms = ["HS256"]
                issuer = SERVICE_ISSUER
            elif self._jwks is not None:
                jwks = self._jwks
                key = (await asyncio.to_thread(jwks.get_signing_key_from_jwt, token)).key
                algorithms = ["RS256", "ES256", "PS256"]
            else:
                key = self.settings.auth_secret.get_secret_value()
                algorithms = ["HS256"]
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.settings.auth_audience,
                issuer=issuer,
                options=options,  # type: ignore[arg-type]
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the bearer token has expired") from None
        except (jwt.InvalidTokenError, jwt.PyJWKClientError) as exc:
            raise Unauthorized(f"the bearer token is not valid: {exc}") from None
        scope = claims.get("scope", "")
        sandbox = claims.get("sandbox")
        if not isinstance(scope, str) or not isinstance(sandbox, str) or not sandbox:
            raise Unauthorized("the bearer token's scope and sandbox claims must be strings")
        return Principal(
            subject=str(claims["sub"]),
            scopes=frozenset(scope.split()),
            sandbox=sandbox,
            expires_at=float(claims["exp"]),
        )


SERVICE_ISSUER = "itinera-service"
SERVICE_TOKEN_TTL_S = 300


def service_key(settings: CommonSettings) -> str | None:
    """The key of service tokens: ``ITINERA_SERVICE_SECRET``, or in development (no
    JWKS) ``ITINERA_AUTH_SECRET``; ``None`` when services cannot call each other."""
    if settings.service_secret is not None:
        return settings.service_secret.get_secret_value()
    if settings.auth_jwks_url is None:
        return settings.auth_secret.get_secret_value()
    return None


def _from_a_service(token: str) -> bool:
    """Whether the token says it was minted by a service (checked by its signature next)."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return False
    return header.get("alg") == "HS256" and claims.get("iss") == SERVICE_ISSUER


class NoServiceKey(ServiceUnavailable):
    """This service has no key to mint tokens for calling another: whatever needed the
    call cannot be done (503)."""


class ServiceTokens:
    """Tokens this service presents to another: one per sandbox and set of scopes, minted
    again a minute before it expires."""

    def __init__(self, settings: CommonSettings, service: str) -> None:
        self.settings = settings
        self.subject = f"service:{service}"
        self._minted: dict[tuple[str, frozenset[str]], tuple[str, float]] = {}

    def token(self, sandbox: str, scopes: Iterable[str]) -> str:
        key = service_key(self.settings)
        if key is None:
            raise NoServiceKey("calling another service needs ITINERA_SERVICE_SECRET (a JWKS is set)")
        wanted = (sandbox, frozenset(scopes))
        found = self._minted.get(wanted)
        now = time.time()
        if found is not None and found[1] - 60 > now:
            return found[0]
        expires = int(now) + SERVICE_TOKEN_TTL_S
        claims: dict[str, Any] = {
            "sub": self.subject,
            "scope": " ".join(sorted(wanted[1])),
            "sandbox": sandbox,
            "iss": SERVICE_ISSUER,
            "iat": int(now),
            "exp": expires,
        }
        if self.settings.auth_audience:
            claims["aud"] = self.settings.auth_audience
        minted = jwt.encode(claims, key, algorithm="HS256")
        if len(self._minted) > 1024:
            self._minted.clear()
        self._minted[wanted] = (minted, expires)
        return minted

    def authorization(self, sandbox: str, scopes: Iterable[str]) -> str:
        """The ``authorization`` header's value of a call in ``sandbox`` needing ``scopes``."""
        return f"Bearer {self.token(sandbox, scopes)}"


def bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("an Authorization: Bearer token is required")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def require_scope(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the caller, who must hold ``scope`` in the request's sandbox."""

    async def dependency(request: Request) -> Principal:
        verifier: Verifier = request.app.state.verifier
        principal = await verifier.verify(bearer(request))
        wanted = request.headers.get(SANDBOX_HEADER)
        if wanted is not None and wanted != principal.sandbox:
            raise Forbidden(
                f"the token is for sandbox {principal.sandbox!r}, not {wanted!r}",
                extra={"sandbox": wanted},
            )
        if not principal.allows(scope):
            raise Forbidden(f"the token lacks the scope {scope!r}", extra={"requiredScope": scope})
        return principal

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency
