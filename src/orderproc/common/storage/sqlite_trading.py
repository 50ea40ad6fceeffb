"""The SQLite repositories of trading: assets and prices, candles, orders, positions, and the
asset ledger (see `sqlite` for how staged statements commit).

Prices, cost basis and realized P&L go in and out as exact decimal text; nothing compares them.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from orderproc.common.clock import from_micros, to_micros
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
from orderproc.common.storage.sqlite_core import (
    Params,
    SqliteRepository,
    equal_all,
    marks,
    micros,
    moment,
    time_filters,
)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _decimal(stored: str | None) -> Decimal | None:
    return None if stored is None else Decimal(stored)


def _assignments(columns: str) -> str:
    """`b = ?, c = ?` for every column after the key (the first one)."""
    return ", ".join(f"{column} = ?" for column in columns.split(", ")[1:])


_ASSET_COLUMNS = "asset_id, name, category, is_active, price, price_updated_at, metadata, version"


def _asset_params(asset: AssetRecord) -> Params:
    return (
        asset.asset_id, asset.name, asset.category, int(asset.is_active), str(asset.price),
        to_micros(asset.price_updated_at), orjson.dumps(asset.metadata, default=str).decode(),
        asset.version,
    )  # fmt: skip


def _asset(row: Any) -> AssetRecord:
    return AssetRecord(
        asset_id=row[0], name=row[1], category=row[2], is_active=bool(row[3]),
        price=Decimal(row[4]), price_updated_at=from_micros(row[5]),
        metadata=orjson.loads(row[6]), version=row[7],
    )  # fmt: skip


class SqliteAssets(SqliteRepository):
    async def list_all(self) -> builtins.list[AssetRecord]:
        rows = self._all(f"SELECT {_ASSET_COLUMNS} FROM assets ORDER BY asset_id", ())
        return [_asset(row) for row in rows]

    async def get(self, asset_id: str) -> AssetRecord | None:
        row = self._one(f"SELECT {_ASSET_COLUMNS} FROM assets WHERE asset_id = ?", (asset_id,))
        return None if row is None else _asset(row)

    def add(self, asset: AssetRecord) -> None:
        self._stage(
            f"INSERT INTO assets ({_ASSET_COLUMNS}) VALUES ({marks(8)})", _asset_params(asset)
        )

    def update(self, asset: AssetRecord, *, expected_version: int) -> None:
        self._stage(
            f"UPDATE assets SET {_assignments(_ASSET_COLUMNS)} WHERE asset_id = ? AND version = ?",
            (*_asset_params(asset)[1:], asset.asset_id, expected_version),
        )

    def set_prices(self, updates: Sequence[PriceUpdate]) -> None:
        self._stage_many(
            "UPDATE assets SET price = ?, price_updated_at = ? WHERE asset_id = ?",
            [(str(update.price), to_micros(update.at), update.asset_id) for update in updates],
        )


_CANDLE_COLUMNS = "asset_id, interval, open_time, open, high, low, close"


class SqliteCandles(SqliteRepository):
    def upsert(self, candles: Sequence[CandleRecord]) -> None:
        self._stage_many(
            f"INSERT INTO candles ({_CANDLE_COLUMNS}) VALUES ({marks(7)}) "
            "ON CONFLICT (asset_id, interval, open_time) DO UPDATE SET open = excluded.open, "
            "high = excluded.high, low = excluded.low, close = excluded.close",
            [
                (candle.asset_id, candle.interval, to_micros(candle.open_time), str(candle.open),
                 str(candle.high), str(candle.low), str(candle.close))
                for candle in candles
            ],
        )  # fmt: skip

    async def list(
        self, asset_id: str, interval: str, *, limit: int, end: datetime | None = None
    ) -> builtins.list[CandleRecord]:
        before = "" if end is None else " AND open_time < ?"
        params = (asset_id, interval) if end is None else (asset_id, interval, to_micros(end))
        rows = self._all(
            f"SELECT {_CANDLE_COLUMNS} FROM candles WHERE asset_id = ? AND interval = ?{before} "
            "ORDER BY open_time DESC LIMIT ?",
            (*params, max(limit, 0)),
        )
        return [_candle(row) for row in reversed(rows)]

    async def purge(self, interval: str, *, before: datetime) -> int:
        return self._now(
            "DELETE FROM candles WHERE interval = ? AND open_time < ?",
            (interval, to_micros(before)),
        )


def _candle(row: Any) -> CandleRecord:
    return CandleRecord(
        asset_id=row[0], interval=row[1], open_time=from_micros(row[2]), open=Decimal(row[3]),
        high=Decimal(row[4]), low=Decimal(row[5]), close=Decimal(row[6]),
    )  # fmt: skip


_ORDER_COLUMNS = (
    "order_id, user_id, order_type, asset_id, status, quantity_units, created_at, updated_at, "
    "client_order_id, fingerprint, price, limit_price, stop_price, notional_cents, total_cents, "
    "fee_cents, reserved_cents, reserved_units, time_in_force, expires_at, filled_at, version"
)


def _order_params(order: OrderRecord) -> Params:
    return (
        order.order_id, order.user_id, order.order_type, order.asset_id, order.status,
        order.quantity_units, to_micros(order.created_at), to_micros(order.updated_at),
        order.client_order_id, order.fingerprint, _text(order.price), _text(order.limit_price),
        _text(order.stop_price), order.notional_cents, order.total_cents, order.fee_cents,
        order.reserved_cents, order.reserved_units, order.time_in_force,
        micros(order.expires_at), micros(order.filled_at), order.version,
    )  # fmt: skip


def _order(row: Any) -> OrderRecord:
    return OrderRecord(
        order_id=row[0], user_id=row[1], order_type=row[2], asset_id=row[3], status=row[4],
        quantity_units=row[5], created_at=from_micros(row[6]), updated_at=from_micros(row[7]),
        client_order_id=row[8], fingerprint=row[9], price=_decimal(row[10]),
        limit_price=_decimal(row[11]), stop_price=_decimal(row[12]), notional_cents=row[13],
        total_cents=row[14], fee_cents=row[15], reserved_cents=row[16], reserved_units=row[17],
        time_in_force=row[18], expires_at=moment(row[19]), filled_at=moment(row[20]),
        version=row[21],
    )  # fmt: skip


class SqliteOrders(SqliteRepository):
    async def get(self, order_id: str) -> OrderRecord | None:
        row = self._one(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = ?", (order_id,))
        return None if row is None else _order(row)

    async def get_by_client_id(self, user_id: str, client_order_id: str) -> OrderRecord | None:
        row = self._one(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE user_id = ? AND client_order_id = ?",
            (user_id, client_order_id),
        )
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
        # Indexes: (user_id, created_at) and the unique (user_id, client_order_id).
        conditions, params = time_filters(start, end)
        conditions.insert(0, "user_id = ?")
        params.insert(0, user_id)
        if client_order_id is not None:
            conditions.append("client_order_id = ?")
            params.append(client_order_id)
        residual = equal_all(
            [("status", status), ("asset_id", asset_id), ("order_type", order_type)]
        )
        return self._keyset_page(
            "orders", conditions, params, columns=_ORDER_COLUMNS, make=_order,
            limit=limit, after=after, offset=offset, residual=residual,
        )  # fmt: skip

    async def list_open(self, *, asset_id: str | None = None) -> builtins.list[OrderRecord]:
        by_asset = "" if asset_id is None else " AND asset_id = ?"
        rows = self._all(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE status = 'open'{by_asset} "
            "ORDER BY created_at, rowid",
            () if asset_id is None else (asset_id,),
        )
        return [_order(row) for row in rows]

    def add(self, order: OrderRecord) -> None:
        self._stage(
            f"INSERT INTO orders ({_ORDER_COLUMNS}) VALUES ({marks(22)})", _order_params(order)
        )

    def update(self, order: OrderRecord, *, expected_version: int) -> None:
        self._stage(
            f"UPDATE orders SET {_assignments(_ORDER_COLUMNS)} WHERE order_id = ? AND version = ?",
            (*_order_params(order)[1:], order.order_id, expected_version),
        )


_POSITION_COLUMNS = (
    "user_id, asset_id, quantity_units, reserved_units, cost_basis, realized_pnl, version, "
    "updated_at"
)


def _position(row: Any) -> PositionRecord:
    return PositionRecord(
        user_id=row[0], asset_id=row[1], quantity_units=row[2], reserved_units=row[3],
        cost_basis=Decimal(row[4]), realized_pnl=Decimal(row[5]), version=row[6],
        updated_at=from_micros(row[7]),
    )  # fmt: skip


class SqlitePositions(SqliteRepository):
    async def get(self, user_id: str, asset_id: str) -> PositionRecord | None:
        row = self._one(
            f"SELECT {_POSITION_COLUMNS} FROM positions WHERE user_id = ? AND asset_id = ?",
            (user_id, asset_id),
        )
        return None if row is None else _position(row)

    async def list_for_user(self, user_id: str) -> builtins.list[PositionRecord]:
        rows = self._all(
            f"SELECT {_POSITION_COLUMNS} FROM positions WHERE user_id = ? ORDER BY asset_id",
            (user_id,),
        )
        return [_position(row) for row in rows]

    def add(self, position: PositionRecord) -> None:
        self._stage(
            f"INSERT INTO positions ({_POSITION_COLUMNS}, available_units) VALUES ({marks(9)})",
            (position.user_id, position.asset_id, position.quantity_units,
             position.reserved_units, str(position.cost_basis), str(position.realized_pnl),
             position.version, to_micros(position.updated_at), position.available_units),
        )  # fmt: skip

    def update(self, position: PositionRecord, *, expected_version: int) -> None:
        self._stage(
            "UPDATE positions SET quantity_units = ?1, reserved_units = ?2, available_units = ?3, "
            "cost_basis = ?4, realized_pnl = ?5, version = ?6, updated_at = ?7 "
            "WHERE user_id = ?8 AND asset_id = ?9 AND version = ?10 "
            "AND ?1 >= 0 AND ?2 >= 0 AND ?3 >= 0",
            (position.quantity_units, position.reserved_units, position.available_units,
             str(position.cost_basis), str(position.realized_pnl), position.version,
             to_micros(position.updated_at), position.user_id, position.asset_id,
             expected_version),
        )  # fmt: skip


_ASSET_ENTRY_COLUMNS = (
    "entry_id, user_id, asset_id, order_id, kind, quantity_units, price, total_cents, fee_cents, "
    "quantity_after_units, created_at"
)


def _asset_entry(row: Any) -> AssetEntry:
    return AssetEntry(
        entry_id=row[0], user_id=row[1], asset_id=row[2], order_id=row[3], kind=row[4],
        quantity_units=row[5], price=Decimal(row[6]), total_cents=row[7], fee_cents=row[8],
        quantity_after_units=row[9], created_at=from_micros(row[10]),
    )  # fmt: skip


class SqliteAssetLedger(SqliteRepository):
    def add(self, entry: AssetEntry) -> None:
        self._stage(
            f"INSERT INTO asset_ledger ({_ASSET_ENTRY_COLUMNS}) VALUES ({marks(11)})",
            (entry.entry_id, entry.user_id, entry.asset_id, entry.order_id, entry.kind,
             entry.quantity_units, str(entry.price), entry.total_cents, entry.fee_cents,
             entry.quantity_after_units, to_micros(entry.created_at)),
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
        conditions, params = ["user_id = ?"], [user_id]
        if asset_id is not None:
            conditions.append("asset_id = ?")
            params.append(asset_id)
        return self._keyset_page(
            "asset_ledger", conditions, params, columns=_ASSET_ENTRY_COLUMNS, make=_asset_entry,
            limit=limit, after=after, offset=offset,
        )  # fmt: skip

    async def sum_for_position(self, user_id: str, asset_id: str) -> int:
        where = "FROM asset_ledger WHERE user_id = ? AND asset_id = ?"
        return self._exact_sum("quantity_units", where, (user_id, asset_id))
