"""Uploaded audiences: a CSV of identities becomes an audience whose people go to the
profile service as profile records (itinera.records.v1) carrying the marker the
audience's rule reads. What the profile service does with them is
tests/integration/test_audience_upload.py's; here, what this service sends, checks and
keeps."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from itinera.common.auth import mint_token
from itinera.common.kafka import topics
from itinera.common.kafka.consumer import Record
from itinera.common.testing import StackInfo, client_for, topic_reader
from itinera.segmentation.config import SegmentationSettings
from itinera.segmentation.uploads.service import marker

UPLOADS = "/v1/audiences/uploads"
DEFINITIONS = "/data/core/ups/segment/definitions"
AUDIENCES = "/data/core/ups/audiences"
CSV = {"content-type": "text/csv"}


async def upload(api: httpx.AsyncClient, csv: str, name: str | None = None) -> httpx.Response:
    return await api.post(
        UPLOADS, params={"name": name or f"upload {uuid.uuid4().hex[:8]}"}, content=csv.encode(), headers=CSV
    )


def sent(records: list[Record], sandbox: str) -> list[Record]:
    return [r for r in records if r.sandbox == sandbox]


def problems(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 400, response.text
    return {e["path"]: e["code"] for e in response.json()["errors"]}


class TestUploading:
    async def test_each_person_is_sent_as_a_profile_record_of_the_audiences_dataset(
        self, api: httpx.AsyncClient, sandbox: str, infrastructure: StackInfo
    ) -> None:
        csv = 'Email,CRMID\r\nJane@Example.com,C-1\r\n\r\n,C-2\r\n"o\'hara@example.com",\r\n'
        async with topic_reader(infrastructure, topics.RECORDS.name) as reader:
            response = await upload(api, csv, name="Newsletter list")
            assert response.status_code == 201, response.text
            records = await reader.wait_for(lambda r: len(sent(r, sandbox)) == 3, timeout_s=30)
        body = response.json()
        audience_id = body["audience"]["id"]
        assert response.headers["location"] == f"{DEFINITIONS}/{audience_id}"
        assert body["upload"] | {"uploadId": None} == {
            "uploadId": None,
            "namespaces": ["Email", "CRMID"],
            "people": 3,
            "identities": 4,
        }
        flag = marker(uuid.UUID(audience_id))
        assert body["audience"]["expression"]["value"] == f"{flag} = true"
        assert body["audience"]["itinera"]["origin"] == "upload"
        assert body["audience"]["evaluationInfo"]["continuous"] == {"enabled": True}

        people = {r.key or "": r for r in sent(records, sandbox)}  # partitions do not keep their order
        assert sorted(people) == ["CRMID:C-2", "Email:Jane@Example.com", "Email:o'hara@example.com"]
        first = orjson.loads(people["Email:Jane@Example.com"].value or b"")
        assert first["identityMap"] == {
            "Email": [{"id": "Jane@Example.com", "primary": True}],
            "CRMID": [{"id": "C-1", "primary": False}],
        }
        assert first["_itinera"] == {
            "audienceUploads": {f"u{uuid.UUID(audience_id).hex}": {"uploaded": True}}
        }
        assert {r.headers["itinera_dataset"] for r in people.values()} == {f"audience-upload-{audience_id}"}
        assert len({r.ce_id for r in people.values()}) == 3

        audience = (await api.get(f"{AUDIENCES}/{audience_id}")).json()
        assert audience["originName"] == "CUSTOM_UPLOAD"
        listed = (await api.get(AUDIENCES, params={"property": "originName==CUSTOM_UPLOAD"})).json()
        assert [a["id"] for a in listed["children"]] == [audience_id]

    async def test_more_people_can_be_added_and_the_uploads_are_listed(
        self, api: httpx.AsyncClient, sandbox: str, infrastructure: StackInfo
    ) -> None:
        audience_id = (await upload(api, "ECID\n111\n222\n")).json()["audience"]["id"]
        async with topic_reader(infrastructure, topics.RECORDS.name) as reader:
            added = await api.post(
                f"/v1/audiences/{audience_id}/uploads", content=b"Phone\n+33600000000\n", headers=CSV
            )
            assert added.status_code == 200, added.text
            # The first upload's records may still be leaving the outbox: wait for this one's.
            records = await reader.wait_for(
                lambda r: any(x.key == "Phone:+33600000000" for x in sent(r, sandbox)), timeout_s=30
            )
        assert {x.key for x in sent(records, sandbox)} <= {"Phone:+33600000000", "ECID:111", "ECID:222"}
        assert [x.key for x in sent(records, sandbox)].count("Phone:+33600000000") == 1
        history = (await api.get(f"/v1/audiences/{audience_id}/uploads")).json()["uploads"]
        assert [(u["namespaces"], u["people"]) for u in history] == [(["ECID"], 2), (["Phone"], 1)]

    async def test_an_uploaded_audiences_rule_is_not_edited_and_a_rule_audience_takes_no_upload(
        self, api: httpx.AsyncClient
    ) -> None:
        audience_id = (await upload(api, "ECID\n111\n")).json()["audience"]["id"]
        patched = await api.patch(
            f"{DEFINITIONS}/{audience_id}",
            json={"expression": {"type": "PQL", "format": "pql/text", "value": "true"}},
        )
        assert problems(patched) == {"/expression/value": "upload"}
        renamed = await api.patch(f"{DEFINITIONS}/{audience_id}", json={"name": "Renamed list"})
        assert renamed.status_code == 200, renamed.text

        rule: dict[str, Any] = {
            "name": "French",
            "expression": {"type": "PQL", "format": "pql/text", "value": 'homeAddress.countryCode = "FR"'},
            "schema": {"name": "_xdm.context.profile"},
        }
        rule_id = (await api.post(DEFINITIONS, json=rule)).json()["id"]
        refused = await api.post(f"/v1/audiences/{rule_id}/uploads", content=b"ECID\n1\n", headers=CSV)
        assert refused.status_code == 409, refused.text
        unknown = await api.post(f"/v1/audiences/{uuid.uuid4()}/uploads", content=b"ECID\n1\n", headers=CSV)
        assert unknown.status_code == 404


class TestBadUploads:
    async def test_every_bad_line_is_reported_and_nothing_is_kept(
        self, api: httpx.AsyncClient, sandbox: str
    ) -> None:
        csv = (
            "Email,CRMID\nok@example.com,C-1\n,\nx@example.com,C-2,extra\n" + "a" * 1025 + ",C-3\nb\x00,C-4\n"
        )
        assert problems(await upload(api, csv, name="Bad list")) == {  # line 3 has no identity: skipped
            "/body/line/6/Email": "identity",
            "/body/line/4": "maxItems",
            "/body/line/5/Email": "identity",
        }
        listing = (await api.get(DEFINITIONS)).json()
        assert listing["segments"] == []

    @pytest.mark.parametrize(
        ("csv", "expected"),
        [
            ("", {"/body/line/1": "required"}),
            ("Email\n", {"/body": "minItems"}),
            ("Email,email\nx@example.com,y\n", {"/body/line/1/1": "unique"}),
            ("E mail\nx\n", {"/body/line/1/0": "namespace"}),
            (",".join(f"N{i}" for i in range(21)) + "\n1\n", {"/body/line/1": "maxItems"}),
        ],
    )
    async def test_a_header_must_name_up_to_twenty_namespaces(
        self, api: httpx.AsyncClient, csv: str, expected: dict[str, str]
    ) -> None:
        assert problems(await upload(api, csv)) == expected

    async def test_not_utf8_not_csv_too_large_or_too_many_people_are_refused(
        self, api: httpx.AsyncClient, segmentation_app: FastAPI
    ) -> None:
        assert problems(
            await api.post(UPLOADS, params={"name": "x"}, content=b"ECID\n\xff\n", headers=CSV)
        ) == {"/body": "encoding"}
        as_json = await api.post(UPLOADS, params={"name": "x"}, json={"ECID": "1"})
        assert as_json.status_code == 415
        settings: SegmentationSettings = segmentation_app.state.settings
        huge = b"ECID\n" + b"1\n" * (settings.segmentation_upload_max_bytes // 2)
        assert (await api.post(UPLOADS, params={"name": "x"}, content=huge, headers=CSV)).status_code == 413
        many = "ECID\n" + "".join(f"{i}\n" for i in range(settings.segmentation_upload_max_people + 1))
        assert problems(await upload(api, many)) == {"/body": "maxItems"}

    async def test_uploading_needs_audiences_write(
        self, segmentation_app: FastAPI, segmentation_settings: SegmentationSettings
    ) -> None:
        token = mint_token(segmentation_settings, scopes=["audiences:read"])
        async with client_for(segmentation_app, token) as reader:
            assert (await upload(reader, "ECID\n1\n")).status_code == 403
