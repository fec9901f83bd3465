"""Channels service settings (``ITINERA_CHANNELS_*``) on top of the common ones."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from itinera.common.auth import service_key
from itinera.common.settings import CommonSettings


class ChannelsSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="ITINERA_", extra="ignore")

    channels_consumer_group: str = "itinera-channels"
    """The group of the message pipeline (``itinera.messages.v1``)."""
    channels_content_consumer_group: str = "itinera-channels-content"
    """The group of the template store (``itinera.content.v1``)."""
    channels_public_url: str = "http://127.0.0.1:8006"
    """Where recipients reach this service: unsubscribe and tracking links start with it."""
    channels_callback_url: str | None = None
    """Where providers reach this service with delivery reports (the SMS ``StatusCallback``
    starts with it); the public URL when unset."""
    channels_tracking: bool = True
    """Rewrite emails' links to the click redirect and add the open pixel (see README)."""
    channels_domain: str = "itinera.local"
    """The right-hand side of Message-ID headers and of the unsubscribe mailbox."""
    channels_unsubscribe_mailbox: str | None = None
    """The ``mailto:`` of List-Unsubscribe; default ``unsubscribe@<domain>``."""
    channels_default_sender: str = "Itinera <noreply@itinera.local>"
    """The From of an email whose template names no sender."""

    channels_smtp_host: str = "127.0.0.1"
    channels_smtp_port: int = Field(default=1025, ge=1, le=65535)
    channels_smtp_security: Literal["none", "starttls", "tls"] = "none"
    """``tls``: TLS from the first byte (port 465); ``starttls``: upgrade after EHLO (587)."""
    channels_smtp_username: str | None = None
    channels_smtp_password: SecretStr | None = None
    channels_smtp_validate_certs: bool = True
    channels_smtp_timeout_s: float = Field(default=30.0, gt=0)
    channels_smtp_connections: int = Field(default=4, ge=1, le=100)
    """SMTP connections a worker keeps open and reuses (one message at a time on each)."""

    channels_sms_base_url: str = "http://127.0.0.1:8025"
    channels_sms_account: str = "AC00000000000000000000000000000000"
    channels_sms_token: SecretStr = SecretStr("development")
    channels_sms_from: str = "+15005550006"
    channels_push_base_url: str = "http://127.0.0.1:8025"
    channels_push_project: str = "itinera-dev"
    channels_push_token: SecretStr = SecretStr("development")
    """The OAuth access token sent to the push API (a real deployment refreshes it)."""
    channels_http_timeout_s: float = Field(default=10.0, gt=0)

    channels_webhook_allow_hosts: Annotated[frozenset[str], NoDecode] = frozenset()
    """Hosts a webhook may call although they are private or loopback, comma-separated."""
    channels_upload_max_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    """The largest suppression list upload (the whole request body); more is a 413."""
    channels_upload_max_records: int = Field(default=500_000, gt=0)
    """The most records a suppression list upload may hold; more is a 400."""

    channels_rate_email: float = Field(default=100.0, gt=0)
    """Messages a second each provider may take, from every worker process together (a
    token bucket kept in the database, bursts of a second's worth)."""
    channels_rate_sms: float = Field(default=20.0, gt=0)
    channels_rate_push: float = Field(default=200.0, gt=0)
    channels_rate_webhook: float = Field(default=50.0, gt=0)

    channels_delivery_interval_s: float = Field(default=0.2, gt=0)
    """Seconds between looks for messages due (new, queued, retried), when none was."""
    channels_delivery_batch: int = Field(default=50, ge=1, le=10_000)
    """The most sends one worker has in flight at once."""
    channels_send_lease_s: float = Field(default=300.0, gt=0)
    """How long a claimed message stays ``sending`` before another worker may send it again."""
    channels_max_attempts: int = Field(default=5, ge=1, le=50)
    """Attempts of a message whose sends fail softly, before it fails."""
    channels_retry_initial_s: float = Field(default=30.0, gt=0)
    """The wait before the second attempt; it doubles each time."""
    channels_retry_max_s: float = Field(default=3600.0, gt=0)
    channels_soft_bounce_limit: int = Field(default=5, ge=1, le=20)
    """Soft bounces of an address, within the period and since its last delivery, that
    put it on the suppression list (AJO's default threshold, 5, and its range, 1 to 20)."""
    channels_soft_bounce_period_s: float = Field(default=30 * 86400.0, gt=0)
    """How long a soft bounce counts towards the limit."""
    channels_content_retention_days: float = Field(default=30, gt=0)
    """Days a final message's rendered parts are kept (from when it was taken); at most
    the message retention."""
    channels_message_retention_days: float = Field(default=400, ge=32)
    """Days a final message, its links and opens are kept (from when it was taken): at
    least a calendar month, which frequency caps count."""
    channels_retention_interval_s: float = Field(default=300, gt=0)
    """Seconds between retention sweeps."""
    channels_default_time_zone: str = "UTC"
    """Quiet hours' time zone of a profile without ``timeZone``."""
    channels_test_pause_before_send_s: float = Field(default=0.0, ge=0)
    """Tests only: sleep this long between claiming a message and sending it."""

    @model_validator(mode="after")
    def _content_goes_first(self) -> ChannelsSettings:
        if self.channels_content_retention_days > self.channels_message_retention_days:
            raise ValueError("the content retention must not exceed the message retention (days)")
        return self

    @field_validator("channels_webhook_allow_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple | set | frozenset):
            return frozenset(host.strip().lower().rstrip(".") for host in value if host.strip())
        return value

    @property
    def unsubscribe_mailbox(self) -> str:
        return self.channels_unsubscribe_mailbox or f"unsubscribe@{self.channels_domain}"

    channels_bounce_address: str | None = None
    """The base of every email's envelope sender (``bounces@mail.example.com``): each
    email leaves from ``bounces+<token>@...`` of its own (VERP), so a relay's delivery
    status notification, mailed there, names its message. Unset: the From address is the
    envelope sender, and notifications are not read."""
    channels_complaint_address: str | None = None
    """Where mailbox providers' feedback loops send abuse reports (ARF, RFC 5965), the
    address registered with them (``fbl@mail.example.com``): the bounce mailbox takes mail
    to it besides the bounce address (route it there too). Reports are read at the bounce
    address and its per-message forms whether it is set or not."""
    channels_bounce_host: str = "127.0.0.1"
    channels_bounce_port: int = Field(default=0, ge=0, le=65535)
    """Where the bounce mailbox (an SMTP server in the worker) listens for notifications
    to the bounce address (your MX for its domain, or a relay, forwards them); 0: none."""
    channels_read_profiles: bool = True
    """A request whose profile snapshot is empty (a recipient journeys knew only by id)
    has the profile read from the profile service (``ITINERA_PROFILE_SERVICE_URL``), with
    a token of this service's own; while that service cannot answer, the request waits
    (``profile_waits``) and nothing is decided for it. Off: it is checked with the empty
    snapshot, and requests left waiting from before wait until it is on again."""
    channels_profile_timeout_s: float = Field(default=5, gt=0, le=60)
    """How long reading a profile from the profile service may take."""
    channels_profile_retry_initial_s: float = Field(default=5.0, gt=0)
    """How long a request waits for its profile before the profile service is asked
    again; the wait doubles each time. It is also how long the consumer lets requests
    wait at once, without asking, after the profile service failed to answer."""
    channels_profile_retry_max_s: float = Field(default=300.0, gt=0)
    """The longest wait between two questions about a waiting request's profile."""
    channels_profile_wait_limit_s: float = Field(default=86_400.0, gt=0)
    """How long a request may wait for its profile: one still waiting that long after it
    came is excluded (reason ``profile-unavailable``) instead of being sent late."""

    @property
    def link_secret(self) -> str:
        """The key of what this service signs for others to hand back: unsubscribe and
        tracking links, bounce addresses. ``ITINERA_SERVICE_SECRET``, or in development
        (no JWKS) ``ITINERA_AUTH_SECRET``; with a JWKS and no service secret the service
        does not start (``ITINERA_AUTH_SECRET`` is then nobody's secret: its default is
        written in the source)."""
        key = service_key(self)
        if key is None:
            raise RuntimeError(
                "the channels service signs its links with ITINERA_SERVICE_SECRET: set it "
                "(tokens are verified with a JWKS, so ITINERA_AUTH_SECRET is not a secret here)"
            )
        return key

    @property
    def sms_status_callback(self) -> str:
        """The ``StatusCallback`` of every SMS sent: the URL the provider reports to, and
        the one its signatures are checked against."""
        base = (self.channels_callback_url or self.channels_public_url).rstrip("/")
        return f"{base}/v1/providers/sms/status"


@cache
def settings() -> ChannelsSettings:
    return ChannelsSettings()
