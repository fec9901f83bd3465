"""The schema registry: built-in XDM, tenant field groups and schemas, identity
descriptors, and datasets that validate against what they compose."""

from __future__ import annotations

import urllib.parse
import uuid
from typing import Any

import httpx
import orjson

from itinera.common.kafka import topics
from itinera.common.testing import StackInfo, topic_reader

BASE = "/data/foundation/schemaregistry"
PROFILE = "https://ns.adobe.com/xdm/context/profile"
FULL = {"accept": "application/vnd.adobe.xed+json"}


def loyalty_field_group(tenant: str, title: str) -> dict[str, Any]:
    return {
        "type": "object",
        "title": title,
        "description": "Loyalty programme membership",
        "meta:intendedToExtend": [PROFILE],
        "definitions": {
            "loyalty": {
                "properties": {
                    f"_{tenant}": {
                        "type": "object",
                        "properties": {
                            "loyaltyId": {"type": "string"},
                            "tier": {"type": "string", "enum": ["bronze", "silver", "gold"]},
                            "points": {"type": "integer", "minimum": 0},
                        },
                    }
                }
            }
        },
        "allOf": [{"$ref": "#/definitions/loyalty"}],
    }


async def tenant_id(client: httpx.AsyncClient) -> str:
    stats = await client.get(f"{BASE}/stats")
    assert stats.status_code == 200
    tenant: str = stats.json()["tenantId"]
    return tenant


class TestGlobalContainer:
    async def test_lists_the_standard_classes_and_field_groups(self, client: httpx.AsyncClient) -> None:
        classes = (await client.get(f"{BASE}/global/classes")).json()["results"]
        assert {c["$id"] for c in classes} >= {PROFILE, "https://ns.adobe.com/xdm/context/experienceevent"}
        groups = (await client.get(f"{BASE}/global/fieldgroups")).json()["results"]
        assert "https://ns.adobe.com/xdm/mixins/profile-consents" in {g["$id"] for g in groups}
        assert set(groups[0]) == {"$id", "meta:altId", "version", "title"}

    async def test_a_resource_is_found_by_its_url_encoded_id_or_its_alt_id(
        self, client: httpx.AsyncClient
    ) -> None:
        encoded = urllib.parse.quote(PROFILE, safe="")
        by_id = await client.get(f"{BASE}/global/classes/{encoded}", headers=FULL)
        assert by_id.status_code == 200
        by_alt = await client.get(f"{BASE}/global/classes/{by_id.json()['meta:altId']}")
        assert by_alt.json()["$id"] == PROFILE

    async def test_stats_give_the_tenant_id(self, client: httpx.AsyncClient) -> None:
        assert await tenant_id(client) == "itinera"


class TestTenantResources:
    async def test_a_custom_schema_composes_a_class_with_standard_and_tenant_field_groups(
        self, client: httpx.AsyncClient, infrastructure: StackInfo
    ) -> None:
        tenant = await tenant_id(client)
        suffix = uuid.uuid4().hex[:8]
        group = await client.post(
            f"{BASE}/tenant/fieldgroups", json=loyalty_field_group(tenant, f"Loyalty {suffix}")
        )
        assert group.status_code == 201, group.text
        group_id = group.json()["$id"]
        assert group_id.startswith(f"https://ns.adobe.com/{tenant}/mixins/")
        schema = await client.post(
            f"{BASE}/tenant/schemas",
            json={
                "type": "object",
                "title": f"Loyalty members {suffix}",
                "description": "CRM export",
                "allOf": [
                    {"$ref": PROFILE},
                    {"$ref": "https://ns.adobe.com/xdm/context/profile-person-details"},
                    {"$ref": group_id},
                ],
            },
        )
        assert schema.status_code == 201, schema.text
        schema_id = schema.json()["$id"]
        descriptor = await client.post(
            f"{BASE}/tenant/descriptors",
            json={
                "@type": "xdm:descriptorIdentity",
                "xdm:sourceSchema": schema_id,
                "xdm:sourceVersion": 1,
                "xdm:sourceProperty": f"/_{tenant}/loyaltyId",
                "xdm:namespace": "LoyaltyId",
                "xdm:property": "xdm:code",
                "xdm:isPrimary": True,
            },
        )
        assert descriptor.status_code == 201, descriptor.text
        dataset = await client.post(
            "/v1/datasets",
            json={"name": f"loyalty {suffix}", "schemaRef": {"id": schema_id}, "profileEnabled": True},
        )
        assert dataset.status_code == 201, dataset.text
        connection = await client.post(
            "/v1/connections", json={"name": f"loyalty {suffix}", "datasetId": dataset.json()["id"]}
        )
        inlet = connection.json()["id"]

        member = {
            "person": {"name": {"firstName": "Ada"}},
            f"_{tenant}": {"loyaltyId": "L-77", "tier": "gold", "points": 10},
        }
        async with topic_reader(infrastructure, topics.RECORDS.name) as reader:
            accepted = await client.post(f"/collection/{inlet}", json=member)
            assert accepted.status_code == 200, accepted.text
            xaction = accepted.json()["xactionId"]
            records = await reader.wait_for(lambda rs: any(r.ce_id == xaction for r in rs))
        (published,) = [r for r in records if r.ce_id == xaction]
        assert published.key == "LoyaltyId:L-77"
        # Descriptor identities live in tenant fields: they travel in a header too.
        assert orjson.loads(published.headers["itinera_identities"]) == [["LoyaltyId", "L-77"]]

        refused = await client.post(
            f"/collection/{inlet}",
            json={f"_{tenant}": {"loyaltyId": "L-78", "tier": "platinum", "points": -1}, "homeAddress": {}},
        )
        assert refused.status_code == 400
        assert {e["path"] for e in refused.json()["errors"]} >= {
            f"/_{tenant}/tier",
            f"/_{tenant}/points",
            "/homeAddress",
        }

        listed = await client.get(f"{BASE}/tenant/schemas")
        assert schema_id in {s["$id"] for s in listed.json()["results"]}
        in_use = await client.delete(f"{BASE}/tenant/fieldgroups/{urllib.parse.quote(group_id, safe='')}")
        assert in_use.status_code == 409

    async def test_a_tenant_field_outside_the_tenant_namespace_is_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        body = loyalty_field_group("someoneelse", f"Stray {uuid.uuid4().hex[:6]}")
        response = await client.post(f"{BASE}/tenant/fieldgroups", json=body)
        assert response.status_code == 400
        assert [e["path"] for e in response.json()["errors"]] == [
            "/definitions/loyalty/properties/_someoneelse"
        ]

    async def test_a_schema_needs_exactly_one_class_and_known_field_groups(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            f"{BASE}/tenant/schemas",
            json={
                "type": "object",
                "title": f"Broken {uuid.uuid4().hex[:6]}",
                "description": "",
                "allOf": [
                    {"$ref": "https://ns.adobe.com/xdm/context/experienceevent-web"},
                    {"$ref": "https://ns.adobe.com/nobody/mixins/missing"},
                ],
            },
        )
        assert response.status_code == 400
        assert {e["path"] for e in response.json()["errors"]} == {"/allOf", "/allOf/1/$ref"}

    async def test_a_json_patch_renames_a_field_group(self, client: httpx.AsyncClient) -> None:
        tenant = await tenant_id(client)
        created = await client.post(
            f"{BASE}/tenant/fieldgroups",
            json=loyalty_field_group(tenant, f"Patchable {uuid.uuid4().hex[:6]}"),
        )
        alt_id = created.json()["meta:altId"]
        patched = await client.patch(
            f"{BASE}/tenant/fieldgroups/{alt_id}",
            json=[{"op": "replace", "path": "/title", "value": f"Renamed {uuid.uuid4().hex[:6]}"}],
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["title"].startswith("Renamed")
        assert patched.json()["version"] == "1.1"

    async def test_a_dataset_on_an_unknown_schema_is_refused(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/datasets",
            json={"name": f"ghost {uuid.uuid4().hex[:6]}", "schemaRef": {"id": "https://nowhere"}},
        )
        assert response.status_code == 400
        assert response.json()["errors"][0]["path"] == "/schemaRef/id"

    async def test_tenant_resources_do_not_cross_sandboxes(
        self, client: httpx.AsyncClient, settings: Any
    ) -> None:
        from itinera.common.auth import mint_token

        other = {"authorization": f"Bearer {mint_token(settings, sandbox='staging')}"}
        listed = await client.get(f"{BASE}/tenant/schemas", headers=other)
        assert listed.json()["results"] == []
        datasets = await client.get("/v1/datasets", headers=other)
        assert datasets.json()["items"] == []
