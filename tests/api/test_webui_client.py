"""The embedded web UI's client to the API (webui/client.py, `InProcessApi`): one client per
app, reused by every page and closed at shutdown; each call reaches the API as from the browser
the page serves (so rate limits and login blocking key on the browser's address:
tests/api/test_login_abuse.py, `TestWebUi`), with its own cookies and token, never another
person's."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from orderproc.common.security.devices import DEVICE_COOKIE
from orderproc.gateway.app import create_app
from orderproc.runtime import Runtime
from orderproc.webui.client import InProcessApi
from tests.api.conftest import user_body

PASSWORD = "correct horse battery staple"
HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


def hidden_fields(html: str, action: str) -> dict[str, str]:
    start = html.index(f'action="{action}"')
    return dict(HIDDEN.findall(html[start : html.index("</form>", start)]))


def browser(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def sign_in(client: httpx.AsyncClient, username: str) -> None:
    register = await client.post("/api/v1/auth/register", json=user_body(username))
    assert register.status_code == 201
    form = hidden_fields((await client.get("/login")).text, "/login")
    answer = await client.post("/login", data={**form, "username": username, "password": PASSWORD})
    assert answer.status_code == 303


async def test_pages_share_one_client_that_keeps_no_cookies_and_closes_at_shutdown(
    runtime: Runtime,
) -> None:
    app = create_app(runtime.settings, runtime=runtime)
    api: InProcessApi = app.state.webui_api
    seen: list[tuple[int, str, str | None]] = []

    async def record(request: httpx.Request) -> None:
        seen.append((id(api.client), request.url.path, request.headers.get("authorization")))

    client = api.client
    client.event_hooks["request"].append(record)
    async with app.router.lifespan_context(app), browser(app, "198.51.100.7") as alice:
        await sign_in(alice, "alice")
        assert DEVICE_COOKIE in alice.cookies  # the API's cookie went on to the browser...
        assert not list(client.cookies.jar)  # ...and stayed nowhere else
        seen.clear()
        for _ in range(2):
            page = await alice.get("/portfolio")
            assert page.status_code == 200
            assert "alice" in page.text
        assert api.client is client
        assert [(i, p) for i, p, _ in seen] == [(id(client), "/api/v1/portfolio")] * 2
        assert all(token and token.startswith("Bearer ") for _, _, token in seen)

        async with browser(app, "198.51.100.8") as anonymous:
            market = await anonymous.get("/market")
        assert market.status_code == 200
        assert seen[-1][0] == id(client)
        assert seen[-1][2] is None  # no token: nobody else's leaks into the call
        assert not client.is_closed
    assert client.is_closed


async def test_concurrent_calls_each_reach_the_app_from_their_own_browser() -> None:
    peers: list[tuple[str, Any]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(0)  # let the other calls start meanwhile
        peers.append((scope["path"], scope["client"]))
        body = repr(scope["client"]).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    api = InProcessApi(app)
    calls = [(f"203.0.113.{n}", 1000 + n) for n in range(20)]
    answers = await asyncio.gather(
        *(api.request(peer, "GET", f"/who/{n}") for n, peer in enumerate(calls))
    )
    assert [a.text for a in answers] == [repr(peer) for peer in calls]
    assert sorted(peers) == sorted((f"/who/{n}", peer) for n, peer in enumerate(calls))
    await api.aclose()
