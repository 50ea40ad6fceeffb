"""The PostgreSQL repositories of trading: assets and prices, candles, orders, positions, and
the asset ledger (see `postgres` for how staged statements commit).

Prices, cost basis and realized P&L are NUMERIC(38,18) and come back as exact Decimals without
the column's padding zeros (see `postgres_core.plain`).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from orderproc.common.storage.postgres_core import (
    Filters,
    Params,
    PostgresRepository,
    plain,
    plain_or_none,
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


def _marks(count: int, *, first: int = 1) -> str:
    return ", ".join(f"${n}" for n in range(first, first + count))


def _assignments(columns: str) -> str:
    """`b = $2, c = $3` for every column after the key (the first one, `$1`)."""
    rest = columns.split(", ")[1:]
    return ", ".join(f"{column} = ${n}" for n, column in enumerate(rest, start=2))


_ASSET_COLUMNS = "asset_id, name, category, is_active, price, price_updated_at, metadata, version"


def _asset_params(asset: AssetRecord) -> Params:
    return (
        asset.asset_id, asset.name, asset.category, asset.is_active, asset.price,
        asset.price_updated_at, orjson.dumps(asset.metadata, default=str).decode(), asset.version,
    )  # fmt: skip


def _asset(row: Any) -> AssetRecord:
    return AssetRecord(
        asset_id=row[0], name=row[1], category=row[2], is_active=row[3], price=plain(row[4]),
        price_updated_at=row[5], metadata=orjson.loads(row[6]), version=row[7],
    )  # fmt: skip


class PostgresAssets(PostgresRepository):
    async def list_all(self) -> builtins.list[AssetRecord]:
        rows = await self._all(f"SELECT {_ASSET_COLUMNS} FROM assets ORDER BY asset_id")
        return [_asset(row) for row in rows]

    async def get(self, asset_id: str) -> AssetRecord | None:
        row = await self._one(f"SELECT {_ASSET_COLUMNS} FROM assets WHERE asset_id = $1", asset_id)
        return None if row is None else _asset(row)

    def add(self, asset: AssetRecord) -> None:
        self._stage(
            f"INSERT INTO assets ({_ASSET_COLUMNS}) VALUES ({_marks(8)})", *_asset_params(asset)
        )

    def update(self, asset: AssetRecord, *, expected_version: int) -> None:
        self._stage(
            f"UPDATE assets SET {_assignments(_ASSET_COLUMNS)} "
            "WHERE asset_id = $1 AND version = $9",
            *_asset_params(asset), expected_version,
        )  # fmt: skip

    def set_prices(self, updates: Sequence[PriceUpdate]) -> None:
        self._stage_many(
            "UPDATE assets SET price = $1, price_updated_at = $2 WHERE asset_id = $3",
            [(update.price, update.at, update.asset_id) for update in updates],
        )


_CANDLE_COLUMNS = "asset_id, interval, open_time, open, high, low, close"


class PostgresCandles(PostgresRepository):
    def upsert(self, candles: Sequence[CandleRecord]) -> None:
        self._stage_many(
            f"INSERT INTO candles ({_CANDLE_COLUMNS}) VALUES ({_marks(7)}) "
            "ON CONFLICT (asset_id, interval, open_time) DO UPDATE SET open = excluded.open, "
            "high = excluded.high, low = excluded.low, close = excluded.close",
            [
                (candle.asset_id, candle.interval, candle.open_time, candle.open, candle.high,
                 candle.low, candle.close)
                for candle in candles
            ],
        )  # fmt: skip

    async def list(
        self, asset_id: str, interval: str, *, limit: int, end: datetime | None = None
    ) -> builtins.list[CandleRecord]:
        filters = Filters()
        filters.equal("asset_id", asset_id)
        filters.equal("interval", interval)
        if end is not None:
            filters.add("open_time < {}", end)
        rows = await self._all(
            f"SELECT {_CANDLE_COLUMNS} FROM candles{filters.where} "
            f"ORDER BY open_time DESC LIMIT ${len(filters.params) + 1}",
            *filters.params,
            max(limit, 0),
        )
        return [_candle(row) for row in reversed(rows)]

    async def purge(self, interval: str, *, before: datetime) -> int:
        return await self._delete(
            "DELETE FROM candles WHERE interval = $1 AND open_time < $2", interval, before
        )


def _candle(row: Any) -> CandleRecord:
    return CandleRecord(
        asset_id=row[0], interval=row[1], open_time=row[2], open=plain(row[3]),
        high=plain(row[4]), low=plain(row[5]), close=plain(row[6]),
    )  # fmt: skip


_ORDER_COLUMNS = (
    "order_id, user_id, order_type, asset_id, status, quantity_units, created_at, updated_at, "
    "client_order_id, fingerprint, price, limit_price, stop_price, notional_cents, total_cents, "
    "fee_cents, reserved_cents, reserved_units, time_in_force, expires_at, filled_at, version"
)


def _order_params(order: OrderRecord) -> Params:
    return (
        order.order_id, order.user_id, order.order_type, order.asset_id, order.status,
        order.quantity_units, order.created_at, order.updated_at, order.client_order_id,
        order.fingerprint, order.price, order.limit_price, order.stop_price,
        order.notional_cents, order.total_cents, order.fee_cents, order.reserved_cents,
        order.reserved_units, order.time_in_force, order.expires_at, order.filled_at,
        order.version,
    )  # fmt: skip


def _order(row: Any) -> OrderRecord:
    return OrderRecord(
        order_id=row[0], user_id=row[1], order_type=row[2], asset_id=row[3], status=row[4],
        quantity_units=row[5], created_at=row[6], updated_at=row[7], client_order_id=row[8],
        fingerprint=row[9], price=plain_or_none(row[10]), limit_price=plain_or_none(row[11]),
        stop_price=plain_or_none(row[12]), notional_cents=row[13], total_cents=row[14],
        fee_cents=row[15], reserved_cents=row[16], reserved_units=row[17],
        time_in_force=row[18], expires_at=row[19], filled_at=row[20], version=row[21],
    )  # fmt: skip


class PostgresOrders(PostgresRepository):
    async def get(self, order_id: str) -> OrderRecord | None:
        row = await self._one(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = $1", order_id)
        return None if row is None else _order(row)

    async def get_by_client_id(self, user_id: str, client_order_id: str) -> OrderRecord | None:
        row = await self._one(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND client_order_id = $2",
            user_id, client_order_id,
        )  # fmt: skip
        return None if row is None else _order(row)

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
        # Indexes: (user_id, created_at, seq) and the unique (user_id, client_order_id).
        filters = Filters()
        filters.equal("user_id", user_id)
        filters.created_between(start, end)
        filters.equal("client_order_id", client_order_id)
        residual = [("status", status), ("asset_id", asset_id), ("order_type", order_type)]
        return await self._keyset_page(
            "orders", filters, columns=_ORDER_COLUMNS, make=_order,
            limit=limit, after=after, offset=offset, residual=residual,
        )  # fmt: skip

    async def list_open(self, *, asset_id: str | None = None) -> builtins.list[OrderRecord]:
        filters = Filters()
        filters.add("status = {}", "open")
        filters.equal("asset_id", asset_id)
        rows = await self._all(
            f"SELECT {_ORDER_COLUMNS} FROM orders{filters.where} ORDER BY created_at, seq",
            *filters.params,
        )
        return [_order(row) for row in rows]

    def add(self, order: OrderRecord) -> None:
        self._stage(
            f"INSERT INTO orders ({_ORDER_COLUMNS}) VALUES ({_marks(22)})", *_order_params(order)
        )

    def update(self, order: OrderRecord, *, expected_version: int) -> None:
        self._stage(
            f"UPDATE orders SET {_assignments(_ORDER_COLUMNS)} "
            "WHERE order_id = $1 AND version = $23",
            *_order_params(order), expected_version,
        )  # fmt: skip


_POSITION_COLUMNS = (
    "user_id, asset_id, quantity_units, reserved_units, cost_basis, realized_pnl, version, "
    "updated_at"
)


def _position(row: Any) -> PositionRecord:
    return PositionRecord(
        user_id=row[0], asset_id=row[1], quantity_units=row[2], reserved_units=row[3],
        cost_basis=plain(row[4]), realized_pnl=plain(row[5]), version=row[6],
        updated_at=row[7],
    )  # fmt: skip


class PostgresPositions(PostgresRepository):
    async def get(self, user_id: str, asset_id: str) -> PositionRecord | None:
        row = await self._one(
            f"SELECT {_POSITION_COLUMNS} FROM positions WHERE user_id = $1 AND asset_id = $2",
            user_id, asset_id,
        )  # fmt: skip
        return None if row is None else _position(row)

    async def list_for_user(self, user_id: str) -> builtins.list[PositionRecord]:
        rows = await self._all(
            f"SELECT {_POSITION_COLUMNS} FROM positions WHERE user_id = $1 ORDER BY asset_id",
            user_id,
        )
        return [_position(row) for row in rows]

    def add(self, position: PositionRecord) -> None:
        self._stage(
            f"INSERT INTO positions ({_POSITION_COLUMNS}, available_units) "
            f"VALUES ({_marks(9)})",
            position.user_id, position.asset_id, position.quantity_units,
            position.reserved_units, position.cost_basis, position.realized_pnl,
            position.version, position.updated_at, position.available_units,
        )  # fmt: skip

    def update(self, position: PositionRecord, *, expected_version: int) -> None:
        self._stage(
            "UPDATE positions SET quantity_units = $1, reserved_units = $2, "
            "available_units = $3, cost_basis = $4, realized_pnl = $5, version = $6, "
            "updated_at = $7 WHERE user_id = $8 AND asset_id = $9 AND version = $10 "
            "AND $1::bigint >= 0 AND $2::bigint >= 0 AND $3::bigint >= 0",
            position.quantity_units, position.reserved_units, position.available_units,
            position.cost_basis, position.realized_pnl, position.version, position.updated_at,
            position.user_id, position.asset_id, expected_version,
        )  # fmt: skip


_ASSET_ENTRY_COLUMNS = (
    "entry_id, user_id, asset_id, order_id, kind, quantity_units, price, total_cents, fee_cents, "
    "quantity_after_units, created_at"
)


def _asset_entry(row: Any) -> AssetEntry:
    return AssetEntry(
        entry_id=row[0], user_id=row[1], asset_id=row[2], order_id=row[3], kind=row[4],
        quantity_units=row[5], price=plain(row[6]), total_cents=row[7], fee_cents=row[8],
        quantity_after_units=row[9], created_at=row[10],
    )  # fmt: skip


class PostgresAssetLedger(PostgresRepository):
    def add(self, entry: AssetEntry) -> None:
        self._stage(
            f"INSERT INTO asset_ledger ({_ASSET_ENTRY_COLUMNS}) VALUES ({_marks(11)})",
            entry.entry_id, entry.user_id, entry.asset_id, entry.order_id, entry.kind,
            entry.quantity_units, entry.price, entry.total_cents, entry.fee_cents,
            entry.quantity_after_units, entry.created_at,
        )  # fmt: skip

    async def list_for_user(
        self,
        user_id: str,
        *,
        asset_id: str | None = None,
        limit: int = 50,
        after: PageKey | None = None,
        offset: int = 0,
    ) -> Page[AssetEntry]:
        filters = Filters()
        filters.equal("user_id", user_id)
        filters.equal("asset_id", asset_id)
        return await self._keyset_page(
            "asset_ledger", filters, columns=_ASSET_ENTRY_COLUMNS, make=_asset_entry,
            limit=limit, after=after, offset=offset,
        )  # fmt: skip

    async def sum_for_position(self, user_id: str, asset_id: str) -> int:
        total = await self._value(
            "SELECT coalesce(sum(quantity_units), 0) FROM asset_ledger "
            "WHERE user_id = $1 AND asset_id = $2",
            user_id, asset_id,
        )  # fmt: skip
        return int(total)
