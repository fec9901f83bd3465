"""SMS, push and webhook providers over HTTP (httpx).

- SMS, Twilio's API: ``POST {ITINERA_CHANNELS_SMS_BASE_URL}/2010-04-01/Accounts/{account}/
  Messages.json``, a form (``To``, ``From``, ``Body``, ``StatusCallback``: where Twilio
  reports the message's fate, see :mod:`itinera.channels.reports`) with basic auth ->
  ``201 {sid, ...}``.
  A 4xx answer ``{code, message}`` fails the message (429 is tried again); codes 21211
  (not a valid number), 21614 (not a mobile number) and 21610 (the recipient replied
  STOP) suppress the number. A 5xx or a network failure is tried again.
- Push, FCM HTTP v1: ``POST {ITINERA_CHANNELS_PUSH_BASE_URL}/v1/projects/{project}/
  messages:send``, ``{message: {token, notification: {title, body}, data}}`` with a bearer
  token -> ``200 {name}``. ``404`` / ``UNREGISTERED`` (the app is gone) fails the message
  and suppresses the token; another 4xx fails it; 429 and 5xx are tried again.
- Webhook: ``POST`` the rendered payload as JSON to the template's URL, with its rendered
  headers and ``Idempotency-Key: {messageId}``. Every address the host resolves to must
  be public unless the host is in ``ITINERA_CHANNELS_WEBHOOK_ALLOW_HOSTS``; redirects are
  not followed. 2xx is sent; 408, 429 and 5xx are tried again; another 4xx fails.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from itinera.channels.config import ChannelsSettings
from itinera.channels.providers import Outgoing, SendFailed

SMS_SUPPRESS = frozenset({21211, 21614, 21610})
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
_NUMERIC_HOST = re.compile(r"[0-9a-fA-Fx.]+")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _answer(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        return None


async def _post(client: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return await client.post(url, **kwargs)
    except httpx.TimeoutException:
        raise SendFailed("the provider did not answer in time", retry=True) from None
    except httpx.HTTPError as exc:
        raise SendFailed(f"{type(exc).__name__}: {exc}", retry=True) from None


class SmsProvider:
    def __init__(self, settings: ChannelsSettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client

    async def send(self, message: Outgoing) -> str:
        s = self.settings
        base = s.channels_sms_base_url.rstrip("/")
        url = f"{base}/2010-04-01/Accounts/{s.channels_sms_account}/Messages.json"
        response = await _post(
            self.client,
            url,
            data={
                "To": message.address,
                "From": s.channels_sms_from,
                "Body": str(message.content.get("text", "")),
                "StatusCallback": s.sms_status_callback,
            },
            auth=(s.channels_sms_account, s.channels_sms_token.get_secret_value()),
        )
        answer = _answer(response)
        if response.status_code in (200, 201):
            return str(answer.get("sid")) if isinstance(answer, dict) else ""
        code = answer.get("code") if isinstance(answer, dict) else None
        text = answer.get("message") if isinstance(answer, dict) else None
        reason = f"{response.status_code} {code or ''} {text or response.reason_phrase}".replace("  ", " ")
        if response.status_code == 429 or response.status_code >= 500:
            raise SendFailed(reason, retry=True)
        raise SendFailed(reason, retry=False, suppress=code in SMS_SUPPRESS)


class PushProvider:
    def __init__(self, settings: ChannelsSettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client

    async def send(self, message: Outgoing) -> str:
        s = self.settings
        url = f"{s.channels_push_base_url.rstrip('/')}/v1/projects/{s.channels_push_project}/messages:send"
        content = message.content
        body: dict[str, Any] = {"token": message.address}
        notification = {k: str(content[k]) for k in ("title", "body") if content.get(k) is not None}
        if notification:
            body["notification"] = notification
        data = content.get("data")
        if isinstance(data, dict) and data:
            body["data"] = {
                str(k): v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in data.items()
            }
        response = await _post(
            self.client,
            url,
            json={"message": body},
            headers={"Authorization": f"Bearer {s.channels_push_token.get_secret_value()}"},
        )
        answer = _answer(response)
        if response.status_code == 200:
            return str(answer.get("name")) if isinstance(answer, dict) else ""
        error = answer.get("error") if isinstance(answer, dict) else None
        error = error if isinstance(error, dict) else {}
        codes = {
            str(d.get("errorCode"))
            for d in error.get("details") or []
            if isinstance(d, dict) and d.get("errorCode")
        }
        status = str(error.get("status") or "")
        reason = (
            f"{response.status_code} {'/'.join(sorted(codes)) or status} {error.get('message') or ''}".strip()
        )
        if response.status_code == 429 or response.status_code >= 500:
            raise SendFailed(reason, retry=True)
        unregistered = "UNREGISTERED" in codes or response.status_code == 404
        raise SendFailed(reason, retry=False, suppress=unregistered)


def _host_address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host) and any(c.isdigit() for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return _public(embedded)
    return address.is_global and not address.is_multicast


async def check_url(url: str, allowed_hosts: Collection[str]) -> None:
    """The URL is http(s) and every address its host resolves to is public, unless the
    host is allowed; else a permanent failure."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise SendFailed(f"not a URL: {exc}", retry=False) from None
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise SendFailed("the webhook URL is not an http(s) URL with a host", retry=False)
    if host in allowed_hosts:
        return
    literal = _host_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        if host == "localhost" or host.endswith(".localhost"):
            raise SendFailed(f"{host} is this machine", retry=False)
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port or (443 if parts.scheme == "https" else 80)
            )
        except OSError as exc:
            raise SendFailed(f"{host} cannot be resolved: {exc}", retry=True) from None
        addresses = [a for a in (_host_address(str(info[4][0])) for info in found) if a is not None]
    private = [str(a) for a in addresses if not _public(a)]
    if private or not addresses:
        raise SendFailed(f"{host} is a private or reserved address ({', '.join(private)})", retry=False)


class WebhookProvider:
    def __init__(self, settings: ChannelsSettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client

    async def send(self, message: Outgoing) -> str:
        url = message.address
        await check_url(url, self.settings.channels_webhook_allow_hosts)
        headers = {"Content-Type": "application/json"}
        given = message.content.get("headers")
        if isinstance(given, dict):
            for name, value in given.items():
                text = value if isinstance(value, str) else orjson.dumps(value).decode()
                if _HEADER_NAME.fullmatch(str(name)) and "\r" not in text and "\n" not in text:
                    headers[str(name)] = text
        headers["Idempotency-Key"] = message.message_id
        response = await _post(
            self.client, url, content=orjson.dumps(message.content.get("payload")), headers=headers
        )
        if 200 <= response.status_code < 300:
            return str(response.headers.get("x-request-id", ""))
        reason = f"the endpoint answered {response.status_code}"
        retry = response.status_code in (408, 429) or response.status_code >= 500
        raise SendFailed(reason, retry=retry)
