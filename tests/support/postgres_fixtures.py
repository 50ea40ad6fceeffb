"""Fixtures over a real, throwaway PostgreSQL cluster. Registered in tests/conftest.py with
`pytest_plugins = [..., "tests.support.postgres_fixtures"]`.

One cluster and one migrated database serve the session; each test starts from empty tables
(DELETE of every row, about 1 ms; TRUNCATE took 20 ms and a fresh database 140 ms here). A test
that needs a database of its own (migrations from nothing) asks for `new_postgres_database`.
Missing server binaries FAIL the tests that need them, with how to install them; never a skip.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import asyncpg
import pytest

from orderproc.common.storage.postgres import PostgresStore
from tests.support.postgres_server import PostgresServer, PostgresServerMissing

SHARED_DATABASE = "orderproc_test"
T = TypeVar("T")
_numbers = itertools.count(1)


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to the end from sync code, on a loop of its own in another thread (so
    it works whether or not the caller's thread is inside a running loop)."""
    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(asyncio.run, make()).result()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One cluster for the whole session; stopped (`-m immediate`) and removed at the end."""
    try:
        server = PostgresServer()
    except PostgresServerMissing as missing:
        pytest.fail(str(missing), pytrace=False)
    with server:
        yield server


@pytest.fixture(scope="session")
def _shared_postgres_database(postgres_server: PostgresServer) -> str:
    async def create_and_migrate() -> None:
        admin = await asyncpg.connect(postgres_server.dsn())
        try:
            await admin.execute(f"CREATE DATABASE {SHARED_DATABASE}")
        finally:
            await admin.close()
        store = PostgresStore(postgres_server.dsn(SHARED_DATABASE))
        try:
            await store.migrate()
        finally:
            await store.close()

    run_async(create_and_migrate)
    return postgres_server.dsn(SHARED_DATABASE)


@pytest.fixture
def postgres_dsn(_shared_postgres_database: str) -> str:
    """The DSN of the session's migrated database, every table empty at the start of the test.
    Sync on purpose, so async fixtures can ask for it with `request.getfixturevalue`."""
    run_async(lambda: _empty_tables(_shared_postgres_database))
    return _shared_postgres_database


async def _empty_tables(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT format('%I', tablename) FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
        # DELETE, not TRUNCATE: on a few rows it takes ~0.5 ms where TRUNCATE (new files for
        # every table and index) took ~20 ms here.
        await conn.execute("; ".join(f"DELETE FROM {row[0]}" for row in tables))
    finally:
        await conn.close()


@pytest.fixture
async def new_postgres_database(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """The DSN of an empty database of this test's own (no schema), dropped afterwards."""
    name = f"orderproc_t{next(_numbers)}"
    admin = await asyncpg.connect(postgres_server.dsn())
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    yield postgres_server.dsn(name)
    admin = await asyncpg.connect(postgres_server.dsn())
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()
