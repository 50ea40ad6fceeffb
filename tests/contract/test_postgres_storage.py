"""What only the PostgreSQL adapter has: concurrent units of work on real connections, schema
upgrades and concurrent migrations, URL selection, and one clear error when unreachable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from orderproc.common.storage.factory import open_store
from orderproc.common.storage.ports import StoreUnavailable, UnitOfWork
from orderproc.common.storage.postgres import PostgresStore
from orderproc.common.storage.schema import SCHEMA_VERSION
from orderproc.errors import ConcurrencyConflict
from tests.contract.test_storage import (
    commit,
    make_account,
    make_entry,
)
from tests.support.redis_server import free_loopback_port


@pytest.fixture
async def two_stores(postgres_dsn: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores over the same (empty, migrated) database: two pools, like two processes."""
    first, second = PostgresStore(postgres_dsn), PostgresStore(postgres_dsn)
    yield first, second
    await first.close()
    await second.close()


async def _commits(uow: UnitOfWork) -> bool:
    try:
        await uow.commit()
    except ConcurrencyConflict:
        return False
    return True


class TestConcurrentUnitsOfWork:
    async def test_two_units_on_one_account_cannot_both_commit(
        self, two_stores: tuple[PostgresStore, PostgresStore]
    ) -> None:
        first = two_stores[0]
        await commit(first, lambda uow: uow.accounts.add(make_account(balance_cents=100)))
        units = []
        for n, store in enumerate(two_stores, start=1):
            uow = store.unit_of_work()
            account = await uow.accounts.get("u1")
            assert account is not None
            # Both read version 1 and both spend the whole balance.
            uow.accounts.update(account.evolve(balance_cents=0, version=2), expected_version=1)
            uow.cash_ledger.add(make_entry(f"e{n}", kind="withdraw", amount_cents=-100))
            units.append(uow)

        outcomes = await asyncio.gather(*(_commits(uow) for uow in units))

        assert sorted(outcomes) == [False, True]
        async with first.unit_of_work() as uow:
            assert await uow.accounts.get("u1") == make_account(balance_cents=0, version=2)
            assert await uow.cash_ledger.sum_for_user("u1") == -100

    async def test_crossed_updates_commit_one_and_refuse_the_other(
        self, two_stores: tuple[PostgresStore, PostgresStore]
    ) -> None:
        # Opposite lock orders: PostgreSQL breaks the deadlock (40P01) or a version check
        # fails; either way exactly one unit commits, and the other is a ConcurrencyConflict.
        first, second = two_stores

        def accounts(uow: UnitOfWork) -> None:
            uow.accounts.add(make_account("u1"))
            uow.accounts.add(make_account("u2"))

        await commit(first, accounts)
        one, other = first.unit_of_work(), second.unit_of_work()
        for uow, order in ((one, ("u1", "u2")), (other, ("u2", "u1"))):
            for user_id in order:
                uow.accounts.update(make_account(user_id, version=2), expected_version=1)

        outcomes = await asyncio.gather(_commits(one), _commits(other))

        assert sorted(outcomes) == [False, True]


class TestMigrations:
    async def test_migrates_an_empty_database_and_records_every_version(
        self, new_postgres_database: str
    ) -> None:
        store = PostgresStore(new_postgres_database)
        await store.migrate()
        await store.migrate()
        assert await store.applied_versions() == [SCHEMA_VERSION]
        await store.close()

    async def test_concurrent_migrations_apply_each_version_once(
        self, new_postgres_database: str
    ) -> None:
        stores = [PostgresStore(new_postgres_database) for _ in range(4)]
        await asyncio.gather(*(store.migrate() for store in stores))
        assert await stores[0].applied_versions() == [SCHEMA_VERSION]
        await asyncio.gather(*(store.close() for store in stores))


class TestSelectingPostgres:
    @pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
    async def test_a_postgres_url_opens_a_postgres_store_without_connecting(
        self, scheme: str
    ) -> None:
        store = open_store(f"{scheme}://user:secret@db.invalid:5433/orderproc")
        assert isinstance(store, PostgresStore)
        assert store.address == "db.invalid:5433"
        await store.close()

    async def test_an_unreachable_server_is_one_clear_error_without_the_password(self) -> None:
        port = free_loopback_port()  # nothing listens there
        store = open_store(f"postgresql://user:secret@127.0.0.1:{port}/orderproc")
        with pytest.raises(StoreUnavailable) as refusal:
            await store.migrate()
        message = str(refusal.value)
        assert message.startswith(f"cannot reach PostgreSQL at 127.0.0.1:{port}: ")
        assert "secret" not in message
        await store.close()

    async def test_a_missing_database_is_the_same_clear_error(self, postgres_dsn: str) -> None:
        store = PostgresStore(postgres_dsn.rsplit("/", 1)[0] + "/no_such_database")
        expected = r"^cannot reach PostgreSQL at 127\.0\.0\.1:\d+: .*no_such_database"
        with pytest.raises(StoreUnavailable, match=expected):
            await store.ping()
        await store.close()
