"""What every in-memory repository shares: the state's tables, the undo journal, list helpers."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from orderproc.common.storage.records import (
    AccountRecord,
    AssetEntry,
    AssetRecord,
    AuditEvent,
    CandleRecord,
    CashEntry,
    IdempotencyRecord,
    OrderRecord,
    Page,
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


def page(items: builtins.list[Any], *, limit: int, offset: int) -> Page[Any]:
    chosen = items[offset : offset + limit]
    end = offset + len(chosen)
    return Page(chosen, total_count=len(items), next_cursor=str(end) if end < len(items) else None)


def newest_first(items: Iterable[Any]) -> builtins.list[Any]:
    """Newest first; among equal times the later insert first, as SQL's rowid order does."""
    return sorted(reversed(builtins.list(items)), key=lambda item: item.created_at, reverse=True)


def within(moment: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or moment >= start) and (end is None or moment < end)


class MemoryRepository:
    def __init__(self, store: MemoryStore, staged: builtins.list[Operation]) -> None:
        self._store = store
        self._staged = staged

    @property
    def _state(self) -> State:
        return self._store.state
