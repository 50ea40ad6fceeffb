"""Storage ports: one repository per aggregate, in domain words, and the unit of work.

Reads are awaited and see committed data. Writes are *staged*: nothing reaches the store until
`UnitOfWork.commit()`, which applies every staged write in one transaction or none of them. Each
staged write is conditional (a version, a uniqueness, a limit); if any condition fails, commit
raises `ConcurrencyConflict` and nothing is written, so the use case re-reads and decides again
(see `orderproc.common.retry`).

Faults are not conflicts: a store that is full, read-only, unreachable or too slow raises
`StoreUnavailable` or one of its kinds (`StoreFull`, `StoreReadOnly`, `StoreTimeout`; all 503
at the edge) from any read or commit. Each adapter maps its driver's errors to them once, at its
boundary; a failed commit applied nothing (or, for a lost connection or a time-out during
COMMIT, may have: the caller is never told it committed when it did not).

Lists page by key, never by counting: a list is kept newest first by (time, insertion order),
`after` (a `PageKey` from the previous page's `next_key`) starts a page just past a row, and a
page costs about the same however long the list is. A filter the list's index does not hold is
applied to at most `SCAN_ROWS` rows a page, so such a page may come back short, even empty, with
a `next_key` to go on from. `offset` remains only on the lists the original platform's clients
page that way (the API caps it); it counts matching rows to skip first. `total_count` is None
unless the store counts cheaply (the memory store does).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import date, datetime
from types import TracebackType
from typing import Protocol, Self

from orderproc.common.storage.records import (
    AccountRecord,
    AssetEntry,
    AssetRecord,
    AuditEvent,
    CandleRecord,
    CashEntry,
    CashEntryKind,
    IdempotencyRecord,
    LimitKind,
    OrderRecord,
    OrderStatus,
    Page,
    PageKey,
    PositionRecord,
    PriceUpdate,
    UserRecord,
)
from orderproc.errors import StoreFull as StoreFull
from orderproc.errors import StoreReadOnly as StoreReadOnly
from orderproc.errors import StoreTimeout as StoreTimeout
from orderproc.errors import StoreUnavailable as StoreUnavailable


class UserRepository(Protocol):
    async def get(self, user_id: str) -> UserRecord | None: ...
    async def get_by_username(self, username: str) -> UserRecord | None: ...
    async def get_by_email(self, email: str) -> UserRecord | None: ...
    async def list(self, *, limit: int, after: PageKey | None = None) -> Page[UserRecord]:
        """Newest first."""

    async def active_admins(self) -> builtins.list[UserRecord]:
        """Every active admin, by user id (admin changes only: a scan, no index)."""

    def add(self, user: UserRecord) -> None:
        """Stage an insert; fails at commit if the id, username or email exists."""

    def update(self, user: UserRecord, *, expected_version: int) -> None:
        """Stage a replace of the row at `expected_version`; `user.version` is the new one."""


class AccountRepository(Protocol):
    async def get(self, user_id: str) -> AccountRecord | None: ...
    async def ids_after(self, after: str | None, *, limit: int) -> builtins.list[str]:
        """At most `limit` accounts' user ids greater than `after` (from the first if None), in
        id order: the pages of a sweep over every account (reconcile)."""

    def add(self, account: AccountRecord) -> None: ...
    def update(self, account: AccountRecord, *, expected_version: int) -> None:
        """Stage the new state; fails at commit unless the stored version is `expected_version`
        and the new balance and available amount are both >= 0."""


class CashLedgerRepository(Protocol):
    def add(self, entry: CashEntry) -> None: ...
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
        """Newest first; `start` inclusive, `end` exclusive. By user and time through the index;
        `kind` within `SCAN_ROWS` rows a page."""

    async def sum_for_user(self, user_id: str) -> int: ...


class DailyLimitRepository(Protocol):
    async def used(self, user_id: str, day: date, kind: LimitKind) -> int:
        """Cents already counted against the limit for that UTC day."""

    def add(
        self, user_id: str, day: date, kind: LimitKind, amount_cents: int, *, limit_cents: int
    ) -> None:
        """Stage `used += amount`; fails at commit if the result would exceed `limit_cents`."""


class IdempotencyRepository(Protocol):
    async def get(self, user_id: str, key: str, *, now: datetime) -> IdempotencyRecord | None:
        """The unexpired record for this key, if any."""

    def add(self, record: IdempotencyRecord) -> None:
        """Stage an insert; fails at commit if an unexpired record holds the key
        (an expired one is replaced)."""

    async def purge_expired(self, *, now: datetime, limit: int) -> int:
        """Delete at most `limit` records expired at `now`, now (not staged: a short transaction
        of its own); how many went. Fewer than `limit`: nothing more to take now."""


class RevocationRepository(Protocol):
    async def is_revoked(self, jti: str) -> bool: ...
    def add(self, jti: str, *, user_id: str, expires_at: datetime) -> None:
        """Stage a revocation; revoking twice is not an error."""

    async def purge_expired(self, *, now: datetime, limit: int) -> int:
        """Delete at most `limit` revocations expired at `now`, as `IdempotencyRepository`'s."""


class AuditRepository(Protocol):
    def add(self, event: AuditEvent) -> None: ...
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
        """Newest first. By time, and by user or by type, through an index; both user and type:
        the type within `SCAN_ROWS` rows a page."""


class AssetRepository(Protocol):
    async def list_all(self) -> builtins.list[AssetRecord]: ...
    async def get(self, asset_id: str) -> AssetRecord | None: ...
    def add(self, asset: AssetRecord) -> None:
        """Stage an insert; fails at commit if the id exists."""

    def update(self, asset: AssetRecord, *, expected_version: int) -> None:
        """Stage a replace (metadata, activity, price) at `expected_version`."""

    def set_prices(self, updates: Sequence[PriceUpdate]) -> None:
        """Stage one batch of price changes (one tick); unknown ids are ignored; no version
        check and no version bump (prices are the feed's alone)."""


class CandleRepository(Protocol):
    def upsert(self, candles: Sequence[CandleRecord]) -> None:
        """Stage inserts or replacements keyed by (asset_id, interval, open_time)."""

    async def list(
        self, asset_id: str, interval: str, *, limit: int, end: datetime | None = None
    ) -> builtins.list[CandleRecord]:
        """The latest `limit` candles opening before `end` (if given), oldest first."""

    async def purge(self, interval: str, *, before: datetime) -> int:
        """Delete candles of `interval` opening before `before`, now (not staged)."""


class OrderRepository(Protocol):
    async def get(self, order_id: str) -> OrderRecord | None: ...
    async def get_by_client_id(self, user_id: str, client_order_id: str) -> OrderRecord | None: ...
    async def list_for_user(
        self,
        user_id: str,
        *,
        status: OrderStatus | None = None,
        asset_id: str | None = None,
        order_type: str | None = None,
        client_order_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 50,
        after: PageKey | None = None,
        offset: int = 0,
    ) -> Page[OrderRecord]:
        """Newest first; `start` inclusive, `end` exclusive. By user, time and client order id
        through an index; `status`, `asset_id` and `order_type` within `SCAN_ROWS` rows a page."""

    async def list_open(self, *, asset_id: str | None = None) -> builtins.list[OrderRecord]:
        """Resting orders, oldest first (for matching)."""

    def add(self, order: OrderRecord) -> None:
        """Stage an insert; fails at commit if the id, or the user's client_order_id, exists."""

    def update(self, order: OrderRecord, *, expected_version: int) -> None: ...


class PositionRepository(Protocol):
    async def get(self, user_id: str, asset_id: str) -> PositionRecord | None: ...
    async def list_for_user(self, user_id: str) -> builtins.list[PositionRecord]:
        """Every position of the user, zero ones included, by asset id."""

    def add(self, position: PositionRecord) -> None:
        """Stage an insert; fails at commit if the (user, asset) position exists."""

    def update(self, position: PositionRecord, *, expected_version: int) -> None:
        """Stage the new state; fails unless the stored version is `expected_version` and the
        new quantity, reserved and available units are all >= 0."""


class AssetLedgerRepository(Protocol):
    def add(self, entry: AssetEntry) -> None: ...
    async def list_for_user(
        self,
        user_id: str,
        *,
        asset_id: str | None = None,
        limit: int = 50,
        after: PageKey | None = None,
        offset: int = 0,
    ) -> Page[AssetEntry]:
        """Newest first; by user and asset through the index (without `asset_id`, every row of
        the user is sorted: no route asks for that)."""

    async def sum_for_position(self, user_id: str, asset_id: str) -> int:
        """The signed sum of quantity units."""


class UnitOfWork(Protocol):
    """One transaction. Leaving the `async with` block without `commit()` discards it."""

    users: UserRepository
    accounts: AccountRepository
    cash_ledger: CashLedgerRepository
    daily_limits: DailyLimitRepository
    idempotency: IdempotencyRepository
    revocations: RevocationRepository
    audit: AuditRepository
    assets: AssetRepository
    candles: CandleRepository
    orders: OrderRepository
    positions: PositionRepository
    asset_ledger: AssetLedgerRepository

    async def commit(self) -> None:
        """Apply every staged write atomically, or raise `ConcurrencyConflict` and apply none.
        A fault raises `StoreUnavailable` (or a kind of it) instead, never a driver's error."""

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Store(Protocol):
    """A storage backend: makes units of work, owns connections and the schema."""

    def unit_of_work(self) -> UnitOfWork: ...
    async def migrate(self) -> None:
        """Create or upgrade the schema in place."""

    async def ping(self) -> None:
        """Raise `StoreUnavailable` if the store cannot be reached."""

    async def close(self) -> None: ...
