"""Custom actions' secrets (a password, a bearer token, an API key) sealed at rest.

A secret is stored sealed (``sealed:v1:`` and a Fernet token: AES-128-CBC and an
HMAC-SHA256, with a key derived by HKDF-SHA256 from ``ITINERA_SERVICE_SECRET``, or in
development, with no JWKS, from ``ITINERA_AUTH_SECRET``), so a copy of the database,
a backup or a query of the ``actions`` table does not give the partners' credentials
away. It is opened only when a call is made. A secret stored before sealing existed
is read as it is and sealed when the service starts (:func:`seal_stored`).

Changing the key makes the sealed secrets unreadable: the calls of such an action fail
(``the action's secret cannot be opened``) until its secret is given again (``PUT``).
"""

from __future__ import annotations

import base64
import copy
import logging
from typing import Any

import asyncpg
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from itinera.common.auth import service_key
from itinera.common.errors import ServiceUnavailable
from itinera.common.settings import CommonSettings

log = logging.getLogger(__name__)

PREFIX = "sealed:v1:"
SECRET_FIELDS = {"basic": "password", "bearer": "token", "header": "value"}
"""Where each kind of authentication keeps its secret in an action's ``auth``."""


class Unreadable(Exception):
    """A sealed secret this key cannot open."""


class Sealer:
    def __init__(self, key: str | None) -> None:
        self._fernet = None
        if key is not None:
            derived = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=b"itinera.journeys.action-secrets.v1"
            ).derive(key.encode())
            self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    @classmethod
    def of(cls, settings: CommonSettings) -> Sealer:
        return cls(service_key(settings))

    @property
    def keyed(self) -> bool:
        return self._fernet is not None

    def seal(self, text: str) -> str:
        if self._fernet is None:
            raise ServiceUnavailable(
                "custom action secrets are sealed with ITINERA_SERVICE_SECRET: set it "
                "(tokens are verified with a JWKS, so ITINERA_AUTH_SECRET is not a secret here)"
            )
        return PREFIX + self._fernet.encrypt(text.encode()).decode()

    def open(self, stored: str) -> str:
        """The secret; one stored before sealing existed is returned as it is."""
        if not stored.startswith(PREFIX):
            return stored
        if self._fernet is None:
            raise Unreadable("no key to open it with (ITINERA_SERVICE_SECRET is not set)")
        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            raise Unreadable("it was sealed with another key (ITINERA_SERVICE_SECRET changed?)") from None

    def _each(self, config: dict[str, Any], change: Any) -> dict[str, Any]:
        auth = config.get("auth") or {}
        field = SECRET_FIELDS.get(str(auth.get("type")))
        if field is None or not isinstance(auth.get(field), str):
            return config
        changed = copy.deepcopy(config)
        changed["auth"][field] = change(auth[field])
        return changed

    def sealed(self, config: dict[str, Any]) -> dict[str, Any]:
        """A copy of an action's configuration with its secret sealed (once)."""
        return self._each(config, lambda s: s if s.startswith(PREFIX) else self.seal(s))

    def opened(self, config: dict[str, Any]) -> dict[str, Any]:
        """A copy of an action's configuration with its secret opened; ``Unreadable``
        when it cannot be."""
        return self._each(config, self.open)


async def seal_stored(pool: asyncpg.Pool, sealer: Sealer) -> int:
    """Seal the secrets stored before sealing existed; how many. Any number of replicas
    may run it at once (each row is locked, and a sealed one left alone). Without a key
    they stay as they are (logged)."""
    if not sealer.keyed:
        log.warning("custom action secrets are not sealed: ITINERA_SERVICE_SECRET is not set")
        return 0
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """SELECT sandbox, id, config FROM actions
               WHERE config->'auth'->>'type' IN ('basic', 'bearer', 'header')
                 AND coalesce(config->'auth'->>'password', config->'auth'->>'token', config->'auth'->>'value')
                     NOT LIKE 'sealed:v1:%'
               FOR UPDATE SKIP LOCKED"""
        )
        await conn.executemany(
            "UPDATE actions SET config = $3 WHERE sandbox = $1 AND id = $2",
            [(row["sandbox"], row["id"], sealer.sealed(row["config"])) for row in rows],
        )
        sealed = len(rows)
    if sealed:
        log.info("custom action secrets sealed", extra={"actions": sealed})
    return sealed
