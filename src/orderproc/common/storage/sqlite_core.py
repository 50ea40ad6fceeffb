"""What every SQLite repository shares: the staged statement, the base class, row helpers, and
the one mapping of SQLite's faults to the store's errors (`store_fault`)."""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orderproc.common.clock import from_micros, to_micros
from orderproc.common.storage.records import Page
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


def page(items: builtins.list[Any], *, total: int, offset: int) -> Page[Any]:
    end = offset + len(items)
    return Page(items=items, total_count=total, next_cursor=str(end) if end < total else None)


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

    def _paged(
        self,
        table_sql: str,
        conditions: builtins.list[str],
        params: builtins.list[Any],
        *,
        columns: str,
        order: str,
        limit: int,
        offset: int,
    ) -> tuple[builtins.list[Any], int]:
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        total = self._one(f"SELECT count(*) FROM {table_sql}{where}", tuple(params))[0]
        rows = self._all(
            f"SELECT {columns} FROM {table_sql}{where} ORDER BY {order} LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return rows, int(total)
