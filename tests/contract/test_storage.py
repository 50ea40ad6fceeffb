"""The storage contract: every adapter (see `ADAPTERS` in conftest) must pass all of it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orderproc.common.storage.factory import open_store
from orderproc.common.storage.memory import MemoryStore
from orderproc.common.storage.ports import Store, UnitOfWork
from orderproc.common.storage.records import (
    AccountRecord,
    AuditEvent,
    CashEntry,
    IdempotencyRecord,
    UserRecord,
)
from orderproc.common.storage.schema import SCHEMA_VERSION
from orderproc.common.storage.sqlite import SqliteStore
from orderproc.errors import ConcurrencyConflict

# Microseconds on purpose: every adapter must keep them exactly.
T0 = datetime(2026, 1, 15, 12, 0, 0, 123456, tzinfo=UTC)


def at(**delta: float) -> datetime:
    return T0 + timedelta(**delta)


MILLION_CENTS = 100_000_000  # 1,000,000.00 USD
DAY = date(2026, 1, 15)


def make_user(user_id: str = "u1", **changes: Any) -> UserRecord:
    user = UserRecord(
        user_id=user_id,
        username=f"name-{user_id}",
        email=f"{user_id}@example.com",
        password_hash="$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        first_name="Ada",
        last_name="Lovelace",
        phone="+44 20 7946 0000",
        date_of_birth=date(1815, 12, 10),
        role="customer",
        is_active=True,
        created_at=T0,
        updated_at=T0,
    )
    return user.evolve(**changes)


def make_account(user_id: str = "u1", **changes: Any) -> AccountRecord:
    account = AccountRecord(
        user_id=user_id, balance_cents=0, reserved_cents=0, version=1, updated_at=T0
    )
    return account.evolve(**changes)


def make_entry(entry_id: str, user_id: str = "u1", **changes: Any) -> CashEntry:
    entry = CashEntry(
        entry_id=entry_id,
        user_id=user_id,
        kind="deposit",
        amount_cents=100,
        balance_after_cents=100,
        reference_id=None,
        created_at=T0,
    )
    return entry.evolve(**changes)


def make_idempotency(key: str = "k1", **changes: Any) -> IdempotencyRecord:
    record = IdempotencyRecord(
        user_id="u1",
        key=key,
        fingerprint="f" * 64,
        outcome="ok",
        payload={"amount": "1000000.00", "nested": {"list": [1, "two", None]}},
        created_at=T0,
        expires_at=at(hours=24),
    )
    return record.evolve(**changes)


def make_event(event_id: str, **changes: Any) -> AuditEvent:
    event = AuditEvent(
        event_id=event_id,
        event_type="login_success",
        created_at=T0,
        user_id="u1",
        actor_id="u1",
        ip="127.0.0.1",
        details={"user_agent": "pytest"},
    )
    return event.evolve(**changes)


def counted(store: Store, rows: int) -> int | None:
    """A list's `total_count`: only the memory store counts (cheaply); SQL stores never do."""
    return rows if isinstance(store, MemoryStore) else None


async def commit(store: Store, stage: Callable[[UnitOfWork], object]) -> None:
    async with store.unit_of_work() as uow:
        stage(uow)
        await uow.commit()


async def refused(store: Store, stage: Callable[[UnitOfWork], object]) -> None:
    with pytest.raises(ConcurrencyConflict):
        await commit(store, stage)


class TestStore:
    async def test_ping_answers(self, store: Store) -> None:
        await store.ping()

    async def test_migrating_twice_is_harmless(self, store: Store) -> None:
        await commit(store, lambda uow: uow.accounts.add(make_account(balance_cents=5)))
        await store.migrate()
        async with store.unit_of_work() as uow:
            assert await uow.accounts.get("u1") == make_account(balance_cents=5)


class TestUnitOfWork:
    async def test_commit_applies_every_staged_write(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            uow.users.add(make_user())
            uow.accounts.add(make_account(balance_cents=100))
            uow.cash_ledger.add(make_entry("e1"))
            uow.daily_limits.add("u1", DAY, "deposit", 100, limit_cents=1000)

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            assert await uow.users.get("u1") is not None
            assert await uow.accounts.get("u1") is not None
            assert await uow.cash_ledger.sum_for_user("u1") == 100
            assert await uow.daily_limits.used("u1", DAY, "deposit") == 100

    async def test_leaving_without_commit_writes_nothing(self, store: Store) -> None:
        async with store.unit_of_work() as uow:
            uow.accounts.add(make_account(balance_cents=100))
            uow.cash_ledger.add(make_entry("e1"))
        async with store.unit_of_work() as uow:
            assert await uow.accounts.get("u1") is None
            assert await uow.cash_ledger.sum_for_user("u1") == 0

    async def test_leaving_on_an_exception_writes_nothing(self, store: Store) -> None:
        async def failing_use_case() -> None:
            async with store.unit_of_work() as uow:
                uow.accounts.add(make_account())
                raise RuntimeError("use case failed")

        with pytest.raises(RuntimeError):
            await failing_use_case()
        async with store.unit_of_work() as uow:
            assert await uow.accounts.get("u1") is None

    async def test_reads_do_not_see_writes_staged_in_the_same_unit(self, store: Store) -> None:
        async with store.unit_of_work() as uow:
            uow.accounts.add(make_account())
            assert await uow.accounts.get("u1") is None

    async def test_committing_nothing_is_fine(self, store: Store) -> None:
        async with store.unit_of_work() as uow:
            await uow.commit()

    async def test_a_failed_limit_leaves_the_other_writes_unwritten(self, store: Store) -> None:
        await commit(store, lambda uow: uow.accounts.add(make_account()))

        def stage(uow: UnitOfWork) -> None:
            uow.accounts.update(make_account(balance_cents=500, version=2), expected_version=1)
            uow.cash_ledger.add(make_entry("e1", amount_cents=500))
            uow.idempotency.add(make_idempotency())
            uow.daily_limits.add("u1", DAY, "deposit", 500, limit_cents=499)

        await refused(store, stage)
        async with store.unit_of_work() as uow:
            assert await uow.accounts.get("u1") == make_account()
            assert (await uow.cash_ledger.list_for_user("u1")).items == []
            assert await uow.idempotency.get("u1", "k1", now=T0) is None
            assert await uow.daily_limits.used("u1", DAY, "deposit") == 0

    async def test_a_unit_of_work_is_reusable_after_a_conflict(self, store: Store) -> None:
        async with store.unit_of_work() as uow:
            uow.accounts.update(make_account(version=2), expected_version=1)
            with pytest.raises(ConcurrencyConflict):
                await uow.commit()
            uow.accounts.add(make_account())
            await uow.commit()
        async with store.unit_of_work() as uow:
            assert await uow.accounts.get("u1") == make_account()

    async def test_units_committing_together_succeed_or_fail_alone(self, store: Store) -> None:
        """Many units commit at once (SQLite groups them into one transaction): the one whose
        conditional write loses fails alone, and leaves nothing of itself behind."""
        await commit(store, lambda uow: uow.accounts.add(make_account()))

        async def deposit(n: int, *, expected_version: int) -> None:
            async with store.unit_of_work() as uow:
                uow.accounts.add(make_account(f"v{n}"))
                uow.cash_ledger.add(make_entry(f"e{n}", user_id=f"v{n}"))
                if n == 3:  # this one's conditional write loses
                    uow.accounts.update(make_account(version=9), expected_version=expected_version)
                await uow.commit()

        results = await asyncio.gather(
            *(deposit(n, expected_version=5) for n in range(6)), return_exceptions=True
        )
        assert [type(r).__name__ for r in results] == [
            "NoneType", "NoneType", "NoneType", "ConcurrencyConflict", "NoneType", "NoneType",
        ]  # fmt: skip
        async with store.unit_of_work() as uow:
            assert await uow.accounts.get("u1") == make_account()
            assert await uow.accounts.get("v3") is None
            assert await uow.cash_ledger.sum_for_user("v3") == 0
            for n in (0, 1, 2, 4, 5):
                assert await uow.accounts.get(f"v{n}") == make_account(f"v{n}")
                assert await uow.cash_ledger.sum_for_user(f"v{n}") == 100


class TestUsers:
    async def test_a_user_round_trips_exactly(self, store: Store) -> None:
        user = make_user(tokens_valid_after=at(minutes=5), is_active=False, role="admin")
        await commit(store, lambda uow: uow.users.add(user))
        async with store.unit_of_work() as uow:
            assert await uow.users.get("u1") == user
            assert await uow.users.get_by_username("name-u1") == user
            assert await uow.users.get_by_email("u1@example.com") == user

    async def test_optional_fields_round_trip_as_none(self, store: Store) -> None:
        user = make_user(phone=None, date_of_birth=None, tokens_valid_after=None)
        await commit(store, lambda uow: uow.users.add(user))
        async with store.unit_of_work() as uow:
            assert await uow.users.get("u1") == user

    async def test_unknown_users_are_none(self, store: Store) -> None:
        async with store.unit_of_work() as uow:
            assert await uow.users.get("nobody") is None
            assert await uow.users.get_by_username("nobody") is None
            assert await uow.users.get_by_email("nobody@example.com") is None

    async def test_refuses_a_duplicate_username(self, store: Store) -> None:
        await commit(store, lambda uow: uow.users.add(make_user("u1", username="ada")))
        await refused(store, lambda uow: uow.users.add(make_user("u2", username="ada")))
        async with store.unit_of_work() as uow:
            assert await uow.users.get("u2") is None

    async def test_refuses_a_duplicate_email(self, store: Store) -> None:
        await commit(store, lambda uow: uow.users.add(make_user("u1", email="a@example.com")))
        await refused(store, lambda uow: uow.users.add(make_user("u2", email="a@example.com")))

    async def test_refuses_a_duplicate_id(self, store: Store) -> None:
        await commit(store, lambda uow: uow.users.add(make_user("u1")))
        await refused(store, lambda uow: uow.users.add(make_user("u1", username="other")))

    async def test_updates_at_the_expected_version(self, store: Store) -> None:
        await commit(store, lambda uow: uow.users.add(make_user()))
        changed = make_user(username="renamed", email="new@example.com", version=2)
        await commit(store, lambda uow: uow.users.update(changed, expected_version=1))
        async with store.unit_of_work() as uow:
            assert await uow.users.get("u1") == changed
            assert await uow.users.get_by_username("renamed") == changed
            assert await uow.users.get_by_username("name-u1") is None
            assert await uow.users.get_by_email("u1@example.com") is None

    async def test_refuses_an_update_at_a_stale_version(self, store: Store) -> None:
        await commit(store, lambda uow: uow.users.add(make_user()))
        stale = make_user(first_name="Changed", version=2)
        await refused(store, lambda uow: uow.users.update(stale, expected_version=7))
        async with store.unit_of_work() as uow:
            assert await uow.users.get("u1") == make_user()

    async def test_refuses_an_update_to_a_taken_username(self, store: Store) -> None:
        await commit(store, lambda uow: uow.users.add(make_user("u1")))
        await commit(store, lambda uow: uow.users.add(make_user("u2")))
        taken = make_user("u2", username="name-u1", version=2)
        await refused(store, lambda uow: uow.users.update(taken, expected_version=1))

    async def test_lists_newest_first_with_paging(self, store: Store) -> None:
        for n in range(5):
            await commit(
                store, lambda uow, n=n: uow.users.add(make_user(f"u{n}", created_at=at(minutes=n)))
            )
        async with store.unit_of_work() as uow:
            first = await uow.users.list(limit=2)
            second = await uow.users.list(limit=2, after=first.next_key)
            last = await uow.users.list(limit=2, after=second.next_key)
        assert [u.user_id for u in first.items] == ["u4", "u3"]
        assert first.total_count == counted(store, 5)
        assert [u.user_id for u in second.items] == ["u2", "u1"]
        assert [u.user_id for u in last.items] == ["u0"]
        assert last.next_key is None


class TestAccounts:
    @pytest.mark.parametrize("cents", [MILLION_CENTS, 1, 0])
    async def test_amounts_round_trip_exactly(self, store: Store, cents: int) -> None:
        account = make_account(balance_cents=cents, reserved_cents=cents)
        await commit(store, lambda uow: uow.accounts.add(account))
        async with store.unit_of_work() as uow:
            stored = await uow.accounts.get("u1")
        assert stored == account
        assert stored is not None
        assert stored.balance_cents == cents

    async def test_updates_at_the_expected_version(self, store: Store) -> None:
        await commit(store, lambda uow: uow.accounts.add(make_account()))
        updated = make_account(balance_cents=MILLION_CENTS + 1, version=2, updated_at=at(days=1))
        await commit(store, lambda uow: uow.accounts.update(updated, expected_version=1))
        async with store.unit_of_work() as uow:
            assert await uow.accounts.get("u1") == updated

    async def test_a_version_conflict_writes_nothing_of_the_unit(self, store: Store) -> None:
        await commit(
            store, lambda uow: uow.accounts.add(make_account(balance_cents=100, version=3))
        )

        def stage(uow: UnitOfWork) -> None:
            uow.cash_ledger.add(make_entry("e1", amount_cents=50, balance_after_cents=150))
            uow.accounts.update(make_account(balance_cents=150, version=3), expected_version=2)

        await refused(store, stage)
        async with store.unit_of_work() as uow:
            assert await uow.accounts.get("u1") == make_account(balance_cents=100, version=3)
            assert await uow.cash_ledger.sum_for_user("u1") == 0

    async def test_refuses_an_update_of_a_missing_account(self, store: Store) -> None:
        await refused(
            store, lambda uow: uow.accounts.update(make_account(version=2), expected_version=1)
        )

    async def test_refuses_a_negative_available_amount(self, store: Store) -> None:
        await commit(store, lambda uow: uow.accounts.add(make_account(balance_cents=100)))
        overdrawn = make_account(balance_cents=100, reserved_cents=101, version=2)
        await refused(store, lambda uow: uow.accounts.update(overdrawn, expected_version=1))
        async with store.unit_of_work() as uow:
            assert await uow.accounts.get("u1") == make_account(balance_cents=100)

    async def test_refuses_a_negative_balance(self, store: Store) -> None:
        await commit(store, lambda uow: uow.accounts.add(make_account(balance_cents=1)))
        negative = make_account(balance_cents=-1, version=2)
        await refused(store, lambda uow: uow.accounts.update(negative, expected_version=1))

    async def test_refuses_a_second_account_for_a_user(self, store: Store) -> None:
        await commit(store, lambda uow: uow.accounts.add(make_account()))
        await refused(store, lambda uow: uow.accounts.add(make_account(balance_cents=5)))


class TestCashLedger:
    @pytest.mark.parametrize("cents", [MILLION_CENTS, -MILLION_CENTS, 1, -1])
    async def test_entries_round_trip_exactly(self, store: Store, cents: int) -> None:
        entry = make_entry(
            "e1", amount_cents=cents, balance_after_cents=abs(cents), reference_id="r"
        )
        await commit(store, lambda uow: uow.cash_ledger.add(entry))
        async with store.unit_of_work() as uow:
            assert (await uow.cash_ledger.list_for_user("u1")).items == [entry]

    async def test_refuses_a_duplicate_entry_id(self, store: Store) -> None:
        await commit(store, lambda uow: uow.cash_ledger.add(make_entry("e1")))
        await refused(store, lambda uow: uow.cash_ledger.add(make_entry("e1")))

    async def test_lists_newest_first_and_later_inserts_first_on_ties(self, store: Store) -> None:
        await commit(
            store, lambda uow: uow.cash_ledger.add(make_entry("old", created_at=at(hours=-1)))
        )
        await commit(store, lambda uow: uow.cash_ledger.add(make_entry("tie1")))
        await commit(store, lambda uow: uow.cash_ledger.add(make_entry("tie2")))
        await commit(
            store, lambda uow: uow.cash_ledger.add(make_entry("new", created_at=at(hours=1)))
        )
        await commit(store, lambda uow: uow.cash_ledger.add(make_entry("other", user_id="u2")))
        async with store.unit_of_work() as uow:
            page = await uow.cash_ledger.list_for_user("u1")
        assert [e.entry_id for e in page.items] == ["new", "tie2", "tie1", "old"]
        assert (page.total_count, page.next_key) == (counted(store, 4), None)

    async def test_filters_by_kind(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            uow.cash_ledger.add(make_entry("d", kind="deposit"))
            uow.cash_ledger.add(make_entry("w", kind="withdraw", amount_cents=-100))

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            page = await uow.cash_ledger.list_for_user("u1", kind="withdraw")
        assert [e.entry_id for e in page.items] == ["w"]
        assert page.total_count == counted(store, 1)

    async def test_start_is_inclusive_and_end_exclusive(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            for minute in range(4):
                uow.cash_ledger.add(make_entry(f"m{minute}", created_at=at(minutes=minute)))

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            page = await uow.cash_ledger.list_for_user("u1", start=at(minutes=1), end=at(minutes=3))
        assert [e.entry_id for e in page.items] == ["m2", "m1"]
        assert page.total_count == counted(store, 2)

    async def test_pages_by_key_and_by_a_legacy_offset(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            for n in range(5):
                uow.cash_ledger.add(make_entry(f"e{n}", created_at=at(seconds=n)))

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            first = await uow.cash_ledger.list_for_user("u1", limit=2)
            second = await uow.cash_ledger.list_for_user("u1", limit=2, after=first.next_key)
            by_offset = await uow.cash_ledger.list_for_user("u1", limit=2, offset=2)
            last = await uow.cash_ledger.list_for_user("u1", limit=2, after=second.next_key)
            beyond = await uow.cash_ledger.list_for_user("u1", limit=2, offset=9)
        assert [e.entry_id for e in first.items] == ["e4", "e3"]
        assert [e.entry_id for e in second.items] == ["e2", "e1"]
        assert (by_offset.items, by_offset.next_key) == (second.items, second.next_key)
        assert [e.entry_id for e in last.items] == ["e0"]
        assert last.next_key is None
        assert {p.total_count for p in (first, second, last, beyond)} == {counted(store, 5)}
        assert (beyond.items, beyond.next_key) == ([], None)

    async def test_sums_a_users_entries_exactly(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            uow.cash_ledger.add(make_entry("big", amount_cents=MILLION_CENTS))
            uow.cash_ledger.add(make_entry("small", amount_cents=1))
            uow.cash_ledger.add(make_entry("out", kind="withdraw", amount_cents=-250))
            uow.cash_ledger.add(make_entry("other", user_id="u2", amount_cents=7))

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            assert await uow.cash_ledger.sum_for_user("u1") == MILLION_CENTS + 1 - 250
            assert await uow.cash_ledger.sum_for_user("nobody") == 0

    async def test_sums_beyond_float_precision_exactly(self, store: Store) -> None:
        huge = 2**53 + 1

        def stage(uow: UnitOfWork) -> None:
            uow.cash_ledger.add(make_entry("a", amount_cents=huge))
            uow.cash_ledger.add(make_entry("b", amount_cents=huge))

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            assert await uow.cash_ledger.sum_for_user("u1") == 2 * huge


class TestDailyLimits:
    async def test_nothing_is_used_before_the_first_movement(self, store: Store) -> None:
        async with store.unit_of_work() as uow:
            assert await uow.daily_limits.used("u1", DAY, "deposit") == 0

    async def test_counts_up_to_exactly_the_limit(self, store: Store) -> None:
        await commit(
            store, lambda uow: uow.daily_limits.add("u1", DAY, "deposit", 600, limit_cents=1000)
        )
        await commit(
            store, lambda uow: uow.daily_limits.add("u1", DAY, "deposit", 400, limit_cents=1000)
        )
        async with store.unit_of_work() as uow:
            assert await uow.daily_limits.used("u1", DAY, "deposit") == 1000

    async def test_refuses_going_over_the_limit(self, store: Store) -> None:
        await commit(
            store, lambda uow: uow.daily_limits.add("u1", DAY, "deposit", 600, limit_cents=1000)
        )
        await refused(
            store, lambda uow: uow.daily_limits.add("u1", DAY, "deposit", 401, limit_cents=1000)
        )
        async with store.unit_of_work() as uow:
            assert await uow.daily_limits.used("u1", DAY, "deposit") == 600

    async def test_refuses_a_first_movement_over_the_limit(self, store: Store) -> None:
        await refused(
            store, lambda uow: uow.daily_limits.add("u1", DAY, "deposit", 1001, limit_cents=1000)
        )
        async with store.unit_of_work() as uow:
            assert await uow.daily_limits.used("u1", DAY, "deposit") == 0

    async def test_counts_each_day_and_kind_apart(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            uow.daily_limits.add("u1", DAY, "deposit", 1000, limit_cents=1000)
            uow.daily_limits.add("u1", DAY, "withdraw", 1000, limit_cents=1000)
            uow.daily_limits.add("u1", date(2026, 1, 16), "deposit", 1000, limit_cents=1000)
            uow.daily_limits.add("u2", DAY, "deposit", 1000, limit_cents=1000)

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            assert await uow.daily_limits.used("u1", DAY, "withdraw") == 1000

    async def test_counts_twice_within_one_unit_of_work(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            uow.daily_limits.add("u1", DAY, "deposit", 600, limit_cents=1000)
            uow.daily_limits.add("u1", DAY, "deposit", 600, limit_cents=1000)

        await refused(store, stage)


class TestIdempotency:
    async def test_a_record_round_trips_with_its_payload(self, store: Store) -> None:
        record = make_idempotency(outcome="error", payload={"code": "X", "detail": "é ✓"})
        await commit(store, lambda uow: uow.idempotency.add(record))
        async with store.unit_of_work() as uow:
            assert await uow.idempotency.get("u1", "k1", now=T0) == record

    async def test_keys_are_scoped_to_the_user(self, store: Store) -> None:
        await commit(store, lambda uow: uow.idempotency.add(make_idempotency()))
        await commit(store, lambda uow: uow.idempotency.add(make_idempotency(user_id="u2")))
        async with store.unit_of_work() as uow:
            assert await uow.idempotency.get("u3", "k1", now=T0) is None

    async def test_an_expired_record_is_not_returned(self, store: Store) -> None:
        await commit(store, lambda uow: uow.idempotency.add(make_idempotency()))
        async with store.unit_of_work() as uow:
            assert await uow.idempotency.get("u1", "k1", now=at(hours=24)) is None

    async def test_refuses_a_second_record_while_the_first_is_unexpired(self, store: Store) -> None:
        await commit(store, lambda uow: uow.idempotency.add(make_idempotency()))
        again = make_idempotency(fingerprint="other", created_at=at(hours=23))
        await refused(store, lambda uow: uow.idempotency.add(again))
        async with store.unit_of_work() as uow:
            assert await uow.idempotency.get("u1", "k1", now=T0) == make_idempotency()

    async def test_replaces_a_record_once_it_has_expired(self, store: Store) -> None:
        await commit(store, lambda uow: uow.idempotency.add(make_idempotency()))
        fresh = make_idempotency(
            fingerprint="new", created_at=at(hours=24), expires_at=at(hours=48)
        )
        await commit(store, lambda uow: uow.idempotency.add(fresh))
        async with store.unit_of_work() as uow:
            assert await uow.idempotency.get("u1", "k1", now=at(hours=25)) == fresh

    async def test_purges_only_expired_records(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            uow.idempotency.add(make_idempotency("old", expires_at=at(hours=1)))
            uow.idempotency.add(make_idempotency("new", expires_at=at(hours=3)))

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            assert await uow.idempotency.purge_expired(now=at(hours=2), limit=10) == 1
            assert await uow.idempotency.get("u1", "new", now=at(hours=2)) is not None
            assert await uow.idempotency.purge_expired(now=at(hours=2), limit=10) == 0


class TestRevocations:
    async def test_a_revoked_token_is_revoked(self, store: Store) -> None:
        await commit(
            store, lambda uow: uow.revocations.add("j1", user_id="u1", expires_at=at(hours=1))
        )
        async with store.unit_of_work() as uow:
            assert await uow.revocations.is_revoked("j1")
            assert not await uow.revocations.is_revoked("j2")

    async def test_revoking_twice_is_not_an_error(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            uow.revocations.add("j1", user_id="u1", expires_at=at(hours=1))
            uow.revocations.add("j1", user_id="u1", expires_at=at(hours=1))

        await commit(store, stage)
        await commit(store, stage)
        async with store.unit_of_work() as uow:
            assert await uow.revocations.is_revoked("j1")

    async def test_purges_only_expired_revocations(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            uow.revocations.add("old", user_id="u1", expires_at=at(hours=1))
            uow.revocations.add("new", user_id="u1", expires_at=at(hours=3))

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            assert await uow.revocations.purge_expired(now=at(hours=2), limit=10) == 1
            assert not await uow.revocations.is_revoked("old")
            assert await uow.revocations.is_revoked("new")


class TestAudit:
    async def test_an_event_round_trips_with_its_details(self, store: Store) -> None:
        event = make_event("a1", details={"role": {"from": "customer", "to": "admin"}, "n": 1})
        await commit(store, lambda uow: uow.audit.add(event))
        async with store.unit_of_work() as uow:
            assert (await uow.audit.list()).items == [event]

    async def test_an_anonymous_event_round_trips(self, store: Store) -> None:
        event = make_event("a1", user_id=None, actor_id=None, ip=None, details={})
        await commit(store, lambda uow: uow.audit.add(event))
        async with store.unit_of_work() as uow:
            assert (await uow.audit.list()).items == [event]

    async def test_filters_by_user_type_and_time(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            uow.audit.add(make_event("a0", created_at=at(minutes=0)))
            uow.audit.add(make_event("a1", created_at=at(minutes=1), event_type="logout"))
            uow.audit.add(make_event("a2", created_at=at(minutes=2), user_id="u2"))
            uow.audit.add(make_event("a3", created_at=at(minutes=3)))

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            everything = await uow.audit.list()
            by_user = await uow.audit.list(user_id="u1")
            by_type = await uow.audit.list(event_type="login_success")
            by_time = await uow.audit.list(start=at(minutes=1), end=at(minutes=3))
            combined = await uow.audit.list(user_id="u1", event_type="login_success", limit=1)
        assert [e.event_id for e in everything.items] == ["a3", "a2", "a1", "a0"]
        assert [e.event_id for e in by_user.items] == ["a3", "a1", "a0"]
        assert [e.event_id for e in by_type.items] == ["a3", "a2", "a0"]
        assert [e.event_id for e in by_time.items] == ["a2", "a1"]
        assert [e.event_id for e in combined.items] == ["a3"]
        assert combined.total_count == counted(store, 2)
        assert combined.next_key is not None


class TestSqliteFile:
    async def test_an_existing_database_keeps_its_data_after_reopening(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "nested" / "orderproc.db"
        first = SqliteStore(path)
        await first.migrate()
        await commit(first, lambda uow: uow.accounts.add(make_account(balance_cents=MILLION_CENTS)))
        await first.close()

        reopened = SqliteStore(path)
        await reopened.migrate()
        await reopened.migrate()
        async with reopened.unit_of_work() as uow:
            assert await uow.accounts.get("u1") == make_account(balance_cents=MILLION_CENTS)
        assert reopened.applied_versions() == [SCHEMA_VERSION]
        await reopened.close()

    async def test_the_wal_stays_small_under_a_steady_stream_of_commits(
        self, tmp_path: Path
    ) -> None:
        """A PASSIVE checkpoint alone never catches a writer that never pauses, and the WAL
        then grows without bound (1 GB in 40 s of deposits, measured); the checkpointer must
        restart it. Without the restart these 3,000 commits made a WAL of 67 MB; with it,
        1 to 1.5 MB."""
        path = tmp_path / "orderproc.db"
        store = SqliteStore(path, checkpoint_every=0.005, wal_restart_frames=64)
        await store.migrate()
        await commit(store, lambda uow: uow.accounts.add(make_account()))
        wal = path.with_name(path.name + "-wal")
        largest = 0
        checkpointer = store._checkpointer
        assert checkpointer is not None
        for n in range(3000):
            async with store.unit_of_work() as uow:
                uow.audit.add(make_event(f"e{n:05d}"))
                await uow.commit()
            if n % 10 == 0:
                largest = max(largest, wal.stat().st_size)
                await asyncio.sleep(0.001)  # a server's writes come with gaps between them
            if n % 100 == 99:
                # One of those gaps lets a checkpoint pass run, however busy the machine
                # (on a loaded one the thread may not be scheduled in a millisecond's gap).
                done = checkpointer.passes
                while checkpointer.passes <= done:
                    await asyncio.sleep(0.001)
        largest = max(largest, wal.stat().st_size)
        assert store._conn.execute("SELECT count(*) FROM audit_events").fetchone()[0] == 3000
        await store.close()
        assert largest < 8_000_000, f"the WAL reached {largest} bytes"

    async def test_units_committing_in_one_turn_share_one_transaction(self, tmp_path: Path) -> None:
        store = SqliteStore(tmp_path / "orderproc.db")
        await store.migrate()
        begins: list[str] = []
        store._conn.set_trace_callback(
            lambda sql: begins.append(sql) if sql.startswith("BEGIN") else None
        )

        def add(n: int) -> Callable[[UnitOfWork], object]:
            return lambda uow: uow.accounts.add(make_account(f"u{n}"))

        await asyncio.gather(*(commit(store, add(n)) for n in range(8)))
        await commit(store, add(8))
        store._conn.set_trace_callback(None)
        assert begins == ["BEGIN IMMEDIATE", "BEGIN IMMEDIATE"]
        async with store.unit_of_work() as uow:
            for n in range(9):
                assert await uow.accounts.get(f"u{n}") == make_account(f"u{n}")
        await store.close()

    async def test_a_unit_cancelled_before_the_flush_is_not_written(self, tmp_path: Path) -> None:
        store = SqliteStore(tmp_path / "orderproc.db")
        await store.migrate()
        task = asyncio.create_task(commit(store, lambda uow: uow.accounts.add(make_account())))
        await asyncio.sleep(0)  # the task runs to its commit, which waits for the flush
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await commit(store, lambda uow: uow.accounts.add(make_account("u2")))
        async with store.unit_of_work() as uow:
            assert await uow.accounts.get("u1") is None
            assert await uow.accounts.get("u2") == make_account("u2")
        await store.close()

    async def test_a_unit_cancelled_after_its_commit_hears_that_it_committed(
        self, tmp_path: Path
    ) -> None:
        store = SqliteStore(tmp_path / "orderproc.db")
        await store.migrate()
        task = asyncio.create_task(commit(store, lambda uow: uow.accounts.add(make_account())))
        await asyncio.sleep(0)  # the task waits for the flush
        await asyncio.sleep(0)  # the flush has committed; the task has not resumed yet
        task.cancel()
        assert await task is None
        async with store.unit_of_work() as uow:
            assert await uow.accounts.get("u1") == make_account()
        await store.close()

    async def test_a_value_sqlite_refuses_fails_only_its_own_unit(self, tmp_path: Path) -> None:
        store = SqliteStore(tmp_path / "orderproc.db")
        await store.migrate()

        def add(user_id: str, balance_cents: int) -> Callable[[UnitOfWork], object]:
            return lambda uow: uow.accounts.add(make_account(user_id, balance_cents=balance_cents))

        results = await asyncio.gather(
            commit(store, add("u1", 100)),
            commit(store, add("u2", 2**63)),  # no SQLite integer holds it
            commit(store, add("u3", 300)),
            return_exceptions=True,
        )
        assert results[0] is None
        assert isinstance(results[1], OverflowError)
        assert results[2] is None
        async with store.unit_of_work() as uow:
            assert await uow.accounts.get("u1") == make_account("u1", balance_cents=100)
            assert await uow.accounts.get("u2") is None
            assert await uow.accounts.get("u3") == make_account("u3", balance_cents=300)
        await store.close()

    async def test_a_database_in_memory_works(self) -> None:
        in_memory = SqliteStore(":memory:")
        await in_memory.migrate()
        await commit(in_memory, lambda uow: uow.accounts.add(make_account()))
        async with in_memory.unit_of_work() as uow:
            assert await uow.accounts.get("u1") == make_account()
        await in_memory.close()


class TestOpenStore:
    @pytest.mark.parametrize("slashes", ["sqlite://", "sqlite:///"])
    async def test_opens_sqlite_at_an_absolute_path(self, tmp_path: Path, slashes: str) -> None:
        opened = open_store(f"{slashes}{tmp_path}/x/store.db")
        assert isinstance(opened, SqliteStore)
        await opened.migrate()
        await opened.close()
        assert (tmp_path / "x" / "store.db").exists()

    async def test_opens_sqlite_in_memory_and_the_memory_store(self) -> None:
        in_memory = open_store("sqlite:///:memory:")
        assert isinstance(in_memory, SqliteStore)
        await in_memory.close()
        assert isinstance(open_store("memory://"), MemoryStore)

    @pytest.mark.parametrize(
        "url",
        [
            "mysql://user:secret@db/orderproc",
            "sqlite://",
            "sqlite:///",
            "nonsense",
        ],
    )
    async def test_refuses_other_urls_with_a_clear_message(self, url: str) -> None:
        with pytest.raises(ValueError, match="Unsupported") as refusal:
            open_store(url)
        assert "secret" not in str(refusal.value)
