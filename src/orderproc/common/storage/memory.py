"""The in-memory storage adapter: the fake for unit tests and the reference for the contract.
Trading's repositories live in `memory_trading`, the shared state and journal in `memory_core`.

Writes are staged as small operations; `commit()` runs them against the state, journalling how to
undo each change, and undoes them all if any condition fails, so a failed commit leaves nothing
behind. There is no `await` in `commit()`, so it is atomic on the event loop.
"""

from __future__ import annotations

import builtins
from datetime import date, datetime
from itertools import islice
from types import TracebackType
from typing import Self

from orderproc.common.storage.memory_core import (
    Journal,
    MemoryRepository,
    Operation,
    State,
    json_copy,
    keyset_page,
    within,
)
from orderproc.common.storage.memory_trading import (
    MemoryAssetLedger,
    MemoryAssets,
    MemoryCandles,
    MemoryOrders,
    MemoryPositions,
)
from orderproc.common.storage.ports import (
    AccountRepository,
    AssetLedgerRepository,
    AssetRepository,
    AuditRepository,
    CandleRepository,
    CashLedgerRepository,
    DailyLimitRepository,
    IdempotencyRepository,
    OrderRepository,
    PositionRepository,
    RevocationRepository,
    UserRepository,
)
from orderproc.common.storage.records import (
    AccountRecord,
    AuditEvent,
    CashEntry,
    CashEntryKind,
    IdempotencyRecord,
    LimitKind,
    Page,
    PageKey,
    UserRecord,
)
from orderproc.errors import ConcurrencyConflict


class MemoryUsers(MemoryRepository):
    async def get(self, user_id: str) -> UserRecord | None:
        return self._state.users.get(user_id)

    async def get_by_username(self, username: str) -> UserRecord | None:
        user_id = self._state.user_by_name.get(username)
        return None if user_id is None else self._state.users[user_id]

    async def get_by_email(self, email: str) -> UserRecord | None:
        user_id = self._state.user_by_email.get(email)
        return None if user_id is None else self._state.users[user_id]

    async def list(self, *, limit: int, after: PageKey | None = None) -> Page[UserRecord]:
        users = self._state.users.values()
        return keyset_page(users, indexed=lambda _: True, limit=limit, after=after)

    async def active_admins(self) -> builtins.list[UserRecord]:
        admins = (u for u in self._state.users.values() if u.role == "admin" and u.is_active)
        return sorted(admins, key=lambda user: user.user_id)

    def add(self, user: UserRecord) -> None:
        self._staged.append(lambda state, journal: _put_user(state, journal, user, previous=None))

    def update(self, user: UserRecord, *, expected_version: int) -> None:
        def apply(state: State, journal: Journal) -> bool:
            previous = state.users.get(user.user_id)
            if previous is None or previous.version != expected_version:
                return False
            return _put_user(state, journal, user, previous=previous)

        self._staged.append(apply)


def _put_user(
    state: State, journal: Journal, user: UserRecord, *, previous: UserRecord | None
) -> bool:
    if previous is None and user.user_id in state.users:
        return False
    for index, value in ((state.user_by_name, user.username), (state.user_by_email, user.email)):
        if index.get(value, user.user_id) != user.user_id:
            return False
    if previous is not None:
        journal.delete(state.user_by_name, previous.username)
        journal.delete(state.user_by_email, previous.email)
    journal.put(state.users, user.user_id, user)
    journal.put(state.user_by_name, user.username, user.user_id)
    journal.put(state.user_by_email, user.email, user.user_id)
    return True


def _sound(account: AccountRecord) -> bool:
    return min(account.balance_cents, account.reserved_cents, account.available_cents) >= 0


class MemoryAccounts(MemoryRepository):
    async def get(self, user_id: str) -> AccountRecord | None:
        return self._state.accounts.get(user_id)

    async def ids_after(self, after: str | None, *, limit: int) -> builtins.list[str]:
        ids = sorted(i for i in self._state.accounts if after is None or i > after)
        return ids[: max(limit, 0)]

    def add(self, account: AccountRecord) -> None:
        def apply(state: State, journal: Journal) -> bool:
            if account.user_id in state.accounts or not _sound(account):
                return False
            journal.put(state.accounts, account.user_id, account)
            return True

        self._staged.append(apply)

    def update(self, account: AccountRecord, *, expected_version: int) -> None:
        def apply(state: State, journal: Journal) -> bool:
            stored = state.accounts.get(account.user_id)
            if stored is None or stored.version != expected_version or not _sound(account):
                return False
            journal.put(state.accounts, account.user_id, account)
            return True

        self._staged.append(apply)


class MemoryCashLedger(MemoryRepository):
    def add(self, entry: CashEntry) -> None:
        def apply(state: State, journal: Journal) -> bool:
            if entry.entry_id in state.ledger_ids:
                return False
            journal.append(state.ledger, entry)
            journal.put(state.ledger_ids, entry.entry_id, None)
            return True

        self._staged.append(apply)

    async def list_for_user(
        self,
        user_id: str,
        *,
        kind: CashEntryKind | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 50,
        after: PageKey | None = None,
        offset: int = 0,
    ) -> Page[CashEntry]:
        return keyset_page(
            self._state.ledger,
            indexed=lambda e: e.user_id == user_id and within(e.created_at, start, end),
            residual=None if kind is None else lambda e: e.kind == kind,
            limit=limit,
            after=after,
            offset=offset,
        )

    async def sum_for_user(self, user_id: str) -> int:
        return sum(entry.amount_cents for entry in self._state.ledger if entry.user_id == user_id)


class MemoryDailyLimits(MemoryRepository):
    async def used(self, user_id: str, day: date, kind: LimitKind) -> int:
        return self._state.limits.get((user_id, day.isoformat(), kind), 0)

    def add(
        self, user_id: str, day: date, kind: LimitKind, amount_cents: int, *, limit_cents: int
    ) -> None:
        key = (user_id, day.isoformat(), kind)

        def apply(state: State, journal: Journal) -> bool:
            used = state.limits.get(key, 0) + amount_cents
            if used > limit_cents or used < 0:
                return False
            journal.put(state.limits, key, used)
            return True

        self._staged.append(apply)


class MemoryIdempotency(MemoryRepository):
    async def get(self, user_id: str, key: str, *, now: datetime) -> IdempotencyRecord | None:
        record = self._state.idempotency.get((user_id, key))
        return record if record is not None and record.expires_at > now else None

    def add(self, record: IdempotencyRecord) -> None:
        stored_record = record.evolve(payload=json_copy(record.payload))

        def apply(state: State, journal: Journal) -> bool:
            existing = state.idempotency.get((record.user_id, record.key))
            if existing is not None and existing.expires_at > record.created_at:
                return False
            journal.put(state.idempotency, (record.user_id, record.key), stored_record)
            return True

        self._staged.append(apply)

    async def purge_expired(self, *, now: datetime, limit: int) -> int:
        table = self._state.idempotency
        expired = (key for key, record in table.items() if record.expires_at <= now)
        taken = builtins.list(islice(expired, max(limit, 0)))
        for key in taken:
            del table[key]
        return len(taken)


class MemoryRevocations(MemoryRepository):
    async def is_revoked(self, jti: str) -> bool:
        return jti in self._state.revocations

    def add(self, jti: str, *, user_id: str, expires_at: datetime) -> None:
        def apply(state: State, journal: Journal) -> bool:
            if jti not in state.revocations:
                journal.put(state.revocations, jti, (user_id, expires_at))
            return True

        self._staged.append(apply)

    async def purge_expired(self, *, now: datetime, limit: int) -> int:
        table = self._state.revocations
        expired = (jti for jti, (_, expires_at) in table.items() if expires_at <= now)
        taken = builtins.list(islice(expired, max(limit, 0)))
        for jti in taken:
            del table[jti]
        return len(taken)


class MemoryAudit(MemoryRepository):
    def add(self, event: AuditEvent) -> None:
        stored_event = event.evolve(details=json_copy(event.details))

        def apply(state: State, journal: Journal) -> bool:
            if event.event_id in state.audit_ids:
                return False
            journal.append(state.audit, stored_event)
            journal.put(state.audit_ids, event.event_id, None)
            return True

        self._staged.append(apply)

    async def list(
        self,
        *,
        user_id: str | None = None,
        event_type: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 50,
        after: PageKey | None = None,
    ) -> Page[AuditEvent]:
        # An index by user and one by type: the user's, when both are asked for.
        by_type = event_type if user_id is None else None
        of_type = event_type if user_id is not None else None
        return keyset_page(
            self._state.audit,
            indexed=lambda e: (
                (user_id is None or e.user_id == user_id)
                and (by_type is None or e.event_type == by_type)
                and within(e.created_at, start, end)
            ),
            residual=None if of_type is None else lambda e: e.event_type == of_type,
            limit=limit,
            after=after,
        )


class MemoryUnitOfWork:
    """Reads see committed state; writes wait in `staged` until `commit()`."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.staged: builtins.list[Operation] = []
        self.users: UserRepository = MemoryUsers(store, self.staged)
        self.accounts: AccountRepository = MemoryAccounts(store, self.staged)
        self.cash_ledger: CashLedgerRepository = MemoryCashLedger(store, self.staged)
        self.daily_limits: DailyLimitRepository = MemoryDailyLimits(store, self.staged)
        self.idempotency: IdempotencyRepository = MemoryIdempotency(store, self.staged)
        self.revocations: RevocationRepository = MemoryRevocations(store, self.staged)
        self.audit: AuditRepository = MemoryAudit(store, self.staged)
        self.assets: AssetRepository = MemoryAssets(store, self.staged)
        self.candles: CandleRepository = MemoryCandles(store, self.staged)
        self.orders: OrderRepository = MemoryOrders(store, self.staged)
        self.positions: PositionRepository = MemoryPositions(store, self.staged)
        self.asset_ledger: AssetLedgerRepository = MemoryAssetLedger(store, self.staged)

    async def commit(self) -> None:
        operations = builtins.list(self.staged)
        self.staged.clear()
        if not operations:
            return
        journal = Journal()
        if not all(operation(self._store.state, journal) for operation in operations):
            journal.roll_back()
            raise ConcurrencyConflict()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.staged.clear()


class MemoryStore:
    """Everything in dictionaries; lost when the process ends."""

    def __init__(self) -> None:
        self.state = State()

    def unit_of_work(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self)

    async def migrate(self) -> None:
        """Nothing to create: the state is ready from the start."""

    async def ping(self) -> None:
        """Always reachable."""

    async def close(self) -> None:
        """Nothing to release."""
