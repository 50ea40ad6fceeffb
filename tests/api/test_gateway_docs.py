"""The API docs through the gateway of distributed mode (gateway/docs.py, gateway/proxy.py): one
OpenAPI document merged from the users, inventory and orders services' own, running under
uvicorn on loopback ports, with the embedded app's paths and operation ids, as valid as the
embedded one (tests/api/test_openapi.py's checks); a service that is down is left out and named,
and it is back once it answers; Swagger UI at `/docs` from the vendored files, with the
embedded app's headers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderproc import testing
from orderproc.common.settings import Settings
from orderproc.gateway.app import create_app
from orderproc.gateway.docs import PlatformDocs
from orderproc.gateway.proxy import ProxyApp, build_gateway_deps, create_proxy_app
from orderproc.gateway.routes import Service, service_for
from orderproc.inventory.app import create_app as inventory_app
from orderproc.orders.app import create_app as orders_app
from orderproc.users.app import create_app as users_app
from tests.api.test_openapi import (
    JSON_SCHEMA_KEYWORDS,
    OPERATION_IDS,
    Document,
    operations,
    subschemas,
)
from tests.support.proxy_upstreams import Gateway
from tests.support.redis_server import free_loopback_port

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
SECURITY_HEADERS = (
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "cross-origin-opener-policy",
    "content-security-policy",
    "cache-control",
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return testing.test_settings(tmp_path_factory.mktemp("gateway-docs"), price_feed="off")


@pytest.fixture(scope="module")
def services(platform: Settings) -> Iterator[dict[Service, str]]:
    """Users, inventory and orders, each its own app under uvicorn (one after another: the
    first migrates the shared database); the web UI is never asked here."""
    running: list[Gateway] = []
    urls = {Service.WEBUI: f"http://127.0.0.1:{free_loopback_port()}"}
    try:
        for service, make in (
            (Service.USERS, users_app),
            (Service.INVENTORY, inventory_app),
            (Service.ORDERS, orders_app),
        ):
            server = Gateway(make(platform)).start(timeout=30)
            running.append(server)
            urls[service] = f"http://127.0.0.1:{server.port}"
        yield urls
    finally:
        for server in running:
            server.stop()


@pytest.fixture(scope="module")
def embedded(platform: Settings) -> Document:
    return create_app(platform).openapi()


async def gateway_for(settings: Settings, upstreams: dict[Service, str]) -> ProxyApp:
    return create_proxy_app(settings, upstreams, deps=await build_gateway_deps(settings))


async def shut(gateway: ProxyApp) -> None:
    """What the gateway's lifespan does at shutdown (its pooled connections), and its deps."""
    for upstream in gateway.upstreams.values():
        upstream.close()
    await gateway.deps.close()


@pytest.fixture
async def gateway(platform: Settings, services: dict[Service, str]) -> AsyncIterator[ProxyApp]:
    app = await gateway_for(platform, services)
    yield app
    await shut(app)


def client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def merged(gateway: ProxyApp) -> Document:
    async with client(gateway) as http:
        answer = await http.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    document: Document = answer.json()
    return document


class TestMergedDocument:
    async def test_it_has_the_embedded_apps_paths_operation_ids_and_components(
        self, gateway: ProxyApp, embedded: Document
    ) -> None:
        document = await merged(gateway)
        ids = {key: op["operationId"] for key, op in operations(document)}
        assert ids == {key: op["operationId"] for key, op in operations(embedded)}
        assert ids == OPERATION_IDS
        assert document["components"] == embedded["components"]
        assert document["tags"] == embedded["tags"]
        assert document["info"]["title"] == embedded["info"]["title"]
        counts = {
            s.value: sum(service_for(p) is s for p in embedded["paths"])
            for s in (Service.USERS, Service.INVENTORY, Service.ORDERS)
        }
        assert all(counts.values())
        assert document["info"]["x-orderproc-services"] == {
            name: {"status": "ok", "paths": count} for name, count in counts.items()
        }
        assert "Incomplete" not in document["info"]["description"]

    async def test_each_path_is_one_the_gateway_routes_to_the_service_that_documents_it(
        self, gateway: ProxyApp, services: dict[Service, str]
    ) -> None:
        document = await merged(gateway)
        for service in (Service.USERS, Service.INVENTORY, Service.ORDERS):
            async with httpx.AsyncClient(base_url=services[service]) as direct:
                own = (await direct.get("/openapi.json")).json()
            api_paths = {p for p in own["paths"] if p.startswith("/api/")}
            assert api_paths
            for path in api_paths:
                assert service_for(path) is service
                assert document["paths"][path] == own["paths"][path]

    async def test_it_is_as_valid_as_the_embedded_one(self, gateway: ProxyApp) -> None:
        document = await merged(gateway)
        assert document["openapi"].startswith("3.1.")
        for name, schema in document["components"]["schemas"].items():
            for inner in subschemas(schema):
                assert set(inner) <= JSON_SCHEMA_KEYWORDS, (name, inner)
        refs = {
            ref.removeprefix("#/components/schemas/")
            for op in operations(document)
            for ref in _refs(op[1])
        }
        assert refs
        assert refs <= set(document["components"]["schemas"])
        ids = [op["operationId"] for _, op in operations(document)]
        assert len(ids) == len(set(ids))
        for key, operation in operations(document):
            for status, response in operation["responses"].items():
                if status[0] in "45" and key != "GET /ready":
                    assert response["content"] == PROBLEM, (key, status)
        # The gateway's /ready answers its summary, not a problem, when a service is down.
        ready = document["paths"]["/ready"]["get"]["responses"]["503"]["content"]
        assert ready["application/json"]["schema"]["required"] == ["status", "services"]

    async def test_it_is_fetched_once_then_cached(
        self, gateway: ProxyApp, services: dict[Service, str]
    ) -> None:
        clock = Clock()
        gateway.docs = PlatformDocs(gateway.upstreams, clock=clock)
        asked: list[str] = []
        original = gateway.docs.refresh

        async def counted() -> Document:
            asked.append("refresh")
            return await original()

        gateway.docs.refresh = counted  # type: ignore[method-assign]
        first = await merged(gateway)
        clock.now += gateway.docs.fresh_for - 1
        assert await merged(gateway) == first
        assert asked == ["refresh"]
        clock.now += 2  # a minute on: fetched again
        assert await merged(gateway) == first
        assert asked == ["refresh", "refresh"]


class TestAServiceDown:
    async def test_its_paths_are_missing_and_named_until_it_answers_again(
        self, platform: Settings, services: dict[Service, str]
    ) -> None:
        later = Gateway(inventory_app(platform))  # its port is chosen; nothing listens yet
        upstreams = {**services, Service.INVENTORY: f"http://127.0.0.1:{later.port}"}
        gateway = await gateway_for(platform, upstreams)
        clock = Clock()
        gateway.docs = PlatformDocs(gateway.upstreams, clock=clock)
        try:
            document = await merged(gateway)
            paths = set(document["paths"])
            assert not {p for p in paths if service_for(p) is Service.INVENTORY}
            assert "/api/v1/orders" in paths
            assert "/api/v1/auth/login" in paths
            state = document["info"]["x-orderproc-services"]["inventory"]
            assert state["status"] == "missing"
            assert "cannot connect" in state["detail"]
            assert "**Incomplete:** no document from inventory" in document["info"]["description"]
            refs = {r for _, op in operations(document) for r in _refs(op)}
            assert {r.removeprefix("#/components/schemas/") for r in refs} <= set(
                document["components"]["schemas"]
            )
            # The API goes on meanwhile: the gateway answers its other routes.
            async with client(gateway) as http:
                assert (await http.get("/api/v1/inventory/assets")).status_code == 503
                assert (await http.get("/health")).status_code == 200

            with later:
                clock.now += gateway.docs.retry_after - 0.5
                assert await merged(gateway) == document  # cached for a few seconds
                clock.now += 1
                again = await merged(gateway)
            assert "/api/v1/inventory/assets" in again["paths"]
            assert again["info"]["x-orderproc-services"]["inventory"]["status"] == "ok"
            assert "Incomplete" not in again["info"]["description"]
        finally:
            await shut(gateway)


class TestSwaggerUi:
    async def test_docs_answer_with_the_vendored_files_and_the_embedded_apps_headers(
        self, gateway: ProxyApp, platform: Settings, tmp_path: Path
    ) -> None:
        from orderproc.runtime import build_runtime

        runtime = await build_runtime(testing.test_settings(tmp_path, price_feed="off"))
        paths = ("/docs", "/docs/static/swagger-ui-bundle.js", "/openapi.json")
        try:
            async with client(create_app(runtime.settings, runtime=runtime)) as direct:
                expected = {p: await direct.get(p) for p in paths}
        finally:
            await runtime.close()
        async with client(gateway) as http:
            page = await http.get("/docs")
            assert page.status_code == 200
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            assert page.text == expected["/docs"].text
            assert "/docs/static/swagger-ui-bundle.js" in page.text
            assert "cdn" not in page.text.lower()
            script = await http.get("/docs/static/swagger-ui-bundle.js")
            assert script.status_code == 200
            assert script.content == expected["/docs/static/swagger-ui-bundle.js"].content
            assert len(script.content) > 100_000
            document = await http.get("/openapi.json")
            for path, answer in zip(paths, (page, script, document), strict=True):
                mine = {h: answer.headers.get(h) for h in SECURITY_HEADERS}
                theirs = {h: expected[path].headers.get(h) for h in SECURITY_HEADERS}
                assert mine == theirs, path
                assert answer.headers["x-request-id"]
            # Swagger UI runs an inline script: the API's CSP (default-src 'none') is not on it.
            assert "content-security-policy" not in page.headers
            assert (
                "default-src 'none'"
                in (await http.get("/openapi.json")).headers["content-security-policy"]
            )

            missing = await http.get("/docs/static/nothing-here.js")
            assert missing.status_code == 404
            assert missing.json()["code"] == "ROUTE_NOT_FOUND"
            outside = await http.get("/docs/static/..%2F..%2Fproxy.py")  # decoded: ../../
            assert outside.status_code == 404
            assert (await http.get("/docs/other")).status_code == 404
            posted = await http.post("/openapi.json")
            assert posted.status_code == 405
            assert posted.headers["allow"] == "GET, HEAD"
            assert posted.headers["content-type"] == "application/problem+json"


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)
