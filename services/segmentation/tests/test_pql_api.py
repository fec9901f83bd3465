"""``/v1/pql``: rule editors evaluate and validate PQL over HTTP."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from itinera.common.auth import mint_token
from itinera.common.testing import client_for
from itinera.segmentation.config import SegmentationSettings

JANE: dict[str, Any] = {
    "person": {"name": {"firstName": "Jane", "lastName": "Doe"}},
    "homeAddress": {"countryCode": "FR"},
    "xEvent": [
        {"eventType": "commerce.purchases", "timestamp": "2026-11-27T10:00:00Z"},
        {"eventType": "web.webpagedetails.pageViews", "timestamp": "2026-11-20T10:00:00Z"},
    ],
}


class TestEvaluate:
    async def test_an_attribute_rule_holds_for_a_matching_profile(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            "/v1/pql/evaluate",
            json={
                "expression": 'homeAddress.countryCode = "FR" and person.name.firstName = "Jane"',
                "profile": JANE,
            },
        )
        assert response.status_code == 200
        assert response.json() == {"result": True, "qualifies": True}

    async def test_events_are_read_from_the_profile_and_time_from_now(self, http: httpx.AsyncClient) -> None:
        rule = 'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 7 days before now]'
        recent = await http.post(
            "/v1/pql/evaluate", json={"expression": rule, "profile": JANE, "now": "2026-11-28T12:00:00Z"}
        )
        later = await http.post(
            "/v1/pql/evaluate", json={"expression": rule, "profile": JANE, "now": "2026-12-28T12:00:00Z"}
        )
        assert recent.json() == {"result": [JANE["xEvent"][0]], "qualifies": True}
        assert later.json() == {"result": [], "qualifies": False}

    async def test_a_missing_attribute_is_null_not_an_error(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            "/v1/pql/evaluate", json={"expression": "person.birthDate.isNull()", "profile": {"person": 3}}
        )
        assert response.json() == {"result": True, "qualifies": True}

    async def test_invalid_pql_is_a_400_with_the_position_of_each_problem(
        self, http: httpx.AsyncClient
    ) -> None:
        response = await http.post("/v1/pql/evaluate", json={"expression": 'person.name.firstName = = "x"'})
        assert response.status_code == 400
        body = response.json()
        assert body["errors"][0]["path"] == "/expression"
        (problem, *_) = body["problems"]
        assert (problem["line"], problem["column"]) == (1, 25)

    async def test_an_expression_over_the_limit_is_refused(self, http: httpx.AsyncClient) -> None:
        response = await http.post("/v1/pql/evaluate", json={"expression": "1 = 1 and " * 500 + "true"})
        assert response.status_code == 400
        assert response.json()["errors"][0]["code"] == "maxLength"

    async def test_a_body_of_the_wrong_shape_is_a_422_with_paths(self, http: httpx.AsyncClient) -> None:
        response = await http.post("/v1/pql/evaluate", json={"expression": "", "profile": []})
        assert response.status_code == 422
        assert {e["path"] for e in response.json()["errors"]} == {"/body/expression", "/body/profile"}


class TestValidate:
    async def test_a_valid_rule_lists_what_it_reads_and_can_stream(self, http: httpx.AsyncClient) -> None:
        response = await http.post("/v1/pql/validate", json={"expression": 'homeAddress.countryCode = "FR"'})
        body = response.json()
        assert body["valid"] is True
        assert body["problems"] == []
        assert body["references"] == ["homeAddress.countryCode"]
        assert body["streaming"] == {"eligible": True, "reasons": []}
        assert body["timeDependent"] is False

    async def test_a_rule_on_other_audiences_names_them_and_says_why_it_cannot_stream(
        self, http: httpx.AsyncClient
    ) -> None:
        rule = 'inSegment("vip") and xEvent[eventType = "a" and timestamp occurs <= 1 hours before now]'
        body = (await http.post("/v1/pql/validate", json={"expression": rule})).json()
        assert body["audiences"] == ["vip"]
        assert body["streaming"]["eligible"] is False
        assert body["streaming"]["reasons"]

    async def test_a_time_window_is_reported_as_a_look_back(self, http: httpx.AsyncClient) -> None:
        rule = 'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 7 days before now]'
        body = (await http.post("/v1/pql/validate", json={"expression": rule})).json()
        assert body["lookbackSeconds"] == 7 * 24 * 3600
        assert body["timeDependent"] is True
        assert "xEvent.eventType" in body["references"]

    async def test_an_invalid_rule_is_200_with_its_problems(self, http: httpx.AsyncClient) -> None:
        response = await http.post("/v1/pql/validate", json={"expression": "person.name.firstName = "})
        assert response.status_code == 200
        assert response.json()["valid"] is False
        assert response.json()["problems"][0]["line"] == 1

    async def test_the_audiences_read_scope_is_required(
        self, segmentation_app: FastAPI, segmentation_settings: SegmentationSettings
    ) -> None:
        token = mint_token(segmentation_settings, scopes=["profiles:read"])
        async with client_for(segmentation_app, token) as other:
            response = await other.post("/v1/pql/validate", json={"expression": "true"})
        assert response.status_code == 403
