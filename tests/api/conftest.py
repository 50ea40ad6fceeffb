"""Fixtures of the API tests: each test gets its own runtime and ASGI client over a database as
start-up leaves it (migrated, catalog seeded). The session builds that database once per store
with `build_runtime`; each test gets a file copy of it (SQLite) or its rows restored
(PostgreSQL, `seeded_postgres_dsn`), so the test's own `build_runtime` finds nothing to migrate
or seed.

Which stores a test runs on. A test that exercises what the store does (money movements and
their ledgers, orders and positions, paging and filters over stored rows, uniqueness,
idempotency records, revocations and audit rows that must persist) is marked
`@pytest.mark.every_store` and runs on SQLite and on PostgreSQL. Every other API test
(validation 422s, auth headers, rate limits and login blocking, OpenAPI and docs, security
headers, catalog reads served from memory) would run the same code twice, so it runs once, on
SQLite. When in doubt whether a test depends on the store, mark it.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderproc.common.settings import Settings
from orderproc.gateway.app import create_app
from orderproc.runtime import Runtime, build_runtime
from orderproc.testing import SteppingClock, test_settings
from tests.support.postgres_fixtures import run_async

Client = httpx.AsyncClient
Auth = dict[str, str]
STORES = ("sqlite", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "every_store: an API test of store behaviour; runs on SQLite and PostgreSQL"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize `backend`: both stores for `every_store` tests, SQLite alone for the rest
    (see the module docstring)."""
    if "backend" in metafunc.fixturenames:
        every_store = metafunc.definition.get_closest_marker("every_store") is not None
        stores = STORES if every_store else STORES[:1]
        metafunc.parametrize("backend", stores, indirect=True)


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The store of this test, parametrized by `pytest_generate_tests`."""
    return str(request.param)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file as start-up leaves it, built once by the real composition root, its WAL
    folded in (journal_mode DELETE) so it is one file that a plain copy reproduces; the store
    turns WAL on again when it opens the copy."""
    data_dir = tmp_path_factory.mktemp("sqlite-template")

    async def build() -> None:
        runtime = await build_runtime(test_settings(data_dir), clock=SteppingClock())
        await runtime.close()

    run_async(build)
    template = data_dir / "test.db"
    with closing(sqlite3.connect(template)) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")
    return template


@pytest.fixture
def settings(
    tmp_path: Path, settings_overrides: dict[str, Any], backend: str, request: pytest.FixtureRequest
) -> Settings:
    """Test settings over this test's own database, already migrated and seeded, so the
    `runtime`'s migrate and seed find nothing to do."""
    overrides = dict(settings_overrides)
    if "database_url" not in overrides:
        if backend == "postgres":
            overrides["database_url"] = request.getfixturevalue("seeded_postgres_dsn")
        else:
            database = tmp_path / "test.db"
            # A file copy (0.3 ms) rather than SQLite's backup API (2 ms, and an fsync).
            shutil.copyfile(request.getfixturevalue("sqlite_template"), database)
            overrides["database_url"] = f"sqlite:///{database}"
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
