"""Settings shared by every service, read from the environment (prefix ``ITINERA_``).

A service extends :class:`CommonSettings` with its own fields and its own prefix
(``ITINERA_PROFILE_`` ...); the shared fields keep the common prefix so one
environment configures the whole suite.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_AUTH_SECRET = "itinera-development-secret-change-me-0123456789"


def _find_schemas_dir() -> Path:
    """The repository's ``schemas/`` folder, found by walking up from this file."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "schemas" / "xdm"
        if candidate.is_dir():
            return parent / "schemas"
    return Path("/app/schemas")


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ITINERA_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_client_id: str = "itinera"
    database_url: str = "postgresql://itinera@127.0.0.1:55432/itinera"
    database_pool_min: int = 1
    database_pool_max: int = 10

    auth_secret: SecretStr = SecretStr(DEV_AUTH_SECRET)
    auth_jwks_url: str | None = None
    auth_audience: str | None = None
    auth_issuer: str | None = None
    service_secret: SecretStr | None = None
    """Signs the tokens a service mints to call another (HS256, issuer
    ``itinera-service``), accepted by every service beside its callers' tokens. Unset:
    in development (no JWKS) ``ITINERA_AUTH_SECRET`` signs them; with a JWKS, services
    cannot call each other."""
    default_sandbox: str = "prod"

    profile_service_url: str = "http://127.0.0.1:8002"
    """The profile service's HTTP API, for the services that read profiles from it."""
    segmentation_service_url: str = "http://127.0.0.1:8003"
    """The segmentation service's HTTP API, for the services that read audiences from it."""

    otel_exporter: Literal["none", "otlp", "console"] = "none"
    otel_endpoint: str = "http://127.0.0.1:4318"

    consumer_max_attempts: int = Field(default=5, ge=1)
    consumer_backoff_initial_ms: int = Field(default=100, ge=0)
    consumer_backoff_max_ms: int = Field(default=5_000, ge=0)
    consumer_batch_max: int = Field(default=500, ge=1)
    consumer_stop_timeout_s: float = Field(default=20, gt=0)
    """How long stopping a consumer may wait for the batch in hand, then for leaving the
    group, before it gives up on each (logged): a stop never hangs a process."""
    consumer_stall_limit_s: float = Field(default=600, gt=0)
    """A consumer loop that has not come back from the broker or its handler for this long
    makes ``/healthz`` answer 503, so that Kubernetes restarts the process (aiokafka waits
    without a bound for a group's reassignment to finish; one that never does would
    otherwise leave the consumer idle for good)."""
    consumer_fetch_max_wait_ms: int = Field(default=50, ge=0)
    """How long the broker may hold a fetch. Kafka answers as soon as a record is there,
    so against Kafka the wait only spaces an idle consumer's fetches: the deployments
    (``docker-compose.yml``, ``deploy/k8s``) set 500, two fetches a second per idle
    consumer instead of twenty. Tansu (the local broker) holds every fetch this long, so
    it bounds each consumer hop's latency there: at 500 ms (Kafka's default) an event
    took 1.2 s (p50) from itinera.events.v1 to itinera.audiences.v1, at 50 ms 0.46 s."""
    outbox_batch_max: int = Field(default=500, ge=1)
    outbox_poll_interval_ms: int = Field(default=500, ge=10)
    outbox_relay_in_workers: bool = True
    """Whether ``worker`` and ``all`` processes publish the outbox too; false when a
    ``--role relay`` process does it for them."""

    schemas_dir: Path = Field(default_factory=_find_schemas_dir)


@cache
def common_settings() -> CommonSettings:
    return CommonSettings()
