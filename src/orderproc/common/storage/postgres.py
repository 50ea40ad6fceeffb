"""The PostgreSQL storage adapter (asyncpg). A unit of work takes one pooled connection for its
reads and its commit, and writes its intents as ONE statement (one transaction, one round trip):
each intent a data-modifying `WITH` clause, and `orderproc_expect` raising, so nothing is
written, unless every conditional write touched its row. READ COMMITTED suffices because every
write carries its own condition. The pool opens on first use (docs/storage.md)."""

from __future__ import annotations

import asyncio
import builtins
import itertools
import re
from collections.abc import Sequence
from decimal import Decimal
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson

from orderproc.common.storage import sql
from orderproc.common.storage.intents import Intent, Upsert, collapse, key_of
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

CONNECT_TIMEOUT_SECONDS = 5.0
# Every statement of the pool's connections gives up after this long: a store that hangs answers
# 503 STORE_TIMEOUT rather than holding the request and the user's lock. Migrations, which may
# rightly run long, pass their own.
COMMAND_TIMEOUT_SECONDS = 5.0
MIGRATION_TIMEOUT_SECONDS = 3600.0
# Any fixed 64-bit number of our own; taken by `migrate()` with pg_advisory_xact_lock.
MIGRATION_LOCK_KEY = 0x0D_E2_0C_E5_50_12_00_01
_INTEGER = Decimal(1)
_UNMET = "OPX01"  # the SQLSTATE `orderproc_expect` raises: a write's condition did not hold

# Faults by SQLSTATE, then by SQLSTATE class. Left out on purpose: class 23 and 40 (conflicts,
# see _CONFLICTS), 22 and 42 (the code's own mistakes), XX (internal errors, corruption).
_FAULT_STATES: dict[str, type[StoreUnavailable]] = {
    "53100": StoreFull,  # disk_full
    "25006": StoreReadOnly,  # read_only_sql_transaction (default_transaction_read_only, a replica)
    "57014": StoreTimeout,  # query_canceled: statement_timeout
    "55P03": StoreTimeout,  # lock_not_available: lock_timeout
    "25P03": StoreTimeout,  # idle_in_transaction_session_timeout
    "25P04": StoreTimeout,  # transaction_timeout
}
_FAULT_CLASSES: dict[str, type[StoreUnavailable]] = {
    "08": StoreUnavailable,  # connection exception (the connection is gone)
    "53": StoreUnavailable,  # insufficient resources: too many connections, out of memory
    "57": StoreUnavailable,  # operator intervention: shutdown, restart, cannot connect now
    "58": StoreUnavailable,  # system error: I/O error
}


def store_fault(error: BaseException) -> StoreUnavailable | None:
    """The store error `error` stands for, if it is a fault of the server, the network or the
    time allowed; None otherwise (a conflict, a bad query: not ours to turn into a 503)."""
    fault: StoreUnavailable | None = None
    if isinstance(error, asyncpg.PostgresError):
        state = str(getattr(error, "sqlstate", "") or "")
        kind = _FAULT_STATES.get(state) or _FAULT_CLASSES.get(state[:2])
        if kind is not None:
            fault = kind(f"PostgreSQL: {error} (SQLSTATE {state})")
    elif isinstance(error, TimeoutError):  # asyncpg's command_timeout, or connecting
        fault = StoreTimeout("PostgreSQL did not answer in time")
    elif isinstance(error, OSError):  # refused, reset, unreachable
        fault = StoreUnavailable(f"PostgreSQL connection failed: {error or type(error).__name__}")
    if fault is not None:
        fault.__cause__ = error
    return fault


FAULTS = sql.Faults(store_fault)


def plain(stored: Decimal) -> Decimal:
    """A NUMERIC(38,18) value without the column's padding zeros, never in exponent form:
    `43210.120000000000000000` → `43210.12`, `100.000…` → `100`."""
    if stored == stored.to_integral_value():
        return stored.quantize(_INTEGER)
    return stored.normalize()


EXPECT_FUNCTION = f"""
CREATE OR REPLACE FUNCTION orderproc_expect(ok boolean) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ok THEN
        RAISE EXCEPTION 'a write''s condition did not hold' USING ERRCODE = '{_UNMET}';
    END IF;
    RETURN true;
END $$
"""


class PostgresDialect(sql.Dialect):
    """Money and quantities BIGINT (cents, 10^-8 units); prices, cost basis and realized P&L
    NUMERIC(38,18); times TIMESTAMPTZ (microseconds); dicts JSONB, except where the text must
    come back as written (JSON). Lists break time ties by a `seq` identity column."""

    seq = "seq"
    identity = "seq BIGINT GENERATED ALWAYS AS IDENTITY"
    reorder = " ORDER BY page_at DESC, page_seq DESC"
    columns_query = (
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema()"
    )
    indexes_query = (
        "SELECT indexname, tablename FROM pg_indexes WHERE schemaname = current_schema() "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
    )
    functions = (EXPECT_FUNCTION,)
    types = {
        "text": "TEXT", "int": "BIGINT", "bool": "BOOLEAN", "time": "TIMESTAMPTZ",
        "date": "DATE", "decimal": "NUMERIC(38,18)", "json": "JSONB",
    }  # fmt: skip
    encoders = {"json": sql.json_text}
    decoders = {"decimal": plain, "json": orjson.loads}

    def column_type(self, table: Table[Any], name: str) -> str:
        if name == "version":
            return "INTEGER"
        return "JSON" if name in table.ordered_json else super().column_type(table, name)

    def cast(self, table: Table[Any], name: str) -> str:
        return "::" + self.column_type(table, name)

    def upsert(self, intent: Upsert) -> builtins.list[Statement]:
        if intent.stale is not None or len(intent.rows) == 1:
            return super().upsert(intent)
        table, encode = intent.table, self.encoder(intent.table)
        columns = tuple(zip(*(encode(row) for row in intent.rows), strict=True))
        statement = self._upsert(table, None, f"SELECT * FROM {self._unnest(table, table.names)}")
        return [Statement(statement, columns, expect=None)]

    def _unnest(self, table: Table[Any], names: Sequence[str]) -> str:
        return f"unnest({', '.join(f'?{self.cast(table, name)}[]' for name in names)})"


DIALECT = PostgresDialect()


@cache
def _numbered(statement: str) -> str:
    """`?` placeholders as PostgreSQL's `$1`, `$2`, … in order."""
    counter = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(counter)}", statement)


class _Session(sql.SqlReads):
    """One unit of work's connection: taken from the pool at its first statement, given back
    after its commit or when it ends. A unit opened while another holds a connection in the same
    task (a refusal remembered in a unit of its own) shares it rather than wait for the pool,
    which a pool full of outer units would make it do forever; every statement commits on its
    own, so nothing of one unit's transaction is seen by the other."""

    dialect = DIALECT

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._conn: Any = None
        self._owner = False

    async def _connection(self) -> Any:
        if self._conn is None:
            task = asyncio.current_task()
            held = self._store.held.get(task)
            if held is not None:
                self._conn = held
            else:
                pool = await self._store.pool()
                with FAULTS:
                    self._conn = await pool.acquire()
                self._store.held[task] = self._conn
                self._owner = True
        return self._conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if self._owner:
            self._owner = False
            self._store.held = {t: c for t, c in self._store.held.items() if c is not conn}
            await (await self._store.pool()).release(conn)

    async def _rows(self, statement: str, params: Sequence[Any]) -> builtins.list[Any]:
        conn = await self._connection()
        with FAULTS:
            rows: builtins.list[Any] = await conn.fetch(_numbered(statement), *params)
        return rows

    async def delete(self, table: Table[Any], where: Sequence[Cond], *, limit: int) -> int:
        # SKIP LOCKED: another process's purger (or a request replacing an expired record)
        # holding a row costs a skip, not a wait; the outer test keeps a row changed meanwhile.
        conditions, params = DIALECT.where(table, where)
        deleted = await self._rows(
            f"WITH gone AS (DELETE FROM {table.name} WHERE ctid = ANY(ARRAY(SELECT ctid FROM "
            f"{table.name} WHERE {conditions} LIMIT ? FOR UPDATE SKIP LOCKED)) AND {conditions} "
            "RETURNING 1) SELECT count(*) FROM gone",
            (*params, limit, *params),
        )
        return int(deleted[0][0])

    async def apply(self, intents: builtins.list[Intent]) -> None:
        """The unit's writes as one statement (see the module's docstring); a lost race is a
        `ConcurrencyConflict`; a fault (`store_fault`) a `StoreUnavailable` of its kind, which
        applied nothing, except that a connection lost during the statement leaves the outcome
        unknown: never "committed" unless PostgreSQL said so."""
        intents = collapse(intents)
        statements = DIALECT.compile(intents)
        try:
            conn = await self._connection()
            with FAULTS:
                try:
                    if _rows_written_once(intents):
                        await _write(conn, statements)
                    else:  # one row written twice: a statement each, in one transaction
                        async with conn.transaction():
                            for statement in statements:
                                await _write(conn, [statement])
                except _CONFLICTS as failed:
                    raise ConcurrencyConflict() from failed
                except asyncpg.PostgresError as failed:
                    if getattr(failed, "sqlstate", None) == _UNMET:
                        raise ConcurrencyConflict() from failed
                    raise
        finally:
            await self.close()  # reads after a commit take the connection again


# A lost race, in any of its forms: a duplicate key or a CHECK (class 23), or a transaction
# PostgreSQL aborted to stay serializable or break a deadlock.
_CONFLICTS = (
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)


def _rows_written_once(intents: builtins.list[Intent]) -> bool:
    keys = [(i.table.name, key_of(i.table, i.row)) for i in intents if hasattr(i, "row")]
    return len(keys) == len(set(keys))


async def _write(conn: Any, statements: builtins.list[Statement]) -> None:
    """`statements` as one: each a `WITH` clause, and a SELECT that checks every expected row
    count (all clauses run, referenced or not, on one snapshot)."""
    clauses, checks, params = [], [], builtins.list[Any]()
    for n, statement in enumerate(statements):
        clauses.append(f"w{n} AS ({statement.sql} RETURNING 1)")
        params += statement.params
        if statement.expect is not None:
            checks.append(f"(SELECT count(*) FROM w{n}) = {statement.expect}")
    text = f"WITH {', '.join(clauses)} SELECT orderproc_expect({' AND '.join(checks) or 'true'})"
    await conn.fetchval(_numbered(text), *params)


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
        self.held: dict[asyncio.Task[Any] | None, Any] = {}  # task -> its units' connection
        self._opening = asyncio.Lock()

    @property
    def address(self) -> str:
        """`host:port` of the DSN (5432 if unsaid), for messages: no user, no password."""
        try:
            parts = urlsplit(self._dsn)
            host = parts.hostname or "localhost"
            port = parts.port or 5432
        except ValueError:
            return "the configured address"
        shown = f"[{host}]" if ":" in host else host
        return f"{shown}:{port}"

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

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(_Session(self))

    async def migrate(self) -> None:
        with FAULTS:
            async with (await self.pool()).acquire() as conn, conn.transaction():

                async def run(statement: str, params: sql.Params) -> builtins.list[Any]:
                    wait = MIGRATION_TIMEOUT_SECONDS
                    rows: builtins.list[Any] = await conn.fetch(
                        _numbered(statement), *params, timeout=wait
                    )
                    return rows

                # The lock every migrating process takes first, held to the transaction's end.
                await run("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK_KEY,))
                await sql.migrate(DIALECT, run)

    async def applied_versions(self) -> builtins.list[int]:
        pool = await self.pool()
        rows = await pool.fetch("SELECT version FROM schema_migrations ORDER BY version")
        return [row[0] for row in rows]

    async def ping(self) -> None:
        pool = await self.pool()
        with FAULTS:
            await pool.fetchval("SELECT 1")

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
