"""The storage contract for bounded work (issue #12): expired idempotency records and
revocations are purged at most `limit` rows per call and only when expired; accounts are swept
in keyset pages; ledger sums are exact in the store at any size. Every adapter; the last class
checks that SQLite's purge goes through the group commit like any write."""

from __future__ import annotations

import asyncio
from pathlib import Path

from orderproc.common.storage.ports import Store, UnitOfWork
from orderproc.common.storage.sqlite import SqliteStore
from tests.contract.test_storage import (
    at,
    commit,
    make_account,
    make_entry,
    make_idempotency,
)
from tests.contract.test_trading_storage import make_asset_entry


def _records(uow: UnitOfWork) -> None:
    # Five expired by hours=2 (one exactly then: expiry is inclusive), two not.
    for n, hours in enumerate((0.5, 1, 1, 1.5, 2)):
        uow.idempotency.add(make_idempotency(f"old{n}", expires_at=at(hours=hours)))
    uow.idempotency.add(make_idempotency("new0", expires_at=at(hours=2, microseconds=1)))
    uow.idempotency.add(make_idempotency("new1", expires_at=at(hours=30)))


def _revocations(uow: UnitOfWork) -> None:
    for n, hours in enumerate((0.5, 1, 1, 1.5, 2)):
        uow.revocations.add(f"old{n}", user_id="u1", expires_at=at(hours=hours))
    uow.revocations.add("new0", user_id="u1", expires_at=at(hours=2, microseconds=1))
    uow.revocations.add("new1", user_id="u2", expires_at=at(hours=30))


class TestPurgeIdempotency:
    async def test_deletes_at_most_limit_expired_records_per_call(self, store: Store) -> None:
        await commit(store, _records)
        async with store.unit_of_work() as uow:
            counts = [await uow.idempotency.purge_expired(now=at(hours=2), limit=2) for _ in "1234"]
        assert counts == [2, 2, 1, 0]
        async with store.unit_of_work() as uow:
            # Read as of before any expiry: only what was purged is gone.
            left = {
                key
                for key in ("old0", "old1", "old2", "old3", "old4", "new0", "new1")
                if await uow.idempotency.get("u1", key, now=at(minutes=1)) is not None
            }
        assert left == {"new0", "new1"}

    async def test_a_limit_above_the_backlog_takes_all_of_it(self, store: Store) -> None:
        await commit(store, _records)
        async with store.unit_of_work() as uow:
            assert await uow.idempotency.purge_expired(now=at(hours=2), limit=500) == 5
            assert await uow.idempotency.purge_expired(now=at(hours=2), limit=500) == 0
            assert await uow.idempotency.purge_expired(now=at(hours=40), limit=500) == 2

    async def test_nothing_expired_deletes_nothing(self, store: Store) -> None:
        await commit(store, _records)
        async with store.unit_of_work() as uow:
            assert await uow.idempotency.purge_expired(now=at(minutes=1), limit=10) == 0
            assert await uow.idempotency.get("u1", "old0", now=at(minutes=1)) is not None

    async def test_a_purged_key_can_be_used_again(self, store: Store) -> None:
        await commit(
            store, lambda uow: uow.idempotency.add(make_idempotency("k", expires_at=at(hours=1)))
        )
        async with store.unit_of_work() as uow:
            assert await uow.idempotency.purge_expired(now=at(hours=1), limit=10) == 1
        again = make_idempotency("k", created_at=at(hours=2), expires_at=at(hours=3))
        await commit(store, lambda uow: uow.idempotency.add(again))
        async with store.unit_of_work() as uow:
            assert await uow.idempotency.get("u1", "k", now=at(hours=2)) == again


class TestPurgeRevocations:
    async def test_deletes_at_most_limit_expired_revocations_per_call(self, store: Store) -> None:
        await commit(store, _revocations)
        async with store.unit_of_work() as uow:
            counts = [await uow.revocations.purge_expired(now=at(hours=2), limit=2) for _ in "1234"]
        assert counts == [2, 2, 1, 0]
        async with store.unit_of_work() as uow:
            revoked = {
                jti
                for jti in ("old0", "old1", "old2", "old3", "old4", "new0", "new1")
                if await uow.revocations.is_revoked(jti)
            }
        assert revoked == {"new0", "new1"}


class TestAccountSweep:
    async def test_ids_come_in_keyset_pages_in_id_order(self, store: Store) -> None:
        ids = ["a1", "a2", "b1", "c0", "c9"]

        def stage(uow: UnitOfWork) -> None:
            for user_id in reversed(ids):
                uow.accounts.add(make_account(user_id))

        await commit(store, stage)
        pages: list[list[str]] = []
        after: str | None = None
        async with store.unit_of_work() as uow:
            while True:
                page = await uow.accounts.ids_after(after, limit=2)
                pages.append(page)
                if len(page) < 2:
                    break
                after = page[-1]
            assert await uow.accounts.ids_after("c9", limit=2) == []
            assert await uow.accounts.ids_after("b", limit=10) == ["b1", "c0", "c9"]
        assert pages == [["a1", "a2"], ["b1", "c0"], ["c9"]]

    async def test_no_accounts_no_ids(self, store: Store) -> None:
        async with store.unit_of_work() as uow:
            assert await uow.accounts.ids_after(None, limit=10) == []


class TestLedgerSums:
    async def test_cash_sums_beyond_64_bits_exactly(self, store: Store) -> None:
        big = 2**62 + 7

        def stage(uow: UnitOfWork) -> None:
            for n in range(3):
                uow.cash_ledger.add(make_entry(f"e{n}", amount_cents=big))
            uow.cash_ledger.add(make_entry("e3", amount_cents=-5))
            uow.cash_ledger.add(make_entry("x", user_id="u2", amount_cents=1))

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            assert await uow.cash_ledger.sum_for_user("u1") == 3 * big - 5

    async def test_asset_sums_beyond_64_bits_exactly(self, store: Store) -> None:
        big = 2**62 + 3

        def stage(uow: UnitOfWork) -> None:
            for n in range(3):
                uow.asset_ledger.add(make_asset_entry(f"e{n}", quantity_units=big))
            uow.asset_ledger.add(make_asset_entry("e3", quantity_units=-big - 1, kind="sell"))

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            assert await uow.asset_ledger.sum_for_position("u1", "BTC") == 2 * big - 1


class TestSqlitePurgeWritePath:
    async def test_a_purge_batch_shares_the_group_commit_with_request_writes(
        self, tmp_path: Path
    ) -> None:
        """Not a write on the side: the batch is one more unit in the turn's transaction."""
        store = SqliteStore(tmp_path / "store.db")
        await store.migrate()
        try:
            await commit(store, _records)
            statements: list[str] = []
            store._conn.set_trace_callback(statements.append)

            async def request_write() -> None:
                await commit(store, lambda uow: uow.accounts.add(make_account("u9")))

            async def purge() -> int:
                async with store.unit_of_work() as uow:
                    return await uow.idempotency.purge_expired(now=at(hours=2), limit=3)

            _, purged = await asyncio.gather(request_write(), purge())
            store._conn.set_trace_callback(None)
            assert purged == 3
            assert [s for s in statements if s.startswith(("BEGIN", "COMMIT"))] == [
                "BEGIN IMMEDIATE",
                "COMMIT",
            ]
            async with store.unit_of_work() as uow:
                assert await uow.accounts.get("u9") is not None
        finally:
            await store.close()
