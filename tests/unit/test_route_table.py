"""The gateway's routing table sends every route to the service that defines it: each API route
of the app to the package its endpoint lives in, the web UI's pages to the web UI, the gateway's
own operations to the gateway, and every route of the public API map (docs/api-map.md) to its
owner, including the ones that have not landed yet."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from starlette.routing import Mount, Route

from orderproc.common.settings import Settings
from orderproc.gateway.app import create_app
from orderproc.gateway.routes import (
    API_PREFIX,
    IDENTITY_HEADERS,
    ROUTES,
    Service,
    route_for,
    service_for,
)
from orderproc.webui.routes import mount_webui

USERS, INVENTORY, ORDERS = Service.USERS, Service.INVENTORY, Service.ORDERS
WEBUI, GATEWAY = Service.WEBUI, Service.GATEWAY


def _concrete(path: str) -> str:
    """A template path with its parameters filled in."""
    return path.replace("{", "").replace("}", "")


def _routes(app: FastAPI) -> list[Route | Mount]:
    return [r for r in app.routes if isinstance(r, Route | Mount)]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return create_app(Settings(data_dir=tmp_path_factory.mktemp("data")))


def test_each_api_route_goes_to_the_package_that_defines_it(app: FastAPI) -> None:
    api = [r for r in _routes(app) if isinstance(r, Route) and r.path.startswith("/api/")]
    assert len(api) >= 25
    wrong = []
    for route in api:
        package = route.endpoint.__module__.split(".")[1]  # orderproc.<package>.api
        for path in (route.path, _concrete(route.path)):
            if service_for(path).value != package:
                wrong.append(f"{path}: {service_for(path).value}, defined in {package}")
    assert not wrong


def test_every_other_route_goes_to_the_web_ui_or_is_the_gateways_own(app: FastAPI) -> None:
    webui_app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    mount_webui(webui_app)
    webui_paths = {r.path for r in _routes(webui_app)}
    others = [r for r in _routes(app) if not r.path.startswith("/api/")]
    assert {"/", "/market", "/live/prices", "/static", "/health", "/docs"} <= {
        r.path for r in others
    }
    for route in others:
        path = route.path
        owner = WEBUI if path in webui_paths else GATEWAY
        probes = [path, _concrete(path)] + (
            [path + "/file.css"] if isinstance(route, Mount) else []
        )
        assert {service_for(p) for p in probes} == {owner}, path


# Every route of the public API, by owner (docs/api-map.md), with concrete ids.
API_MAP = {
    USERS: [
        "/auth/register",
        "/auth/login",
        "/auth/token",
        "/auth/logout",
        "/auth/profile",
        "/auth/password",
        "/balance",
        "/balance/deposit",
        "/balance/withdraw",
        "/balance/transactions",
        "/admin/users",
        "/admin/users/alice",
        "/admin/audit",
    ],
    INVENTORY: [
        "/inventory/assets",
        "/inventory/assets/BTC",
        "/inventory/assets/BTC/candles",
        "/admin/assets",
        "/admin/assets/BTC",
        "/admin/sandbox/pause",
        "/admin/sandbox/resume",
        "/admin/sandbox/prices/BTC",
        "/admin/sandbox/tick",
        "/stream/prices",
    ],
    ORDERS: [
        "/orders",
        "/orders/estimate",
        "/orders/01J0ABCDEF",
        "/portfolio",
        "/balance/asset/BTC",
        "/assets/BTC/transactions",
        "/admin/reconcile",
        "/stream/ticket",
        "/stream/orders",
    ],
}


@pytest.mark.parametrize(
    ("path", "service"),
    [(API_PREFIX + path, service) for service, paths in API_MAP.items() for path in paths],
)
def test_the_public_api_map(path: str, service: Service) -> None:
    assert service_for(path) is service


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/health", GATEWAY),
        ("/ready", GATEWAY),
        ("/metrics", GATEWAY),
        ("/openapi.json", GATEWAY),
        ("/docs", GATEWAY),
        ("/docs/static/swagger-ui.css", GATEWAY),
        ("/api", GATEWAY),  # under /api and claimed by no service: the gateway answers 404
        ("/api/v1", GATEWAY),
        ("/api/v1/nothing", GATEWAY),
        ("/api/v2/orders", GATEWAY),
        ("/api/v1/ordersx", GATEWAY),  # whole segments, not characters
        ("/api/v1/balance/", GATEWAY),  # /balance is exact
        ("/api/v1/balance/assets", GATEWAY),
        ("/api/v1/orders/", ORDERS),
        ("/", WEBUI),
        ("", WEBUI),
        ("/market", WEBUI),
        ("/assets/BTC", WEBUI),  # the web UI's page, not the API's /assets
        ("/orders", WEBUI),
        ("/admin/users", WEBUI),
        ("/static/app.css", WEBUI),
        ("/live/prices", WEBUI),
        ("/apix", WEBUI),
        ("/healthz", WEBUI),
        ("/health/x", WEBUI),
        ("//api/v1/orders", WEBUI),
    ],
)
def test_outside_the_service_routes(path: str, service: Service) -> None:
    assert service_for(path) is service


def test_the_streams_are_the_live_prices_and_the_api_streams() -> None:
    streams = {route.path for route in ROUTES if route.stream}
    assert streams == {"/live", f"{API_PREFIX}/stream/prices", f"{API_PREFIX}/stream/orders"}
    assert route_for("/live/prices").stream
    assert route_for(f"{API_PREFIX}/stream/prices").stream
    assert not route_for(f"{API_PREFIX}/stream/ticket").stream
    assert not route_for("/livex").stream


def test_the_table_is_longest_first_and_each_path_once() -> None:
    lengths = [len(route.path) for route in ROUTES]
    assert lengths == sorted(lengths, reverse=True)
    assert len({route.path for route in ROUTES}) == len(ROUTES)
    assert {route.service for route in ROUTES} == set(Service)


def test_identity_headers_include_the_user_id() -> None:
    assert "x-user-id" in {name.lower() for name in IDENTITY_HEADERS}
    assert "x-forwarded-for" not in {name.lower() for name in IDENTITY_HEADERS}  # set, not dropped


SEGMENTS = sorted(
    {part for route in ROUTES for part in route.path.split("/")}
    | {"", "x", "BTC", "ordersx", "static", "prices"}
)


@given(st.lists(st.sampled_from(SEGMENTS), max_size=6))
def test_the_lookup_is_the_first_matching_entry(parts: list[str]) -> None:
    path = "/" + "/".join(parts)
    expected = next(route for route in ROUTES if route.matches(path))
    assert route_for(path) is expected


def test_the_package_names_are_the_services() -> None:
    src = Path(__file__).resolve().parents[2] / "src" / "orderproc"
    assert all((src / service.value).is_dir() for service in Service)
