"""Faults answer as faults: the storage contract for a store that is full, read-only, too slow or
unreachable. Every adapter with a medium raises the `StoreUnavailable` family from the store
(never its driver's error, never a `ConcurrencyConflict`); a refused commit wrote nothing, the
group commit's units included; what was there before is intact; once the fault is gone the same
writes commit; and the edge renders each of these errors as 503 problem+json with Retry-After.

How each fault is made, for real where it can be:

- full: SQLite on a tmpfs of its own, filled by a file (SQLITE_FULL at COMMIT); PostgreSQL
  answering `disk_full` (53100), raised by a trigger on every table.
- read-only: `PRAGMA query_only` on the SQLite store's connection (SQLITE_READONLY);
  `default_transaction_read_only` on the PostgreSQL database (25006).
- too slow: another SQLite connection holding the write lock past the busy timeout
  (SQLITE_BUSY); a table locked by another PostgreSQL session past `statement_timeout` (57014).
- unreachable: a path SQLite cannot open (SQLITE_CANTOPEN); a TCP proxy in front of PostgreSQL
  that resets every connection and refuses new ones, or stalls (the client's command timeout).

The memory adapter has no medium that can fail; it is not in `FAULT_ADAPTERS`. A new adapter
joins by getting a kit in `_kit` (until then these tests fail for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
import pytest

from orderproc.common.storage.ports import Store, UnitOfWork
from orderproc.common.storage.postgres import PostgresStore
from orderproc.common.storage.sqlite import SqliteStore
from orderproc.errors import (
    ServiceUnavailable,
    StoreFull,
    StoreReadOnly,
    StoreTimeout,
    StoreUnavailable,
)
from orderproc.errors.problem import PROBLEM_JSON, render
from tests.contract.conftest import ADAPTERS
from tests.contract.test_storage import commit, make_account, make_entry
from tests.support.small_disk import Tmpfs, unavailable
from tests.support.tcp_proxy import TcpProxy

WITHOUT_MEDIUM = {"memory"}
FAULT_ADAPTERS = [adapter for adapter in ADAPTERS if adapter not in WITHOUT_MEDIUM]
USERS = ("u1", "u2", "u3", "u4")
DISK_BYTES = 4 << 20


class FaultKit(Protocol):
    @property
    def store(self) -> Store: ...

    def full(self) -> contextlib.AbstractAsyncContextManager[None]: ...
    def read_only(self) -> contextlib.AbstractAsyncContextManager[None]: ...
    def slow(self) -> contextlib.AbstractAsyncContextManager[None]: ...
    async def close(self) -> None: ...


class SqliteFaults:
    def __init__(self, path: Path, disk: Tmpfs | None) -> None:
        self.path = path
        self.disk = disk
        self.store: SqliteStore = SqliteStore(path, busy_timeout_ms=100)

    @contextlib.asynccontextmanager
    async def full(self) -> AsyncIterator[None]:
        if self.disk is None:
            unavailable(f"no small disk for the SQLite store: {Tmpfs.why_not}")
        # Checkpoint and truncate the WAL, so the next commit must grow a file; then take every
        # free page of the disk.
        with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
            conn.execute("PRAGMA busy_timeout = 2000")
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0
        assert Path(f"{self.path}-wal").stat().st_size == 0
        self.disk.fill()
        try:
            yield
        finally:
            self.disk.release()

    @contextlib.asynccontextmanager
    async def read_only(self) -> AsyncIterator[None]:
        connection = self.store._conn  # the store's own connection: a test reaching in
        connection.execute("PRAGMA query_only = ON")
        try:
            yield
        finally:
            connection.execute("PRAGMA query_only = OFF")

    @contextlib.asynccontextmanager
    async def slow(self) -> AsyncIterator[None]:
        other = sqlite3.connect(self.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # holds the write lock past the store's busy timeout
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()

    async def close(self) -> None:
        await self.store.close()


class PostgresFaults:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.database = urlsplit(dsn).path.lstrip("/")
        self.store: PostgresStore = PostgresStore(dsn)

    async def _admin(self, *statements: str) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute("SET default_transaction_read_only = off")  # read_only()'s undo
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    async def _database_setting(self, setting: str, value: str | None) -> None:
        """Set (or reset) a setting for new sessions of the database, and make the store's pool
        open new ones."""
        change = f"RESET {setting}" if value is None else f"SET {setting} = {value}"
        await self._admin(f'ALTER DATABASE "{self.database}" {change}')
        await (await self.store.pool()).expire_connections()

    @contextlib.asynccontextmanager
    async def full(self) -> AsyncIterator[None]:
        tables = await self._tables()
        await self._admin(
            "CREATE FUNCTION orderproc_test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' "
            "USING ERRCODE = 'disk_full'; END $$",
            *(
                f"CREATE TRIGGER disk_full BEFORE INSERT OR UPDATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION orderproc_test_disk_full()"
                for table in tables
            ),
        )
        try:
            yield
        finally:
            await self._admin("DROP FUNCTION orderproc_test_disk_full() CASCADE")

    async def _tables(self) -> list[str]:
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch(
                "SELECT format('%I', tablename) FROM pg_tables WHERE schemaname = 'public'"
            )
        finally:
            await conn.close()
        return [row[0] for row in rows]

    @contextlib.asynccontextmanager
    async def read_only(self) -> AsyncIterator[None]:
        await self._database_setting("default_transaction_read_only", "on")
        try:
            yield
        finally:
            await self._database_setting("default_transaction_read_only", None)

    @contextlib.asynccontextmanager
    async def slow(self) -> AsyncIterator[None]:
        holder = await asyncpg.connect(self.dsn)
        try:
            await holder.execute("BEGIN")
            await holder.execute("LOCK TABLE accounts IN EXCLUSIVE MODE")  # reads still pass
            await self._database_setting("statement_timeout", "'200ms'")
            try:
                yield
            finally:
                await self._database_setting("statement_timeout", None)
        finally:
            await holder.close()

    async def close(self) -> None:
        await self.store.close()


def _kit(adapter: str, request: pytest.FixtureRequest, tmp_path: Path) -> FaultKit:
    if adapter == "sqlite":
        disk = Tmpfs.mount(tmp_path / "disk", DISK_BYTES)
        if disk is not None:
            request.addfinalizer(disk.unmount)  # runs after the kit's store is closed
        return SqliteFaults((disk.path if disk else tmp_path) / "store.db", disk)
    if adapter == "postgres":
        return PostgresFaults(request.getfixturevalue("postgres_dsn"))
    raise AssertionError(f"no fault kit for adapter {adapter}: add one to _kit")


@pytest.fixture(params=FAULT_ADAPTERS)
async def kit(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[FaultKit]:
    made = _kit(request.param, request, tmp_path)
    try:
        await made.store.migrate()
        yield made
    finally:
        await made.close()


# --- helpers ------------------------------------------------------------------------------------


async def open_accounts(store: Store) -> None:
    """Each user with 1.00 and the ledger entry that says so."""

    def stage(uow: UnitOfWork) -> None:
        for user in USERS:
            uow.accounts.add(make_account(user, balance_cents=100))
            uow.cash_ledger.add(make_entry(f"open-{user}", user))

    await commit(store, stage)


async def deposit(store: Store, user: str, entry_id: str) -> None:
    """1.00 more: the account's conditional update and its ledger entry, one unit of work."""
    async with store.unit_of_work() as uow:
        account = await uow.accounts.get(user)
        assert account is not None
        new_balance = account.balance_cents + 100
        uow.accounts.update(
            account.evolve(balance_cents=new_balance, version=account.version + 1),
            expected_version=account.version,
        )
        uow.cash_ledger.add(make_entry(entry_id, user, balance_after_cents=new_balance))
        await uow.commit()


async def balances(store: Store) -> dict[str, tuple[int, int]]:
    """Each user's (balance, ledger sum)."""
    found = {}
    async with store.unit_of_work() as uow:
        for user in USERS:
            account = await uow.accounts.get(user)
            assert account is not None
            found[user] = (account.balance_cents, await uow.cash_ledger.sum_for_user(user))
    return found


def assert_answers_503(error: StoreUnavailable) -> None:
    """What the edge makes of it: 503 problem+json, Retry-After, the stable code, and a detail
    that says nothing of paths, addresses or the driver's words."""
    response = render(error, "/api/v1/balance/deposit")
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(error.retry_after)
    assert int(response.headers["retry-after"]) > 0
    assert response.media_type == PROBLEM_JSON
    body = orjson.loads(response.body)
    assert (body["status"], body["code"]) == (503, error.code)
    assert body["detail"] == type(error).default_detail
    assert str(error) not in body["detail"]


async def refused_with(kind: type[StoreUnavailable], store: Store, user: str, entry: str) -> None:
    with pytest.raises(StoreUnavailable) as refusal:
        await deposit(store, user, entry)
    assert isinstance(refusal.value, kind), repr(refusal.value)
    assert_answers_503(refusal.value)


async def all_refused_with(kind: type[StoreUnavailable], store: Store, tag: str) -> None:
    """One deposit per user at once: on SQLite they share one group commit."""
    outcomes = await asyncio.gather(
        *(deposit(store, user, f"{tag}-{user}") for user in USERS), return_exceptions=True
    )
    for outcome in outcomes:
        assert isinstance(outcome, kind), repr(outcome)
        assert_answers_503(outcome)


# --- the contract ------------------------------------------------------------------------------


class TestFullStore:
    async def test_every_unit_is_refused_whole_and_nothing_is_half_written(
        self, kit: FaultKit
    ) -> None:
        await open_accounts(kit.store)
        before = await balances(kit.store)
        async with kit.full():
            await refused_with(StoreFull, kit.store, "u1", "full-alone")
            await all_refused_with(StoreFull, kit.store, "full-together")
            assert await balances(kit.store) == before  # reads still answer
        assert await balances(kit.store) == before

    async def test_once_space_is_back_the_same_writes_commit(self, kit: FaultKit) -> None:
        await open_accounts(kit.store)
        async with kit.full():
            await all_refused_with(StoreFull, kit.store, "retry")
        await asyncio.gather(*(deposit(kit.store, user, f"retry-{user}") for user in USERS))
        assert await balances(kit.store) == {user: (200, 200) for user in USERS}


class TestReadOnlyStore:
    async def test_writes_are_refused_reads_answer_and_writes_resume(self, kit: FaultKit) -> None:
        await open_accounts(kit.store)
        before = await balances(kit.store)
        async with kit.read_only():
            await refused_with(StoreReadOnly, kit.store, "u1", "ro-alone")
            await all_refused_with(StoreReadOnly, kit.store, "ro-together")
            assert await balances(kit.store) == before
        await deposit(kit.store, "u1", "ro-after")
        assert (await balances(kit.store))["u1"] == (200, 200)


class TestSlowStore:
    async def test_a_write_that_waits_too_long_times_out_and_writes_nothing(
        self, kit: FaultKit
    ) -> None:
        await open_accounts(kit.store)
        before = await balances(kit.store)
        async with kit.slow():
            await refused_with(StoreTimeout, kit.store, "u1", "slow-alone")
        assert await balances(kit.store) == before
        await deposit(kit.store, "u1", "slow-after")
        assert (await balances(kit.store))["u1"] == (200, 200)


class TestUnreachableSqlite:
    async def test_a_file_sqlite_cannot_open_is_store_unavailable(self, tmp_path: Path) -> None:
        with pytest.raises(StoreUnavailable) as refusal:
            SqliteStore(tmp_path)  # a directory
        assert type(refusal.value) is StoreUnavailable
        assert "SQLITE_CANTOPEN" in str(refusal.value)
        assert str(tmp_path) in str(refusal.value)
        assert_answers_503(refusal.value)


@pytest.fixture
async def proxy(postgres_dsn: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A proxy in front of the test database, and the DSN that goes through it."""
    parts = urlsplit(postgres_dsn)
    assert parts.hostname is not None
    assert parts.port is not None
    started = await TcpProxy(parts.hostname, parts.port).start()
    user = f"{parts.username}@" if parts.username else ""
    through = urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{started.port}"))
    yield started, through
    await started.close()


class TestUnreachablePostgres:
    async def test_a_lost_server_is_store_unavailable_until_it_is_back(
        self, proxy: tuple[TcpProxy, str]
    ) -> None:
        tcp, dsn = proxy
        store = PostgresStore(dsn)
        try:
            await open_accounts(store)
            before = await balances(store)
            await tcp.cut()
            with pytest.raises(StoreUnavailable) as lost:
                await balances(store)
            assert_answers_503(lost.value)
            with pytest.raises(StoreUnavailable) as refused:
                await commit(store, lambda uow: uow.cash_ledger.add(make_entry("lost")))
            assert_answers_503(refused.value)
            with pytest.raises(StoreUnavailable):
                await store.ping()
            await tcp.restore()
            assert await balances(store) == before
            await deposit(store, "u1", "back")
            assert (await balances(store))["u1"] == (200, 200)
        finally:
            await store.close()

    async def test_a_server_that_stops_answering_times_out(
        self, proxy: tuple[TcpProxy, str]
    ) -> None:
        tcp, dsn = proxy
        # Connections opened before the stall (a new one would wait for the connect time-out).
        store = PostgresStore(dsn, min_size=4, command_timeout=0.3)
        try:
            await open_accounts(store)
            tcp.stall()
            clock = asyncio.get_running_loop().time
            started = clock()
            with pytest.raises(StoreTimeout) as slow_read:
                await balances(store)
            assert_answers_503(slow_read.value)
            with pytest.raises(StoreTimeout) as slow_write:  # a commit alone, without a read
                await commit(store, lambda uow: uow.cash_ledger.add(make_entry("stalled")))
            assert_answers_503(slow_write.value)
            assert clock() - started < 3
        finally:
            await tcp.cut()  # the stalled connections go; the store must not hang closing
            await asyncio.wait_for(store.close(), 10)


def test_every_store_fault_is_a_503_with_retry_after() -> None:
    for kind in (StoreUnavailable, StoreFull, StoreReadOnly, StoreTimeout):
        assert issubclass(kind, ServiceUnavailable)
        assert_answers_503(kind(f"{kind.__name__}: /srv/data/orderproc.db, db.internal:5432"))
