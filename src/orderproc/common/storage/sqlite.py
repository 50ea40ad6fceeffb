"""The SQLite storage adapter: one stdlib `sqlite3` connection, reads on the event loop (a local
WAL read takes less than a hop to a thread), and the writes of every unit of work that commits in
one turn of the event loop in one synchronous block (`_GroupCommitter`). See docs/storage.md."""

from __future__ import annotations

import asyncio
import builtins
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from orderproc.common.clock import from_micros, to_micros
from orderproc.common.storage import sql
from orderproc.common.storage.intents import Intent
from orderproc.common.storage.repositories import Cond, UnitOfWork
from orderproc.common.storage.schema import Table
from orderproc.common.storage.sql import Statement
from orderproc.errors import (
    ConcurrencyConflict,
    StoreFull,
    StoreReadOnly,
    StoreTimeout,
    StoreUnavailable,
)

log = logging.getLogger("orderproc.storage")
BUSY_TIMEOUT_MS = 5000

# SQLite's primary result codes (the low byte of the extended code Python 3.11 exposes as
# `sqlite_errorcode`) that mean "the store cannot work now", not "this request is wrong".
# Left out on purpose: CORRUPT and NOTADB (no retry repairs them), CONSTRAINT (a conflict),
# ERROR, MISUSE, RANGE, TOOBIG (the code's own mistakes); they stay what they are.
_FAULTS: dict[int, type[StoreUnavailable]] = {
    sqlite3.SQLITE_FULL: StoreFull,  # "database or disk is full"
    sqlite3.SQLITE_READONLY: StoreReadOnly,  # "attempt to write a readonly database"
    sqlite3.SQLITE_BUSY: StoreTimeout,  # "database is locked" once busy_timeout has passed
    sqlite3.SQLITE_LOCKED: StoreTimeout,
    sqlite3.SQLITE_IOERR: StoreUnavailable,  # "disk I/O error"
    sqlite3.SQLITE_CANTOPEN: StoreUnavailable,  # "unable to open database file"
    sqlite3.SQLITE_NOMEM: StoreUnavailable,
    sqlite3.SQLITE_PROTOCOL: StoreUnavailable,  # the WAL's locking protocol gave up
    sqlite3.SQLITE_NOLFS: StoreUnavailable,
}


def store_fault(error: BaseException, *, where: str = "") -> StoreUnavailable | None:
    """The store error `error` stands for, if it is a fault of the medium; None otherwise
    (a constraint, a bad value, a closed connection: not ours to turn into a 503). `where`
    (a path) goes into the reason."""
    code = getattr(error, "sqlite_errorcode", None)
    if not isinstance(error, sqlite3.Error) or code is None:
        return None
    kind = _FAULTS.get(code & 0xFF)
    if kind is None:
        return None
    at = f" at {where}" if where else ""
    fault = kind(f"SQLite{at}: {error} ({getattr(error, 'sqlite_errorname', code)})")
    fault.__cause__ = error
    return fault


FAULTS = sql.Faults(store_fault)


class SqliteDialect(sql.Dialect):
    """Money and quantities INTEGER (cents, 10^-8 units); prices, cost basis and P&L exact
    decimal TEXT (read, never compared); times INTEGER microseconds since the epoch (UTC);
    dates ISO text; dicts JSON text."""

    seq = "rowid"
    clustered = " WITHOUT ROWID"
    columns_query = (
        "SELECT m.name, c.name FROM sqlite_master AS m, pragma_table_info(m.name) AS c "
        "WHERE m.type = 'table'"
    )
    indexes_query = (
        "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    )
    types = {
        "text": "TEXT", "int": "INTEGER", "bool": "INTEGER", "time": "INTEGER", "date": "TEXT",
        "decimal": "TEXT", "json": "TEXT",
    }  # fmt: skip
    encoders = {"time": to_micros, "date": date.isoformat, "decimal": str, "json": sql.json_text}
    decoders = {
        "time": from_micros, "date": date.fromisoformat, "decimal": Decimal, "json": orjson.loads,
        "bool": bool,
    }  # fmt: skip


DIALECT = SqliteDialect()


class _Session(sql.SqlReads):
    """Every unit of work's reads (straight to the connection, no transaction held) and
    commits (through the group commit); one for the store, as units hold no state here."""

    dialect = DIALECT
    overflow = (sqlite3.OperationalError,)

    def __init__(self, conn: sqlite3.Connection, committer: _GroupCommitter) -> None:
        self._conn = conn
        self._committer = committer

    async def _rows(self, statement: str, params: Sequence[Any]) -> builtins.list[Any]:
        with FAULTS:
            return self._conn.execute(statement, params).fetchall()

    async def delete(self, table: Table[Any], where: Sequence[Cond], *, limit: int) -> int:
        # No LIMIT on DELETE in a stock SQLite build: take the keys through the index. Through
        # the group commit, so it never meets a request's write on the connection.
        conditions, params = DIALECT.where(table, where)
        key = ", ".join(table.key)
        statement = (
            f"DELETE FROM {table.name} WHERE {conditions} AND ({key}) IN "
            f"(SELECT {key} FROM {table.name} WHERE {conditions} LIMIT ?)"
        )
        return await self._committer.commit([Statement(statement, (*params, *params, limit), None)])

    async def apply(self, intents: builtins.list[Intent]) -> None:
        await self._committer.commit(DIALECT.compile(intents))

    async def close(self) -> None:
        pass


class _RowCountMismatch(Exception):
    pass


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
    told that its write committed. Why and what it saves: docs/PERFORMANCE.md, "Group commit".
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
        # A directory at `path`, a file it cannot read or lock: a fault, with the path.
        with sql.Faults(partial(store_fault, where=target)):
            try:
                conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
                # First: switching a fresh file to WAL takes a lock that another process
                # opening it at the same moment may hold.
                conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
                _switch_to_wal(conn, busy_timeout_ms / 1000)
                for pragma in (
                    "PRAGMA synchronous = NORMAL",
                    "PRAGMA foreign_keys = ON",
                    "PRAGMA cache_size = -65536",
                    "PRAGMA mmap_size = 268435456",
                    "PRAGMA temp_store = MEMORY",  # savepoint journals
                ):
                    conn.execute(pragma)
            except sqlite3.Error:
                if conn is not None:
                    conn.close()
                raise
        self._conn = conn
        self._committer = _GroupCommitter(self._conn)
        self._session = _Session(self._conn, self._committer)
        self._checkpointer: _Checkpointer | None = None
        if target != ":memory:":
            # Checkpoints fsync; on the event loop they stalled a commit for ~5 ms every few
            # dozen writes (measured), so a thread of its own does them instead.
            self._conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._checkpointer = _Checkpointer(
                target, every=checkpoint_every, restart_frames=wal_restart_frames
            )

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self._session)

    async def migrate(self) -> None:
        run = self._session._rows  # maps the driver's faults
        await run("BEGIN IMMEDIATE", ())  # the lock every migrating process takes first
        try:
            await sql.migrate(DIALECT, run)
        except BaseException:
            if self._conn.in_transaction:  # SQLite ends it itself after some errors
                await run("ROLLBACK", ())
            raise
        await run("COMMIT", ())

    def applied_versions(self) -> builtins.list[int]:
        rows = self._conn.execute("SELECT version FROM schema_migrations ORDER BY version")
        return [row[0] for row in rows]

    async def ping(self) -> None:
        await self._session._rows("SELECT 1", ())

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self._conn.close()


def _switch_to_wal(conn: sqlite3.Connection, patience: float) -> None:
    """`PRAGMA journal_mode = WAL`, tried again while another connection switching the same
    fresh file holds its lock: SQLite answers that "database is locked" at once, without the
    busy timeout (two connections promoting their shared locks would deadlock), and 2 of 30
    rounds of 8 processes opening one new file together failed so (measured)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as failed:
            if failed.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class _Checkpointer:
    """Copies the WAL back into the database from a thread with its own connection: PASSIVE
    passes, which never block the writer but under steady commits never let it restart the log,
    and a RESTART once the log passes `restart_frames`, so the WAL stays bounded (it reached 1 GB
    in 40 s of deposits without: docs/PERFORMANCE.md, "The WAL no longer grows without bound")."""

    def __init__(self, path: str, *, every: float, restart_frames: int) -> None:
        self._path = path
        self._every = every
        self._restart_frames = restart_frames
        self.passes = 0  # checkpoints done
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
                    self.passes += 1
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames >= self._restart_frames:
            conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
