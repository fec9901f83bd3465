"""The typed views of XDM pieces that services route and key on."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from itinera.common.xdm.identity import AuthenticatedState, IdentityMap
from itinera.common.xdm.models import EventHeader, SchemaRef


class TestEventHeader:
    def test_reads_the_runtime_field_names(self) -> None:
        header = EventHeader.model_validate(
            {
                "_id": "e-1",
                "timestamp": "2026-11-28T10:00:00Z",
                "eventType": "commerce.purchases",
                "identityMap": {"Email": [{"id": "jane@example.com", "primary": True}]},
                "commerce": {"purchases": {"value": 1}},
            }
        )
        assert header.id == "e-1"
        assert header.time == datetime(2026, 11, 28, 10, tzinfo=UTC)
        assert header.event_type == "commerce.purchases"
        assert header.identity_map is not None
        assert header.identity_map["Email"][0].primary is True

    def test_a_timestamp_without_a_time_zone_is_refused(self) -> None:
        with pytest.raises(ValidationError) as caught:
            EventHeader.model_validate({"_id": "e-1", "timestamp": "2026-11-28T10:00:00"})
        assert caught.value.errors()[0]["loc"] == ("timestamp",)

    def test_an_empty_id_is_refused(self) -> None:
        with pytest.raises(ValidationError):
            EventHeader.model_validate({"_id": "", "timestamp": "2026-11-28T10:00:00Z"})


class TestIdentityMap:
    def test_defaults_to_an_ambiguous_non_primary_identity(self) -> None:
        identities = IdentityMap.model_validate({"ECID": [{"id": "1" * 38}]}).root
        assert identities["ECID"][0].authenticated_state is AuthenticatedState.ambiguous
        assert identities["ECID"][0].primary is False

    def test_an_unknown_authenticated_state_is_refused_with_its_location(self) -> None:
        with pytest.raises(ValidationError) as caught:
            IdentityMap.model_validate({"Email": [{"id": "x@example.com", "authenticatedState": "maybe"}]})
        assert caught.value.errors()[0]["loc"] == ("Email", 0, "authenticatedState")


def test_a_schema_ref_needs_an_id() -> None:
    assert SchemaRef.model_validate({"id": "https://ns.adobe.com/xdm/context/profile"}).content_type is None
    with pytest.raises(ValidationError):
        SchemaRef.model_validate({"id": ""})
