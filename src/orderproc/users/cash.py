"""Cash use cases: deposit, withdraw, balance and ledger.

Each movement is one unit of work (balance, ledger entry, daily-limit counter, idempotency
record) under the user's account lock, retried when a conditional write loses a race.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from orderproc.common.clock import Clock, isoformat_z, utc_day
from orderproc.common.idempotency import IdempotencyScope, remember_rejection, replay
from orderproc.common.ids import new_id
from orderproc.common.locking import Locker, account_lock_key
from orderproc.common.metrics import MoneyOperations
from orderproc.common.money import format_money, from_cents
from orderproc.common.retry import retry_on_conflict
from orderproc.common.storage.ports import Store, UnitOfWork
from orderproc.common.storage.records import (
    AccountRecord,
    CashEntry,
    CashEntryKind,
    Page,
    PageKey,
)
from orderproc.errors import AccountNotFound, BusinessRuleViolation
from orderproc.users.domain import CashKind, CashRules, signed_movement, validate_amount


@dataclass(frozen=True, slots=True)
class CashCommand:
    user_id: str
    kind: CashKind
    amount: Decimal
    idempotency_key: str | None = None
    fingerprint: str = ""


@dataclass(frozen=True, slots=True)
class CashReceipt:
    transaction_id: str
    transaction_type: CashKind
    amount: Decimal
    balance: Decimal
    available_balance: Decimal
    timestamp: str

    def to_payload(self) -> dict[str, Any]:
        return {
            "transaction_id": self.transaction_id,
            "transaction_type": self.transaction_type,
            "amount": format_money(self.amount),
            "balance": format_money(self.balance),
            "available_balance": format_money(self.available_balance),
            "timestamp": self.timestamp,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> CashReceipt:
        return cls(
            transaction_id=payload["transaction_id"],
            transaction_type=payload["transaction_type"],
            amount=Decimal(payload["amount"]),
            balance=Decimal(payload["balance"]),
            available_balance=Decimal(payload["available_balance"]),
            timestamp=payload["timestamp"],
        )


@dataclass(frozen=True, slots=True)
class CashDeps:
    store: Store
    locker: Locker
    clock: Clock
    rules: CashRules
    lock_timeout: float
    idempotency_ttl: timedelta
    money: MoneyOperations = field(default_factory=MoneyOperations)


async def move_cash(cmd: CashCommand, *, deps: CashDeps) -> CashReceipt:
    """Deposit or withdraw, exactly once per idempotency key."""
    amount_cents = validate_amount(cmd.amount, deps.rules)
    async with deps.locker.hold(account_lock_key(cmd.user_id), timeout=deps.lock_timeout):
        return await retry_on_conflict(lambda: _move_cash_once(cmd, amount_cents, deps))


async def _move_cash_once(cmd: CashCommand, amount_cents: int, deps: CashDeps) -> CashReceipt:
    now = deps.clock.now()
    async with deps.store.unit_of_work() as uow:
        if cmd.idempotency_key:
            record = await uow.idempotency.get(cmd.user_id, cmd.idempotency_key, now=now)
            if record is not None:
                return CashReceipt.from_payload(replay(record, fingerprint_now=cmd.fingerprint))
        account = await uow.accounts.get(cmd.user_id)
        if account is None:
            raise AccountNotFound()
        day = utc_day(now)
        used = await uow.daily_limits.used(cmd.user_id, day, cmd.kind)
        try:
            delta = signed_movement(
                cmd.kind,
                amount_cents,
                available_cents=account.available_cents,
                used_today_cents=used,
                rules=deps.rules,
            )
        except BusinessRuleViolation as rejection:
            await remember_rejection(
                deps.store, _scope(cmd), rejection, now=now, ttl=deps.idempotency_ttl
            )
            raise
        receipt = _stage_movement(uow, cmd, account, delta, now=now)
        uow.daily_limits.add(
            cmd.user_id,
            day,
            cmd.kind,
            amount_cents,
            limit_cents=deps.rules.daily_limit_cents[cmd.kind],
        )
        scope = _scope(cmd)
        if scope is not None:
            uow.idempotency.add(
                scope.record("ok", receipt.to_payload(), now=now, ttl=deps.idempotency_ttl)
            )
        await uow.commit()
        deps.money.count(cmd.kind)
        return receipt


def _stage_movement(
    uow: UnitOfWork, cmd: CashCommand, account: AccountRecord, delta: int, *, now: datetime
) -> CashReceipt:
    updated = account.evolve(
        balance_cents=account.balance_cents + delta, version=account.version + 1, updated_at=now
    )
    uow.accounts.update(updated, expected_version=account.version)
    entry = CashEntry(
        entry_id=new_id(),
        user_id=cmd.user_id,
        kind=cmd.kind,
        amount_cents=delta,
        balance_after_cents=updated.balance_cents,
        reference_id=cmd.idempotency_key,
        created_at=now,
    )
    uow.cash_ledger.add(entry)
    return CashReceipt(
        transaction_id=entry.entry_id,
        transaction_type=cmd.kind,
        amount=from_cents(abs(delta)),
        balance=from_cents(updated.balance_cents),
        available_balance=from_cents(updated.available_cents),
        timestamp=isoformat_z(now),
    )


def _scope(cmd: CashCommand) -> IdempotencyScope | None:
    return IdempotencyScope.of(cmd.user_id, cmd.idempotency_key, cmd.fingerprint)


async def get_account(user_id: str, *, store: Store) -> AccountRecord:
    async with store.unit_of_work() as uow:
        account = await uow.accounts.get(user_id)
    if account is None:
        raise AccountNotFound()
    return account


async def list_cash_entries(
    user_id: str,
    *,
    store: Store,
    kind: CashEntryKind | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    after: PageKey | None = None,
    offset: int = 0,
) -> Page[CashEntry]:
    async with store.unit_of_work() as uow:
        return await uow.cash_ledger.list_for_user(
            user_id, kind=kind, start=start, end=end, limit=limit, after=after, offset=offset
        )
