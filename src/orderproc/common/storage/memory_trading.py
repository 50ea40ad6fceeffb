"""The in-memory repositories of trading: assets and prices, candles, orders, positions, and the
asset ledger (see `memory` for how staged operations commit)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from orderproc.common.storage.memory_core import (
    Journal,
    MemoryRepository,
    State,
    keyset_page,
    within,
)
from orderproc.common.storage.records import (
    AssetEntry,
    AssetRecord,
    CandleRecord,
    OrderRecord,
    OrderStatus,
    Page,
    PageKey,
    PositionRecord,
    PriceUpdate,
)


def _metadata_copy(metadata: dict[str, Any]) -> dict[str, Any]:
    """What the JSON column gives back; a Decimal inside comes back as its exact text."""
    copied: dict[str, Any] = orjson.loads(orjson.dumps(metadata, default=str))
    return copied


class MemoryAssets(MemoryRepository):
    async def list_all(self) -> builtins.list[AssetRecord]:
        return [self._state.assets[asset_id] for asset_id in sorted(self._state.assets)]

    async def get(self, asset_id: str) -> AssetRecord | None:
        return self._state.assets.get(asset_id)

    def add(self, asset: AssetRecord) -> None:
        stored_asset = asset.evolve(metadata=_metadata_copy(asset.metadata))

        def apply(state: State, journal: Journal) -> bool:
            if asset.asset_id in state.assets:
                return False
            journal.put(state.assets, asset.asset_id, stored_asset)
            return True

        self._staged.append(apply)

    def update(self, asset: AssetRecord, *, expected_version: int) -> None:
        stored_asset = asset.evolve(metadata=_metadata_copy(asset.metadata))

        def apply(state: State, journal: Journal) -> bool:
            previous = state.assets.get(asset.asset_id)
            if previous is None or previous.version != expected_version:
                return False
            journal.put(state.assets, asset.asset_id, stored_asset)
            return True

        self._staged.append(apply)

    def set_prices(self, updates: Sequence[PriceUpdate]) -> None:
        batch = builtins.list(updates)

        def apply(state: State, journal: Journal) -> bool:
            for update in batch:
                asset = state.assets.get(update.asset_id)
                if asset is not None:
                    changed = asset.evolve(price=update.price, price_updated_at=update.at)
                    journal.put(state.assets, update.asset_id, changed)
            return True

        self._staged.append(apply)


class MemoryCandles(MemoryRepository):
    def upsert(self, candles: Sequence[CandleRecord]) -> None:
        batch = builtins.list(candles)

        def apply(state: State, journal: Journal) -> bool:
            for candle in batch:
                key = (candle.asset_id, candle.interval, candle.open_time)
                journal.put(state.candles, key, candle)
            return True

        self._staged.append(apply)

    async def list(
        self, asset_id: str, interval: str, *, limit: int, end: datetime | None = None
    ) -> builtins.list[CandleRecord]:
        chosen = sorted(
            (
                candle
                for (asset, kind, open_time), candle in self._state.candles.items()
                if asset == asset_id and kind == interval and within(open_time, None, end)
            ),
            key=lambda candle: candle.open_time,
        )
        return chosen[max(len(chosen) - limit, 0) :]

    async def purge(self, interval: str, *, before: datetime) -> int:
        table = self._state.candles
        old = [key for key in table if key[1] == interval and key[2] < before]
        for key in old:
            del table[key]
        return len(old)


class MemoryOrders(MemoryRepository):
    async def get(self, order_id: str) -> OrderRecord | None:
        return self._state.orders.get(order_id)

    async def get_by_client_id(self, user_id: str, client_order_id: str) -> OrderRecord | None:
        order_id = self._state.order_by_client_id.get((user_id, client_order_id))
        return None if order_id is None else self._state.orders[order_id]

    async def list_for_user(
        self,
        user_id: str,
        *,
        status: OrderStatus | None = None,
        asset_id: str | None = None,
        order_type: str | None = None,
        client_order_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 50,
        after: PageKey | None = None,
        offset: int = 0,
    ) -> Page[OrderRecord]:
        wanted = {"status": status, "asset_id": asset_id, "order_type": order_type}
        filters = [(name, value) for name, value in wanted.items() if value is not None]
        return keyset_page(
            self._state.orders.values(),
            indexed=lambda o: (
                o.user_id == user_id
                and (client_order_id is None or o.client_order_id == client_order_id)
                and within(o.created_at, start, end)
            ),
            residual=(lambda o: all(getattr(o, name) == value for name, value in filters))
            if filters
            else None,
            limit=limit,
            after=after,
            offset=offset,
        )

    async def list_open(self, *, asset_id: str | None = None) -> builtins.list[OrderRecord]:
        # sorted() is stable, so equal times keep insertion order, as SQL's rowid order does.
        return sorted(
            (
                order
                for order in self._state.orders.values()
                if order.status == "open" and (asset_id is None or order.asset_id == asset_id)
            ),
            key=lambda order: order.created_at,
        )

    def add(self, order: OrderRecord) -> None:
        self._staged.append(lambda state, journal: _put_order(state, journal, order, previous=None))

    def update(self, order: OrderRecord, *, expected_version: int) -> None:
        def apply(state: State, journal: Journal) -> bool:
            previous = state.orders.get(order.order_id)
            if previous is None or previous.version != expected_version:
                return False
            return _put_order(state, journal, order, previous=previous)

        self._staged.append(apply)


def _client_key(order: OrderRecord) -> tuple[str, str] | None:
    return None if order.client_order_id is None else (order.user_id, order.client_order_id)


def _put_order(
    state: State, journal: Journal, order: OrderRecord, *, previous: OrderRecord | None
) -> bool:
    if previous is None and order.order_id in state.orders:
        return False
    key = _client_key(order)
    index = state.order_by_client_id
    if key is not None and index.get(key, order.order_id) != order.order_id:
        return False
    previous_key = None if previous is None else _client_key(previous)
    if previous_key is not None:
        journal.delete(index, previous_key)
    journal.put(state.orders, order.order_id, order)
    if key is not None:
        journal.put(index, key, order.order_id)
    return True


def _sound(position: PositionRecord) -> bool:
    return min(position.quantity_units, position.reserved_units, position.available_units) >= 0


class MemoryPositions(MemoryRepository):
    async def get(self, user_id: str, asset_id: str) -> PositionRecord | None:
        return self._state.positions.get((user_id, asset_id))

    async def list_for_user(self, user_id: str) -> builtins.list[PositionRecord]:
        return sorted(
            (p for (owner, _), p in self._state.positions.items() if owner == user_id),
            key=lambda position: position.asset_id,
        )

    def add(self, position: PositionRecord) -> None:
        key = (position.user_id, position.asset_id)

        def apply(state: State, journal: Journal) -> bool:
            if key in state.positions or not _sound(position):
                return False
            journal.put(state.positions, key, position)
            return True

        self._staged.append(apply)

    def update(self, position: PositionRecord, *, expected_version: int) -> None:
        key = (position.user_id, position.asset_id)

        def apply(state: State, journal: Journal) -> bool:
            stored = state.positions.get(key)
            if stored is None or stored.version != expected_version or not _sound(position):
                return False
            journal.put(state.positions, key, position)
            return True

        self._staged.append(apply)


class MemoryAssetLedger(MemoryRepository):
    def add(self, entry: AssetEntry) -> None:
        def apply(state: State, journal: Journal) -> bool:
            if entry.entry_id in state.asset_ledger_ids:
                return False
            journal.append(state.asset_ledger, entry)
            journal.put(state.asset_ledger_ids, entry.entry_id, None)
            return True

        self._staged.append(apply)

    async def list_for_user(
        self,
        user_id: str,
        *,
        asset_id: str | None = None,
        limit: int = 50,
        after: PageKey | None = None,
        offset: int = 0,
    ) -> Page[AssetEntry]:
        return keyset_page(
            self._state.asset_ledger,
            indexed=lambda e: e.user_id == user_id and (asset_id is None or e.asset_id == asset_id),
            limit=limit,
            after=after,
            offset=offset,
        )

    async def sum_for_position(self, user_id: str, asset_id: str) -> int:
        return sum(
            entry.quantity_units
            for entry in self._state.asset_ledger
            if entry.user_id == user_id and entry.asset_id == asset_id
        )
