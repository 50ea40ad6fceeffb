"""Fixtures that start real servers. Registered in tests/conftest.py with
`pytest_plugins = ["tests.support.fixtures"]`.

A missing `redis-server` binary FAILS the tests that need it, with a message saying how to
install it; it never skips them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from tests.support.redis_server import RedisServer, RedisServerMissing


def _new_server() -> RedisServer:
    try:
        return RedisServer()
    except RedisServerMissing as missing:
        pytest.fail(str(missing), pytrace=False)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One `redis-server` for the whole session. Do not stop it; use `private_redis_server`."""
    with _new_server() as server:
        yield server


@pytest.fixture
def private_redis_server() -> Iterator[RedisServer]:
    """A `redis-server` of this test's own, which the test may `stop()` and `start()` again
    (same port). Stopped and cleaned up afterwards, whatever happened."""
    with _new_server() as server:
        yield server


def redis_client(server: RedisServer) -> aioredis.Redis:
    """An asyncio client with short socket timeouts, so a stopped server fails fast."""
    return aioredis.Redis(
        host=server.host, port=server.port, socket_timeout=1.0, socket_connect_timeout=1.0
    )


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client of the session server over an empty database (FLUSHDB before the test)."""
    client = redis_client(redis_server)
    await client.flushdb()
    yield client
    await client.aclose()
