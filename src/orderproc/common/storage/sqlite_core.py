"""What every SQLite repository shares: the staged statement, the base class, row helpers."""

from __future__ import annotations

import builtins
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orderproc.common.clock import from_micros, to_micros
from orderproc.common.storage.records import Page

Params = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Statement:
    """One staged write; `expect` is the row count it must affect (None: any count will do).
    With `many`, `params` holds one parameter tuple per row and the statement runs for each."""

    sql: str
    params: Params
    expect: int | None = 1
    many: bool = False


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
    def __init__(self, conn: sqlite3.Connection, staged: list[Statement]) -> None:
        self._conn = conn
        self._staged = staged

    def _one(self, sql: str, params: Params) -> Any:
        return self._conn.execute(sql, params).fetchone()

    def _all(self, sql: str, params: Params) -> builtins.list[Any]:
        return self._conn.execute(sql, params).fetchall()

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
