"""Web UI sessions in Redis (webui/session.py): two apps over one database and one real Redis,
as two web UI replicas are, and the second also stands for a restart: a browser signed in
through one is signed in on the other, a logout through either ends the session everywhere,
and Redis holds each session under a hashed key that expires with it."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from orderproc.common.settings import Settings
from orderproc.gateway.app import create_app
from orderproc.runtime import Runtime, build_runtime
from orderproc.testing import SteppingClock
from tests.api.conftest import user_body
from tests.support.redis_server import RedisServer

PASSWORD = "correct horse battery staple"
HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


def hidden_fields(html: str, action: str) -> dict[str, str]:
    start = html.index(f'action="{action}"')
    return dict(HIDDEN.findall(html[start : html.index("</form>", start)]))


@pytest.fixture
def settings_overrides(redis_server: RedisServer, redis: aioredis.Redis) -> dict[str, Any]:
    return {"redis_url": redis_server.url, "redis_timeout_seconds": 1.0, "price_feed": "off"}


@pytest.fixture
async def other_runtime(settings: Settings, clock: SteppingClock) -> AsyncIterator[Runtime]:
    runtime = await build_runtime(settings, clock=clock)
    yield runtime
    await runtime.close()


def browser(runtime: Runtime, cookies: httpx.Cookies | None = None) -> httpx.AsyncClient:
    app = create_app(runtime.settings, runtime=runtime)
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test", cookies=cookies)


async def sign_in(client: httpx.AsyncClient) -> None:
    register = await client.post("/api/v1/auth/register", json=user_body("alice"))
    assert register.status_code == 201
    form = hidden_fields((await client.get("/login")).text, "/login")
    answer = await client.post("/login", data={**form, "username": "alice", "password": PASSWORD})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/portfolio"


async def test_a_session_made_on_one_replica_works_on_the_other_and_a_logout_ends_it(
    runtime: Runtime, other_runtime: Runtime, redis: aioredis.Redis
) -> None:
    async with browser(runtime) as a:
        await sign_in(a)
        sid = a.cookies["op_session"]
        async with browser(other_runtime, a.cookies) as b:
            page = await b.get("/portfolio")
            assert page.status_code == 200
            assert "alice" in page.text
            key = b"orderproc:session:" + hashlib.sha256(sid.encode()).hexdigest().encode()
            assert await redis.exists(key) == 1
            assert 0 < await redis.pttl(key) <= 3600 * 1000
            assert sid.encode() not in b"".join(await redis.keys("orderproc:session:*"))

            form = hidden_fields(page.text, "/logout")
            assert (await b.post("/logout", data=form)).status_code == 303
            assert await redis.exists(key) == 0
        async with browser(runtime, httpx.Cookies({"op_session": sid})) as again:
            stale = await again.get("/portfolio")
        assert stale.status_code == 303
        assert stale.headers["location"].startswith("/login")


async def test_a_flash_set_on_one_replica_shows_once_on_the_other(
    runtime: Runtime, other_runtime: Runtime
) -> None:
    async with browser(runtime) as a:
        await sign_in(a)
        form = hidden_fields((await a.get("/portfolio")).text, "/logout")
        assert (await a.post("/logout", data=form)).status_code == 303
        async with browser(other_runtime, a.cookies) as b:
            assert "You are logged out." in (await b.get("/login")).text
            assert "You are logged out." not in (await b.get("/login")).text


async def test_a_forged_or_unknown_session_id_gets_a_fresh_anonymous_session(
    runtime: Runtime,
) -> None:
    async with browser(runtime, httpx.Cookies({"op_session": "forged-" + "x" * 40})) as a:
        page = await a.get("/portfolio")
        assert page.status_code == 303
        assert page.headers["location"].startswith("/login")
        (fresh,) = [c for c in page.headers.get_list("set-cookie") if c.startswith("op_session=")]
        assert not fresh.startswith("op_session=forged-")
        assert "HttpOnly" in fresh
