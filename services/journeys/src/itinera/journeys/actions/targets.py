"""Where a custom action may call, and the parameters its templates use; no I/O.

A journey must not become a way into the network it runs in. An action's URL is
refused when its host is a private, loopback, link-local, shared, reserved or multicast
address, in any spelling (``127.1``, ``2130706433``, ``0x7f.0.0.1``, ``[::ffff:127.0.0.1]``),
or a name that always means this machine (``localhost``, ``*.localhost``), unless the
host is in ``ITINERA_JOURNEYS_ACTION_ALLOW_HOSTS``. Names are not resolved here: what a
name resolves to can change after the action is configured, so the runtime checks the
addresses it connects to, at each call, by the same rule (``public_address``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")
_BRACES = re.compile(r"\{\{|\}\}")
_NUMERIC_HOST = re.compile(r"[0-9a-fA-Fx.]+")
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class UrlProblem:
    message: str
    code: str


def parameters(template: str) -> tuple[list[str], list[str]]:
    """The parameters ``{{name}}`` in ``template`` (in order, once each), and what is
    wrong with its braces (a ``{{`` or ``}}`` that is not part of a parameter)."""
    names = list(dict.fromkeys(PLACEHOLDER.findall(template)))
    stray = _BRACES.findall(PLACEHOLDER.sub("", template))
    problems = [f"{stray[0]!r} is not part of a {{{{name}}}} parameter"] if stray else []
    return names, problems


def host_address(host: str) -> Address | None:
    """``host`` as an address when it is one, in any spelling the C library accepts."""
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


def public_address(address: Address) -> bool:
    """Whether ``address`` is on the public internet (an IPv6 address carrying an IPv4
    one is judged by the IPv4 one)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return public_address(embedded)
    return address.is_global and not address.is_multicast


def _normal(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def check_url(url: str, allowed_hosts: Collection[str]) -> tuple[SplitResult | None, list[UrlProblem]]:
    """The URL's parts, and every reason it may not be called."""
    problems: list[UrlProblem] = []
    head = url.split("/", 3)[:3]
    if any(PLACEHOLDER.search(part) or "{{" in part for part in head):
        return None, [UrlProblem("the scheme and host cannot be parameters", "url")]
    try:
        parts = urlsplit(url)
        if parts.port == 0:
            problems.append(UrlProblem("port 0 cannot be called", "url"))
    except ValueError as exc:
        return None, [UrlProblem(f"not a URL: {exc}", "url")]
    if parts.scheme not in ("http", "https"):
        problems.append(UrlProblem("the scheme is http or https", "url"))
    if parts.username is not None or parts.password is not None:
        problems.append(UrlProblem("credentials go in auth, not in the URL", "url"))
    host = _normal(parts.hostname or "")
    if not host:
        problems.append(UrlProblem("the URL names no host", "url"))
        return None, problems
    if host in {_normal(h) for h in allowed_hosts}:
        return parts, problems
    address = host_address(host)
    if address is None and not _HOST_NAME.fullmatch(host):
        problems.append(
            UrlProblem(f"{host!r} is not a host name (write international names in punycode)", "url")
        )
    elif address is not None and not public_address(address):
        problems.append(
            UrlProblem(
                f"{host} is a private, loopback or reserved address; add it to "
                "ITINERA_JOURNEYS_ACTION_ALLOW_HOSTS to call it",
                "private-host",
            )
        )
    elif host == "localhost" or host.endswith(".localhost"):
        problems.append(
            UrlProblem(
                f"{host} is this machine; add it to ITINERA_JOURNEYS_ACTION_ALLOW_HOSTS to call it",
                "private-host",
            )
        )
    return parts, problems


def endpoint(parts: SplitResult) -> str:
    """``scheme://host:port``, the port explicit: what a rate cap applies to."""
    host = parts.hostname or ""
    shown = f"[{host}]" if ":" in host else host
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{shown}:{port}"
