"""Reconcile's sweep over every account pages through the accounts (keyset pages of ids, never
the whole table at once) and sums each ledger in the store."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from orderproc.common.storage.memory import MemoryStore
from orderproc.common.storage.records import AccountRecord, AssetEntry, CashEntry, PositionRecord
from orderproc.common.storage.repositories import AccountRepository as MemoryAccounts
from orderproc.orders.portfolio import reconcile_sweep

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def accounts(
    store: MemoryStore, count: int, *, wrong: frozenset[str] = frozenset()
) -> list[str]:
    """`count` funded accounts with a position each; those in `wrong` have a balance one cent
    off their ledger."""
    ids = [f"user{n:03d}" for n in range(count)]
    async with store.unit_of_work() as uow:
        for user_id in reversed(ids):
            off = 1 if user_id in wrong else 0
            uow.accounts.add(AccountRecord(user_id, 500 + off, 0, 1, T0))
            uow.cash_ledger.add(CashEntry(f"c-{user_id}", user_id, "deposit", 500, 500, None, T0))
            uow.positions.add(PositionRecord(user_id, "BTC", 7, 0, Decimal("1"), Decimal(0), 1, T0))
            uow.asset_ledger.add(
                AssetEntry(
                    f"a-{user_id}", user_id, "BTC", "o1", "buy", 7, Decimal("1"), 1, 0, 7, T0
                )
            )
        await uow.commit()
    return ids


async def test_checks_every_account_page_by_page(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    ids = await accounts(store, 7, wrong=frozenset({"user004"}))
    pages: list[tuple[str | None, int, int]] = []
    real = MemoryAccounts.ids_after

    async def spied(self: MemoryAccounts, after: str | None, *, limit: int) -> list[str]:
        got = await real(self, after, limit=limit)
        pages.append((after, limit, len(got)))
        return got

    monkeypatch.setattr(MemoryAccounts, "ids_after", spied)
    results = [r async for r in reconcile_sweep(store=store, page_size=3)]
    assert [r.user_id for r in results] == ids
    assert pages == [(None, 3, 3), ("user002", 3, 3), ("user005", 3, 1)]
    assert [r.user_id for r in results if not r.clean] == ["user004"]
    assert sum(r.positions_checked for r in results) == 7


async def test_a_full_last_page_ends_on_an_empty_one() -> None:
    store = MemoryStore()
    await accounts(store, 4)
    results = [r async for r in reconcile_sweep(store=store, page_size=2)]
    assert len(results) == 4
    assert all(r.clean for r in results)


async def test_no_accounts_nothing_to_check() -> None:
    assert [r async for r in reconcile_sweep(store=MemoryStore())] == []
