"""Two apps over one database and one real Redis, as two processes of the platform are: a
logout through one is refused at once by the other, failed logins through both add up to one
block, and the rate limit is counted once for both (common/redis_shared.py, wired by the
composition roots when `ORDERPROC_REDIS_URL` is set)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from orderproc.common.redis_shared import RedisLoginThrottle, RedisRateLimiter
from orderproc.common.settings import Settings
from orderproc.gateway.app import create_app
from orderproc.runtime import Runtime, build_runtime
from orderproc.testing import SteppingClock
from tests.api.conftest import user_body
from tests.support.redis_server import RedisServer

PASSWORD = "correct horse battery staple"
ADDRESS = "198.51.100.66"


@pytest.fixture
def settings_overrides(redis_server: RedisServer, redis: aioredis.Redis) -> dict[str, Any]:
    return {
        "redis_url": redis_server.url,
        "redis_timeout_seconds": 1.0,  # a busy machine's first call is no outage
        "rate_limit_enabled": True,
        "rate_limit_per_minute": 10,
        "price_feed": "off",
    }


@pytest.fixture
async def other_runtime(settings: Settings, clock: SteppingClock) -> AsyncIterator[Runtime]:
    """A second process's runtime: same database, same Redis, its own memory."""
    runtime = await build_runtime(settings, clock=clock)
    yield runtime
    await runtime.close()


def client_of(runtime: Runtime) -> httpx.AsyncClient:
    app = create_app(runtime.settings, runtime=runtime)
    transport = httpx.ASGITransport(app=app, client=(ADDRESS, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.fixture
async def clients(
    runtime: Runtime, other_runtime: Runtime
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with client_of(runtime) as a, client_of(other_runtime) as b:
        yield a, b


async def login(client: httpx.AsyncClient, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"username": "alice", "password": password})


async def test_the_composition_roots_use_redis(runtime: Runtime) -> None:
    assert isinstance(runtime.login_throttle, RedisLoginThrottle)
    assert isinstance(runtime.rate_limiter, RedisRateLimiter)
    assert b'orderproc_circuit_breaker_state{breaker="redis_revocation"} 0.0' in (
        runtime.metrics.render()
    )


async def test_a_logout_through_one_is_refused_at_once_by_the_other(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = clients
    assert (await a.post("/api/v1/auth/register", json=user_body("alice"))).status_code == 201
    token = (await login(a)).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert (await b.get("/api/v1/auth/profile", headers=auth)).status_code == 200  # cached good
    assert (await a.post("/api/v1/auth/logout", headers=auth)).status_code == 200
    refused = await b.get("/api/v1/auth/profile", headers=auth)
    assert refused.status_code == 401
    assert refused.json()["code"] == "TOKEN_REVOKED"


async def test_failed_logins_through_both_add_up_to_one_block(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = clients
    assert (await a.post("/api/v1/auth/register", json=user_body("alice"))).status_code == 201
    answers = [(await login((a, b)[n % 2], f"wrong {n}")).status_code for n in range(5)]
    assert answers == [401] * 5
    for client in (a, b):
        refused = await login(client)
        assert refused.status_code == 429
        assert refused.json()["code"] == "LOGIN_THROTTLED"


async def test_the_rate_limit_counts_both(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = clients
    answers = [(await (a, b)[n % 2].get("/api/v1/inventory/assets")) for n in range(11)]
    assert [answer.status_code for answer in answers] == [200] * 10 + [429]
    assert [answer.headers["x-ratelimit-remaining"] for answer in answers[:3]] == ["9", "8", "7"]
