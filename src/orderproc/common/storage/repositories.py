"""The repositories, written once for every store: each aggregate's reads, in domain words, over
a backend's few read primitives (`Reads`), and its writes, staged as intents (`intents`) until
`UnitOfWork.commit()` applies them all or, if a condition fails, raises `ConcurrencyConflict`
and applies none. Lists page by key (`after`), never by counting; a `residual` filter looks at
most `SCAN_ROWS` rows a page. See docs/storage.md ("Writes are intents", "Reads")."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Generic, Protocol, Self, TypeVar

from orderproc.common.storage import schema as s
from orderproc.common.storage.intents import Increment, Insert, Intent, Update, Upsert
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
    LimitUsage,
    OrderRecord,
    OrderStatus,
    Page,
    PageKey,
    PositionRecord,
    PriceUpdate,
    Revocation,
    UserRecord,
)

# (column, operator, value); operators: = < <= > >=. None values are left out by `conditions`.
Cond = tuple[str, str, Any]
# Rows a chunk of a sum or a purge takes: a few milliseconds at most on the event loop.
CHUNK_ROWS = 2_000
R = TypeVar("R")


class Reads(Protocol):
    """What a backend implements to read; `order` names columns, "x DESC" to reverse, and
    `seq` is insertion order."""

    async def get(self, table: s.Table[R], key: Sequence[Any]) -> R | None:
        """The row with this key (in `table.key`'s order), if any."""

    async def select(
        self, table: s.Table[R], where: Sequence[Cond] = (), *, order: Sequence[str] = (),
        limit: int | None = None,
    ) -> builtins.list[R]: ...  # fmt: skip

    async def page(
        self, table: s.Table[R], where: Sequence[Cond], *, residual: Sequence[Cond], limit: int,
        after: PageKey | None, offset: int,
    ) -> Page[R]: ...  # fmt: skip

    async def sum(
        self, table: s.Table[Any], column: str, where: Sequence[Cond], *,
        after: PageKey | None, limit: int,
    ) -> tuple[int, PageKey | None]:  # fmt: skip
        """The sum over at most `limit` rows newest first past `after`, and the last row's key
        when `limit` rows were summed (more may follow)."""

    async def delete(self, table: s.Table[Any], where: Sequence[Cond], *, limit: int) -> int:
        """Delete at most `limit` matching rows now, in a short transaction of its own."""


class Session(Reads, Protocol):
    """One unit of work's access to a store: reads, and the intents' one transaction."""

    async def apply(self, intents: builtins.list[Intent]) -> None: ...
    async def close(self) -> None: ...


def conditions(*given: Cond) -> builtins.list[Cond]:
    """The conditions whose value is not None (a filter not asked for)."""
    return [cond for cond in given if cond[2] is not None]


def _time(start: datetime | None, end: datetime | None) -> builtins.list[Cond]:
    return conditions(("created_at", ">=", start), ("created_at", "<", end))


class _Repository:
    def __init__(self, reads: Reads, staged: builtins.list[Intent]) -> None:
        self._reads = reads
        self._staged = staged

    async def _first(self, table: s.Table[R], *where: Cond) -> R | None:
        rows = await self._reads.select(table, where, limit=1)
        return rows[0] if rows else None

    async def _sum(self, table: s.Table[Any], column: str, where: builtins.list[Cond]) -> int:
        """Exact, in chunks that yield the event loop between them: never a whole history in
        one go (a heavy user has hundreds of thousands of entries)."""
        total, after = 0, None
        while True:
            part, after = await self._reads.sum(table, column, where, after=after, limit=CHUNK_ROWS)
            total += part
            if after is None:
                return total
            await asyncio.sleep(0)

    async def _purge(self, table: s.Table[Any], where: builtins.list[Cond], limit: int) -> int:
        return await self._reads.delete(table, where, limit=max(limit, 0))


class _Log(_Repository, Generic[R]):
    """An append-only record in `table`: `add` stages an insert (a taken key fails the commit)."""

    table: s.Table[R]

    def add(self, row: R) -> None:
        self._staged.append(Insert(self.table, row))


class _Rows(_Log[R]):
    """An aggregate kept in `table`, read by key: `add` stages an `Insert` (a taken unique value
    fails the commit too), `update` an `Update` at `expected_version` (see `intents`)."""

    async def get(self, *key: str) -> R | None:
        return await self._reads.get(self.table, key)

    def update(self, row: R, *, expected_version: int) -> None:
        self._staged.append(Update(self.table, row, expected_version))


class UserRepository(_Rows[UserRecord]):
    table = s.USERS

    async def get_by_username(self, username: str) -> UserRecord | None:
        return await self._first(s.USERS, ("username", "=", username))

    async def get_by_email(self, email: str) -> UserRecord | None:
        return await self._first(s.USERS, ("email", "=", email))

    async def list(self, *, limit: int, after: PageKey | None = None) -> Page[UserRecord]:
        """Newest first."""
        return await self._reads.page(s.USERS, [], residual=[], limit=limit, after=after, offset=0)

    async def active_admins(self) -> builtins.list[UserRecord]:
        """Every active admin, by user id (admin changes only: a scan, no index)."""
        where = [("role", "=", "admin"), ("is_active", "=", True)]
        return await self._reads.select(s.USERS, where, order=("user_id",))


class AccountRepository(_Rows[AccountRecord]):
    table = s.ACCOUNTS

    async def ids_after(self, after: str | None, *, limit: int) -> builtins.list[str]:
        """At most `limit` accounts' user ids greater than `after` (from the first if None), in
        id order: the pages of a sweep over every account (reconcile)."""
        where = conditions(("user_id", ">", after))
        rows = await self._reads.select(s.ACCOUNTS, where, order=("user_id",), limit=max(limit, 0))
        return [row.user_id for row in rows]


class CashLedgerRepository(_Log[CashEntry]):
    table = s.CASH_LEDGER

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
        where = [("user_id", "=", user_id), *_time(start, end)]
        residual = conditions(("kind", "=", kind))
        return await self._reads.page(
            s.CASH_LEDGER, where, residual=residual, limit=limit, after=after, offset=offset
        )

    async def sum_for_user(self, user_id: str) -> int:
        return await self._sum(s.CASH_LEDGER, "amount_cents", [("user_id", "=", user_id)])


class DailyLimitRepository(_Repository):
    async def used(self, user_id: str, day: date, kind: LimitKind) -> int:
        """Cents already counted against the limit for that UTC day."""
        usage = await self._reads.get(s.DAILY_LIMITS, (user_id, day, kind))
        return 0 if usage is None else usage.used_cents

    def add(
        self, user_id: str, day: date, kind: LimitKind, amount_cents: int, *, limit_cents: int
    ) -> None:
        """Stage `used += amount`; fails at commit if the result would exceed `limit_cents`."""
        usage = LimitUsage(user_id, day, kind, amount_cents)
        self._staged.append(Increment(s.DAILY_LIMITS, usage, "used_cents", limit_cents))


class IdempotencyRepository(_Repository):
    async def get(self, user_id: str, key: str, *, now: datetime) -> IdempotencyRecord | None:
        """The unexpired record for this key, if any."""
        record = await self._reads.get(s.IDEMPOTENCY, (user_id, key))
        return record if record is not None and record.expires_at > now else None

    def add(self, record: IdempotencyRecord) -> None:
        """Stage an insert; fails at commit if an unexpired record holds the key (one that had
        expired when this record was made is replaced)."""
        self._staged.append(Upsert(s.IDEMPOTENCY, (record,), stale=("expires_at", "created_at")))

    async def purge_expired(self, *, now: datetime, limit: int) -> int:
        """Delete at most `limit` records expired at `now`, now (not staged: a short transaction
        of its own); how many went. Fewer than `limit`: nothing more to take now."""
        return await self._purge(s.IDEMPOTENCY, [("expires_at", "<=", now)], limit)


class RevocationRepository(_Repository):
    async def is_revoked(self, jti: str) -> bool:
        return await self._reads.get(s.REVOCATIONS, (jti,)) is not None

    def add(self, jti: str, *, user_id: str, expires_at: datetime) -> None:
        """Stage a revocation; revoking twice is not an error."""
        revocation = Revocation(jti, user_id, expires_at)
        self._staged.append(Insert(s.REVOCATIONS, revocation, if_absent=True))

    async def purge_expired(self, *, now: datetime, limit: int) -> int:
        """Delete at most `limit` revocations expired at `now`, as `IdempotencyRepository`'s."""
        return await self._purge(s.REVOCATIONS, [("expires_at", "<=", now)], limit)


class AuditRepository(_Log[AuditEvent]):
    table = s.AUDIT

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
        by_type = ("event_type", "=", event_type)
        indexed = ("user_id", "=", user_id) if user_id is not None else by_type
        where = [*conditions(indexed), *_time(start, end)]
        residual = conditions(by_type) if user_id is not None else []
        return await self._reads.page(
            s.AUDIT, where, residual=residual, limit=limit, after=after, offset=0
        )


class AssetRepository(_Rows[AssetRecord]):
    """Assets, each with its price: the newer of its row's (as it was added or last changed)
    and the feed's (`set_prices`, kept in a table of its own)."""

    table = s.ASSETS

    async def get(self, *key: str) -> AssetRecord | None:
        record = await self._reads.get(s.ASSETS, key)
        if record is None:
            return None
        price = await self._reads.get(s.PRICES, key)
        return _priced(record, price)

    async def list_all(self) -> builtins.list[AssetRecord]:
        prices = {price.asset_id: price for price in await self._reads.select(s.PRICES)}
        records = await self._reads.select(s.ASSETS, order=("asset_id",))
        return [_priced(record, prices.get(record.asset_id)) for record in records]

    def set_prices(self, updates: Sequence[PriceUpdate]) -> None:
        """Stage one batch of prices (one tick): no version check and no version bump (prices
        are the feed's alone); a price of an unknown id is kept and read by no asset."""
        if updates:
            self._staged.append(Upsert(s.PRICES, tuple(updates)))


def _priced(record: AssetRecord, price: PriceUpdate | None) -> AssetRecord:
    if price is None or price.updated_at <= record.price_updated_at:
        return record
    return record.evolve(price=price.price, price_updated_at=price.updated_at)


class CandleRepository(_Repository):
    def upsert(self, candles: Sequence[CandleRecord]) -> None:
        """Stage inserts or replacements keyed by (asset_id, interval, open_time)."""
        if candles:
            self._staged.append(Upsert(s.CANDLES, tuple(candles)))

    async def list(
        self, asset_id: str, interval: str, *, limit: int, start: datetime | None = None,
        end: datetime | None = None, earliest: bool = False,
    ) -> builtins.list[CandleRecord]:  # fmt: skip
        """The latest `limit` candles opening in [start, end) (bounds optional), or with
        `earliest` the first `limit`; oldest first. A range scan of the key."""
        where = conditions(
            ("asset_id", "=", asset_id), ("interval", "=", interval),
            ("open_time", ">=", start), ("open_time", "<", end),
        )  # fmt: skip
        order = "open_time" if earliest else "open_time DESC"
        rows = await self._reads.select(s.CANDLES, where, order=(order,), limit=max(limit, 0))
        return rows if earliest else rows[::-1]

    async def purge(self, interval: str, *, before: datetime) -> int:
        """Delete candles of `interval` opening before `before`, now (not staged), in chunks."""
        where: builtins.list[Cond] = [("interval", "=", interval), ("open_time", "<", before)]
        purged = 0
        while (removed := await self._purge(s.CANDLES, where, CHUNK_ROWS)) == CHUNK_ROWS:
            purged += removed
            await asyncio.sleep(0)
        return purged + removed


class OrderRepository(_Rows[OrderRecord]):
    table = s.ORDERS

    async def get_by_client_id(self, user_id: str, client_order_id: str) -> OrderRecord | None:
        return await self._first(
            s.ORDERS, ("user_id", "=", user_id), ("client_order_id", "=", client_order_id)
        )

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
        where = [
            ("user_id", "=", user_id),
            *conditions(("client_order_id", "=", client_order_id)),
            *_time(start, end),
        ]
        residual = conditions(
            ("status", "=", status), ("asset_id", "=", asset_id), ("order_type", "=", order_type)
        )
        return await self._reads.page(
            s.ORDERS, where, residual=residual, limit=limit, after=after, offset=offset
        )

    async def list_open(self, *, asset_id: str | None = None) -> builtins.list[OrderRecord]:
        """Resting orders, oldest first (for matching)."""
        where = [("status", "=", "open"), *conditions(("asset_id", "=", asset_id))]
        return await self._reads.select(s.ORDERS, where, order=("created_at", "seq"))


class PositionRepository(_Rows[PositionRecord]):
    table = s.POSITIONS

    async def list_for_user(self, user_id: str) -> builtins.list[PositionRecord]:
        """Every position of the user, zero ones included, by asset id."""
        where = [("user_id", "=", user_id)]
        return await self._reads.select(s.POSITIONS, where, order=("asset_id",))


class AssetLedgerRepository(_Log[AssetEntry]):
    table = s.ASSET_LEDGER

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
        where = [("user_id", "=", user_id), *conditions(("asset_id", "=", asset_id))]
        return await self._reads.page(
            s.ASSET_LEDGER, where, residual=[], limit=limit, after=after, offset=offset
        )

    async def sum_for_position(self, user_id: str, asset_id: str) -> int:
        """The signed sum of quantity units."""
        where: builtins.list[Cond] = [("user_id", "=", user_id), ("asset_id", "=", asset_id)]
        return await self._sum(s.ASSET_LEDGER, "quantity_units", where)


class UnitOfWork:
    """One transaction. Leaving the `async with` block without `commit()` discards it."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.staged: builtins.list[Intent] = []
        self.users = UserRepository(session, self.staged)
        self.accounts = AccountRepository(session, self.staged)
        self.cash_ledger = CashLedgerRepository(session, self.staged)
        self.daily_limits = DailyLimitRepository(session, self.staged)
        self.idempotency = IdempotencyRepository(session, self.staged)
        self.revocations = RevocationRepository(session, self.staged)
        self.audit = AuditRepository(session, self.staged)
        self.assets = AssetRepository(session, self.staged)
        self.candles = CandleRepository(session, self.staged)
        self.orders = OrderRepository(session, self.staged)
        self.positions = PositionRepository(session, self.staged)
        self.asset_ledger = AssetLedgerRepository(session, self.staged)

    async def commit(self) -> None:
        """Apply every staged write atomically, or raise `ConcurrencyConflict` and apply none.
        A fault raises `StoreUnavailable` (or a kind of it) instead, never a driver's error."""
        intents = builtins.list(self.staged)
        self.staged.clear()
        if intents:
            await self._session.apply(intents)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.staged.clear()
        await self._session.close()
