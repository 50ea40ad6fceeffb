"""Fixtures over a real, throwaway PostgreSQL cluster. Registered in tests/conftest.py with
`pytest_plugins = [..., "tests.support.postgres_fixtures"]`.

One cluster and one migrated database serve the session; each test starts from empty tables
(DELETE of every row, about 1 ms; TRUNCATE took 20 ms and a fresh database 140 ms here). A test
that needs a database of its own (migrations from nothing) asks for `new_postgres_database`.

A test that wants the database as the platform leaves it at start-up (migrated and seeded with
the catalog) asks for `seeded_postgres_dsn`: the session builds that state once, keeps a copy of
its rows in the `seed_snapshot` schema, and each test gets them back with one batch of DELETEs
and INSERT ... SELECTs (1-5 ms, about 13 ms with the connection; `CREATE DATABASE ... TEMPLATE`
took 350-650 ms here, and seeding the emptied tables again about 30 ms).

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
from orderproc.runtime import build_runtime
from orderproc.testing import SteppingClock, test_settings
from tests.support.postgres_server import PostgresServer, PostgresServerMissing

SHARED_DATABASE = "orderproc_test"
SNAPSHOT_SCHEMA = "seed_snapshot"
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


@pytest.fixture(scope="session")
def _seed_snapshot(_shared_postgres_database: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Build the start-up state once with the real composition root (`build_runtime` migrates
    and seeds), then copy every table that has rows into `seed_snapshot`; returns the SQL that
    puts the shared database back into that state."""
    data_dir = tmp_path_factory.mktemp("postgres-seed")

    async def seed_and_snapshot() -> str:
        await _empty_tables(_shared_postgres_database)
        settings = test_settings(data_dir, database_url=_shared_postgres_database)
        runtime = await build_runtime(settings, clock=SteppingClock())
        await runtime.close()
        conn = await asyncpg.connect(_shared_postgres_database)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {SNAPSHOT_SCHEMA} CASCADE")
            await conn.execute(f"CREATE SCHEMA {SNAPSHOT_SCHEMA}")
            seeded = []
            for table in await _public_tables(conn):
                if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):
                    await conn.execute(
                        f"CREATE TABLE {SNAPSHOT_SCHEMA}.{table} AS SELECT * FROM {table}"
                    )
                    seeded.append(table)
        finally:
            await conn.close()
        assert seeded, "seeding wrote nothing: the snapshot would be an empty database"
        return "; ".join(
            f"INSERT INTO {table} OVERRIDING SYSTEM VALUE SELECT * FROM {SNAPSHOT_SCHEMA}.{table}"
            for table in seeded
        )

    return run_async(seed_and_snapshot)


@pytest.fixture
def seeded_postgres_dsn(_shared_postgres_database: str, _seed_snapshot: str) -> str:
    """The DSN of the session's database as start-up leaves it (migrated, catalog seeded), with
    no other row: what a test's own `build_runtime` would make, without making it again."""
    run_async(lambda: _empty_tables(_shared_postgres_database, then=_seed_snapshot))
    return _shared_postgres_database


async def _public_tables(conn: Any) -> list[str]:
    rows = await conn.fetch(
        "SELECT format('%I', tablename) FROM pg_tables "
        "WHERE schemaname = 'public' AND tablename <> 'schema_migrations' ORDER BY tablename"
    )
    return [row[0] for row in rows]


async def _empty_tables(dsn: str, *, then: str = "") -> None:
    """DELETE every row of every table but the migrations' own, then run `then` (SQL), in one
    round trip."""
    conn = await asyncpg.connect(dsn)
    try:
        # DELETE, not TRUNCATE: on a few rows it takes ~0.5 ms where TRUNCATE (new files for
        # every table and index) took ~20 ms here.
        deletes = [f"DELETE FROM {table}" for table in await _public_tables(conn)]
        await conn.execute("; ".join([*deletes, then] if then else deletes))
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
