"""An uploaded audience end to end, through the profile and segmentation services: the
people of a CSV become profile records, the profile service resolves their identities
(an identity it knows, in another case, finds its profile; an unknown one makes a new
profile), and the segmentation service qualifies the profiles, as a streaming audience
does, and announces them on itinera.audiences.v1."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from itinera.common.auth import ALL_SCOPES, mint_token
from itinera.common.kafka import topics
from itinera.common.kafka.consumer import Record
from itinera.common.testing import (
    StackInfo,
    client_for,
    eventually,
    publish_entity,
    running,
    settings_for,
    topic_reader,
)
from itinera.profile.app import SERVICE as PROFILE
from itinera.profile.config import ProfileSettings
from itinera.segmentation.app import SERVICE as SEGMENTATION
from itinera.segmentation.config import SegmentationSettings


@pytest.fixture
def sandbox() -> str:
    return f"up-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def profile_api(topics_created: StackInfo, sandbox: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for(topics_created, ProfileSettings)
    async with running(PROFILE.create_app("all", settings)) as app:
        async with client_for(app, mint_token(settings, scopes=ALL_SCOPES, sandbox=sandbox)) as client:
            yield client


@pytest.fixture
async def segmentation_api(topics_created: StackInfo, sandbox: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for(topics_created, SegmentationSettings, segmentation_job_interval_s=0.1)
    async with running(SEGMENTATION.create_app("all", settings)) as app:
        async with client_for(app, mint_token(settings, scopes=ALL_SCOPES, sandbox=sandbox)) as client:
            yield client


async def profile_of(api: httpx.AsyncClient, identity: str) -> str | None:
    response = await api.get("/v1/profiles", params={"identity": identity})
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    found: str = response.json()["profileId"]
    return found


async def test_an_uploaded_list_qualifies_known_and_new_people(
    profile_api: httpx.AsyncClient,
    segmentation_api: httpx.AsyncClient,
    infrastructure: StackInfo,
    sandbox: str,
) -> None:
    await publish_entity(
        infrastructure,
        sandbox,
        topics.RECORDS.name,
        "Email:jane@example.com",
        "crm",
        {"_id": "crm-1", "identityMap": {"Email": [{"id": "jane@example.com"}]}, "person": {"name": "Jane"}},
    )
    jane: list[str] = []

    async def jane_known() -> bool:
        found = await profile_of(profile_api, "Email:jane@example.com")
        jane[:] = [found] if found else []
        return found is not None

    await eventually(jane_known, timeout_s=60)

    async with topic_reader(infrastructure, topics.AUDIENCES.name) as reader:
        response = await segmentation_api.post(
            "/v1/audiences/uploads",
            params={"name": "VIP list"},
            content=b"Email\nJANE@example.com\nnewcomer@example.com\n",
            headers={"content-type": "text/csv"},
        )
        assert response.status_code == 201, response.text
        audience_id = response.json()["audience"]["id"]

        def entries(records: list[Record]) -> dict[str, str]:
            found = {}
            for record in records:
                data = orjson.loads(record.value or b"")
                if data["audienceId"] == audience_id:
                    found[data["profileId"]] = data["status"]
            return found

        await reader.wait_for(lambda records: len(entries(records)) == 2, timeout_s=60)

    newcomer = await profile_of(profile_api, "Email:newcomer@example.com")
    assert newcomer is not None
    assert entries(reader.records) == {jane[0]: "realized", newcomer: "realized"}
    members = (await segmentation_api.get(f"/v1/audiences/{audience_id}/members")).json()["children"]
    assert sorted(m["profileId"] for m in members) == sorted([jane[0], newcomer])
    # Jane keeps what she had; the upload adds its own dataset's fragment, with its marker.
    profile = (await profile_api.get(f"/v1/profiles/{jane[0]}")).json()
    assert profile["entity"]["person"] == {"name": "Jane"}
    assert profile["sources"] == sorted(["crm", f"audience-upload-{audience_id}"])
    assert profile["entity"]["_itinera"]["audienceUploads"] == {
        f"u{uuid.UUID(audience_id).hex}": {"uploaded": True}
    }
