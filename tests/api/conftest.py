from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderproc.common.settings import Settings
from orderproc.gateway.app import create_app
from orderproc.runtime import Runtime, build_runtime
from orderproc.testing import SteppingClock, test_settings

Client = httpx.AsyncClient
Auth = dict[str, str]


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every API test runs on each production store."""
    return str(request.param)


@pytest.fixture
def settings(
    tmp_path: Path, settings_overrides: dict[str, Any], backend: str, request: pytest.FixtureRequest
) -> Settings:
    overrides = dict(settings_overrides)
    if backend == "postgres":
        overrides["database_url"] = request.getfixturevalue("postgres_dsn")
    return test_settings(tmp_path, **overrides)


@pytest.fixture
async def runtime(settings: Settings, clock: SteppingClock) -> AsyncIterator[Runtime]:
    runtime = await build_runtime(settings, clock=clock)
    yield runtime
    await runtime.close()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[Client]:
    app = create_app(runtime.settings, runtime=runtime)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def user_body(username: str, **extra: Any) -> dict[str, Any]:
    return {
        "username": username,
        "email": f"{username}@example.com",
        "password": "correct horse battery staple",
        "first_name": "Ada",
        "last_name": "Lovelace",
        **extra,
    }


@pytest.fixture
def signup(client: Client) -> Callable[..., Awaitable[Auth]]:
    """Register and log in a user; returns Authorization headers."""

    async def make(username: str = "alice", **extra: Any) -> Auth:
        body = user_body(username, **extra)
        response = await client.post("/api/v1/auth/register", json=body)
        assert response.status_code == 201, response.text
        login = await client.post(
            "/api/v1/auth/login", json={"username": username, "password": body["password"]}
        )
        assert login.status_code == 200, login.text
        return {"Authorization": f"Bearer {login.json()['access_token']}"}

    return make


@pytest.fixture
async def alice(signup: Callable[..., Awaitable[Auth]]) -> Auth:
    return await signup("alice")
