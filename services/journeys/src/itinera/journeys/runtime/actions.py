"""Calling custom actions: the HTTP call of an ``action`` node, made outside any
transaction by :class:`ActionRunner`.

A call is leased (``action_calls``, ``FOR UPDATE SKIP LOCKED``, its next attempt moved
past the longest the call can take), made, and its outcome recorded with the instance
walked on in one transaction. A worker that dies mid-call leaves its lease to expire;
the call is then made again, with the same ``Idempotency-Key`` header (derived from the
instance and the step), so the endpoint can recognise it. An outcome that arrives for
an instance that has moved on meanwhile (it exited) changes nothing.

Each call renders the action's templates with the node's inputs: in the URL a parameter
is percent-encoded, in a header it is text, in the body a JSON value. Before connecting,
the host's addresses are resolved and every one must be public unless the host is in
``ITINERA_JOURNEYS_ACTION_ALLOW_HOSTS`` (what a name resolves to can change after the
action was configured). The action's rate cap (calls per period, per endpoint) is kept
for every worker process together, as a token bucket: at most ``calls`` at once,
``calls`` more each period. A failure (a network error, a timeout, a 5xx or 429
answer) is tried again ``retries`` times with a short backoff; another 4xx is not.
Response fields are read from the JSON answer by their dotted path; a missing one is
null, one of the wrong type is a failure.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import asyncpg
import httpx
import orjson

from itinera.common.db.rates import SharedRate
from itinera.common.periodic import Periodic
from itinera.journeys.actions.schemas import ActionIn, BasicAuth, BearerAuth, HeaderAuth, ResponseField
from itinera.journeys.actions.secrets import Sealer, Unreadable
from itinera.journeys.actions.targets import PLACEHOLDER, endpoint, host_address, public_address
from itinera.journeys.runtime import repository
from itinera.journeys.runtime.service import Instance, Run

log = logging.getLogger(__name__)

_KEYS = uuid.UUID("b4a1c3e2-7f60-5d18-9e2b-0a3c5d7e9f21")
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


class CallFailed(Exception):
    """Why a call failed; ``retry``: whether trying again may help."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.retry = retry


class RateCaps:
    """Calls per period per endpoint, for every worker process together: a token bucket
    per endpoint kept in the database (:mod:`itinera.common.db.rates`), holding at most
    ``calls`` and gaining ``calls`` a period. :meth:`wait` returns when a call may go."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._rates: dict[tuple[str, int, float], SharedRate] = {}

    async def wait(self, key: str, calls: int, period_s: float) -> None:
        rate = self._rates.get((key, calls, period_s))
        if rate is None:
            rate = SharedRate(self.pool, f"action:{key}", calls / period_s, capacity=calls)
            self._rates[(key, calls, period_s)] = rate
        await rate.take()


def idempotency_key(instance_id: uuid.UUID, step: int) -> str:
    return str(uuid.uuid5(_KEYS, f"{instance_id}|{step}"))


def render(action: ActionIn, inputs: Mapping[str, Any]) -> tuple[str, dict[str, str], bytes | None]:
    """The URL, headers and body of a call with these inputs."""

    def text(value: Any) -> str:
        return "" if value is None else value if isinstance(value, str) else orjson.dumps(value).decode()

    url = PLACEHOLDER.sub(lambda m: quote(text(inputs.get(m[1])), safe=""), action.url)
    headers = {
        name: PLACEHOLDER.sub(lambda m: text(inputs.get(m[1])), value)
        for name, value in action.headers.items()
    }
    body = None
    if action.body is not None:
        body = PLACEHOLDER.sub(lambda m: orjson.dumps(inputs.get(m[1])).decode(), action.body).encode()
        if not any(h.lower() == "content-type" for h in headers):
            headers["Content-Type"] = "application/json"
    auth = action.auth
    if isinstance(auth, BasicAuth):
        pair = f"{auth.username}:{auth.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    elif isinstance(auth, BearerAuth):
        headers["Authorization"] = f"Bearer {auth.token or ''}"
    elif isinstance(auth, HeaderAuth):
        headers[auth.name] = auth.value or ""
    return url, headers, body


async def check_addresses(url: str, allowed_hosts: Collection[str]) -> None:
    """Every address the URL's host resolves to is public, unless the host is allowed."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if host in {h.strip("[]").rstrip(".").lower() for h in allowed_hosts}:
        return
    literal = host_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, port)
        except OSError as exc:
            raise CallFailed(f"{host} cannot be resolved: {exc}", retry=True) from None
        addresses = [a for a in (host_address(str(info[4][0])) for info in found) if a is not None]
    private = [str(a) for a in addresses if not public_address(a)]
    if private or not addresses:
        raise CallFailed(
            f"{host} resolves to a private or reserved address ({', '.join(private)})", retry=False
        )


def _field(answer: Any, spec: ResponseField) -> Any:
    value = answer
    for key in (spec.path or spec.name).split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    if value is None:
        return None
    kinds = _TYPES[spec.type]
    if isinstance(value, bool) and bool not in kinds:
        raise CallFailed(f"the answer's {spec.path or spec.name} is not a {spec.type}", retry=False)
    if not isinstance(value, kinds):
        raise CallFailed(f"the answer's {spec.path or spec.name} is not a {spec.type}", retry=False)
    return value


async def attempt(
    client: httpx.AsyncClient,
    action: ActionIn,
    inputs: Mapping[str, Any],
    key: str,
    allowed_hosts: Collection[str],
) -> dict[str, Any]:
    """One call; its response fields, or a :class:`CallFailed`."""
    url, headers, body = render(action, inputs)
    await check_addresses(url, allowed_hosts)
    headers["Idempotency-Key"] = key
    try:
        response = await client.request(
            action.method, url, headers=headers, content=body, timeout=action.timeoutSeconds
        )
    except httpx.TimeoutException:
        raise CallFailed(f"no answer within {action.timeoutSeconds} s", retry=True) from None
    except httpx.HTTPError as exc:
        raise CallFailed(f"{type(exc).__name__}: {exc}", retry=True) from None
    if response.status_code >= 400:
        retry = response.status_code >= 500 or response.status_code == 429
        raise CallFailed(f"the endpoint answered {response.status_code}", retry=retry)
    if not action.responseFields:
        return {}
    try:
        answer = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        raise CallFailed("the answer is not JSON", retry=False) from None
    return {spec.name: _field(answer, spec) for spec in action.responseFields}


async def call(
    client: httpx.AsyncClient,
    caps: RateCaps,
    action: ActionIn | str,
    inputs: Mapping[str, Any],
    key: str,
    allowed_hosts: Collection[str],
) -> dict[str, Any] | str:
    """The call with its retries: the response fields, or why it failed (``action`` is
    already why when it cannot be called at all)."""
    if isinstance(action, str):
        return action
    cap_key = endpoint(urlsplit(action.url.split("{{", 1)[0] or action.url))
    reason = "not called"
    for tried in range(action.retries + 1):
        if tried:
            await asyncio.sleep(min(0.2 * 2 ** (tried - 1), 2.0))
        await caps.wait(cap_key, action.rateCap.calls, action.rateCap.periodSeconds)
        try:
            return await attempt(client, action, inputs, key, allowed_hosts)
        except CallFailed as exc:
            reason = str(exc)
            if not exc.retry:
                break
    tries = "once" if action.retries == 0 else f"{action.retries + 1} times"
    return f"{reason} (tried {tries})"


def action_of(row: Mapping[str, Any], sealer: Sealer) -> ActionIn | str:
    """The configuration of a leased call's action, its secret opened; or why it cannot
    be called (deleted; its secret unreadable)."""
    if row["config"] is None:
        return "the custom action no longer exists"
    try:
        config = sealer.opened(row["config"])
    except Unreadable as exc:
        return f"the action's secret cannot be opened: {exc}"
    return ActionIn.model_validate({**config, "name": row["action_name"]})


class ActionRunner(Periodic):
    """Makes due custom action calls, :attr:`batch` at a time, concurrently, then records
    each outcome and walks its instance on."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        interval_s: float,
        batch: int,
        allowed_hosts: Collection[str],
        sealer: Sealer | None = None,
    ) -> None:
        super().__init__("journeys:actions", interval_s)
        self.pool = pool
        self.batch = batch
        self.allowed_hosts = allowed_hosts
        self.sealer = sealer or Sealer(None)
        self.caps = RateCaps(pool)
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # No redirects: a 3xx could lead anywhere, past the address check.
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        return self._client

    async def stop(self) -> None:
        await super().stop()
        if self._client is not None:
            await self._client.aclose()

    async def tick(self) -> bool:
        lease_s = 6 * 31.0 + 60  # the most a call can take: 6 attempts of 30 s, and backoff
        async with self.pool.acquire() as conn, conn.transaction():
            calls = await repository.lease_calls(conn, datetime.now(UTC), self.batch, lease_s)
        if not calls:
            return False
        results = await asyncio.gather(
            *(
                call(
                    self.client(),
                    self.caps,
                    action_of(c, self.sealer),
                    c["inputs"],
                    idempotency_key(c["instance_id"], c["step"]),
                    self.allowed_hosts,
                )
                for c in calls
            ),
            return_exceptions=True,
        )
        for c, result in zip(calls, results, strict=True):
            if isinstance(result, BaseException):
                log.error(
                    "custom action call failed", exc_info=result, extra={"instance": str(c["instance_id"])}
                )
                outcome: dict[str, Any] | str = f"the call could not be made: {type(result).__name__}"
            else:
                outcome = result
            async with self.pool.acquire() as conn, conn.transaction():
                row = await repository.take_call(conn, c["sandbox"], c["instance_id"], c["step"])
                if row is None:
                    continue  # the instance moved on (it exited) meanwhile
                run = Run(conn, c["sandbox"], datetime.now(UTC))
                profiles = await repository.profiles_of(conn, c["sandbox"], [row["profile_id"]])
                await run.after_call(
                    Instance.of(row), c["node"], outcome, profiles.get(str(row["profile_id"]), {})
                )
                await run.flush()
        return len(calls) == self.batch
