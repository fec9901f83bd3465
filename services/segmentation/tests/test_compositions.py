"""Compositions: audiences made of others by union, intersection or exclusion, written
as rules on the audiences they name and evaluated like any other."""

from __future__ import annotations

import uuid

import httpx

from itinera.segmentation.definitions.compositions import rule

DEFINITIONS = "/data/core/ups/segment/definitions"
A, B, C = (uuid.UUID(int=n) for n in (1, 2, 3))


async def audience(http: httpx.AsyncClient, pql: str, streaming: bool = True) -> str:
    response = await http.post(
        DEFINITIONS,
        json={
            "name": f"part {uuid.uuid4().hex[:8]}",
            "expression": {"type": "PQL", "format": "pql/text", "value": pql},
            "schema": {"name": "_xdm.context.profile"},
            "evaluationInfo": {"continuous": {"enabled": streaming}, "batch": {"enabled": not streaming}},
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


class TestRules:
    def test_a_union_is_in_any(self) -> None:
        assert rule("union", [A, B]) == f'inSegment("{A}") or inSegment("{B}")'

    def test_an_intersection_is_in_all_and_names_each_once(self) -> None:
        assert rule("intersection", [A, B, A]) == f'inSegment("{A}") and inSegment("{B}")'

    def test_an_exclusion_is_in_the_first_and_in_none_of_the_others(self) -> None:
        expected = f'inSegment("{A}") and not (inSegment("{B}") or inSegment("{C}"))'
        assert rule("exclusion", [A, B, C]) == expected


class TestCompositions:
    async def test_a_composition_is_a_definition_on_the_audiences_it_combines(
        self, http: httpx.AsyncClient
    ) -> None:
        french = await audience(http, 'homeAddress.countryCode = "FR"')
        gold = await audience(http, 'loyalty.tier = "gold"')
        response = await http.post(
            "/v1/audiences/compositions",
            json={
                "name": f"french not gold {uuid.uuid4().hex[:6]}",
                "operation": "exclusion",
                "audiences": [french, gold],
                "evaluationInfo": {"continuous": {"enabled": True}},
            },
        )
        assert response.status_code == 200, response.text
        created = response.json()
        assert created["expression"]["value"] == rule("exclusion", [uuid.UUID(french), uuid.UUID(gold)])
        assert sorted(created["itinera"]["audiences"]) == sorted([french, gold])
        assert response.headers["X-Location"].endswith(created["id"])
        # The parts are now referenced: they cannot go while the composition stands.
        assert (await http.delete(f"{DEFINITIONS}/{gold}")).status_code == 409

        # In the first audience and not the second: in the composition.
        only_french = {"segmentMembership": {"ups": {french: {"status": "realized"}}}}
        evaluated = await http.post(
            "/v1/pql/evaluate", json={"expression": created["expression"]["value"], "profile": only_french}
        )
        assert evaluated.json()["qualifies"] is True

    async def test_unknown_audiences_and_a_single_one_are_refused(self, http: httpx.AsyncClient) -> None:
        unknown = await http.post(
            "/v1/audiences/compositions",
            json={"name": f"u {uuid.uuid4().hex[:6]}", "operation": "union", "audiences": [str(A), str(B)]},
        )
        assert unknown.status_code == 400
        single = await http.post(
            "/v1/audiences/compositions",
            json={"name": f"s {uuid.uuid4().hex[:6]}", "operation": "union", "audiences": [str(A)]},
        )
        assert single.status_code == 422
        assert [e["path"] for e in single.json()["errors"]] == ["/body/audiences"]
