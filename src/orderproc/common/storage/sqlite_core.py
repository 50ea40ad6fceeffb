"""What every SQLite repository shares: the staged statement, the base class, row helpers, and
the one mapping of SQLite's faults to the store's errors (`store_fault`)."""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orderproc.common.clock import from_micros, to_micros
from orderproc.common.storage.records import SCAN_ROWS, Page, PageKey
from orderproc.errors import StoreFull, StoreReadOnly, StoreTimeout, StoreUnavailable

Params = tuple[Any, ...]

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


def raise_fault(error: BaseException, *, where: str = "") -> None:
    """Raise the store error `error` stands for if it is a fault; otherwise return, and the
    caller re-raises `error` as it is."""
    fault = store_fault(error, where=where)
    if fault is not None:
        raise fault from error


@dataclass(frozen=True, slots=True)
class Statement:
    """One staged write; `expect` is the row count it must affect (None: any count will do).
    With `many`, `params` holds one parameter tuple per row and the statement runs for each."""

    sql: str
    params: Params
    expect: int | None = 1
    many: bool = False


# Runs statements as one unit through the store's write path (the group commit in `sqlite`)
# and returns how many rows they changed.
WriteNow = Callable[[builtins.list[Statement]], Awaitable[int]]

# sum() of integers beyond 2**63 raises instead of rounding; adding the quotient and remainder
# by this in two sums stays exact without reading the rows into Python.
_SPLIT = 1_000_000_000


def micros(when: datetime | None) -> int | None:
    return None if when is None else to_micros(when)


def moment(stored: int | None) -> datetime | None:
    return None if stored is None else from_micros(stored)


def marks(count: int) -> str:
    return ", ".join("?" * count)


def equal_all(pairs: Iterable[tuple[str, Any]]) -> tuple[str, list[Any]] | None:
    """`a = ? AND b = ?` for the pairs whose value is not None, with their values; None when
    none is (a residual filter of `_keyset_page`)."""
    chosen = [(column, value) for column, value in pairs if value is not None]
    if not chosen:
        return None
    return " AND ".join(f"{column} = ?" for column, _ in chosen), [v for _, v in chosen]


def time_filters(start: datetime | None, end: datetime | None) -> tuple[list[str], list[Any]]:
    conditions: list[str] = []
    params: list[Any] = []
    if start is not None:
        conditions.append("created_at >= ?")
        params.append(to_micros(start))
    if end is not None:
        conditions.append("created_at < ?")
        params.append(to_micros(end))
    return conditions, params


class SqliteRepository:
    def __init__(
        self,
        conn: sqlite3.Connection,
        staged: list[Statement],
        write_now: WriteNow | None = None,
    ) -> None:
        self._conn = conn
        self._staged = staged
        self._write_now = write_now

    def _one(self, sql: str, params: Params) -> Any:
        try:
            return self._conn.execute(sql, params).fetchone()
        except sqlite3.Error as error:
            raise_fault(error)
            raise

    def _all(self, sql: str, params: Params) -> builtins.list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise_fault(error)
            raise

    def _now(self, sql: str, params: Params) -> int:
        """Run a write now (not staged, in a transaction of its own); the rows it changed."""
        try:
            return self._conn.execute(sql, params).rowcount
        except sqlite3.Error as error:
            raise_fault(error)
            raise

    async def _through_writer(self, sql: str, params: Params) -> int:
        """Run a write now as a unit of its own through the store's write path (it shares the
        group commit, so it never meets a request's write on the connection); the rows it
        changed. Without a writer (a repository built alone), a plain `_now`."""
        if self._write_now is None:
            return self._now(sql, params)
        return await self._write_now([Statement(sql, params, expect=None)])

    def _exact_sum(self, column: str, where: str, params: Params) -> int:
        """sum(`column`) `where` (a FROM … WHERE clause), exact at any size, in SQL."""
        try:
            row = self._one(f"SELECT sum({column}) {where}", params)
        except sqlite3.OperationalError:  # integer overflow: beyond 2**63
            row = self._one(
                f"SELECT sum({column} / {_SPLIT}), sum({column} % {_SPLIT}) {where}", params
            )
            return 0 if row[0] is None else int(row[0]) * _SPLIT + int(row[1])
        return 0 if row[0] is None else int(row[0])

    def _stage(self, sql: str, params: Params, *, expect: int | None = 1) -> None:
        self._staged.append(Statement(sql, params, expect))

    def _stage_many(self, sql: str, rows: builtins.list[Params]) -> None:
        """Stage one statement run once per row (`executemany`); any row count will do."""
        if rows:
            self._staged.append(Statement(sql, tuple(rows), expect=None, many=True))

    def _keyset_page(
        self,
        table: str,
        conditions: builtins.list[str],
        params: builtins.list[Any],
        *,
        columns: str,
        make: Callable[[Any], Any],
        limit: int,
        after: PageKey | None,
        offset: int = 0,
        residual: tuple[str, builtins.list[Any]] | None = None,
    ) -> Page[Any]:
        """One page of `table`, newest first by (created_at, rowid), never counted.

        `conditions` are what an index holds (equality on its leading columns, `created_at`
        bounds): the index gives the rows in order and the page reads `offset + limit + 1` of
        them. `residual` is a filter no index holds, evaluated per row in the select list (so it
        cannot steer the planner to another index) while the rows are stepped through lazily:
        the page stops at `limit + 1` matches or after `offset + SCAN_ROWS` rows, and then
        goes on, next time, from the last row it looked at."""
        conditions = builtins.list(conditions)
        params = builtins.list(params)
        if after is not None:
            at = to_micros(after.at)
            conditions += ["created_at <= ?", "(created_at < ? OR rowid < ?)"]
            params += [at, at, after.seq]
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        order = "ORDER BY created_at DESC, rowid DESC"
        if residual is None:
            rows = self._all(
                f"SELECT {columns}, created_at, rowid FROM {table}{where} {order} LIMIT ? OFFSET ?",
                (*params, limit + 1, offset),
            )
            next_key = _key(rows[limit - 1][-2:]) if len(rows) > limit else None
            return Page([make(row) for row in rows[:limit]], None, next_key)
        matching, params_first = residual
        window = offset + SCAN_ROWS
        sql = f"SELECT {columns}, created_at, rowid, ({matching}) FROM {table}{where} {order}"
        items: builtins.list[Any] = []
        next_key = None
        try:
            cursor = self._conn.execute(f"{sql} LIMIT ?", (*params_first, *params, window + 1))
            try:
                skip, seen, last = offset, 0, ()
                for row in cursor:
                    seen += 1
                    if seen > window:  # rows remain past the scan bound: go on from the last
                        next_key = _key(last[-3:-1])
                        break
                    last = row
                    if not row[-1]:
                        continue
                    if skip:
                        skip -= 1
                    elif len(items) == limit:
                        next_key = _key(items[-1][-3:-1])
                        break
                    else:
                        items.append(row)
            finally:
                cursor.close()
        except sqlite3.Error as error:
            raise_fault(error)
            raise
        return Page([make(row) for row in items], None, next_key)


def _key(stored: Any) -> PageKey:
    """The `PageKey` of a row from its (created_at, rowid) columns."""
    return PageKey(from_micros(stored[0]), stored[1])
