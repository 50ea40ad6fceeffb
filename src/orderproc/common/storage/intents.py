"""Write intents: what a unit of work asks the store to do at commit, in the schema's terms, each
conditional or idempotent; each backend compiles a unit's intents into one transaction that
applies whole or raises `ConcurrencyConflict` and applies nothing (docs/storage.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orderproc.common.storage.schema import Table


@dataclass(frozen=True, slots=True)
class Insert:
    """Add `row`. A row with its key or a unique value already there fails the unit, unless
    `if_absent`: then nothing is written and nothing fails (revoking twice)."""

    table: Table[Any]
    row: Any
    if_absent: bool = False


@dataclass(frozen=True, slots=True)
class Update:
    """Replace the row with `row`'s key, if it is stored at `expected_version` and the table's
    guards hold for `row` (`row.version` is the new version); otherwise fail the unit."""

    table: Table[Any]
    row: Any
    expected_version: int


@dataclass(frozen=True, slots=True)
class Upsert:
    """Insert each row, or replace the stored row with its key. With `stale` = (stored, new):
    replace only a stored row whose `stored` column is <= the new row's `new` column, and fail
    the unit otherwise (an idempotency record replaces an expired one only)."""

    table: Table[Any]
    rows: tuple[Any, ...]
    stale: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Increment:
    """Add `row`'s `column` to the stored row with its key, inserting `row` if there is none;
    fail the unit if the result would pass `limit` (a bounded counter: a daily limit)."""

    table: Table[Any]
    row: Any
    column: str
    limit: int


Intent = Insert | Update | Upsert | Increment


def key_of(table: Table[Any], row: Any) -> tuple[Any, ...]:
    return tuple(getattr(row, name) for name in table.key)


def collapse(intents: list[Intent]) -> list[Intent]:
    """The same writes with each row written once where that is exact: an insert then an update
    of its row become one insert of the last state, two updates one. A store that writes a
    unit as one statement (PostgreSQL here) or one transaction of distinct items (DynamoDB)
    cannot write one row twice. An update that expects another version is kept, and fails."""
    merged: list[Intent] = []
    last: dict[tuple[str, tuple[Any, ...]], int] = {}  # (table, key) -> index in merged
    for intent in intents:
        if not isinstance(intent, Insert | Update):
            merged.append(intent)
            continue
        key = (intent.table.name, key_of(intent.table, intent.row))
        slot = last.get(key) if isinstance(intent, Update) else None
        if slot is not None and isinstance(intent, Update):
            before = merged[slot]
            if getattr(getattr(before, "row", None), "version", None) == intent.expected_version:
                if isinstance(before, Insert) and not before.if_absent:
                    merged[slot] = Insert(before.table, intent.row)
                    continue
                if isinstance(before, Update):
                    merged[slot] = Update(before.table, intent.row, before.expected_version)
                    continue
        last[key] = len(merged)
        merged.append(intent)
    return merged
