"""Cash use cases on the in-memory store (a fake, not a mock): units of work, limits,
idempotency, and retries after a lost race."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from orderproc.common.clock import FixedClock
from orderproc.common.locking import InProcessLocker
from orderproc.common.storage.memory import MemoryStore
from orderproc.common.storage.records import AccountRecord
from orderproc.errors import ConcurrencyConflict, DailyLimitExceeded, InsufficientFunds
from orderproc.testing import NoLocker
from orderproc.users.cash import CashCommand, CashDeps, move_cash
from orderproc.users.domain import CashRules

RULES = CashRules(100_000_000, {"deposit": 1_000_000, "withdraw": 500_000})


@pytest.fixture
async def deps() -> CashDeps:
    store = MemoryStore()
    clock = FixedClock()
    async with store.unit_of_work() as uow:
        uow.accounts.add(AccountRecord("u1", 0, 0, 1, clock.now()))
        await uow.commit()
    return CashDeps(store, InProcessLocker(), clock, RULES, 1.0, timedelta(hours=24))


async def balance(deps: CashDeps) -> int:
    async with deps.store.unit_of_work() as uow:
        account = await uow.accounts.get("u1")
        assert account is not None
        assert account.balance_cents == await uow.cash_ledger.sum_for_user("u1")
        return account.balance_cents


class TestMoveCash:
    async def test_a_deposit_writes_balance_ledger_and_counter_together(
        self, deps: CashDeps
    ) -> None:
        receipt = await move_cash(CashCommand("u1", "deposit", Decimal("12.34")), deps=deps)
        assert receipt.balance == Decimal("12.34")
        assert await balance(deps) == 1234
        async with deps.store.unit_of_work() as uow:
            used = await uow.daily_limits.used("u1", deps.clock.now().date(), "deposit")
        assert used == 1234

    async def test_a_refused_withdrawal_writes_nothing(self, deps: CashDeps) -> None:
        await move_cash(CashCommand("u1", "deposit", Decimal(5)), deps=deps)
        with pytest.raises(InsufficientFunds):
            await move_cash(CashCommand("u1", "withdraw", Decimal("5.01")), deps=deps)
        assert await balance(deps) == 500

    async def test_the_daily_limit_counts_only_what_committed(self, deps: CashDeps) -> None:
        await move_cash(CashCommand("u1", "deposit", Decimal(6000)), deps=deps)
        with pytest.raises(DailyLimitExceeded):
            await move_cash(CashCommand("u1", "deposit", Decimal("4000.01")), deps=deps)
        await move_cash(CashCommand("u1", "deposit", Decimal(4000)), deps=deps)
        assert await balance(deps) == 1_000_000

    async def test_a_replayed_key_returns_the_first_receipt(self, deps: CashDeps) -> None:
        cmd = CashCommand("u1", "deposit", Decimal(3), idempotency_key="k", fingerprint="f")
        first = await move_cash(cmd, deps=deps)
        assert await move_cash(cmd, deps=deps) == first
        assert await balance(deps) == 300


class TestLostRaces:
    async def test_a_stale_version_is_retried_and_then_succeeds(self, deps: CashDeps) -> None:
        """Another writer bumps the version between this use case's read and its commit."""
        store = deps.store
        real_uow = store.unit_of_work
        raced = {"done": False}

        def racing_uow():  # type: ignore[no-untyped-def]
            uow = real_uow()
            commit = uow.commit

            async def commit_after_a_rival() -> None:
                if not raced["done"]:
                    raced["done"] = True
                    async with real_uow() as rival:
                        account = await rival.accounts.get("u1")
                        assert account is not None
                        rival.accounts.update(
                            account.evolve(version=account.version + 1),
                            expected_version=account.version,
                        )
                        await rival.commit()
                await commit()

            uow.commit = commit_after_a_rival  # type: ignore[method-assign]
            return uow

        store.unit_of_work = racing_uow  # type: ignore[method-assign]
        await move_cash(CashCommand("u1", "deposit", Decimal(1)), deps=deps)
        assert raced["done"]
        assert await balance(deps) == 100

    async def test_without_the_lock_the_store_still_refuses_an_overdraft(
        self, deps: CashDeps
    ) -> None:
        unlocked = CashDeps(deps.store, NoLocker(), deps.clock, RULES, 1.0, timedelta(hours=1))
        await move_cash(CashCommand("u1", "deposit", Decimal(10)), deps=unlocked)
        async with deps.store.unit_of_work() as first, deps.store.unit_of_work() as second:
            for uow in (first, second):
                account = await uow.accounts.get("u1")
                assert account is not None
                uow.accounts.update(
                    account.evolve(balance_cents=0, version=account.version + 1),
                    expected_version=account.version,
                )
            await first.commit()
            with pytest.raises(ConcurrencyConflict):
                await second.commit()
