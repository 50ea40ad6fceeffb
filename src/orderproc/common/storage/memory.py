"""The in-memory storage adapter, the fake for unit tests and the reference for the contract: each
table a dictionary by key, the declared uniqueness and guards (CHECKs) enforced on every write,
and a unit's intents applied with an undo journal, no `await` inside (docs/storage.md)."""

from __future__ import annotations

import builtins
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from orderproc.common.storage import schema
from orderproc.common.storage.intents import (
    Increment,
    Insert,
    Intent,
    Update,
    Upsert,
    key_of,
)
from orderproc.common.storage.records import SCAN_ROWS, Page, PageKey
from orderproc.common.storage.repositories import Cond, UnitOfWork
from orderproc.common.storage.schema import Table
from orderproc.errors import ConcurrencyConflict

R = TypeVar("R")
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip


class _Unmet(Exception):
    """A write's condition did not hold: the unit is a conflict."""


@dataclass(slots=True)
class _Rows:
    """One table: rows by key, their insertion order, and each unique column's or index's
    values (a partial unique index leaves out rows with a None in it)."""

    table: Table[Any]
    rows: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    order: dict[tuple[Any, ...], int] = field(default_factory=dict)
    unique: dict[tuple[str, ...], dict[tuple[Any, ...], tuple[Any, ...]]] = field(
        default_factory=dict
    )
    guard: Callable[[Any], bool] | None = None

    def __post_init__(self) -> None:
        declared: builtins.list[tuple[str, ...]] = [(name,) for name in self.table.unique]
        declared += [index.columns for index in self.table.indexes if index.unique]
        self.unique = {columns: {} for columns in declared}
        if self.table.checks:  # the same CHECKs as the SQL stores, as Python
            test = " and ".join(f"({c.replace(' = ', ' == ')})" for c in self.table.checks)
            code = compile(test, f"<checks of {self.table.name}>", "eval")
            names = self.table.names
            self.guard = lambda row: bool(eval(code, {n: getattr(row, n) for n in names}))  # noqa: S307


class _Journal:
    """Changes made during one commit, with how to undo each, so a failed commit leaves none."""

    def __init__(self) -> None:
        self.undo: builtins.list[Callable[[], object]] = []

    def put(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        if key in table:
            previous = table[key]
            self.undo.append(lambda: table.__setitem__(key, previous))
        else:
            self.undo.append(lambda: table.pop(key))
        table[key] = value

    def pop(self, table: dict[Any, Any], key: Any) -> None:
        previous = table.pop(key)
        self.undo.append(lambda: table.__setitem__(key, previous))

    def roll_back(self) -> None:
        for undo in reversed(self.undo):
            undo()


def _json_copy(row: Any, table: Table[Any]) -> Any:
    """What the JSON columns give back (a Decimal inside comes back as its exact text)."""
    copies = {
        c.name: orjson.loads(orjson.dumps(getattr(row, c.name), default=str))
        for c in table.columns
        if c.kind == "json"
    }
    return row.evolve(**copies) if copies else row


def _matches(row: Any, where: Sequence[Cond]) -> bool:
    return all(_OPERATORS[op](getattr(row, name), value) for name, op, value in where)


class MemoryStore:
    """Every table of the schema in dictionaries; `tables[name].rows` for tests to look at."""

    def __init__(self) -> None:
        self.tables = {table.name: _Rows(table) for table in schema.TABLES}
        self._inserted = 0

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self)

    async def migrate(self) -> None:
        pass

    async def ping(self) -> None:
        pass

    async def close(self) -> None:
        pass

    # --- reads --------------------------------------------------------------------------------

    def _ordered(self, table: Table[Any], where: Sequence[Cond]) -> builtins.list[Any]:
        """Matching rows with their `PageKey`, newest first."""
        stored = self.tables[table.name]
        keyed = [
            (PageKey(row.created_at, stored.order[key]), row)
            for key, row in stored.rows.items()
            if _matches(row, where)
        ]
        return sorted(keyed, key=lambda pair: pair[0], reverse=True)

    async def get(self, table: Table[R], key: Sequence[Any]) -> R | None:
        row: R | None = self.tables[table.name].rows.get(tuple(key))
        return row

    async def select(
        self, table: Table[R], where: Sequence[Cond] = (), *, order: Sequence[str] = (),
        limit: int | None = None,
    ) -> builtins.list[R]:  # fmt: skip
        stored = self.tables[table.name]
        rows = [(key, row) for key, row in stored.rows.items() if _matches(row, where)]
        for term in reversed(order):  # stable sorts, last term first
            name, *desc = term.split()

            def by(pair: tuple[Any, Any], name: str = name) -> Any:
                return stored.order[pair[0]] if name == "seq" else getattr(pair[1], name)

            rows.sort(key=by, reverse=bool(desc))
        chosen = [row for _, row in rows]
        return chosen if limit is None else chosen[:limit]

    async def page(
        self, table: Table[R], where: Sequence[Cond], *, residual: Sequence[Cond], limit: int,
        after: PageKey | None, offset: int,
    ) -> Page[R]:  # fmt: skip
        """Paged as the SQL stores do: `residual` applied to at most `offset + SCAN_ROWS` rows.
        Counts, as only this store can cheaply."""
        ordered = self._ordered(table, where)
        total = sum(1 for _, row in ordered if _matches(row, residual))
        if after is not None:
            ordered = [(key, row) for key, row in ordered if key < after]
        window = ordered[: offset + SCAN_ROWS] if residual else ordered
        chosen = [(key, row) for key, row in window if _matches(row, residual)]
        chosen = chosen[offset : offset + limit + 1]
        next_key = None
        if len(chosen) > limit:
            next_key = chosen[limit - 1][0]
        elif len(window) < len(ordered):  # a filtered page stopped at its scan bound
            next_key = window[-1][0]
        return Page([row for _, row in chosen[:limit]], total_count=total, next_key=next_key)

    async def sum(
        self, table: Table[Any], column: str, where: Sequence[Cond], *,
        after: PageKey | None, limit: int,
    ) -> tuple[int, PageKey | None]:  # fmt: skip
        ordered = [(k, row) for k, row in self._ordered(table, where) if after is None or k < after]
        chunk = ordered[:limit]
        total = sum(getattr(row, column) for _, row in chunk)
        return total, (chunk[-1][0] if len(chunk) == limit else None)

    async def delete(self, table: Table[Any], where: Sequence[Cond], *, limit: int) -> int:
        stored = self.tables[table.name]
        chosen = [key for key, row in stored.rows.items() if _matches(row, where)][:limit]
        for key in chosen:
            self._drop(stored, key, _Journal())
            del stored.order[key]
        return len(chosen)

    # --- writes -------------------------------------------------------------------------------

    async def apply(self, intents: builtins.list[Intent]) -> None:
        journal = _Journal()
        try:
            for intent in intents:
                self._apply(intent, journal)
        except _Unmet:
            journal.roll_back()
            raise ConcurrencyConflict() from None

    def _apply(self, intent: Intent, journal: _Journal) -> None:
        stored = self.tables[intent.table.name]
        rows = intent.rows if isinstance(intent, Upsert) else (intent.row,)
        for row in rows:
            before = stored.rows.get(key_of(intent.table, row))
            if isinstance(intent, Insert):
                if before is not None and not intent.if_absent:
                    raise _Unmet
                if before is None:
                    self._put(stored, row, journal)
            elif isinstance(intent, Update):
                if before is None or before.version != intent.expected_version:
                    raise _Unmet
                self._put(stored, row, journal)
            elif isinstance(intent, Upsert):
                stale = intent.stale
                if (
                    before is not None
                    and stale is not None
                    and not (getattr(before, stale[0]) <= getattr(row, stale[1]))
                ):
                    raise _Unmet
                self._put(stored, row, journal)
            elif isinstance(intent, Increment):
                used = getattr(row, intent.column) + (
                    0 if before is None else getattr(before, intent.column)
                )
                if used > intent.limit:
                    raise _Unmet
                self._put(stored, row.evolve(**{intent.column: used}), journal)

    def _put(self, stored: _Rows, row: Any, journal: _Journal) -> None:
        """Insert or replace `row`, if the guards hold and no other row has its unique values."""
        key = key_of(stored.table, row)
        if stored.guard is not None and not stored.guard(row):
            raise _Unmet
        if key in stored.rows:
            self._drop(stored, key, journal)
        else:
            self._inserted += 1
            journal.put(stored.order, key, self._inserted)
        for columns, index in stored.unique.items():
            values = tuple(getattr(row, name) for name in columns)
            if None not in values:
                if values in index:
                    raise _Unmet
                journal.put(index, values, key)
        journal.put(stored.rows, key, _json_copy(row, stored.table))

    def _drop(self, stored: _Rows, key: tuple[Any, ...], journal: _Journal) -> None:
        """Remove the row's unique values and the row (its insertion order stays if replaced)."""
        row = stored.rows[key]
        for columns, index in stored.unique.items():
            values = tuple(getattr(row, name) for name in columns)
            if index.get(values) == key:
                journal.pop(index, values)
        journal.pop(stored.rows, key)
