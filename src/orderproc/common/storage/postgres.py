"""The PostgreSQL storage adapter (asyncpg): reads through a connection pool, and each unit of
work's writes applied at commit in one READ COMMITTED transaction of conditional statements.

READ COMMITTED suffices because every staged write carries its own condition (a version, a
limit, a uniqueness) and is checked by its row count; a statement that finds its condition false
makes the whole unit a `ConcurrencyConflict`, which the use cases retry. The pool opens on first
use, so `open_store()` stays synchronous. The schema lives in `postgres_migrations`, trading's
repositories in `postgres_trading`, what all repositories share in `postgres_core`.
"""

from __future__ import annotations

import asyncio
import builtins
from datetime import date, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import asyncpg
import orjson

from orderproc.common.clock import SystemClock
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
    StoreUnavailable,
    UserRepository,
)
from orderproc.common.storage.postgres_core import (
    DRIVER_ERRORS,
    Filters,
    Params,
    PoolSource,
    PostgresRepository,
    Statement,
    apply,
    raise_fault,
)
from orderproc.common.storage.postgres_migrations import (
    BOOKKEEPING,
    MIGRATION_LOCK_KEY,
    MIGRATIONS,
)
from orderproc.common.storage.postgres_trading import (
    PostgresAssetLedger,
    PostgresAssets,
    PostgresCandles,
    PostgresOrders,
    PostgresPositions,
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
from orderproc.common.storage.sqlite_migrations import Migration

CONNECT_TIMEOUT_SECONDS = 5.0
# Every statement of the pool's connections (BEGIN and COMMIT too) gives up after this long:
# a store that hangs answers 503 STORE_TIMEOUT rather than holding the request and the user's
# lock. Migrations, which may rightly run long, pass their own.
COMMAND_TIMEOUT_SECONDS = 5.0
MIGRATION_TIMEOUT_SECONDS = 3600.0

_USER_COLUMNS = (
    "user_id, username, email, password_hash, first_name, last_name, phone, date_of_birth, "
    "role, is_active, created_at, updated_at, tokens_valid_after, version"
)


def _user_params(user: UserRecord) -> Params:
    return (
        user.user_id, user.username, user.email, user.password_hash, user.first_name,
        user.last_name, user.phone, user.date_of_birth, user.role, user.is_active,
        user.created_at, user.updated_at, user.tokens_valid_after, user.version,
    )  # fmt: skip


def _user(row: Any) -> UserRecord:
    return UserRecord(
        user_id=row[0], username=row[1], email=row[2], password_hash=row[3],
        first_name=row[4], last_name=row[5], phone=row[6], date_of_birth=row[7], role=row[8],
        is_active=row[9], created_at=row[10], updated_at=row[11], tokens_valid_after=row[12],
        version=row[13],
    )  # fmt: skip


def _marks(count: int) -> str:
    return ", ".join(f"${n}" for n in range(1, count + 1))


class PostgresUsers(PostgresRepository):
    async def get(self, user_id: str) -> UserRecord | None:
        return await self._user_where("user_id", user_id)

    async def get_by_username(self, username: str) -> UserRecord | None:
        return await self._user_where("username", username)

    async def get_by_email(self, email: str) -> UserRecord | None:
        return await self._user_where("email", email)

    async def _user_where(self, column: str, value: str) -> UserRecord | None:
        row = await self._one(f"SELECT {_USER_COLUMNS} FROM users WHERE {column} = $1", value)
        return None if row is None else _user(row)

    async def list(self, *, limit: int, after: PageKey | None = None) -> Page[UserRecord]:
        return await self._keyset_page(
            "users", Filters(), columns=_USER_COLUMNS, make=_user, limit=limit, after=after
        )

    async def active_admins(self) -> builtins.list[UserRecord]:
        sql = f"SELECT {_USER_COLUMNS} FROM users WHERE role = 'admin' AND is_active"
        return [_user(row) for row in await self._all(f"{sql} ORDER BY user_id")]

    def add(self, user: UserRecord) -> None:
        self._stage(
            f"INSERT INTO users ({_USER_COLUMNS}) VALUES ({_marks(14)})", *_user_params(user)
        )

    def update(self, user: UserRecord, *, expected_version: int) -> None:
        columns = _USER_COLUMNS.split(", ")[1:]
        assignments = ", ".join(f"{c} = ${n}" for n, c in enumerate(columns, start=2))
        self._stage(
            f"UPDATE users SET {assignments} WHERE user_id = $1 AND version = $15",
            *_user_params(user), expected_version,
        )  # fmt: skip


class PostgresAccounts(PostgresRepository):
    async def get(self, user_id: str) -> AccountRecord | None:
        row = await self._one(
            "SELECT user_id, balance_cents, reserved_cents, version, updated_at "
            "FROM accounts WHERE user_id = $1",
            user_id,
        )
        if row is None:
            return None
        return AccountRecord(
            user_id=row[0], balance_cents=row[1], reserved_cents=row[2], version=row[3],
            updated_at=row[4],
        )  # fmt: skip

    async def ids_after(self, after: str | None, *, limit: int) -> builtins.list[str]:
        # The key's own collation in both the test and the order, so its index serves each page
        # (with the database's collation, the order may differ from SQLite's byte order).
        if after is None:
            sql = "SELECT user_id FROM accounts ORDER BY user_id LIMIT $1"
            rows = await self._all(sql, max(limit, 0))
        else:
            sql = "SELECT user_id FROM accounts WHERE user_id > $1 ORDER BY user_id LIMIT $2"
            rows = await self._all(sql, after, max(limit, 0))
        return [row[0] for row in rows]

    def add(self, account: AccountRecord) -> None:
        self._stage(
            "INSERT INTO accounts (user_id, balance_cents, reserved_cents, available_cents, "
            "version, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
            account.user_id, account.balance_cents, account.reserved_cents,
            account.available_cents, account.version, account.updated_at,
        )  # fmt: skip

    def update(self, account: AccountRecord, *, expected_version: int) -> None:
        self._stage(
            "UPDATE accounts SET balance_cents = $1, reserved_cents = $2, available_cents = $3, "
            "version = $4, updated_at = $5 WHERE user_id = $6 AND version = $7 "
            "AND $1::bigint >= 0 AND $2::bigint >= 0 AND $3::bigint >= 0",
            account.balance_cents, account.reserved_cents, account.available_cents,
            account.version, account.updated_at, account.user_id, expected_version,
        )  # fmt: skip


_ENTRY_COLUMNS = (
    "entry_id, user_id, kind, amount_cents, balance_after_cents, reference_id, created_at"
)


class PostgresCashLedger(PostgresRepository):
    def add(self, entry: CashEntry) -> None:
        self._stage(
            f"INSERT INTO cash_ledger ({_ENTRY_COLUMNS}) VALUES ({_marks(7)})",
            entry.entry_id, entry.user_id, entry.kind, entry.amount_cents,
            entry.balance_after_cents, entry.reference_id, entry.created_at,
        )  # fmt: skip

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
        filters = Filters()
        filters.equal("user_id", user_id)
        filters.created_between(start, end)
        return await self._keyset_page(
            "cash_ledger", filters, columns=_ENTRY_COLUMNS, make=lambda row: CashEntry(*row),
            limit=limit, after=after, offset=offset, residual=[("kind", kind)],
        )  # fmt: skip

    async def sum_for_user(self, user_id: str) -> int:
        # sum(bigint) is NUMERIC: exact at any size.
        total = await self._value(
            "SELECT coalesce(sum(amount_cents), 0) FROM cash_ledger WHERE user_id = $1", user_id
        )
        return int(total)


class PostgresDailyLimits(PostgresRepository):
    async def used(self, user_id: str, day: date, kind: LimitKind) -> int:
        used = await self._value(
            "SELECT used_cents FROM daily_limits WHERE user_id = $1 AND day = $2 AND kind = $3",
            user_id, day, kind,
        )  # fmt: skip
        return 0 if used is None else int(used)

    def add(
        self, user_id: str, day: date, kind: LimitKind, amount_cents: int, *, limit_cents: int
    ) -> None:
        # The SELECT's WHERE refuses a first row over the limit; the upsert's WHERE a later one.
        self._stage(
            "INSERT INTO daily_limits (user_id, day, kind, used_cents) "
            "SELECT $1::text, $2::date, $3::text, $4::bigint WHERE $4::bigint <= $5::bigint "
            "ON CONFLICT (user_id, day, kind) DO UPDATE "
            "SET used_cents = daily_limits.used_cents + excluded.used_cents "
            "WHERE daily_limits.used_cents + excluded.used_cents <= $5::bigint",
            user_id, day, kind, amount_cents, limit_cents,
        )  # fmt: skip


class PostgresIdempotency(PostgresRepository):
    async def get(self, user_id: str, key: str, *, now: datetime) -> IdempotencyRecord | None:
        row = await self._one(
            "SELECT user_id, key, fingerprint, outcome, payload, created_at, expires_at "
            "FROM idempotency WHERE user_id = $1 AND key = $2 AND expires_at > $3",
            user_id, key, now,
        )  # fmt: skip
        if row is None:
            return None
        return IdempotencyRecord(
            user_id=row[0], key=row[1], fingerprint=row[2], outcome=row[3],
            payload=orjson.loads(row[4]), created_at=row[5], expires_at=row[6],
        )  # fmt: skip

    def add(self, record: IdempotencyRecord) -> None:
        # An existing row is replaced only if it had expired when this record was made.
        self._stage(
            "INSERT INTO idempotency (user_id, key, fingerprint, outcome, payload, created_at, "
            "expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (user_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, "
            "outcome = excluded.outcome, payload = excluded.payload, "
            "created_at = excluded.created_at, expires_at = excluded.expires_at "
            "WHERE idempotency.expires_at <= excluded.created_at",
            record.user_id, record.key, record.fingerprint, record.outcome,
            orjson.dumps(record.payload).decode(), record.created_at, record.expires_at,
        )  # fmt: skip

    async def purge_expired(self, *, now: datetime, limit: int) -> int:
        # One short transaction of its own. SKIP LOCKED: another process's purger (or a request
        # replacing an expired record) holding a row costs a skip, not a wait; the outer
        # `expires_at` test keeps a row that was replaced meanwhile.
        return await self._delete(
            "DELETE FROM idempotency WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency "
            "WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)) AND expires_at <= $1",
            now, max(limit, 0),
        )  # fmt: skip


class PostgresRevocations(PostgresRepository):
    async def is_revoked(self, jti: str) -> bool:
        return await self._one("SELECT 1 FROM revoked_tokens WHERE jti = $1", jti) is not None

    def add(self, jti: str, *, user_id: str, expires_at: datetime) -> None:
        self._stage(
            "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (jti) DO NOTHING",
            jti, user_id, expires_at, expect=None,
        )  # fmt: skip

    async def purge_expired(self, *, now: datetime, limit: int) -> int:
        return await self._delete(
            "DELETE FROM revoked_tokens WHERE ctid = ANY(ARRAY(SELECT ctid FROM revoked_tokens "
            "WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)) AND expires_at <= $1",
            now, max(limit, 0),
        )  # fmt: skip


_AUDIT_COLUMNS = "event_id, event_type, created_at, user_id, actor_id, ip, details"


class PostgresAudit(PostgresRepository):
    def add(self, event: AuditEvent) -> None:
        self._stage(
            f"INSERT INTO audit_events ({_AUDIT_COLUMNS}) VALUES ({_marks(7)})",
            event.event_id, event.event_type, event.created_at, event.user_id,
            event.actor_id, event.ip, orjson.dumps(event.details).decode(),
        )  # fmt: skip

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
        # An index by user and one by type (and one by time alone); the user's when both.
        filters = Filters()
        filters.created_between(start, end)
        filters.equal("user_id", user_id)
        filters.equal("event_type", event_type if user_id is None else None)
        return await self._keyset_page(
            "audit_events", filters, columns=_AUDIT_COLUMNS, make=_event, limit=limit,
            after=after, residual=[("event_type", event_type if user_id is not None else None)],
        )  # fmt: skip


def _event(row: Any) -> AuditEvent:
    return AuditEvent(
        event_id=row[0], event_type=row[1], created_at=row[2], user_id=row[3],
        actor_id=row[4], ip=row[5], details=orjson.loads(row[6]),
    )  # fmt: skip


class PostgresUnitOfWork:
    """Reads go to the pool; writes wait in `staged` until `commit()`."""

    def __init__(self, pool: PoolSource) -> None:
        self._pool = pool
        self.staged: list[Statement] = []
        self.users: UserRepository = PostgresUsers(pool, self.staged)
        self.accounts: AccountRepository = PostgresAccounts(pool, self.staged)
        self.cash_ledger: CashLedgerRepository = PostgresCashLedger(pool, self.staged)
        self.daily_limits: DailyLimitRepository = PostgresDailyLimits(pool, self.staged)
        self.idempotency: IdempotencyRepository = PostgresIdempotency(pool, self.staged)
        self.revocations: RevocationRepository = PostgresRevocations(pool, self.staged)
        self.audit: AuditRepository = PostgresAudit(pool, self.staged)
        self.assets: AssetRepository = PostgresAssets(pool, self.staged)
        self.candles: CandleRepository = PostgresCandles(pool, self.staged)
        self.orders: OrderRepository = PostgresOrders(pool, self.staged)
        self.positions: PositionRepository = PostgresPositions(pool, self.staged)
        self.asset_ledger: AssetLedgerRepository = PostgresAssetLedger(pool, self.staged)

    async def commit(self) -> None:
        statements = builtins.list(self.staged)
        self.staged.clear()
        if statements:
            await apply(await self._pool(), statements)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.staged.clear()


async def _keep_session(conn: Any) -> None:
    """Pool reset: asyncpg already rolls back an open transaction on release, and we set no
    session state, so skip its reset query (a round trip on every read otherwise)."""


class PostgresStore:
    """The store over one PostgreSQL database, named by a libpq-style DSN
    (`postgresql://user:password@host:port/database`)."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        command_timeout: float = COMMAND_TIMEOUT_SECONDS,
    ) -> None:
        self._dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._command_timeout = command_timeout
        self._pool: Any = None
        self._opening = asyncio.Lock()

    @property
    def address(self) -> str:
        """`host:port`, never the credentials."""
        return server_address(self._dsn)

    async def pool(self) -> Any:
        """The connection pool, opened on first use."""
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await self._open_pool()
        return self._pool

    async def _open_pool(self) -> Any:
        try:
            return await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=CONNECT_TIMEOUT_SECONDS,
                command_timeout=self._command_timeout,
                reset=_keep_session,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            reason = str(exc) or type(exc).__name__
            raise StoreUnavailable(f"cannot reach PostgreSQL at {self.address}: {reason}") from None

    def unit_of_work(self) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self.pool)

    async def migrate(self) -> None:
        pool = await self.pool()
        try:
            async with pool.acquire() as conn:
                for migration in MIGRATIONS:
                    await _apply_migration(conn, migration)
        except DRIVER_ERRORS as error:
            raise_fault(error)
            raise

    async def applied_versions(self) -> builtins.list[int]:
        pool = await self.pool()
        rows = await pool.fetch("SELECT version FROM schema_migrations ORDER BY version")
        return [row[0] for row in rows]

    async def ping(self) -> None:
        pool = await self.pool()
        try:
            await pool.fetchval("SELECT 1")
        except DRIVER_ERRORS as error:
            raise_fault(error)
            raise

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


async def _apply_migration(conn: Any, migration: Migration) -> None:
    """One migration in one transaction, under a lock every migrating process takes first."""
    wait = MIGRATION_TIMEOUT_SECONDS
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY, timeout=wait)
        await conn.execute(BOOKKEEPING, timeout=wait)
        done = "SELECT 1 FROM schema_migrations WHERE version = $1"
        if await conn.fetchval(done, migration.version, timeout=wait) is not None:
            return
        for sql in migration.statements:
            await conn.execute(sql, timeout=wait)
        await conn.execute(
            "INSERT INTO schema_migrations (version, description, applied_at) "
            "VALUES ($1, $2, $3)",
            migration.version, migration.description, SystemClock().now(), timeout=wait,
        )  # fmt: skip


def server_address(dsn: str) -> str:
    """`host:port` of a PostgreSQL URL (5432 if unsaid), for messages: no user, no password."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        return "the configured address"
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}"
