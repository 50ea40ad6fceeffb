"""The storage contract for trading: assets, candles, orders, positions and the asset ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from orderproc.common.storage.ports import Store, UnitOfWork
from orderproc.common.storage.records import (
    AssetEntry,
    AssetRecord,
    CandleRecord,
    OrderRecord,
    PositionRecord,
    PriceUpdate,
)
from tests.contract.test_storage import (
    MILLION_CENTS,
    T0,
    at,
    commit,
    counted,
    make_account,
    make_entry,
    refused,
)

MEMECOIN = Decimal("0.000001234567890123")  # 18 decimal places
ONE_UNIT = 1  # 0.00000001 of an asset
MILLION_UNITS = 100_000_000 * 1_000_000  # 1,000,000.00000000 of an asset


def make_asset(asset_id: str = "BTC", **changes: Any) -> AssetRecord:
    asset = AssetRecord(
        asset_id=asset_id,
        name=f"Coin {asset_id}",
        category="layer1",
        is_active=True,
        price=Decimal("43210.12"),
        price_updated_at=T0,
        metadata={"symbol": asset_id, "tags": ["pow", "store-of-value"], "rank": 1},
    )
    return asset.evolve(**changes)


def make_candle(minute: int, asset_id: str = "BTC", **changes: Any) -> CandleRecord:
    candle = CandleRecord(
        asset_id=asset_id,
        interval="1m",
        open_time=at(minutes=minute),
        open=Decimal("100.5"),
        high=Decimal("101"),
        low=Decimal("99.25"),
        close=Decimal("100.75"),
        volume=Decimal("1234567.89"),
    )
    return candle.evolve(**changes)


def make_order(order_id: str = "o1", user_id: str = "u1", **changes: Any) -> OrderRecord:
    order = OrderRecord(
        order_id=order_id,
        user_id=user_id,
        order_type="market_buy",
        asset_id="BTC",
        status="filled",
        quantity_units=150_000_000,
        created_at=T0,
        updated_at=T0,
    )
    return order.evolve(**changes)


def make_position(user_id: str = "u1", asset_id: str = "BTC", **changes: Any) -> PositionRecord:
    position = PositionRecord(
        user_id=user_id,
        asset_id=asset_id,
        quantity_units=0,
        reserved_units=0,
        cost_basis=Decimal("0"),
        realized_pnl=Decimal("0"),
        version=1,
        updated_at=T0,
    )
    return position.evolve(**changes)


def make_asset_entry(entry_id: str, user_id: str = "u1", **changes: Any) -> AssetEntry:
    entry = AssetEntry(
        entry_id=entry_id,
        user_id=user_id,
        asset_id="BTC",
        order_id="o1",
        kind="buy",
        quantity_units=100_000_000,
        price=Decimal("43210.12"),
        total_cents=4_321_012,
        fee_cents=4_322,
        quantity_after_units=100_000_000,
        created_at=T0,
    )
    return entry.evolve(**changes)


class TestAssets:
    async def test_an_asset_round_trips_with_an_eighteen_place_price(self, store: Store) -> None:
        asset = make_asset("PEPE", price=MEMECOIN, is_active=False, version=4)
        await commit(store, lambda uow: uow.assets.add(asset))
        async with store.unit_of_work() as uow:
            stored = await uow.assets.get("PEPE")
        assert stored == asset
        assert stored is not None
        assert str(stored.price) == "0.000001234567890123"

    async def test_a_decimal_in_metadata_comes_back_as_its_exact_text(self, store: Store) -> None:
        asset = make_asset(metadata={"supply": Decimal("21000000.00000001")})
        await commit(store, lambda uow: uow.assets.add(asset))
        async with store.unit_of_work() as uow:
            stored = await uow.assets.get("BTC")
        assert stored is not None
        assert stored.metadata == {"supply": "21000000.00000001"}

    async def test_unknown_assets_are_none(self, store: Store) -> None:
        async with store.unit_of_work() as uow:
            assert await uow.assets.get("NOPE") is None
            assert await uow.assets.list_all() == []

    async def test_lists_every_asset_by_id(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            for asset_id in ("SOL", "BTC", "ETH"):
                uow.assets.add(make_asset(asset_id))

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            listed = await uow.assets.list_all()
        assert [a.asset_id for a in listed] == ["BTC", "ETH", "SOL"]

    async def test_refuses_a_duplicate_id(self, store: Store) -> None:
        await commit(store, lambda uow: uow.assets.add(make_asset()))
        await refused(store, lambda uow: uow.assets.add(make_asset(name="Other")))

    async def test_updates_at_the_expected_version(self, store: Store) -> None:
        await commit(store, lambda uow: uow.assets.add(make_asset()))
        changed = make_asset(name="Bitcoin", is_active=False, metadata={"new": True}, version=2)
        await commit(store, lambda uow: uow.assets.update(changed, expected_version=1))
        async with store.unit_of_work() as uow:
            assert await uow.assets.get("BTC") == changed

    async def test_refuses_an_update_at_a_stale_version(self, store: Store) -> None:
        await commit(store, lambda uow: uow.assets.add(make_asset()))
        stale = make_asset(name="Stale", version=3)
        await refused(store, lambda uow: uow.assets.update(stale, expected_version=2))
        async with store.unit_of_work() as uow:
            assert await uow.assets.get("BTC") == make_asset()

    async def test_a_price_batch_changes_only_prices(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            uow.assets.add(make_asset("BTC"))
            uow.assets.add(make_asset("PEPE"))
            uow.assets.add(make_asset("ETH"))

        await commit(store, stage)
        updates = [
            PriceUpdate("BTC", Decimal("44000.01"), at(seconds=1)),
            PriceUpdate("PEPE", MEMECOIN, at(seconds=2)),
            PriceUpdate("UNKNOWN", Decimal("1"), at(seconds=2)),
        ]
        await commit(store, lambda uow: uow.assets.set_prices(updates))
        async with store.unit_of_work() as uow:
            listed = await uow.assets.list_all()
        assert listed == [
            make_asset("BTC", price=Decimal("44000.01"), price_updated_at=at(seconds=1)),
            make_asset("ETH"),
            make_asset("PEPE", price=MEMECOIN, price_updated_at=at(seconds=2)),
        ]

    async def test_an_empty_price_batch_is_fine(self, store: Store) -> None:
        await commit(store, lambda uow: uow.assets.set_prices([]))

    async def test_a_price_batch_commits_with_the_rest_of_its_unit(self, store: Store) -> None:
        await commit(store, lambda uow: uow.assets.add(make_asset()))

        def stage(uow: UnitOfWork) -> None:
            uow.assets.set_prices([PriceUpdate("BTC", Decimal("1"), at(seconds=1))])
            uow.assets.add(make_asset())

        await refused(store, stage)
        async with store.unit_of_work() as uow:
            assert await uow.assets.get("BTC") == make_asset()


class TestCandles:
    async def test_a_candle_round_trips_exactly(self, store: Store) -> None:
        candle = make_candle(0, open=MEMECOIN, high=Decimal("1000000.00"), low=Decimal("1E-8"))
        await commit(store, lambda uow: uow.candles.upsert([candle]))
        async with store.unit_of_work() as uow:
            assert await uow.candles.list("BTC", "1m", limit=10) == [candle]

    async def test_an_upsert_replaces_the_candle_at_the_same_open_time(self, store: Store) -> None:
        await commit(store, lambda uow: uow.candles.upsert([make_candle(0)]))
        replaced = make_candle(0, high=Decimal("105"), close=Decimal("104.5"))
        await commit(store, lambda uow: uow.candles.upsert([replaced, make_candle(1)]))
        async with store.unit_of_work() as uow:
            assert await uow.candles.list("BTC", "1m", limit=10) == [replaced, make_candle(1)]

    async def test_lists_the_latest_before_end_oldest_first(self, store: Store) -> None:
        candles = [make_candle(minute) for minute in range(6)]
        others = [make_candle(2, asset_id="ETH"), make_candle(2, interval="1h")]
        await commit(store, lambda uow: uow.candles.upsert([*reversed(candles), *others]))
        async with store.unit_of_work() as uow:
            latest = await uow.candles.list("BTC", "1m", limit=3)
            before = await uow.candles.list("BTC", "1m", limit=3, end=at(minutes=4))
            everything = await uow.candles.list("BTC", "1m", limit=100)
            none = await uow.candles.list("BTC", "1m", limit=0)
        assert latest == candles[3:]
        assert before == candles[1:4]
        assert everything == candles
        assert none == []

    async def test_lists_a_range_from_its_start_or_its_end(self, store: Store) -> None:
        candles = [make_candle(minute) for minute in range(8)]
        await commit(store, lambda uow: uow.candles.upsert([*candles, make_candle(3, "ETH")]))
        async with store.unit_of_work() as uow:
            start, end = at(minutes=2), at(minutes=7)
            earliest = await uow.candles.list(
                "BTC", "1m", limit=3, start=start, end=end, earliest=True
            )
            latest = await uow.candles.list("BTC", "1m", limit=3, start=start, end=end)
            short = await uow.candles.list("BTC", "1m", limit=9, start=start, end=end)
        assert earliest == candles[2:5]
        assert latest == candles[4:7]
        assert short == candles[2:7]

    async def test_a_candle_without_a_volume_reads_back_without_one(self, store: Store) -> None:
        await commit(store, lambda uow: uow.candles.upsert([make_candle(0, volume=None)]))
        async with store.unit_of_work() as uow:
            assert await uow.candles.list("BTC", "1m", limit=1) == [make_candle(0, volume=None)]

    async def test_purges_one_interval_before_a_time_and_counts(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            uow.candles.upsert([make_candle(minute) for minute in range(5)])
            uow.candles.upsert([make_candle(0, interval="1h")])

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            assert await uow.candles.purge("1m", before=at(minutes=3)) == 3
            assert await uow.candles.purge("1m", before=at(minutes=3)) == 0
            assert await uow.candles.list("BTC", "1m", limit=10) == [
                make_candle(3),
                make_candle(4),
            ]
            assert await uow.candles.list("BTC", "1h", limit=10) == [make_candle(0, interval="1h")]


class TestOrders:
    async def test_an_order_round_trips_every_field(self, store: Store) -> None:
        order = make_order(
            order_type="limit_buy",
            status="open",
            quantity_units=ONE_UNIT,
            updated_at=at(seconds=1),
            client_order_id="client-1",
            fingerprint="f" * 64,
            price=MEMECOIN,
            limit_price=Decimal("1000000.00"),
            stop_price=Decimal("0.00000001"),
            notional_cents=MILLION_CENTS,
            total_cents=MILLION_CENTS,
            fee_cents=1,
            reserved_cents=MILLION_CENTS,
            reserved_units=MILLION_UNITS,
            time_in_force="gtd",
            expires_at=at(days=1),
            filled_at=at(seconds=2),
            version=3,
        )
        await commit(store, lambda uow: uow.orders.add(order))
        async with store.unit_of_work() as uow:
            assert await uow.orders.get("o1") == order
            assert await uow.orders.get_by_client_id("u1", "client-1") == order

    async def test_optional_fields_round_trip_as_none(self, store: Store) -> None:
        await commit(store, lambda uow: uow.orders.add(make_order()))
        async with store.unit_of_work() as uow:
            assert await uow.orders.get("o1") == make_order()

    async def test_unknown_orders_are_none(self, store: Store) -> None:
        await commit(store, lambda uow: uow.orders.add(make_order(client_order_id="c1")))
        async with store.unit_of_work() as uow:
            assert await uow.orders.get("nope") is None
            assert await uow.orders.get_by_client_id("u2", "c1") is None

    async def test_refuses_a_duplicate_id(self, store: Store) -> None:
        await commit(store, lambda uow: uow.orders.add(make_order()))
        await refused(store, lambda uow: uow.orders.add(make_order(user_id="u2")))

    async def test_refuses_a_users_client_order_id_twice_and_writes_nothing_else(
        self, store: Store
    ) -> None:
        await commit(store, lambda uow: uow.orders.add(make_order("o1", client_order_id="c1")))

        def stage(uow: UnitOfWork) -> None:
            uow.accounts.add(make_account(balance_cents=100))
            uow.asset_ledger.add(make_asset_entry("a1", order_id="o2"))
            uow.orders.add(make_order("o2", client_order_id="c1"))

        await refused(store, stage)
        async with store.unit_of_work() as uow:
            assert await uow.orders.get("o2") is None
            assert await uow.accounts.get("u1") is None
            assert await uow.asset_ledger.sum_for_position("u1", "BTC") == 0
            assert await uow.orders.get_by_client_id("u1", "c1") == make_order(
                "o1", client_order_id="c1"
            )

    async def test_different_users_may_share_a_client_order_id(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            uow.orders.add(make_order("o1", "u1", client_order_id="c1"))
            uow.orders.add(make_order("o2", "u2", client_order_id="c1"))
            uow.orders.add(make_order("o3", "u1"))
            uow.orders.add(make_order("o4", "u1"))

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            found = await uow.orders.get_by_client_id("u2", "c1")
        assert found is not None
        assert found.order_id == "o2"

    async def test_updates_at_the_expected_version(self, store: Store) -> None:
        await commit(store, lambda uow: uow.orders.add(make_order(status="open")))
        filled = make_order(status="filled", price=MEMECOIN, filled_at=at(seconds=5), version=2)
        await commit(store, lambda uow: uow.orders.update(filled, expected_version=1))
        async with store.unit_of_work() as uow:
            assert await uow.orders.get("o1") == filled

    async def test_a_version_conflict_writes_nothing_of_the_unit(self, store: Store) -> None:
        await commit(store, lambda uow: uow.orders.add(make_order(status="open", version=2)))

        def stage(uow: UnitOfWork) -> None:
            uow.positions.add(make_position(quantity_units=5))
            uow.cash_ledger.add(make_entry("e1"))
            uow.orders.update(make_order(status="cancelled", version=2), expected_version=1)

        await refused(store, stage)
        async with store.unit_of_work() as uow:
            assert await uow.orders.get("o1") == make_order(status="open", version=2)
            assert await uow.positions.get("u1", "BTC") is None
            assert await uow.cash_ledger.sum_for_user("u1") == 0

    async def test_refuses_an_update_of_a_missing_order(self, store: Store) -> None:
        await refused(
            store, lambda uow: uow.orders.update(make_order(version=2), expected_version=1)
        )

    async def test_refuses_an_update_to_a_taken_client_order_id(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            uow.orders.add(make_order("o1", client_order_id="c1"))
            uow.orders.add(make_order("o2", client_order_id="c2"))

        await commit(store, stage)
        taken = make_order("o2", client_order_id="c1", version=2)
        await refused(store, lambda uow: uow.orders.update(taken, expected_version=1))

    async def test_lists_newest_first_with_filters_and_paging(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            uow.orders.add(make_order("o0", created_at=at(minutes=0)))
            uow.orders.add(make_order("o1", created_at=at(minutes=1), status="open"))
            uow.orders.add(make_order("o2", created_at=at(minutes=2), asset_id="ETH"))
            uow.orders.add(make_order("o3", created_at=at(minutes=3), order_type="limit_sell"))
            uow.orders.add(make_order("o4", created_at=at(minutes=4), client_order_id="c4"))
            uow.orders.add(make_order("x", "u2", created_at=at(minutes=5)))

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            first = await uow.orders.list_for_user("u1", limit=2)
            last = await uow.orders.list_for_user("u1", limit=2, offset=4)
            by_status = await uow.orders.list_for_user("u1", status="open")
            by_asset = await uow.orders.list_for_user("u1", asset_id="ETH")
            by_type = await uow.orders.list_for_user("u1", order_type="limit_sell")
            by_client_id = await uow.orders.list_for_user("u1", client_order_id="c4")
            by_time = await uow.orders.list_for_user("u1", start=at(minutes=1), end=at(minutes=3))
            combined = await uow.orders.list_for_user("u1", status="filled", asset_id="BTC")
        assert [o.order_id for o in first.items] == ["o4", "o3"]
        assert (first.total_count, first.next_key is None) == (counted(store, 5), False)
        assert [o.order_id for o in last.items] == ["o0"]
        assert last.next_key is None
        assert [o.order_id for o in by_status.items] == ["o1"]
        assert [o.order_id for o in by_asset.items] == ["o2"]
        assert [o.order_id for o in by_type.items] == ["o3"]
        assert [o.order_id for o in by_client_id.items] == ["o4"]
        assert [o.order_id for o in by_time.items] == ["o2", "o1"]
        assert [o.order_id for o in combined.items] == ["o4", "o3", "o0"]
        assert combined.total_count == counted(store, 3)

    async def test_lists_later_inserts_first_on_equal_times(self, store: Store) -> None:
        for order_id in ("a", "b", "c"):
            await commit(store, lambda uow, order_id=order_id: uow.orders.add(make_order(order_id)))
        async with store.unit_of_work() as uow:
            page = await uow.orders.list_for_user("u1")
        assert [o.order_id for o in page.items] == ["c", "b", "a"]

    async def test_lists_open_orders_oldest_first(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            uow.orders.add(make_order("late", status="open", created_at=at(minutes=2)))
            uow.orders.add(make_order("early", status="open", created_at=at(minutes=1)))
            uow.orders.add(make_order("tie", "u2", status="open", created_at=at(minutes=2)))
            uow.orders.add(make_order("eth", status="open", asset_id="ETH"))
            uow.orders.add(make_order("done", status="filled"))

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            every = await uow.orders.list_open()
            btc = await uow.orders.list_open(asset_id="BTC")
        assert [o.order_id for o in every] == ["eth", "early", "late", "tie"]
        assert [o.order_id for o in btc] == ["early", "late", "tie"]

    async def test_a_filled_order_leaves_the_open_list(self, store: Store) -> None:
        await commit(store, lambda uow: uow.orders.add(make_order(status="open")))
        filled = make_order(status="filled", version=2)
        await commit(store, lambda uow: uow.orders.update(filled, expected_version=1))
        async with store.unit_of_work() as uow:
            assert await uow.orders.list_open() == []


class TestPositions:
    @pytest.mark.parametrize("units", [MILLION_UNITS, ONE_UNIT, 0])
    async def test_a_position_round_trips_exactly(self, store: Store, units: int) -> None:
        position = make_position(
            quantity_units=units,
            reserved_units=units,
            cost_basis=Decimal("1000000.00"),
            realized_pnl=Decimal("-0.000001234567890123"),
            version=7,
        )
        await commit(store, lambda uow: uow.positions.add(position))
        async with store.unit_of_work() as uow:
            assert await uow.positions.get("u1", "BTC") == position

    async def test_lists_a_users_positions_by_asset_zero_ones_included(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            uow.positions.add(make_position(asset_id="SOL", quantity_units=5))
            uow.positions.add(make_position(asset_id="BTC"))
            uow.positions.add(make_position(asset_id="ETH", quantity_units=1))
            uow.positions.add(make_position("u2", "ADA"))

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            listed = await uow.positions.list_for_user("u1")
            assert await uow.positions.get("u1", "ADA") is None
        assert [p.asset_id for p in listed] == ["BTC", "ETH", "SOL"]

    async def test_refuses_a_second_position_for_the_same_asset(self, store: Store) -> None:
        await commit(store, lambda uow: uow.positions.add(make_position()))
        await refused(store, lambda uow: uow.positions.add(make_position(quantity_units=1)))

    async def test_updates_at_the_expected_version(self, store: Store) -> None:
        await commit(store, lambda uow: uow.positions.add(make_position()))
        bought = make_position(
            quantity_units=MILLION_UNITS, cost_basis=MEMECOIN, version=2, updated_at=at(days=1)
        )
        await commit(store, lambda uow: uow.positions.update(bought, expected_version=1))
        async with store.unit_of_work() as uow:
            assert await uow.positions.get("u1", "BTC") == bought

    async def test_refuses_an_update_at_a_stale_version(self, store: Store) -> None:
        await commit(store, lambda uow: uow.positions.add(make_position(version=2)))
        stale = make_position(quantity_units=1, version=3)
        await refused(store, lambda uow: uow.positions.update(stale, expected_version=1))

    async def test_refuses_a_negative_available_amount(self, store: Store) -> None:
        await commit(store, lambda uow: uow.positions.add(make_position(quantity_units=100)))
        oversold = make_position(quantity_units=100, reserved_units=101, version=2)
        await refused(store, lambda uow: uow.positions.update(oversold, expected_version=1))
        async with store.unit_of_work() as uow:
            assert await uow.positions.get("u1", "BTC") == make_position(quantity_units=100)

    async def test_refuses_a_negative_quantity(self, store: Store) -> None:
        await commit(store, lambda uow: uow.positions.add(make_position(quantity_units=1)))
        negative = make_position(quantity_units=-1, reserved_units=-2, version=2)
        await refused(store, lambda uow: uow.positions.update(negative, expected_version=1))

    async def test_refuses_adding_an_unsound_position(self, store: Store) -> None:
        await refused(
            store, lambda uow: uow.positions.add(make_position(quantity_units=1, reserved_units=2))
        )


class TestAssetLedger:
    async def test_an_entry_round_trips_exactly(self, store: Store) -> None:
        entry = make_asset_entry(
            "a1",
            kind="sell",
            quantity_units=-ONE_UNIT,
            price=MEMECOIN,
            total_cents=MILLION_CENTS,
            quantity_after_units=MILLION_UNITS,
        )
        await commit(store, lambda uow: uow.asset_ledger.add(entry))
        async with store.unit_of_work() as uow:
            assert (await uow.asset_ledger.list_for_user("u1")).items == [entry]

    async def test_refuses_a_duplicate_entry_id(self, store: Store) -> None:
        await commit(store, lambda uow: uow.asset_ledger.add(make_asset_entry("a1")))
        await refused(store, lambda uow: uow.asset_ledger.add(make_asset_entry("a1")))

    async def test_lists_newest_first_with_an_asset_filter_and_paging(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            for n in range(4):
                uow.asset_ledger.add(make_asset_entry(f"b{n}", created_at=at(seconds=n)))
            uow.asset_ledger.add(make_asset_entry("eth", asset_id="ETH", created_at=at(hours=1)))
            uow.asset_ledger.add(make_asset_entry("tie", created_at=at(seconds=3)))
            uow.asset_ledger.add(make_asset_entry("other", "u2", created_at=at(hours=2)))

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            everything = await uow.asset_ledger.list_for_user("u1")
            first = await uow.asset_ledger.list_for_user("u1", asset_id="BTC", limit=2)
            last = await uow.asset_ledger.list_for_user("u1", asset_id="BTC", limit=2, offset=4)
        assert [e.entry_id for e in everything.items] == ["eth", "tie", "b3", "b2", "b1", "b0"]
        assert (everything.total_count, everything.next_key) == (counted(store, 6), None)
        assert [e.entry_id for e in first.items] == ["tie", "b3"]
        assert (first.total_count, first.next_key is None) == (counted(store, 5), False)
        assert [e.entry_id for e in last.items] == ["b0"]
        assert last.next_key is None

    async def test_sums_a_positions_signed_quantities(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            uow.asset_ledger.add(make_asset_entry("buy", quantity_units=MILLION_UNITS))
            uow.asset_ledger.add(make_asset_entry("dust", quantity_units=ONE_UNIT))
            uow.asset_ledger.add(make_asset_entry("sell", kind="sell", quantity_units=-250))
            uow.asset_ledger.add(make_asset_entry("eth", asset_id="ETH", quantity_units=7))
            uow.asset_ledger.add(make_asset_entry("other", "u2", quantity_units=9))

        await commit(store, stage)
        async with store.unit_of_work() as uow:
            assert await uow.asset_ledger.sum_for_position("u1", "BTC") == MILLION_UNITS + 1 - 250
            assert await uow.asset_ledger.sum_for_position("u1", "ETH") == 7
            assert await uow.asset_ledger.sum_for_position("u1", "SOL") == 0


def _buy(uow: UnitOfWork, *, position_version: int) -> None:
    """A filled buy of 1.5 BTC for 100.00 + a 1.00 fee, as the orders service will stage it."""
    uow.accounts.update(make_account(balance_cents=9_900, version=2), expected_version=1)
    uow.cash_ledger.add(make_entry("c1", kind="order_payment", amount_cents=-10_100))
    uow.positions.update(
        make_position(quantity_units=150_000_000, cost_basis=Decimal("101.00"), version=2),
        expected_version=position_version,
    )
    uow.asset_ledger.add(make_asset_entry("a1", quantity_units=150_000_000))
    uow.orders.add(make_order("o1", client_order_id="c1", total_cents=10_000, fee_cents=100))


class TestTradingUnitOfWork:
    async def _funded(self, store: Store) -> None:
        def stage(uow: UnitOfWork) -> None:
            uow.accounts.add(make_account(balance_cents=20_000))
            uow.positions.add(make_position())

        await commit(store, stage)

    async def test_an_order_moving_cash_and_asset_commits_all(self, store: Store) -> None:
        await self._funded(store)
        await commit(store, lambda uow: _buy(uow, position_version=1))
        async with store.unit_of_work() as uow:
            assert await uow.accounts.get("u1") == make_account(balance_cents=9_900, version=2)
            assert await uow.cash_ledger.sum_for_user("u1") == -10_100
            position = await uow.positions.get("u1", "BTC")
            assert await uow.asset_ledger.sum_for_position("u1", "BTC") == 150_000_000
            assert await uow.orders.get_by_client_id("u1", "c1") is not None
        assert position is not None
        assert position.cost_basis == Decimal("101.00")

    async def test_an_order_with_one_failed_condition_writes_nothing(self, store: Store) -> None:
        await self._funded(store)
        await refused(store, lambda uow: _buy(uow, position_version=9))
        async with store.unit_of_work() as uow:
            assert await uow.accounts.get("u1") == make_account(balance_cents=20_000)
            assert (await uow.cash_ledger.list_for_user("u1")).items == []
            assert await uow.positions.get("u1", "BTC") == make_position()
            assert (await uow.asset_ledger.list_for_user("u1")).items == []
            assert await uow.orders.get("o1") is None
