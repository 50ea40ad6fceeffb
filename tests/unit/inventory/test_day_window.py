"""The 24 h figures of a moving price (inventory/day_window.py, through `Catalog`), against a
brute force over every price the asset had."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from orderproc.common.prices import PriceCache
from orderproc.inventory.day_window import SPAN, DayWindow, Hour, hour_of
from orderproc.inventory.domain import Asset, load_snapshot
from orderproc.inventory.service import Catalog

START = datetime(2026, 3, 1, 10, 20, tzinfo=UTC)
ETH = next(asset for asset in load_snapshot() if asset.asset_id == "ETH")
PRICES = st.integers(min_value=1, max_value=10_000).map(lambda n: Decimal(n) / 4)
GAPS = st.integers(min_value=1, max_value=4 * 3600).map(lambda s: timedelta(seconds=s))


def expected(
    seen: list[tuple[datetime, Decimal]], now: datetime, seed: Asset
) -> tuple[Decimal, Decimal, Decimal]:
    """The 24 h high, low and price 24 h ago after the prices `seen` (oldest first; the first
    is the price the catalog was loaded with), by brute force: every price from the hour 24
    hours before the current one on; in the hour of the load, the stored figures too."""
    hour = hour_of(now)
    prices = [price for moment, price in seen if hour_of(moment) >= hour - SPAN]
    if hour == hour_of(seen[0][0]):  # the stored figures stand for the day before
        assert seed.price_change_24h is not None
        assert seed.high_24h is not None
        assert seed.low_24h is not None
        before = seed.price_usd - seed.price_change_24h
        return (
            max(*prices, seed.high_24h, before),
            min(*prices, seed.low_24h, before),
            before,
        )
    # The window's first hour opens at its first price.
    return max(prices), min(prices), prices[0]


class TestTheWindow:
    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(GAPS, PRICES), min_size=1, max_size=120))
    def test_its_figures_are_those_of_every_price_since_the_hour_a_day_before(
        self, moves: list[tuple[timedelta, Decimal]]
    ) -> None:
        eth = replace(ETH, last_updated=START)
        catalog = Catalog([eth], PriceCache(), now=START)
        seen, now = [(START, eth.price_usd)], START
        ath, atl = eth.ath, eth.atl
        assert ath is not None
        assert atl is not None
        for gap, price in moves:
            now += gap
            [moved] = catalog.apply_prices({"ETH": price}, now)
            seen.append((now, price))
            high, low, before = expected(seen, now, eth)
            assert (moved.high_24h, moved.low_24h) == (high, low)
            assert moved.price_change_24h == price - before
            ath, atl = max(ath, price), min(atl, price)
            assert (moved.ath, moved.atl) == (ath, atl)
            if price == ath and price != eth.ath:
                assert moved.ath_date is not None
                assert moved.ath_date <= now

    def test_an_hour_an_asset_does_not_move_in_is_not_in_its_window(self) -> None:
        eth = replace(ETH, last_updated=START)
        btc = next(asset for asset in load_snapshot() if asset.asset_id == "BTC")
        catalog = Catalog([eth, replace(btc, last_updated=START)], PriceCache(), now=START)
        catalog.apply_prices({"ETH": Decimal(100), "BTC": Decimal(7)}, START)
        later = START + timedelta(hours=1)
        catalog.apply_prices({"ETH": Decimal(90)}, later)  # BTC's feed did not answer
        [btc_moved] = catalog.apply_prices({"BTC": Decimal(8)}, later + timedelta(minutes=70))
        assert btc_moved.low_24h == 7  # the hour of 7 is in the window, that of 8 begins
        # A day on, BTC's first hour has left, and its window begins with the hour of 8.
        [btc_moved] = catalog.apply_prices({"BTC": Decimal(9)}, later + timedelta(hours=25))
        assert (btc_moved.low_24h, btc_moved.high_24h) == (Decimal(8), Decimal(9))
        assert btc_moved.price_change_24h == Decimal(1)
        [eth_moved] = catalog.apply_prices({"ETH": Decimal(95)}, later + timedelta(hours=25))
        assert (eth_moved.low_24h, eth_moved.high_24h) == (Decimal(95), Decimal(95))  # alone
        assert eth_moved.price_change_24h == 0

    def test_a_large_catalog_settles_from_the_move_after_the_hours_first(self) -> None:
        bare = replace(ETH, high_24h=None, low_24h=None, price_change_24h=None)
        assets = [replace(bare, asset_id=f"A{n:03d}", last_updated=START) for n in range(250)]
        catalog = Catalog(assets, PriceCache(), now=START)
        catalog.apply_prices(dict.fromkeys(catalog.by_id, Decimal(10)), START)
        later = START + timedelta(hours=25)  # the hour of 10 leaves the window at its close
        changes = []
        for second in range(4):
            moved = catalog.apply_prices(
                dict.fromkeys(catalog.by_id, Decimal(20)), later + timedelta(seconds=second)
            )
            changes.append(sum(asset.price_change_24h == 0 for asset in moved))
        # A window not settled yet still counts the hour of 10, until a move settles it: none
        # in the move that opens the hour (250 assets), then a hundred a move.
        assert changes == [0, 100, 200, 250]
        assert all((a.low_24h, a.high_24h) == (20, 20) for a in catalog.assets())

    def test_an_asset_without_an_all_time_high_or_low_gets_them_from_its_prices(self) -> None:
        new = replace(
            ETH, price_usd=Decimal(10), last_updated=START, high_24h=None, low_24h=None,
            price_change_24h=None, ath=None, ath_date=None, atl=None, atl_date=None,
        )  # fmt: skip
        catalog = Catalog([new], PriceCache(), now=START)
        assert catalog.by_id["ETH"].ath == catalog.by_id["ETH"].atl == 10  # its only price
        for second, price in enumerate([9, 10, 8, 11], start=1):
            catalog.apply_prices({"ETH": Decimal(price)}, START + timedelta(seconds=second))
        moved = catalog.by_id["ETH"]
        assert (moved.ath, moved.atl) == (11, 8)
        assert (moved.ath_date, moved.atl_date) == (
            START + timedelta(seconds=4),
            START + timedelta(seconds=3),
        )

    def test_an_all_time_high_is_never_below_the_days(self) -> None:
        # TON's snapshot has its price above its own 24 h high; others may have a day's high
        # above the stored all-time high: the catalog takes the all-time high up to it.
        odd = replace(ETH, ath=Decimal(100), last_updated=START)
        assert odd.high_24h is not None
        loaded = Catalog([odd], PriceCache(), now=START).by_id["ETH"]
        assert loaded.ath == max(odd.high_24h, odd.price_usd)
        assert loaded.ath_date == hour_of(START) - SPAN  # in the day before, the hour standing in

    def test_an_asset_added_later_gets_its_all_time_range_too(self) -> None:
        catalog = Catalog([replace(ETH, last_updated=START)], PriceCache(), now=START)
        bare = replace(
            ETH, asset_id="NEWC", price_usd=Decimal(10), last_updated=START, high_24h=None,
            low_24h=None, price_change_24h=None, ath=None, ath_date=None, atl=None, atl_date=None,
        )  # fmt: skip
        catalog.put(bare)
        added = catalog.by_id["NEWC"]
        assert (added.ath, added.atl, added.ath_date) == (10, 10, START)

    def test_ticks_an_hour_apart_settle_what_the_last_hour_left(self) -> None:
        bare = replace(ETH, high_24h=None, low_24h=None, price_change_24h=None)
        assets = [replace(bare, asset_id=f"A{n:03d}", last_updated=START) for n in range(250)]
        catalog = Catalog(assets, PriceCache(), now=START)
        catalog.apply_prices(dict.fromkeys(catalog.by_id, Decimal(10)), START)
        for hours, price in ((25, 20), (50, 30)):  # each tick opens an hour, a day apart
            moved = catalog.apply_prices(
                dict.fromkeys(catalog.by_id, Decimal(price)), START + timedelta(hours=hours)
            )
        # The second opening found the first's windows waiting, so it settled them and its
        # own at once: the hours of 10 and of 20 have both left every window.
        assert {(a.low_24h, a.high_24h, a.price_change_24h) for a in moved} == {(30, 30, 0)}


class TestAWindowFromCandles:
    def test_the_stored_hours_win_and_the_current_hours_ticks_stay(self) -> None:
        start = hour_of(START)
        window = DayWindow.seeded(
            start, Decimal(10), before=Decimal(8), high=Decimal(12), low=Decimal(7)
        )
        assert (window.base, window.day_high, window.day_low) == (8, 12, 7)
        window.high = Decimal(11)  # a tick this hour
        read = [
            Hour(start - SPAN - timedelta(hours=1), Decimal(1), Decimal(99), Decimal(1)),  # out
            Hour(start - SPAN, Decimal(9), Decimal("9.5"), Decimal("8.5")),
            Hour(start - timedelta(hours=3), Decimal("9.5"), Decimal("10.5"), Decimal(9)),
        ]
        loaded = window.with_hours(read)
        assert [h.start for h in loaded.hours] == [start - SPAN, start - timedelta(hours=3)]
        assert (loaded.base, loaded.day_high, loaded.day_low) == (9, 11, Decimal("8.5"))
        loaded.current(Hour(start, Decimal("9.75"), Decimal("10.25"), Decimal(6)))
        assert (loaded.open, loaded.high, loaded.low) == (Decimal("9.75"), 11, 6)
        assert loaded.day_low == 6

    def test_a_stored_hour_merges_with_the_ticks_held_but_replaces_the_stand_in(self) -> None:
        start = hour_of(START)
        window = DayWindow.seeded(
            start, Decimal(10), before=Decimal(8), high=Decimal(50), low=Decimal(7)
        )
        window.turn(start + timedelta(hours=1), Decimal(10))
        window.high, window.low = Decimal(13), Decimal(10)  # that hour's ticks
        window.settle()
        window.turn(start + timedelta(hours=2), Decimal(12))
        window.high = window.low = Decimal(12)
        window.settle()  # the stand-in (start - 24 h) has left; the hour of `start + 1 h` is in
        assert window.day_high == 13
        # The store's row of that hour lags its last ticks (the 13), and has one they missed.
        late = Hour(start + timedelta(hours=1), Decimal(10), Decimal(11), Decimal("9.5"))
        merged = window.with_hours([late])
        hour = next(h for h in merged.hours if h.start == late.start)
        assert (hour.high, hour.low) == (Decimal(13), Decimal("9.5"))
        assert merged.day_high == 13
        fresh = DayWindow.seeded(start, Decimal(10), before=Decimal(8), high=Decimal(50), low=None)
        stored = Hour(start - SPAN, Decimal(9), Decimal(11), Decimal(9))
        assert fresh.with_hours([stored]).day_high == 11  # the stand-in's 50 gave way

    def test_a_turn_counts_the_old_hours_until_it_settles(self) -> None:
        start = hour_of(START)
        window = DayWindow(start, Decimal(5))
        window.turn(start + timedelta(hours=1), Decimal(6))
        window.high = window.low = Decimal(6)  # the move of 6
        assert (window.base, window.day_high, window.day_low) == (5, 5, 5)  # not settled
        window.settle()
        assert (window.base, window.day_high, window.day_low) == (5, 6, 5)
        assert window.hours == [Hour(start, Decimal(5), Decimal(5), Decimal(5))]
        window.turn(start + timedelta(hours=30), Decimal(4))
        window.high = window.low = Decimal(4)
        assert window.hours == []  # reading them settles the window: a day without ticks
        assert (window.base, window.day_high, window.day_low) == (4, 4, 4)
