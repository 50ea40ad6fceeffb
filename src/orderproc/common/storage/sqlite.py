"""The SQLite storage adapter: one stdlib `sqlite3` connection, point reads on the event loop,
and units of work's writes flushed in one synchronous `BEGIN IMMEDIATE … COMMIT` block: every
unit that commits in the same turn of the event loop, each in a savepoint (`_GroupCommitter`).

Why no thread hop: a point read on a local WAL database takes microseconds, far less than a hop to
a worker thread, and a write block with no `await` inside cannot interleave with another one.
The schema lives in `sqlite_migrations` (see there for how to add a migration); trading's
repositories in `sqlite_trading`, what all repositories share in `sqlite_core`.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import sqlite3
import threading
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson

from orderproc.common.clock import SystemClock, from_micros, to_micros
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
from orderproc.common.storage.sqlite_core import (
    Params,
    SqliteRepository,
    Statement,
    equal_all,
    marks,
    micros,
    moment,
    raise_fault,
    store_fault,
    time_filters,
)
from orderproc.common.storage.sqlite_migrations import BOOKKEEPING, MIGRATIONS, Migration
from orderproc.common.storage.sqlite_trading import (
    SqliteAssetLedger,
    SqliteAssets,
    SqliteCandles,
    SqliteOrders,
    SqlitePositions,
)
from orderproc.errors import ConcurrencyConflict

log = logging.getLogger("orderproc.storage")
BUSY_TIMEOUT_MS = 5000


class _RowCountMismatch(Exception):
    pass


_USER_COLUMNS = (
    "user_id, username, email, password_hash, first_name, last_name, phone, date_of_birth, "
    "role, is_active, created_at, updated_at, tokens_valid_after, version"
)


def _user_params(user: UserRecord) -> Params:
    return (
        user.user_id, user.username, user.email, user.password_hash, user.first_name,
        user.last_name, user.phone,
        None if user.date_of_birth is None else user.date_of_birth.isoformat(),
        user.role, int(user.is_active), to_micros(user.created_at), to_micros(user.updated_at),
        micros(user.tokens_valid_after), user.version,
    )  # fmt: skip


def _user(row: Any) -> UserRecord:
    return UserRecord(
        user_id=row[0], username=row[1], email=row[2], password_hash=row[3],
        first_name=row[4], last_name=row[5], phone=row[6],
        date_of_birth=None if row[7] is None else date.fromisoformat(row[7]),
        role=row[8], is_active=bool(row[9]), created_at=from_micros(row[10]),
        updated_at=from_micros(row[11]), tokens_valid_after=moment(row[12]), version=row[13],
    )  # fmt: skip


class SqliteUsers(SqliteRepository):
    async def get(self, user_id: str) -> UserRecord | None:
        row = self._one(f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = ?", (user_id,))
        return None if row is None else _user(row)

    async def get_by_username(self, username: str) -> UserRecord | None:
        row = self._one(f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?", (username,))
        return None if row is None else _user(row)

    async def get_by_email(self, email: str) -> UserRecord | None:
        row = self._one(f"SELECT {_USER_COLUMNS} FROM users WHERE email = ?", (email,))
        return None if row is None else _user(row)

    async def list(self, *, limit: int, after: PageKey | None = None) -> Page[UserRecord]:
        return self._keyset_page(
            "users", [], [], columns=_USER_COLUMNS, make=_user, limit=limit, after=after
        )

    async def active_admins(self) -> builtins.list[UserRecord]:
        sql = f"SELECT {_USER_COLUMNS} FROM users WHERE role = 'admin' AND is_active = 1"
        return [_user(row) for row in self._all(f"{sql} ORDER BY user_id", ())]

    def add(self, user: UserRecord) -> None:
        self._stage(f"INSERT INTO users ({_USER_COLUMNS}) VALUES ({marks(14)})", _user_params(user))

    def update(self, user: UserRecord, *, expected_version: int) -> None:
        assignments = ", ".join(f"{c} = ?" for c in _USER_COLUMNS.split(", ")[1:])
        self._stage(
            f"UPDATE users SET {assignments} WHERE user_id = ? AND version = ?",
            (*_user_params(user)[1:], user.user_id, expected_version),
        )


class SqliteAccounts(SqliteRepository):
    async def get(self, user_id: str) -> AccountRecord | None:
        row = self._one(
            "SELECT user_id, balance_cents, reserved_cents, version, updated_at "
            "FROM accounts WHERE user_id = ?",
            (user_id,),
        )
        if row is None:
            return None
        return AccountRecord(
            user_id=row[0], balance_cents=row[1], reserved_cents=row[2], version=row[3],
            updated_at=from_micros(row[4]),
        )  # fmt: skip

    async def ids_after(self, after: str | None, *, limit: int) -> builtins.list[str]:
        where, params = ("", ()) if after is None else (" WHERE user_id > ?", (after,))
        rows = self._all(
            f"SELECT user_id FROM accounts{where} ORDER BY user_id LIMIT ?",
            (*params, max(limit, 0)),
        )
        return [row[0] for row in rows]

    def add(self, account: AccountRecord) -> None:
        self._stage(
            "INSERT INTO accounts (user_id, balance_cents, reserved_cents, available_cents, "
            "version, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (account.user_id, account.balance_cents, account.reserved_cents,
             account.available_cents, account.version, to_micros(account.updated_at)),
        )  # fmt: skip

    def update(self, account: AccountRecord, *, expected_version: int) -> None:
        self._stage(
            "UPDATE accounts SET balance_cents = ?1, reserved_cents = ?2, available_cents = ?3, "
            "version = ?4, updated_at = ?5 WHERE user_id = ?6 AND version = ?7 "
            "AND ?1 >= 0 AND ?2 >= 0 AND ?3 >= 0",
            (account.balance_cents, account.reserved_cents, account.available_cents,
             account.version, to_micros(account.updated_at), account.user_id, expected_version),
        )  # fmt: skip


_ENTRY_COLUMNS = (
    "entry_id, user_id, kind, amount_cents, balance_after_cents, reference_id, created_at"
)


class SqliteCashLedger(SqliteRepository):
    def add(self, entry: CashEntry) -> None:
        self._stage(
            f"INSERT INTO cash_ledger ({_ENTRY_COLUMNS}) VALUES ({marks(7)})",
            (entry.entry_id, entry.user_id, entry.kind, entry.amount_cents,
             entry.balance_after_cents, entry.reference_id, to_micros(entry.created_at)),
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
        conditions, params = time_filters(start, end)
        conditions.insert(0, "user_id = ?")
        params.insert(0, user_id)
        return self._keyset_page(
            "cash_ledger", conditions, params, columns=_ENTRY_COLUMNS, make=_entry,
            limit=limit, after=after, offset=offset, residual=equal_all([("kind", kind)]),
        )  # fmt: skip

    async def sum_for_user(self, user_id: str) -> int:
        # In SQL over the (user_id, created_at) index: no entry is read into Python.
        return self._exact_sum("amount_cents", "FROM cash_ledger WHERE user_id = ?", (user_id,))


def _entry(row: Any) -> CashEntry:
    return CashEntry(
        entry_id=row[0], user_id=row[1], kind=row[2], amount_cents=row[3],
        balance_after_cents=row[4], reference_id=row[5], created_at=from_micros(row[6]),
    )  # fmt: skip


class SqliteDailyLimits(SqliteRepository):
    async def used(self, user_id: str, day: date, kind: LimitKind) -> int:
        row = self._one(
            "SELECT used_cents FROM daily_limits WHERE user_id = ? AND day = ? AND kind = ?",
            (user_id, day.isoformat(), kind),
        )
        return 0 if row is None else int(row[0])

    def add(
        self, user_id: str, day: date, kind: LimitKind, amount_cents: int, *, limit_cents: int
    ) -> None:
        # The SELECT's WHERE refuses a first row over the limit; the upsert's WHERE a later one.
        self._stage(
            "INSERT INTO daily_limits (user_id, day, kind, used_cents) "
            "SELECT ?1, ?2, ?3, ?4 WHERE ?4 <= ?5 "
            "ON CONFLICT (user_id, day, kind) DO UPDATE "
            "SET used_cents = used_cents + excluded.used_cents "
            "WHERE daily_limits.used_cents + excluded.used_cents <= ?5",
            (user_id, day.isoformat(), kind, amount_cents, limit_cents),
        )


class SqliteIdempotency(SqliteRepository):
    async def get(self, user_id: str, key: str, *, now: datetime) -> IdempotencyRecord | None:
        row = self._one(
            "SELECT user_id, key, fingerprint, outcome, payload, created_at, expires_at "
            "FROM idempotency WHERE user_id = ? AND key = ? AND expires_at > ?",
            (user_id, key, to_micros(now)),
        )
        if row is None:
            return None
        return IdempotencyRecord(
            user_id=row[0], key=row[1], fingerprint=row[2], outcome=row[3],
            payload=orjson.loads(row[4]), created_at=from_micros(row[5]),
            expires_at=from_micros(row[6]),
        )  # fmt: skip

    def add(self, record: IdempotencyRecord) -> None:
        # An existing row is replaced only if it had expired when this record was made.
        self._stage(
            "INSERT INTO idempotency (user_id, key, fingerprint, outcome, payload, created_at, "
            "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (user_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, "
            "outcome = excluded.outcome, payload = excluded.payload, "
            "created_at = excluded.created_at, expires_at = excluded.expires_at "
            "WHERE idempotency.expires_at <= excluded.created_at",
            (record.user_id, record.key, record.fingerprint, record.outcome,
             orjson.dumps(record.payload).decode(), to_micros(record.created_at),
             to_micros(record.expires_at)),
        )  # fmt: skip

    async def purge_expired(self, *, now: datetime, limit: int) -> int:
        # No LIMIT on DELETE in a stock SQLite build: take the keys through the expiry index.
        return await self._through_writer(
            "DELETE FROM idempotency WHERE expires_at <= ?1 AND (user_id, key) IN "
            "(SELECT user_id, key FROM idempotency WHERE expires_at <= ?1 LIMIT ?2)",
            (to_micros(now), max(limit, 0)),
        )


class SqliteRevocations(SqliteRepository):
    async def is_revoked(self, jti: str) -> bool:
        return self._one("SELECT 1 FROM revoked_tokens WHERE jti = ?", (jti,)) is not None

    def add(self, jti: str, *, user_id: str, expires_at: datetime) -> None:
        self._stage(
            "INSERT OR IGNORE INTO revoked_tokens (jti, user_id, expires_at) VALUES (?, ?, ?)",
            (jti, user_id, to_micros(expires_at)),
            expect=None,
        )

    async def purge_expired(self, *, now: datetime, limit: int) -> int:
        return await self._through_writer(
            "DELETE FROM revoked_tokens WHERE expires_at <= ?1 AND jti IN "
            "(SELECT jti FROM revoked_tokens WHERE expires_at <= ?1 LIMIT ?2)",
            (to_micros(now), max(limit, 0)),
        )


_AUDIT_COLUMNS = "event_id, event_type, created_at, user_id, actor_id, ip, details"


class SqliteAudit(SqliteRepository):
    def add(self, event: AuditEvent) -> None:
        self._stage(
            f"INSERT INTO audit_events ({_AUDIT_COLUMNS}) VALUES ({marks(7)})",
            (event.event_id, event.event_type, to_micros(event.created_at), event.user_id,
             event.actor_id, event.ip, orjson.dumps(event.details).decode()),
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
        conditions, params = time_filters(start, end)
        indexed = ("user_id", user_id) if user_id is not None else ("event_type", event_type)
        if indexed[1] is not None:
            conditions.insert(0, f"{indexed[0]} = ?")
            params.insert(0, indexed[1])
        of_type = event_type if user_id is not None else None
        return self._keyset_page(
            "audit_events", conditions, params, columns=_AUDIT_COLUMNS, make=_event,
            limit=limit, after=after, residual=equal_all([("event_type", of_type)]),
        )  # fmt: skip


def _event(row: Any) -> AuditEvent:
    return AuditEvent(
        event_id=row[0], event_type=row[1], created_at=from_micros(row[2]), user_id=row[3],
        actor_id=row[4], ip=row[5], details=orjson.loads(row[6]),
    )  # fmt: skip


class SqliteUnitOfWork:
    """Reads go straight to the connection; writes wait in `staged` until `commit()`."""

    def __init__(self, conn: sqlite3.Connection, committer: _GroupCommitter) -> None:
        self._conn = conn
        self._committer = committer
        self.staged: list[Statement] = []
        self.users: UserRepository = SqliteUsers(conn, self.staged)
        self.accounts: AccountRepository = SqliteAccounts(conn, self.staged)
        self.cash_ledger: CashLedgerRepository = SqliteCashLedger(conn, self.staged)
        self.daily_limits: DailyLimitRepository = SqliteDailyLimits(conn, self.staged)
        self.idempotency: IdempotencyRepository = SqliteIdempotency(
            conn, self.staged, committer.commit
        )
        self.revocations: RevocationRepository = SqliteRevocations(
            conn, self.staged, committer.commit
        )
        self.audit: AuditRepository = SqliteAudit(conn, self.staged)
        self.assets: AssetRepository = SqliteAssets(conn, self.staged)
        self.candles: CandleRepository = SqliteCandles(conn, self.staged)
        self.orders: OrderRepository = SqliteOrders(conn, self.staged)
        self.positions: PositionRepository = SqlitePositions(conn, self.staged)
        self.asset_ledger: AssetLedgerRepository = SqliteAssetLedger(conn, self.staged)

    async def commit(self) -> None:
        statements = builtins.list(self.staged)
        self.staged.clear()
        if statements:
            await self._committer.commit(statements)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.staged.clear()


class _GroupCommitter:
    """Commits every unit of work that reaches `commit()` in one turn of the event loop as one
    SQLite transaction, each unit inside a savepoint of its own.

    A unit still applies whole or not at all: a statement that fails rolls back its unit's
    savepoint and the others go on; breaking a constraint or changing an unexpected number of
    rows is a `ConcurrencyConflict` for that caller, any other error (a value SQLite refuses)
    is that caller's own. Only a failed BEGIN, COMMIT or savepoint rollback, or a fault of the
    medium in any statement (a full disk, an I/O error, a read-only file, a lock not granted
    within the busy timeout: `store_fault`), fails the whole group: the transaction is rolled
    back (SQLite may already have done so itself) and every unit of the group gets its own
    `StoreUnavailable` of that kind, so nothing of the group is written and nobody hears
    "committed". A caller learns the outcome after the COMMIT, so an acknowledged write is a
    committed one; a caller cancelled before the flush is left out, one cancelled after it is
    told that its write committed.

    Why: under load, a dozen concurrent orders share the pages they touch (table tails,
    append-only indexes, the accounts page), and a transaction writes each dirty page to the WAL
    once. Measured: an order's COMMIT alone wrote 18 WAL frames; under market buys at c32, 9.4
    units per group and 158 µs of flush per order against 267 µs alone.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._pending: builtins.list[tuple[builtins.list[Statement], asyncio.Future[int]]] = []

    async def commit(self, statements: builtins.list[Statement]) -> int:
        """Commit `statements` as one unit; the rows they changed."""
        loop = asyncio.get_running_loop()
        if not self._pending:
            loop.call_soon(self._flush)
        future: asyncio.Future[int] = loop.create_future()
        self._pending.append((statements, future))
        try:
            return await future
        except asyncio.CancelledError:
            # Cancelled after the flush committed this unit: the write stands, so the caller
            # must hear so and finish what follows a commit (caches, in-memory state).
            if future.cancelled() or future.exception() is not None:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return future.result()

    def _flush(self) -> None:
        group = [(statements, future) for statements, future in self._pending if not future.done()]
        self._pending = []
        if not group:
            return
        conn = self._conn
        try:
            if conn.in_transaction:  # left open by a ROLLBACK that failed: end it first
                conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
            outcomes = [self._apply_unit(statements) for statements, _ in group]
            conn.execute("COMMIT")
        except Exception as failed:
            self._roll_back()
            for _, future in group:
                future.set_exception(store_fault(failed) or failed)
            return
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def _apply_unit(self, statements: builtins.list[Statement]) -> Exception | int:
        """The unit's rows changed, or what failed it."""
        conn = self._conn
        conn.execute("SAVEPOINT unit")
        changed = 0
        try:
            for statement in statements:
                run = conn.executemany if statement.many else conn.execute
                affected = run(statement.sql, statement.params).rowcount
                if statement.expect is not None and affected != statement.expect:
                    raise _RowCountMismatch(statement.sql)
                changed += max(affected, 0)
        except Exception as failed:  # only this unit's: a bad value must not fail its group
            if store_fault(failed) is not None:
                raise  # the medium's, not this unit's: the whole group fails, in _flush
            conn.execute("ROLLBACK TO unit")  # if this fails, so does the group, in _flush
            conn.execute("RELEASE unit")
            if not isinstance(failed, sqlite3.IntegrityError | _RowCountMismatch):
                return failed
            conflict = ConcurrencyConflict()
            conflict.__cause__ = failed
            return conflict
        conn.execute("RELEASE unit")
        return changed

    def _roll_back(self) -> None:
        """End a failed group's transaction, if SQLite has not already (it rolls back by itself
        on a full disk or an I/O error). A ROLLBACK that fails is tried again before the next
        BEGIN, and the connection stays usable."""
        if not self._conn.in_transaction:
            return
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.warning("ROLLBACK failed; tried again before the next transaction", exc_info=True)


class SqliteStore:
    """The store over one SQLite file (or `":memory:"`), created with its parent directory."""

    def __init__(
        self,
        path: str | Path,
        *,
        checkpoint_every: float = 0.25,
        wal_restart_frames: int = 4000,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        target = str(path)
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
            for pragma in (
                # First: switching a fresh file to WAL takes a lock that another process
                # opening it at the same moment may hold.
                f"PRAGMA busy_timeout = {int(busy_timeout_ms)}",
                "PRAGMA journal_mode = WAL",
                "PRAGMA synchronous = NORMAL",
                "PRAGMA foreign_keys = ON",
                "PRAGMA cache_size = -65536",
                "PRAGMA mmap_size = 268435456",
                "PRAGMA temp_store = MEMORY",  # savepoint journals
            ):
                conn.execute(pragma)
        except sqlite3.Error as error:  # a directory at `path`, a file it cannot read or lock
            if conn is not None:
                conn.close()
            raise_fault(error, where=target)
            raise
        self._conn = conn
        self._committer = _GroupCommitter(self._conn)
        self._checkpointer: _Checkpointer | None = None
        if target != ":memory:":
            # Checkpoints fsync; on the event loop they stalled a commit for ~5 ms every few
            # dozen writes (measured), so a thread of its own does them instead.
            self._conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._checkpointer = _Checkpointer(
                target, every=checkpoint_every, restart_frames=wal_restart_frames
            )

    def unit_of_work(self) -> SqliteUnitOfWork:
        return SqliteUnitOfWork(self._conn, self._committer)

    async def migrate(self) -> None:
        try:
            self._conn.execute(BOOKKEEPING)
            for migration in MIGRATIONS:
                self._apply_migration(migration)
        except sqlite3.Error as error:
            raise_fault(error)
            raise

    def applied_versions(self) -> builtins.list[int]:
        rows = self._conn.execute("SELECT version FROM schema_migrations ORDER BY version")
        return [row[0] for row in rows.fetchall()]

    def _apply_migration(self, migration: Migration) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            done = "SELECT 1 FROM schema_migrations WHERE version = ?"
            if self._conn.execute(done, (migration.version,)).fetchone() is None:
                for sql in migration.statements:
                    self._conn.execute(sql)
                self._conn.execute(
                    "INSERT INTO schema_migrations (version, description, applied_at) "
                    "VALUES (?, ?, ?)",
                    (migration.version, migration.description, to_micros(SystemClock().now())),
                )
        except BaseException:
            if self._conn.in_transaction:  # SQLite ends it itself after some errors
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    async def ping(self) -> None:
        try:
            self._conn.execute("SELECT 1").fetchone()
        except sqlite3.Error as error:
            raise_fault(error)
            raise

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self._conn.close()


class _Checkpointer:
    """Copies the WAL back into the database from a thread with its own connection, and keeps
    the WAL from growing without bound.

    A PASSIVE checkpoint never blocks the writer, but under a steady stream of commits it never
    catches up either: new frames arrive while it copies, so the writer never finds the log fully
    copied and never restarts it. Measured: the WAL reached 1 GB in 40 s of deposits, and every
    page lookup walks the WAL index, so writes slowed as it grew. Once the log passes
    `restart_frames`, a RESTART checkpoint takes the write lock for the few frames the PASSIVE pass
    left (the cost is mostly two fsyncs, about 0.6 ms each on this machine's disk, measured),
    after which the next commit writes from the start of the log again.
    """

    def __init__(self, path: str, *, every: float, restart_frames: int) -> None:
        self._path = path
        self._every = every
        self._restart_frames = restart_frames
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        failing = False
        try:
            while not self._stopping.wait(self._every):
                try:
                    self._checkpoint(conn)
                except sqlite3.Error:
                    # Once per outage (a full disk fails every pass), not four times a second.
                    if not failing:
                        log.warning("WAL checkpoint failed; retrying quietly", exc_info=True)
                    failing = True
                else:
                    if failing:
                        log.warning("WAL checkpoint works again")
                    failing = False
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames >= self._restart_frames:
            conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
