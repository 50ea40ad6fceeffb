"""FastRoute answers exactly as FastAPI's own handler: the same statuses and problem bodies for
good and bad bodies, content types and missing credentials, and the same OpenAPI document."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.routing import APIRoute
from fastapi.security import OAuth2PasswordBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from orderproc.common.fastroute import FastRoute, _plan_for
from orderproc.common.web import model_response
from orderproc.errors import InvalidToken
from orderproc.errors.problem import install_problem_handlers
from orderproc.orders import api as orders_api
from orderproc.users import api as users_api


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Annotated[Decimal, Field(gt=0, decimal_places=2)]
    note: str | None = None


class Echo(BaseModel):
    amount: str
    user: str
    key: str | None


class Bearer(OAuth2PasswordBearer):
    async def __call__(self, request: Request) -> str:  # type: ignore[override]
        token = await super().__call__(request)
        if not token:
            raise InvalidToken("An access token is required.")
        return token


bearer = Bearer(tokenUrl="/token", auto_error=False)


async def key(request: Request) -> str | None:
    return request.headers.get("idempotency-key")


def router(route_class: type[APIRoute]) -> APIRouter:
    routes = APIRouter(route_class=route_class)

    @routes.post("/move", status_code=201, response_model=Echo)
    async def move(
        body: Body,
        user: Annotated[str, Depends(bearer)],
        idem: Annotated[str | None, Depends(key)],
    ) -> Response:
        return model_response(Echo(amount=str(body.amount), user=user, key=idem), status_code=201)

    @routes.get("/whoami", response_model=Echo)
    async def whoami(user: Annotated[str, Depends(bearer)]) -> Response:
        return model_response(Echo(amount="0", user=user, key=None))

    return routes


def app_with(route_class: type[APIRoute], *, strict_content_type: bool = True) -> FastAPI:
    app = FastAPI(strict_content_type=strict_content_type)
    install_problem_handlers(app)
    app.include_router(router(route_class))
    return app


AUTH = {"Authorization": "Bearer tok"}
JSON = {**AUTH, "Content-Type": "application/json"}
CASES: list[tuple[str, str, dict[str, str], bytes]] = [
    ("POST", "/move", JSON, b'{"amount": "1.00"}'),
    ("POST", "/move", {**JSON, "Idempotency-Key": "k1"}, b'{"amount": "2.50", "note": "x"}'),
    ("POST", "/move", AUTH, b'{"amount": "1.00"}'),  # no content type: refused (strict)
    ("POST", "/move", {**AUTH, "Content-Type": "application/vnd.x+json"}, b'{"amount": "1"}'),
    ("POST", "/move", {**AUTH, "Content-Type": "text/plain"}, b'{"amount": "1.00"}'),
    ("POST", "/move", JSON, b""),
    ("POST", "/move", JSON, b"{"),
    ("POST", "/move", JSON, b"[1, 2]"),
    ("POST", "/move", JSON, b"null"),
    ("POST", "/move", JSON, b'{"amount": "-1"}'),
    ("POST", "/move", JSON, b'{"amount": "1.001"}'),
    ("POST", "/move", JSON, b'{"amount": "1.00", "extra": 1}'),
    ("POST", "/move", JSON, b'{"note": 5}'),
    ("POST", "/move", {"Content-Type": "application/json"}, b'{"amount": "1.00"}'),
    ("POST", "/move", {"Content-Type": "application/json"}, b'{"amount": "x"}'),
    ("POST", "/move", {"Content-Type": "application/json"}, b"{"),
    ("GET", "/whoami", AUTH, b""),
    ("GET", "/whoami", {}, b""),
    # found by review: parser and content-type corners
    ("POST", "/move", JSON, b'{"amount": NaN}'),
    ("POST", "/move", JSON, b'{"amount": 1e400}'),
    ("POST", "/move", JSON, b'{"amount": 123456789012345678901234567890}'),
    ("POST", "/move", JSON, b'\xef\xbb\xbf{"amount": "1.00"}'),
    ("POST", "/move", JSON, '{"amount": "1.00"}'.encode("utf-16")),
    ("POST", "/move", JSON, b'{"amount": "1.00", "note": "\\ud800"}'),
    ("POST", "/move", JSON, b'{"amount": "1.00", "note": "\xff"}'),
    ("POST", "/move", JSON, b"[" * 3000 + b"]" * 3000),
    ("POST", "/move", JSON, b"{]"),
    ("POST", "/move", JSON, b" "),
    ("POST", "/move", {**AUTH, "Content-Type": ""}, b'{"amount": "1.00"}'),
    ("POST", "/move", {**AUTH, "Content-Type": "application/x/y+json"}, b'{"amount": "1.00"}'),
    ("POST", "/move", {**AUTH, "Content-Type": "application/json"}, b'{"amount": 1.5}'),
    ("POST", "/move", {"Content-Type": "application/json"}, b"\xef\xbb\xbf{}"),
    ("POST", "/move", {**AUTH, "Content-Type": "Application/JSON; charset=utf-8"}, b"{}"),
]


async def answer(app: FastAPI, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.request(method, path, headers=headers, content=body)
    payload = response.json()
    if isinstance(payload, dict):
        payload.pop("request_id", None)
    return response.status_code, response.headers["content-type"], payload


@pytest.mark.parametrize(("method", "path", "headers", "body"), CASES)
async def test_answers_as_fastapi_does(
    method: str, path: str, headers: dict[str, str], body: bytes
) -> None:
    fast = await answer(app_with(FastRoute), method, path, headers, body)
    stock = await answer(app_with(APIRoute), method, path, headers, body)
    assert fast == stock


@pytest.mark.parametrize(
    "headers", [AUTH, {**AUTH, "Content-Type": ""}, {**AUTH, "Content-Type": "text/plain"}]
)
async def test_a_lax_content_type_setting_is_honoured_as_fastapi_does(
    headers: dict[str, str],
) -> None:
    body = b'{"amount": "1.00"}'
    fast = await answer(
        app_with(FastRoute, strict_content_type=False), "POST", "/move", headers, body
    )
    stock = await answer(
        app_with(APIRoute, strict_content_type=False), "POST", "/move", headers, body
    )
    assert fast == stock
    assert fast[0] == (422 if headers.get("Content-Type") else 201)  # empty means none


def test_every_hot_route_of_the_platform_is_lean() -> None:
    hot = {
        ("GET", "/balance"),
        ("POST", "/balance/deposit"),
        ("POST", "/balance/withdraw"),
        ("POST", "/orders"),
    }
    served = {
        (method, route.path)
        for module in (users_api, orders_api)
        for routes in module.routers
        for route in routes.routes
        if isinstance(route, FastRoute) and _plan_for(route.endpoint) is not None
        for method in route.methods
    }
    assert hot <= served


def test_the_routes_are_served_by_the_lean_handler() -> None:
    lean = [r for r in router(FastRoute).routes if isinstance(r, FastRoute)]
    assert {r.path for r in lean} == {"/move", "/whoami"}
    for route in lean:
        handler = route.get_route_handler()
        assert handler.__qualname__ == "FastRoute.get_route_handler.<locals>.handle"


def test_a_route_it_cannot_serve_keeps_fastapis_handler() -> None:
    routes = APIRouter(route_class=FastRoute)

    @routes.get("/page")
    async def page(limit: int = 10) -> dict[str, int]:
        return {"limit": limit}

    route = routes.routes[0]
    assert isinstance(route, FastRoute)
    assert "FastRoute" not in route.get_route_handler().__qualname__


async def test_dependency_overrides_are_honoured_as_fastapi_does() -> None:
    app = app_with(FastRoute)
    app.dependency_overrides[bearer] = lambda: "someone-else"
    status, _, payload = await answer(app, "GET", "/whoami", {}, b"")
    assert (status, payload["user"]) == (200, "someone-else")


def test_the_openapi_document_is_fastapis() -> None:
    assert app_with(FastRoute).openapi() == app_with(APIRoute).openapi()
