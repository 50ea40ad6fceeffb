"""What every in-memory repository shares: the state's tables, the undo journal, list helpers."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from orderproc.common.storage.records import (
    SCAN_ROWS,
    AccountRecord,
    AssetEntry,
    AssetRecord,
    AuditEvent,
    CandleRecord,
    CashEntry,
    IdempotencyRecord,
    OrderRecord,
    Page,
    PageKey,
    PositionRecord,
    UserRecord,
)

if TYPE_CHECKING:
    from orderproc.common.storage.memory import MemoryStore

LimitKey = tuple[str, str, str]
CandleKey = tuple[str, str, datetime]


@dataclass(slots=True)
class State:
    users: dict[str, UserRecord] = field(default_factory=dict)
    user_by_name: dict[str, str] = field(default_factory=dict)
    user_by_email: dict[str, str] = field(default_factory=dict)
    accounts: dict[str, AccountRecord] = field(default_factory=dict)
    ledger: list[CashEntry] = field(default_factory=list)
    ledger_ids: dict[str, None] = field(default_factory=dict)
    limits: dict[LimitKey, int] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], IdempotencyRecord] = field(default_factory=dict)
    revocations: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    audit: list[AuditEvent] = field(default_factory=list)
    audit_ids: dict[str, None] = field(default_factory=dict)
    assets: dict[str, AssetRecord] = field(default_factory=dict)
    candles: dict[CandleKey, CandleRecord] = field(default_factory=dict)
    orders: dict[str, OrderRecord] = field(default_factory=dict)
    order_by_client_id: dict[tuple[str, str], str] = field(default_factory=dict)
    positions: dict[tuple[str, str], PositionRecord] = field(default_factory=dict)
    asset_ledger: list[AssetEntry] = field(default_factory=list)
    asset_ledger_ids: dict[str, None] = field(default_factory=dict)


_MISSING = object()


class Journal:
    """Changes made during one commit, with how to undo each, so a failed commit leaves none."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], object]] = []

    def put(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        previous = table.get(key, _MISSING)
        if previous is _MISSING:
            self._undo.append(lambda: table.pop(key))
        else:
            self._undo.append(lambda: table.__setitem__(key, previous))
        table[key] = value

    def delete(self, table: dict[Any, Any], key: Any) -> None:
        previous = table.pop(key)
        self._undo.append(lambda: table.__setitem__(key, previous))

    def append(self, items: list[Any], item: Any) -> None:
        items.append(item)
        self._undo.append(items.pop)

    def roll_back(self) -> None:
        for undo in reversed(self._undo):
            undo()


Operation = Callable[[State, Journal], bool]


def json_copy(payload: dict[str, Any]) -> dict[str, Any]:
    """What a JSON column gives back, so the fake refuses what a real store would."""
    copied: dict[str, Any] = orjson.loads(orjson.dumps(payload))
    return copied


def keyset_page(
    rows: Iterable[Any],
    *,
    indexed: Callable[[Any], bool],
    limit: int,
    after: PageKey | None,
    offset: int = 0,
    residual: Callable[[Any], bool] | None = None,
) -> Page[Any]:
    """One page of a table's rows (records with `created_at`, in insertion order), newest first,
    paged as the SQL adapters do: `indexed` is what their index holds, `residual` the filter
    it does not, applied to at most `offset + SCAN_ROWS` rows. Counts, as only this store can
    cheaply."""
    ordered = sorted(
        ((PageKey(row.created_at, seq), row) for seq, row in enumerate(rows) if indexed(row)),
        key=lambda keyed: keyed[0],
        reverse=True,
    )
    total = sum(1 for _, row in ordered if residual is None or residual(row))
    if after is not None:
        ordered = [(key, row) for key, row in ordered if key < after]
    window = ordered if residual is None else ordered[: offset + SCAN_ROWS]
    chosen = [(key, row) for key, row in window if residual is None or residual(row)]
    chosen = chosen[offset : offset + limit + 1]
    if len(chosen) > limit:
        next_key: PageKey | None = chosen[limit - 1][0]
    elif len(window) < len(ordered):  # a filtered page stopped at its scan bound
        next_key = window[-1][0]
    else:
        next_key = None
    return Page([row for _, row in chosen[:limit]], total_count=total, next_key=next_key)


def within(moment: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or moment >= start) and (end is None or moment < end)


class MemoryRepository:
    def __init__(self, store: MemoryStore, staged: builtins.list[Operation]) -> None:
        self._store = store
        self._staged = staged

    @property
    def _state(self) -> State:
        return self._store.state
