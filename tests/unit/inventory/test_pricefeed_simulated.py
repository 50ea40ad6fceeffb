from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderproc.inventory.domain import load_snapshot
from orderproc.inventory.pricefeed import SimulatedAsset, SimulatedFeed, on_grid, round_price

START = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def ticks(count: int, step: timedelta = timedelta(seconds=1)) -> list[datetime]:
    return [START + step * index for index in range(count)]


class TestDeterminism:
    async def test_the_same_seed_and_ticks_give_exactly_the_same_prices(self) -> None:
        first = SimulatedFeed.from_assets(load_snapshot(), seed=42)
        second = SimulatedFeed.from_assets(load_snapshot(), seed=42)
        for moment in ticks(50):
            assert await first.next_prices(moment) == await second.next_prices(moment)

    async def test_another_seed_gives_other_prices(self) -> None:
        first = SimulatedFeed.from_assets(load_snapshot(), seed=1)
        second = SimulatedFeed.from_assets(load_snapshot(), seed=2)
        assert await first.next_prices(START) != await second.next_prices(START)

    async def test_does_not_depend_on_the_order_assets_are_given_in(self) -> None:
        assets = load_snapshot()
        forward = SimulatedFeed.from_assets(assets, seed=7)
        backward = SimulatedFeed.from_assets(reversed(assets), seed=7)
        assert await forward.next_prices(START) == await backward.next_prices(START)

    async def test_moves_every_price_within_a_tick(self) -> None:
        feed = SimulatedFeed.from_assets(load_snapshot(), seed=3)
        before = await feed.next_prices(START)
        after = await feed.next_prices(START + timedelta(seconds=1))
        assert before["BTC"] != after["BTC"]
        assert after.keys() == {asset.asset_id for asset in load_snapshot()}


class TestStablecoins:
    async def test_stay_within_half_a_percent_of_one(self) -> None:
        specs = [
            SimulatedAsset("USDT", Decimal(1), 0.0, stable=True),
            SimulatedAsset("TUSD", Decimal("0.977646"), 0.0, stable=True),
        ]
        feed = SimulatedFeed(specs, seed=11)
        seen: list[Decimal] = []
        for moment in ticks(10_000):
            prices = await feed.next_prices(moment)
            seen.extend(prices.values())
        assert all(Decimal("0.995") <= price <= Decimal("1.005") for price in seen)
        assert len(set(seen)) > 1000

    async def test_revert_towards_the_peg_over_hours(self) -> None:
        feed = SimulatedFeed([SimulatedAsset("TUSD", Decimal("0.995"), 0.0, stable=True)], seed=5)
        prices = [await feed.next_prices(moment) for moment in ticks(12, timedelta(hours=1))]
        assert abs(prices[-1]["TUSD"] - 1) < Decimal("0.004")


class TestMemecoins:
    async def test_keep_exact_small_prices_positive_over_ten_thousand_ticks(self) -> None:
        memecoins = [a for a in load_snapshot() if a.asset_id in {"SHIB", "SATS", "BONK", "BTT"}]
        feed = SimulatedFeed.from_assets(memecoins, seed=99)
        previous: dict[str, Decimal] = {}
        moved = 0
        for moment in ticks(10_000):
            prices = await feed.next_prices(moment)
            for asset_id, price in prices.items():
                assert price > 0
                exponent = price.as_tuple().exponent
                assert isinstance(exponent, int)
                assert -exponent <= 18
                assert price.adjusted() - exponent + 1 >= 8, "at least 8 significant digits"
                if asset_id in previous:
                    assert abs(price / previous[asset_id] - 1) < Decimal("0.01"), "smooth"
                    moved += price != previous[asset_id]
            previous = prices
        assert moved > 0.99 * 4 * 9_999


class TestTicks:
    async def test_a_tick_back_in_time_leaves_prices_where_they_were(self) -> None:
        feed = SimulatedFeed([SimulatedAsset("BTC", Decimal(50000), 0.55)], seed=1)
        now = await feed.next_prices(START)
        earlier = await feed.next_prices(START - timedelta(seconds=5))
        assert earlier == now

    async def test_tracks_assets_added_later_and_forgets_removed_ones(self) -> None:
        feed = SimulatedFeed([SimulatedAsset("BTC", Decimal(50000), 0.55)], seed=1)
        feed.track(SimulatedAsset("NEW", Decimal("0.5"), 1.0))
        assert set(await feed.next_prices(START)) == {"BTC", "NEW"}
        feed.untrack("BTC")
        assert set(await feed.next_prices(START + timedelta(seconds=1))) == {"NEW"}


class TestFollowingTheCatalog:
    async def test_an_asset_deactivated_stops_and_reactivated_walks_on_from_its_price(
        self,
    ) -> None:
        btc = next(a for a in load_snapshot() if a.asset_id == "BTC")
        feed = SimulatedFeed.from_assets([btc], seed=1)
        last = (await feed.next_prices(START))["BTC"]
        feed.follow(replace(btc, is_active=False))
        assert await feed.next_prices(START + timedelta(seconds=1)) == {}
        feed.follow(replace(btc, price_usd=last))
        moved = await feed.next_prices(START + timedelta(seconds=2))
        assert set(moved) == {"BTC"}
        assert abs(moved["BTC"] - last) / last < Decimal("0.01")  # one second's step from it

    async def test_a_new_asset_is_priced_from_the_next_tick(self) -> None:
        btc = next(a for a in load_snapshot() if a.asset_id == "BTC")
        feed = SimulatedFeed.from_assets([btc], seed=1)
        feed.follow(replace(btc, asset_id="NEWC", price_usd=Decimal("2.5")))
        assert set(await feed.next_prices(START)) == {"BTC", "NEWC"}


class TestRoundPrice:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (Decimal("51618.0255138123456"), Decimal("51618.0255138")),
            (Decimal("0.000000517785123456789"), Decimal("0.000000517785123457")),
            (Decimal("1E-30"), Decimal("1E-18")),
            (Decimal(0), Decimal("1E-18")),
            (Decimal(-3), Decimal("1E-18")),
        ],
    )
    def test_keeps_twelve_digits_within_eighteen_places_and_stays_positive(
        self, value: Decimal, expected: Decimal
    ) -> None:
        assert round_price(value) == expected


def exponent(value: Decimal) -> int:
    places = value.as_tuple().exponent
    assert isinstance(places, int)
    return places


class TestOnGrid:
    """The simulator's float prices rounded to the grid: the same grid as `round_price`."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (51618.0255138123456, Decimal("51618.0255138")),
            (0.000000517785123456789, Decimal("0.000000517785123457")),
            (9.99999999999996, Decimal("10.0000000000")),  # the carry keeps 12 digits
            (1234567890123456.7, Decimal("1234567890123457")),  # whole units at least
            (1e-30, Decimal("1E-18")),
            (0.0, Decimal("1E-18")),
            (-3.0, Decimal("1E-18")),
            (float("nan"), Decimal("1E-18")),
        ],
    )
    def test_keeps_twelve_digits_within_eighteen_places_and_stays_positive(
        self, value: float, expected: Decimal
    ) -> None:
        price = on_grid(value)
        assert price == expected
        assert exponent(price) == exponent(expected)

    @given(st.floats(min_value=1e-12, max_value=1e11))
    def test_is_round_price_of_the_float_but_for_a_last_digit_tie(self, value: float) -> None:
        exact = round_price(Decimal(value))
        price = on_grid(value)
        assert len(price.as_tuple().digits) <= 12
        assert -18 <= exponent(price) <= 0
        # The float product can land on the other side of a half: one step at most.
        step = Decimal(1).scaleb(exponent(exact))
        assert abs(price - exact) <= step
