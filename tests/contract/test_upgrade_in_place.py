"""Migrations upgrade in place: every database an earlier version of the code wrote (frozen under
tests/fixtures/db/ by tests/fixtures/make_fixture_dbs.py) opens, migrates to the latest version
with every row intact, and takes a normal write afterwards; migrating twice changes nothing; and
processes migrating one fresh database at once end with one correct schema.

Rows are compared through the store's read APIs against `make_fixture_dbs.ROWS` (what was
written), so the check survives a redesign of the tables behind those APIs. A fixture of an older
version holds the rows of the tables it had (`rows_at`); the tables added since must come out of
the upgrade empty, and take the rest of `ROWS` afterwards.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from orderproc.common.storage.factory import open_store
from orderproc.common.storage.ports import Store
from orderproc.common.storage.postgres import PostgresStore
from orderproc.common.storage.records import AssetEntry, AuditEvent, CashEntry
from orderproc.common.storage.schema import SCHEMA_VERSION
from orderproc.common.storage.sqlite import SqliteStore
from orderproc.inventory.domain import load_snapshot
from orderproc.inventory.service import seed_catalog
from tests.fixtures.make_fixture_dbs import (
    DB_DIR,
    POOR,
    RICH,
    ROWS,
    TABLES_SINCE,
    Rows,
    rows_at,
    write_rows,
)

# Each database records the versions it went through; a fresh one only the latest.
SQLITE_LATEST = POSTGRES_LATEST = [SCHEMA_VERSION]
SQLITE_FIXTURES = sorted(DB_DIR.glob("sqlite-v*.sql"))
POSTGRES_FIXTURES = sorted(DB_DIR.glob("postgres-v*.sql"))
MIGRATING_AT_ONCE = 4
# The PostgreSQL store first shipped (fd4ba28) with migrations 1 and 2 together: no PostgreSQL
# database was ever left at version 1, so there is no postgres-v1 fixture.
POSTGRES_FIRST_VERSION = 2


def test_there_are_fixtures_for_both_stores() -> None:
    assert SQLITE_FIXTURES
    assert POSTGRES_FIXTURES
    for fixture in (*SQLITE_FIXTURES, *POSTGRES_FIXTURES):
        assert fixture.stat().st_size < 1_000_000, fixture


def test_every_version_in_the_field_has_a_fixture() -> None:
    versions = list(range(1, SCHEMA_VERSION + 1))
    assert [_version(f) for f in SQLITE_FIXTURES] == versions
    assert [_version(f) for f in POSTGRES_FIXTURES] == versions[POSTGRES_FIRST_VERSION - 1 :]


def _after_upgrade(before: list[int]) -> list[int]:
    """What `schema_migrations` holds once a database that held `before` is upgraded (from 4 on,
    a fresh database records only its own version, so a fixture's list may start past 1)."""
    return [*before, SCHEMA_VERSION] if before[-1] < SCHEMA_VERSION else before


def _version(fixture: Path) -> int:
    found = re.search(r"-v(\d+)\.sql$", fixture.name)
    assert found, fixture
    return int(found.group(1))


# --- what every upgraded store must still show ----------------------------------------------

T = TypeVar("T", CashEntry, AssetEntry, AuditEvent)


def newest_first(written: Sequence[T]) -> list[T]:
    """As the lists show rows: newest first, a tie by the later insert first (the insertion
    order the fixture must keep: SQLite's rowid, PostgreSQL's `seq`)."""
    return list(reversed(sorted(written, key=lambda e: e.created_at)))


async def assert_rows_intact(store: Store, rows: Rows = ROWS) -> None:
    far_past = datetime(2000, 1, 1, tzinfo=UTC)
    async with store.unit_of_work() as uow:
        for user in rows.users:
            assert await uow.users.get(user.user_id) == user
        assert [u.user_id for u in await uow.users.active_admins()] == ["u-admin-0001"]
        for account in rows.accounts:
            assert await uow.accounts.get(account.user_id) == account
        for user in rows.users:
            cash = await uow.cash_ledger.list_for_user(user.user_id, limit=100)
            mine = [e for e in rows.cash_ledger if e.user_id == user.user_id]
            assert cash.items == newest_first(mine)
            assets = await uow.asset_ledger.list_for_user(user.user_id, limit=100)
            held = [e for e in rows.asset_ledger if e.user_id == user.user_id]
            assert assets.items == newest_first(held)
        for limit in rows.daily_limits:
            used = await uow.daily_limits.used(limit.user_id, limit.day, limit.kind)  # type: ignore[arg-type]
            assert used == limit.used_cents
        for record in rows.idempotency:
            assert await uow.idempotency.get(record.user_id, record.key, now=far_past) == record
        for revocation in rows.revocations:
            assert await uow.revocations.is_revoked(revocation.jti)
        assert not await uow.revocations.is_revoked("jti-never")
        audit = await uow.audit.list(limit=100)
        assert audit.items == newest_first(rows.audit)
        ticked = {price.asset_id: price for price in rows.prices}
        wanted = []
        for asset in rows.assets:
            tick = ticked.get(asset.asset_id)
            if tick is not None and tick.updated_at > asset.price_updated_at:  # the newer wins
                asset = asset.evolve(price=tick.price, price_updated_at=tick.updated_at)
            stored = await uow.assets.get(asset.asset_id)
            assert stored == asset
            assert stored is not None
            assert str(stored.price) == str(asset.price)
            wanted.append(asset)
        assert await uow.assets.list_all() == sorted(wanted, key=lambda a: a.asset_id)
        for candle in rows.candles:
            listed = await uow.candles.list(candle.asset_id, candle.interval, limit=10)
            assert candle in listed
        for order in rows.orders:
            assert await uow.orders.get(order.order_id) == order
        for position in rows.positions:
            assert await uow.positions.get(position.user_id, position.asset_id) == position


async def later_tables_empty_then_writable(store: Store, version: int) -> None:
    """The tables added after `version` exist, empty, after the upgrade; the rows of `ROWS` the
    fixture could not hold go in through the store, and then all of `ROWS` reads back."""
    later = Rows(**{
        name: getattr(ROWS, name) if since > version else ()
        for name, since in TABLES_SINCE.items()
    })  # fmt: skip
    async with store.unit_of_work() as uow:
        if later.assets:
            assert await uow.assets.list_all() == []
        for candle in later.candles:
            assert await uow.candles.list(candle.asset_id, candle.interval, limit=10) == []
        for user in ROWS.users:
            if later.orders:
                assert (await uow.orders.list_for_user(user.user_id, limit=100)).items == []
            if later.positions:
                assert await uow.positions.list_for_user(user.user_id) == []
            if later.asset_ledger:
                assert (await uow.asset_ledger.list_for_user(user.user_id, limit=100)).items == []
    await write_rows(store, later)
    kept = rows_at(version)  # the rows the fixture held, as it held them (no later columns)
    await assert_rows_intact(store, Rows(**{
        name: getattr(ROWS if since > version else kept, name)
        for name, since in TABLES_SINCE.items()
    }))  # fmt: skip


async def deposit_works(store: Store) -> None:
    """A deposit as the use case stages it: account and ledger in one unit of work."""
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    async with store.unit_of_work() as uow:
        account = await uow.accounts.get(POOR)
        assert account is not None
        uow.accounts.update(
            account.evolve(
                balance_cents=account.balance_cents + 99,
                version=account.version + 1,
                updated_at=now,
            ),
            expected_version=account.version,
        )
        uow.cash_ledger.add(
            CashEntry("c-after-upgrade", POOR, "deposit", 99, account.balance_cents + 99, None, now)
        )
        await uow.commit()
    async with store.unit_of_work() as uow:
        after = await uow.accounts.get(POOR)
        assert after is not None
        assert after.balance_cents == account.balance_cents + 99
        newest = (await uow.cash_ledger.list_for_user(POOR, limit=1)).items
        assert [e.entry_id for e in newest] == ["c-after-upgrade"]
        assert await uow.cash_ledger.sum_for_user(POOR) == 1 + 99
        rich = await uow.accounts.get(RICH)
        assert rich is not None
        assert rich.balance_cents == 100_000_000


# --- SQLite --------------------------------------------------------------------------------


def load_sqlite(fixture: Path, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.executescript(fixture.read_text())
    finally:
        conn.close()


def sqlite_snapshot(path: Path) -> dict[str, Any]:
    """Schema and every row of every table. The schema as SQLite describes it: each table's
    columns (name, type, NOT NULL, key) and whether it has a rowid, each index's SQL
    (whitespace-normalized); not a table's CREATE text, which keeps the spelling of whichever
    code created it (an upgraded table was written by an older release)."""
    conn = sqlite3.connect(path)
    try:
        master = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY 2")
        schema: list[Any] = []
        for kind, name, table, sql in master.fetchall():
            if kind == "table":
                # (name, type, NOT NULL, key); a key column counts as NOT NULL whatever its
                # CREATE said: releases before 4 left it off single-column keys of rowid
                # tables, where SQLite lets a NULL in, and no release ever wrote one there.
                columns = sorted(
                    (c[1], c[2], c[3] or c[5] > 0, c[5])
                    for c in conn.execute(f'PRAGMA table_info("{name}")')
                )
                rowid = "WITHOUT ROWID" not in sql
                schema.append((kind, name, columns, rowid))
            else:
                schema.append((kind, name, table, " ".join((sql or "").split())))
        tables = [entry[1] for entry in schema if entry[0] == "table"]
        rows = {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables}
    finally:
        conn.close()
    return {"schema": schema, "rows": rows}


async def _fresh_sqlite(path: Path) -> None:
    store = SqliteStore(path)
    try:
        await store.migrate()
    finally:
        await store.close()


@pytest.mark.parametrize("fixture", SQLITE_FIXTURES, ids=lambda p: p.name)
async def test_sqlite_fixture_upgrades_in_place(fixture: Path, tmp_path: Path) -> None:
    path = tmp_path / "upgraded.db"
    load_sqlite(fixture, path)
    store = SqliteStore(path)
    try:
        before = store.applied_versions()
        assert max(before) == _version(fixture)
        await store.migrate()
        assert store.applied_versions() == _after_upgrade(before)
        await assert_rows_intact(store, rows_at(_version(fixture)))
        await later_tables_empty_then_writable(store, _version(fixture))
    finally:
        await store.close()
    # The upgraded schema is the one a fresh database gets.
    await _fresh_sqlite(tmp_path / "fresh.db")
    assert sqlite_snapshot(path)["schema"] == sqlite_snapshot(tmp_path / "fresh.db")["schema"]
    store = SqliteStore(path)  # and it opens again, and writes
    try:
        await deposit_works(store)
    finally:
        await store.close()


@pytest.mark.parametrize("fixture", SQLITE_FIXTURES, ids=lambda p: p.name)
async def test_sqlite_migrating_twice_is_a_no_op(fixture: Path, tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    load_sqlite(fixture, path)
    await _fresh_sqlite(path)  # the upgrade
    once = sqlite_snapshot(path)
    await _fresh_sqlite(path)
    assert sqlite_snapshot(path) == once


def test_sqlite_processes_migrating_at_once_agree(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _migrate_at_once(["--data-dir", str(data_dir)], env={})
    path = data_dir / "orderproc.db"
    conn = sqlite3.connect(path)
    try:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations")]
    finally:
        conn.close()
    assert sorted(versions) == SQLITE_LATEST  # each applied once
    reference = tmp_path / "reference.db"
    asyncio.run(_fresh_sqlite(reference))
    assert sqlite_snapshot(path)["schema"] == sqlite_snapshot(reference)["schema"]


def _migrate_at_once(args: list[str], env: dict[str, str]) -> None:
    """`orderproc migrate` in several processes started together; every one must succeed."""
    environment = {**os.environ, **env}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "orderproc.cli", "migrate", *args],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(MIGRATING_AT_ONCE)
    ]
    for run in runs:
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
        assert out.strip() == "schema is up to date"


# --- PostgreSQL ----------------------------------------------------------------------------


async def load_postgres(fixture: Path, dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(fixture.read_text())  # a plain dump: one simple-protocol batch
    finally:
        await conn.close()


SCHEMA_QUERIES = {
    "columns": "SELECT table_name, column_name, data_type, numeric_precision, numeric_scale, "
    "is_nullable, is_identity, column_default FROM information_schema.columns "
    "WHERE table_schema = 'public' ORDER BY table_name, column_name",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes "
    "WHERE schemaname = 'public' ORDER BY tablename, indexname",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
    "FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2",
}


async def postgres_snapshot(dsn: str, *, with_rows: bool = True) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        shot: dict[str, Any] = {
            name: [tuple(r) for r in await conn.fetch(sql)] for name, sql in SCHEMA_QUERIES.items()
        }
        if with_rows:
            tables = await conn.fetch(
                "SELECT format('%I', tablename) FROM pg_tables WHERE schemaname = 'public' "
                "ORDER BY tablename"
            )
            shot["rows"] = {
                t: sorted(tuple(map(str, r)) for r in await conn.fetch(f"SELECT * FROM {t}"))
                for (t,) in tables
            }
    finally:
        await conn.close()
    return shot


@pytest.mark.parametrize("fixture", POSTGRES_FIXTURES, ids=lambda p: p.name)
async def test_postgres_fixture_upgrades_in_place(
    fixture: Path, new_postgres_database: str, postgres_dsn: str
) -> None:
    await load_postgres(fixture, new_postgres_database)
    store = PostgresStore(new_postgres_database)
    try:
        before = await store.applied_versions()
        assert max(before) == _version(fixture)
        await store.migrate()
        assert await store.applied_versions() == _after_upgrade(before)
        await assert_rows_intact(store, rows_at(_version(fixture)))
        await later_tables_empty_then_writable(store, _version(fixture))
        await deposit_works(store)
    finally:
        await store.close()
    # The upgraded schema is the one a fresh database gets (the session's, migrated once).
    upgraded = await postgres_snapshot(new_postgres_database, with_rows=False)
    assert upgraded == await postgres_snapshot(postgres_dsn, with_rows=False)


@pytest.mark.parametrize("fixture", POSTGRES_FIXTURES, ids=lambda p: p.name)
async def test_postgres_migrating_twice_is_a_no_op(
    fixture: Path, new_postgres_database: str
) -> None:
    await load_postgres(fixture, new_postgres_database)
    store = PostgresStore(new_postgres_database)
    try:
        await store.migrate()
        once = await postgres_snapshot(new_postgres_database)
        await store.migrate()
        assert await postgres_snapshot(new_postgres_database) == once
    finally:
        await store.close()


async def test_postgres_processes_migrating_at_once_agree(
    new_postgres_database: str, postgres_dsn: str, tmp_path: Path
) -> None:
    env = {"ORDERPROC_DATABASE_URL": new_postgres_database}
    await asyncio.to_thread(_migrate_at_once, ["--data-dir", str(tmp_path)], env)
    store = PostgresStore(new_postgres_database)
    try:
        assert await store.applied_versions() == POSTGRES_LATEST
    finally:
        await store.close()
    migrated = await postgres_snapshot(new_postgres_database, with_rows=False)
    assert migrated == await postgres_snapshot(postgres_dsn, with_rows=False)


@pytest.mark.parametrize("fixture", POSTGRES_FIXTURES, ids=lambda p: p.name)
async def test_postgres_migrate_status_shows_the_fixture_version(
    fixture: Path, new_postgres_database: str, tmp_path: Path
) -> None:
    await load_postgres(fixture, new_postgres_database)
    shown = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "orderproc.cli", "migrate", "--status", "--data-dir", str(tmp_path)],
        env={**os.environ, "ORDERPROC_DATABASE_URL": new_postgres_database},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("store: postgresql 127.0.0.1:")
    assert lines[1] == f"current version: {_version(fixture)}"
    assert lines[2] == f"latest version: {SCHEMA_VERSION}"
    pending = f"upgrade {_version(fixture)} -> {SCHEMA_VERSION}"
    assert lines[3] == f"pending: {pending if _version(fixture) < SCHEMA_VERSION else 'none'}"
    assert "postgres@" not in shown.stdout  # never the credentials


# --- migrating at once, released together --------------------------------------------------
# Started as commands, the processes above mostly migrate one after another (start-up takes far
# longer than the migrations). Here each opens its store, then all wait at a barrier and
# migrate at the same instant, so the check-and-apply of each migration really does race.

RACERS = 8


def _migrate_at_the_barrier(database_url: str, barrier: Any, failures: Any) -> None:
    async def run() -> None:
        store = open_store(database_url)
        try:
            if isinstance(store, PostgresStore):
                await store.pool()
            barrier.wait(timeout=30)
            await store.migrate()
        finally:
            await store.close()

    try:
        asyncio.run(run())
    except BaseException as error:
        failures.put(repr(error))
        raise


def _race(database_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(RACERS)
    failures = context.Queue()
    racers = [
        context.Process(target=_migrate_at_the_barrier, args=(database_url, barrier, failures))
        for _ in range(RACERS)
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=60)
    errors = [failures.get() for _ in range(failures.qsize())] if not failures.empty() else []
    assert errors == []
    assert [racer.exitcode for racer in racers] == [0] * RACERS


def test_sqlite_migrations_released_together_apply_once(tmp_path: Path) -> None:
    path = tmp_path / "raced.db"
    _race(f"sqlite:///{path}")
    conn = sqlite3.connect(path)
    try:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations")]
    finally:
        conn.close()
    assert sorted(versions) == SQLITE_LATEST
    asyncio.run(_fresh_sqlite(tmp_path / "reference.db"))
    assert sqlite_snapshot(path)["schema"] == sqlite_snapshot(tmp_path / "reference.db")["schema"]


async def test_postgres_migrations_released_together_apply_once(
    new_postgres_database: str, postgres_dsn: str
) -> None:
    await asyncio.to_thread(_race, new_postgres_database)
    store = PostgresStore(new_postgres_database)
    try:
        assert await store.applied_versions() == POSTGRES_LATEST
    finally:
        await store.close()
    raced = await postgres_snapshot(new_postgres_database, with_rows=False)
    assert raced == await postgres_snapshot(postgres_dsn, with_rows=False)


async def test_postgres_processes_seeding_the_catalog_at_once_agree(postgres_dsn: str) -> None:
    """Several inventory processes starting together each seed the catalog: the ones that lose
    the race read again and add nothing; every asset is there once."""
    stores = [PostgresStore(postgres_dsn) for _ in range(3)]
    try:
        added = await asyncio.gather(*(seed_catalog(store) for store in stores))
        async with stores[0].unit_of_work() as uow:
            ids = [record.asset_id for record in await uow.assets.list_all()]
    finally:
        for store in stores:
            await store.close()
    assert sum(added) == len(load_snapshot()) == len(ids) == len(set(ids))
