"""Journeys service settings (``ITINERA_JOURNEYS_*``) on top of the common ones."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from itinera.common.settings import CommonSettings


class JourneysSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="ITINERA_", extra="ignore")

    journeys_action_allow_hosts: Annotated[frozenset[str], NoDecode] = frozenset()
    """Hosts a custom action may call although they are private or loopback addresses
    (or names such as ``localhost``), comma-separated: ``crm.internal,10.0.0.7``."""
    journeys_consumer_group: str = "itinera-journeys"
    journeys_timer_interval_s: float = Field(default=0.25, gt=0)
    """Seconds between looks for due timers, when none was due."""
    journeys_timer_batch: int = Field(default=500, ge=1, le=10_000)
    """Due timers fired in one transaction."""
    journeys_action_interval_s: float = Field(default=0.25, gt=0)
    """Seconds between looks for custom action calls to make, when none was due."""
    journeys_action_batch: int = Field(default=50, ge=1, le=1000)
    """Custom action calls made at once by one worker."""
    journeys_read_interval_s: float = Field(default=0.25, gt=0)
    """Seconds between looks for audience reads to schedule or continue, when none was due."""
    journeys_read_batch: int = Field(default=500, ge=1, le=10_000)
    """Members of an audience read entered in one transaction, at most."""
    journeys_max_nodes: int = Field(default=500, ge=2, le=10_000)
    """The most nodes a journey may have."""
    journeys_max_expression_length: int = Field(default=16 * 1024, ge=256)
    """The longest PQL expression a journey (or a campaign's context) may hold, in characters."""
    journeys_audiences_consumer_group: str = "itinera-journeys-audiences"
    """The group of the consumer that keeps audience members for campaigns."""
    journeys_campaign_interval_s: float = Field(default=0.25, gt=0)
    """Seconds between looks for due campaign occurrences and execution chunks, when none was due."""
    journeys_campaign_batch: int = Field(default=500, ge=1, le=10_000)
    """Profiles sent in one chunk (one transaction) of an audience execution, at most."""
    journeys_campaign_max_rate: int = Field(default=20_000, ge=1, le=1_000_000)
    """The highest send rate a campaign may ask for, in profiles a second."""
    journeys_content_consumer_group: str = "itinera-journeys-content"
    """The group of the consumer that keeps the templates published (``itinera.content.v1``)."""
    journeys_check_templates: bool = True
    """Publishing refuses a message node whose template the content service has not
    published in the sandbox, or published for another channel. Off: template ids are
    only checked for their shape (templates managed outside Itinera's content service)."""
    journeys_check_audiences: bool = True
    """Publishing a journey, activating a campaign and executing one over an audience
    refuse an audience the segmentation service (``ITINERA_SEGMENTATION_SERVICE_URL``)
    does not have in the sandbox. Off: audience ids are only checked for their shape, and
    audiences are not checked again once live (below)."""
    journeys_audience_check_interval_s: float = Field(default=300, gt=0, le=86_400)
    """Seconds between checks that the audiences named by draft and live journeys and
    live campaigns still exist (one call to the segmentation service per sandbox, shared
    between the workers): an audience deleted after a journey or campaign naming it went
    live shows as a warning on it, and runs of it fail, within about this long."""
    journeys_read_profiles: bool = True
    """Audience members and unitary recipients this service holds no profile of are read
    from the profile service (``ITINERA_PROFILE_SERVICE_URL``). Off: they are sent with
    the profile this service has (none: only the recipient's identity)."""
    journeys_peer_timeout_s: float = Field(default=5, gt=0, le=60)
    """How long a call to the segmentation or profile service may take."""
    journeys_instance_retention_days: float = Field(default=91, gt=0)
    """Days an ended instance, its steps and waits are kept after it ended (Journey
    Optimizer's 91 days): what keeps a profile out of a journey without re-entrance."""
    journeys_history_retention_days: float = Field(default=91, gt=0)
    """Days a finished campaign execution and a finished audience read are kept. A call
    repeating a ``requestId`` after that is executed again, under the same execution id
    and so the same message ids, which the channels refuse to send twice while they keep
    the messages (``ITINERA_CHANNELS_MESSAGE_RETENTION_DAYS``, 400)."""
    journeys_retention_interval_s: float = Field(default=300, gt=0)
    """Seconds between sweeps deleting what is past its retention."""

    @field_validator("journeys_action_allow_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple | set | frozenset):
            return frozenset(host.strip().lower().rstrip(".") for host in value if host.strip())
        return value


@cache
def settings() -> JourneysSettings:
    return JourneysSettings()
