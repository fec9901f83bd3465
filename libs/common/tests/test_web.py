"""Specification of the web layer every service shares: the app of a :class:`Service`
(``itinera.common.service``), its problem+json errors (``itinera.common.web.problems``),
its request ids and metrics (``itinera.common.web.middleware``), its health endpoints.

A tiny service with a throwaway schema runs on the session's database and broker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, Field

from itinera.common.db.outbox import OutboxRelay, enqueue
from itinera.common.errors import Conflict, FieldError, ValidationFailed
from itinera.common.kafka.envelope import Envelope
from itinera.common.service import Service
from itinera.common.settings import CommonSettings
from itinera.common.testing import eventually, running

FIXTURE_MIGRATIONS = "itinera_common_fixtures.migrations"
PROBLEM = "https://itinera.dev/problems/"
INTERNALS = "the-password-is-hunter2"


class Widget(BaseModel):
    name: str = Field(min_length=1)
    size: int = 1


def _router() -> APIRouter:
    router = APIRouter()

    @router.post("/v1/widgets", status_code=201)
    async def create_widget(widget: Widget) -> Widget:
        if widget.name == "taken":
            raise Conflict("a widget of that name exists", extra={"name": widget.name})
        if widget.name == "odd":
            raise ValidationFailed(
                "the widget is odd", [FieldError("/body/name", "odd names are refused", "odd")]
            )
        return widget

    @router.get("/v1/widgets/{widget_id}")
    async def get_widget(widget_id: int) -> dict[str, int]:
        return {"id": widget_id}

    @router.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError(INTERNALS)

    return router


@pytest.fixture(scope="module")
def service(settings: CommonSettings) -> Service:
    return Service(
        name="webtest",
        port=0,
        schema=f"t_web_{uuid.uuid4().hex[:12]}",
        migrations=FIXTURE_MIGRATIONS,
        settings=lambda: settings,
        routers=lambda: [_router()],
    )


@pytest.fixture(scope="module")
async def app(service: Service, settings: CommonSettings) -> AsyncIterator[FastAPI]:
    async with running(service.create_app("all", settings)) as started:
        yield started


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # raise_app_exceptions=False: Starlette re-raises an unhandled error after its 500
    # response is sent (for the server to log); a client only ever sees the response.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM + slug
    assert body["status"] == status
    assert body["instance"] == response.request.url.path
    return body


class TestProblems:
    async def test_an_unknown_route_is_a_404_problem(self, http: httpx.AsyncClient) -> None:
        body = problem(await http.get("/v1/nothing/here"), 404, "not-found")
        assert body["title"] == "Not found"

    async def test_a_wrong_method_is_a_405_problem_that_names_the_allowed_ones(
        self, http: httpx.AsyncClient
    ) -> None:
        response = await http.delete("/v1/widgets")
        problem(response, 405, "method-not-allowed")
        assert response.headers["allow"] == "POST"

    async def test_a_body_of_the_wrong_shape_is_a_422_problem_with_json_pointers(
        self, http: httpx.AsyncClient
    ) -> None:
        body = problem(await http.post("/v1/widgets", json={"size": "big"}), 422, "invalid-request")

        paths = {e["path"]: e["code"] for e in body["errors"]}
        assert paths == {"/body/name": "missing", "/body/size": "int_parsing"}

    async def test_a_path_parameter_of_the_wrong_type_is_a_422_problem(self, http: httpx.AsyncClient) -> None:
        body = problem(await http.get("/v1/widgets/abc"), 422, "invalid-request")
        assert [e["path"] for e in body["errors"]] == ["/path/widget_id"]

    async def test_a_body_that_is_not_json_is_a_422_problem(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            "/v1/widgets", content=b"{nope", headers={"content-type": "application/json"}
        )
        body = problem(response, 422, "invalid-request")
        assert body["errors"][0]["path"].startswith("/body")

    async def test_an_expected_failure_keeps_its_status_slug_and_extras(
        self, http: httpx.AsyncClient
    ) -> None:
        body = problem(await http.post("/v1/widgets", json={"name": "taken"}), 409, "conflict")
        assert body["name"] == "taken"
        assert body["detail"] == "a widget of that name exists"

    async def test_a_validation_failure_carries_its_field_errors(self, http: httpx.AsyncClient) -> None:
        body = problem(await http.post("/v1/widgets", json={"name": "odd"}), 400, "validation-failed")
        assert body["errors"] == [{"path": "/body/name", "message": "odd names are refused", "code": "odd"}]

    async def test_an_unexpected_error_is_a_500_problem_that_leaks_nothing(
        self, http: httpx.AsyncClient
    ) -> None:
        response = await http.get("/v1/boom", headers={"x-request-id": "req-boom-1"})

        body = problem(response, 500, "internal")
        assert body["requestId"] == "req-boom-1"
        assert INTERNALS not in response.text
        assert "RuntimeError" not in response.text
        assert "Traceback" not in response.text

    async def test_an_unexpected_error_still_echoes_the_request_id(self, http: httpx.AsyncClient) -> None:
        response = await http.get("/v1/boom", headers={"x-request-id": "req-boom-2"})
        assert response.headers.get("x-request-id") == "req-boom-2"


class TestRequestIds:
    async def test_a_request_id_sent_by_the_client_is_echoed(self, http: httpx.AsyncClient) -> None:
        response = await http.get("/healthz", headers={"x-request-id": "abc-123"})
        assert response.headers["x-request-id"] == "abc-123"

    async def test_a_request_without_one_gets_a_fresh_one(self, http: httpx.AsyncClient) -> None:
        first, second = await http.get("/healthz"), await http.get("/healthz")
        assert len(first.headers["x-request-id"]) == 32
        assert first.headers["x-request-id"] != second.headers["x-request-id"]

    async def test_an_overlong_request_id_is_cut_to_128_characters(self, http: httpx.AsyncClient) -> None:
        response = await http.get("/healthz", headers={"x-request-id": "x" * 500})
        assert response.headers["x-request-id"] == "x" * 128

    async def test_error_responses_carry_it_too(self, http: httpx.AsyncClient) -> None:
        response = await http.get("/v1/nothing", headers={"x-request-id": "lost-1"})
        assert response.headers["x-request-id"] == "lost-1"


def requests_counted(metrics: str, **labels: str) -> float:
    for family in text_string_to_metric_families(metrics):
        if family.name == "itinera_http_requests":
            for sample in family.samples:
                if sample.name.endswith("_total") and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return sample.value
    return 0.0


class TestMetrics:
    async def test_count_requests_by_route_template_method_and_status(self, http: httpx.AsyncClient) -> None:
        labels = {"service": "webtest", "method": "GET", "route": "/v1/widgets/{widget_id}", "status": "200"}
        before = requests_counted((await http.get("/metrics")).text, **labels)

        await http.get("/v1/widgets/1")
        await http.get("/v1/widgets/2")
        response = await http.get("/metrics")

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "itinera_http_requests_total{" in response.text
        assert requests_counted(response.text, **labels) == before + 2

    async def test_unknown_paths_share_one_label_rather_than_one_each(self, http: httpx.AsyncClient) -> None:
        await http.get(f"/v1/random/{uuid.uuid4()}")
        metrics = (await http.get("/metrics")).text
        assert requests_counted(metrics, route="unmatched", status="404") >= 1
        assert "/v1/random/" not in metrics


class TestHealth:
    async def test_healthz_answers_while_the_process_runs(self, http: httpx.AsyncClient) -> None:
        response = await http.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_healthz_is_503_while_a_consumer_loop_is_stuck(
        self, app: FastAPI, http: httpx.AsyncClient
    ) -> None:
        @dataclass
        class Stuck:  # a worker as a consumer loop reports itself
            group: str
            seconds: float

            async def start(self) -> None: ...
            async def stop(self) -> None: ...
            def stalled_s(self) -> float:
                return self.seconds

        limit = app.state.runtime.settings.consumer_stall_limit_s
        workers = app.state.runtime.workers
        workers.extend([Stuck("busy", limit - 1), Stuck("stuck", limit + 5)])
        try:
            response = await http.get("/healthz")
        finally:
            del workers[-2:]

        assert response.status_code == 503
        assert response.json() == {"status": "stalled", "stalledSeconds": {"stuck": round(limit + 5)}}
        assert (await http.get("/healthz")).status_code == 200

    async def test_readyz_is_200_when_the_database_and_the_broker_answer(
        self, http: httpx.AsyncClient
    ) -> None:
        response = await http.get("/readyz")
        assert response.status_code == 200
        assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}

    async def test_health_and_metrics_need_no_token(self, http: httpx.AsyncClient) -> None:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await http.get(path)).status_code == 200

    async def test_the_lifespan_migrated_the_services_schema(self, app: FastAPI, service: Service) -> None:
        async with app.state.runtime.pool.acquire() as conn:
            tables = await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
                service.schema,
            )
        assert [t["table_name"] for t in tables] == [
            "notes",
            "outbox",
            "outbox_failed",
            "rate_buckets",
            "schema_migrations",
        ]


class TestRoles:
    async def test_a_worker_app_serves_health_but_not_the_api(
        self, service: Service, settings: CommonSettings
    ) -> None:
        worker = service.create_app("worker", settings)
        transport = httpx.ASGITransport(app=worker)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/v1/widgets/1")).status_code == 404

    async def test_a_relay_app_publishes_the_outbox_and_serves_no_api(
        self, service: Service, settings: CommonSettings, new_topic: Any
    ) -> None:
        topic = await new_topic("relayrole")
        async with running(service.create_app("relay", settings)) as relay:
            runtime = relay.state.runtime
            assert [type(w) for w in runtime.workers] == [OutboxRelay]
            async with runtime.pool.acquire() as conn, conn.transaction():
                await enqueue(conn, topic, [Envelope(type="t.v1", source="/t", data={}, sandbox="prod")])

            async def published() -> bool:
                async with runtime.pool.acquire() as conn:
                    return bool(await conn.fetchval("SELECT count(*) = 0 FROM outbox"))

            await eventually(published)
            transport = httpx.ASGITransport(app=relay)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                assert (await client.get("/v1/widgets/1")).status_code == 404

    async def test_workers_leave_the_outbox_to_a_relay_process_when_told_to(
        self, service: Service, settings: CommonSettings
    ) -> None:
        told = settings.model_copy(update={"outbox_relay_in_workers": False})
        async with running(service.create_app("all", told)) as app:
            assert not any(isinstance(w, OutboxRelay) for w in app.state.runtime.workers)
        async with running(service.create_app("worker", settings)) as app:
            assert any(isinstance(w, OutboxRelay) for w in app.state.runtime.workers)

    def test_the_openapi_document_lists_the_routes_of_an_api_app(
        self, service: Service, settings: CommonSettings
    ) -> None:
        paths = service.create_app("api", settings).openapi()["paths"]
        assert {"/healthz", "/readyz", "/metrics", "/v1/widgets", "/v1/widgets/{widget_id}"} <= set(paths)
