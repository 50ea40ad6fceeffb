"""The backfilled history of a fresh install: deterministic per seed, in agreement with the
snapshot (the 24 h high and low, the all-time bounds, the 24 h volume), as deep as asked,
continued by the live ticks, written once; and CoinGecko's, from `market_chart` fixtures."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal

import httpx
import pytest

from orderproc.common.clock import FixedClock
from orderproc.common.prices import PriceCache
from orderproc.common.storage.memory import MemoryStore
from orderproc.common.storage.records import CandleRecord
from orderproc.common.storage.sqlite import SqliteStore
from orderproc.inventory.backfill import anchor_of, current_candles, history, last_day
from orderproc.inventory.candles import Interval, bucket_start
from orderproc.inventory.domain import Asset, load_snapshot
from orderproc.inventory.history import (
    WRITE_ROWS,
    ChartBackfill,
    History,
    SimulatedBackfill,
    chart_candles,
    lacking_history,
)
from orderproc.inventory.pricefeed import CoinGeckoFeed, FeedError, RetryPolicy, SimulatedFeed
from orderproc.inventory.service import (
    CandleQuery,
    PriceTicker,
    Retention,
    list_candles,
    load_catalog,
    seed_catalog,
)

NOW = datetime(2026, 3, 4, 15, 37, 12, 345678, tzinfo=UTC)
KEEP = {
    Interval.MINUTE: timedelta(hours=48),
    Interval.HOUR: timedelta(days=90),
    Interval.DAY: timedelta(days=3650),
}
SNAPSHOT = {asset.asset_id: asset for asset in load_snapshot()}
# A large cap, a stablecoin, a price of 7 decimal places, and TON, whose snapshot price is above
# its own high_24h.
SAMPLE = ("BTC", "USDT", "SHIB", "TON")
FIXTURES = Path(__file__).parent / "fixtures"


def every(candles: dict[Interval, list[CandleRecord]]) -> list[CandleRecord]:
    return [candle for interval in candles.values() for candle in interval]


def digest(candles: Iterable[CandleRecord]) -> str:
    """Every field of every candle as the SQL stores keep it: a Decimal's text, so its digits
    and its exponent."""
    text = hashlib.sha256()
    for c in candles:
        fields = (c.asset_id, c.interval, c.open_time.isoformat(), c.open, c.high, c.low, c.close)
        text.update(f"{' '.join(map(str, fields))} {c.volume}\n".encode())
    return text.hexdigest()[:32]


# What the generator made of SAMPLE at seed 7 before it was made cheaper (commit 6040e4b): a
# change that moves one digit of one candle, or a Decimal's exponent, changes these.
PINNED = {
    "BTC": "b7c86c0d9c79b9624c4c327c110288ea",
    "USDT": "2a0bb35d2b9342ea1236d3e7ed35a33b",
    "SHIB": "3ec28881529fc81111314b76fa63f446",
    "TON": "46df002fa0fadddda8f8ef026ae8a793",
}


class TestSimulatedHistory:
    def test_the_same_seed_makes_the_same_history_and_another_seed_another(self) -> None:
        anchor = anchor_of(SNAPSHOT["ETH"])
        first = history(anchor, seed=7, now=NOW, keep=KEEP)
        assert history(anchor, seed=7, now=NOW, keep=KEEP) == first
        other = history(anchor, seed=8, now=NOW, keep=KEEP)
        assert other[Interval.DAY][0].close != first[Interval.DAY][0].close

    @pytest.mark.parametrize("asset_id", SAMPLE)
    def test_the_candles_are_the_pinned_ones(self, asset_id: str) -> None:
        candles = history(anchor_of(SNAPSHOT[asset_id]), seed=7, now=NOW, keep=KEEP)
        assert len(every(candles)) == 48 * 60 + 1 + 90 * 24 + 1 + 731
        assert digest(every(candles)) == PINNED[asset_id]

    def test_holds_48_hours_of_minutes_90_days_of_hours_and_2_years_of_days(self) -> None:
        candles = history(anchor_of(SNAPSHOT["BTC"]), seed=7, now=NOW, keep=KEEP)
        # Each from the bucket retention keeps through the one holding now.
        assert len(candles[Interval.MINUTE]) == 48 * 60 + 1
        assert len(candles[Interval.HOUR]) == 90 * 24 + 1
        assert len(candles[Interval.DAY]) == 731
        for interval, series in candles.items():
            steps = {b.open_time - a.open_time for a, b in itertools.pairwise(series)}
            assert steps == {interval.length}  # no gap, no repeat
            assert series[-1].open_time == bucket_start(NOW, interval)
        assert candles[Interval.DAY][0].open_time <= NOW - timedelta(days=730)

    @pytest.mark.parametrize("asset_id", SAMPLE)
    def test_agrees_with_the_snapshot(self, asset_id: str) -> None:
        asset = SNAPSHOT[asset_id]
        candles = history(anchor_of(asset), seed=7, now=NOW, keep=KEEP)
        last_day = candles[Interval.MINUTE][-1440:]
        assert max(c.high for c in last_day) == max(asset.high_24h or 0, asset.price_usd)
        assert min(c.low for c in last_day) == asset.low_24h
        assert candles[Interval.MINUTE][-1].close == asset.price_usd
        assert asset.ath is not None
        assert asset.atl is not None
        for candle in every(candles):
            assert candle.low <= min(candle.open, candle.close)
            assert max(candle.open, candle.close) <= candle.high
            assert asset.atl <= candle.low
            assert candle.high <= max(asset.ath, asset.price_usd)
        volume = sum(c.volume or 0 for c in last_day)
        assert asset.total_volume_24h is not None
        assert abs(volume - asset.total_volume_24h) <= Decimal("0.01") * 1440

    def test_every_assets_last_day_meets_its_snapshot(self) -> None:
        for asset in SNAPSHOT.values():
            candles = last_day(anchor_of(asset), seed=3, now=NOW).records()
            assert max(c.high for c in candles) == max(asset.high_24h or 0, asset.price_usd)
            assert min(c.low for c in candles) == min(asset.low_24h or 0, asset.price_usd)
            assert candles[-1].close == asset.price_usd

    def test_coarser_candles_are_the_roll_ups_of_finer_ones(self) -> None:
        candles = history(anchor_of(SNAPSHOT["SOL"]), seed=7, now=NOW, keep=KEEP)
        hour = bucket_start(NOW - timedelta(hours=5), Interval.HOUR)
        minutes = [
            c for c in candles[Interval.MINUTE] if hour <= c.open_time < hour + Interval.HOUR.length
        ]
        (rolled,) = [c for c in candles[Interval.HOUR] if c.open_time == hour]
        assert rolled.open == minutes[0].open
        assert rolled.close == minutes[-1].close
        assert rolled.high == max(c.high for c in minutes)
        assert rolled.low == min(c.low for c in minutes)
        assert rolled.volume == sum(c.volume or 0 for c in minutes)

    @pytest.mark.parametrize("asset_id", SAMPLE)
    def test_the_current_candles_are_the_historys_own(self, asset_id: str) -> None:
        anchor = anchor_of(SNAPSHOT[asset_id])
        candles = history(anchor, seed=7, now=NOW, keep=KEEP)
        assert current_candles(anchor, seed=7, now=NOW) == [
            candles[Interval.MINUTE][-1],
            candles[Interval.HOUR][-1],
            candles[Interval.DAY][-1],
        ]

    def test_an_asset_added_without_market_data_gets_a_history_around_its_price(self) -> None:
        asset = Asset("NEWC", "newc", "New Coin", "other", "", "", Decimal("1.5"), NOW)
        candles = history(anchor_of(asset), seed=7, now=NOW, keep=KEEP)
        assert candles[Interval.MINUTE][-1].close == Decimal("1.5")
        assert all(c.volume == 0 for c in every(candles))
        prices = [p for c in every(candles) for p in (c.open, c.high, c.low, c.close)]
        assert min(int(p.as_tuple().exponent) for p in prices) >= -18  # what the store holds


async def ticker_over(store: MemoryStore, clock: FixedClock) -> PriceTicker:
    catalog = await load_catalog(store, PriceCache())
    feed = SimulatedFeed.from_assets(catalog.assets(), seed=7)
    return PriceTicker(
        feed=feed, catalog=catalog, store=store, clock=clock, interval=2,
        retention=Retention(**{k.name.lower(): v for k, v in KEEP.items()}),
    )  # fmt: skip


async def prepared(*asset_ids: str) -> tuple[MemoryStore, list[Asset], SimulatedBackfill]:
    """A store with these snapshot assets and a backfill of them prepared at `NOW`."""
    store, assets = MemoryStore(), [SNAPSHOT[asset_id] for asset_id in asset_ids]
    await seed_catalog(store, assets=assets)
    backfill = SimulatedBackfill(store=store, seed=7, keep=KEEP)
    await backfill.prepare(assets, NOW)
    return store, assets, backfill


class TestWrittenAtStart:
    async def test_the_first_tick_continues_the_backfilled_candles(self) -> None:
        store, clock = MemoryStore(), FixedClock(NOW)
        btc = SNAPSHOT["BTC"]
        await seed_catalog(store, assets=[btc])
        backfill = SimulatedBackfill(store=store, seed=7, keep=KEEP)
        await backfill.prepare([btc], NOW)
        ticker = await ticker_over(store, clock)
        await ticker.resume()
        clock.set(NOW + timedelta(seconds=2))  # the same minute
        await ticker.tick_once()
        tick = ticker.catalog.by_id["BTC"].price_usd
        expected = current_candles(anchor_of(btc), seed=7, now=NOW)
        live = [
            (await list_candles("BTC", CandleQuery(i, limit=1), store=store)).candles[0]
            for i in KEEP
        ]  # as the candles route reads them: an open hour merged with its later minutes
        for before, after in zip(expected, live, strict=True):
            assert after.open_time == before.open_time
            assert after.open == before.open  # the ticks go on from the backfilled close
            assert after.close == tick
            assert after.high == max(before.high, tick)
            assert after.low == min(before.low, tick)
            assert after.volume is not None
            assert before.volume is not None
            assert after.volume > before.volume  # the tick traded too
        assert abs(tick / btc.price_usd - 1) < Decimal("0.01")  # one step from the last close

    async def test_writes_the_rest_once_and_never_the_tickers_candles(self) -> None:
        store, assets, backfill = await prepared("BTC", "DOGE")
        ticker_candle = CandleRecord(
            "BTC",
            "1m",
            bucket_start(NOW, Interval.MINUTE),
            Decimal(1),
            Decimal(1),
            Decimal(1),
            Decimal(1),
            Decimal(5),
        )
        async with store.unit_of_work() as uow:  # what a tick made of the current minute
            uow.candles.upsert([ticker_candle])
            await uow.commit()
        written = await backfill.run()
        assert written == 2 * (48 * 60 + 90 * 24 + 730)
        async with store.unit_of_work() as uow:
            minutes = await uow.candles.list("BTC", "1m", limit=5000)
            days = await uow.candles.list("DOGE", "1d", limit=5000)
        assert len(minutes) == 48 * 60 + 1
        assert minutes[-1] == ticker_candle
        assert len(days) == 731
        assert await lacking_history(store, ["BTC", "DOGE", "ETH"], NOW) == ["ETH"]
        again = SimulatedBackfill(store=store, seed=7, keep=KEEP)
        await again.prepare(assets, NOW + timedelta(hours=1))  # a restart
        assert again.pending == []
        assert await again.run() == 0

    async def test_stores_exactly_the_generated_candles(self, tmp_path: Path) -> None:
        store = SqliteStore(tmp_path / "history.db")  # the store a fresh install starts on
        await store.migrate()
        assets = [SNAPSHOT[asset_id] for asset_id in SAMPLE]
        await seed_catalog(store, assets=assets)
        backfill = SimulatedBackfill(store=store, seed=7, keep=KEEP)
        await backfill.prepare(assets, NOW)
        await backfill.run()
        try:
            for asset in assets:
                made = history(anchor_of(asset), seed=7, now=NOW, keep=KEEP)
                async with store.unit_of_work() as uow:
                    stored = [
                        await uow.candles.list(asset.asset_id, i.value, limit=5000) for i in KEEP
                    ]
                assert digest(itertools.chain(*stored)) == digest(every(made))
                assert digest(every(made)) == PINNED[asset.asset_id]
        finally:
            await store.close()

    async def test_stops_once_this_process_no_longer_leads_the_feed(self) -> None:
        store, _, backfill = await prepared("BTC", "ETH")
        asked = itertools.count(1)
        # Leads for three units of work (each WRITE_ROWS minutes, half of each asset's), then
        # follows.
        written = await backfill.run(lambda: next(asked) <= 3)
        assert written == 3 * WRITE_ROWS
        assert await lacking_history(store, ["BTC", "ETH"], NOW) == ["BTC", "ETH"]

    async def test_a_failure_to_prepare_on_taking_the_feed_over_is_logged_not_raised(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        store = SqliteStore(tmp_path / "history.db")
        await store.migrate()
        await store.close()  # what it reads from is gone
        history_ = History(SimulatedBackfill(store=store, seed=7, keep=KEEP))
        assert not await history_.prepare_on_gain([SNAPSHOT["BTC"]], NOW)
        assert "candle backfill not prepared on taking the feed over" in caplog.text
        history_.start()
        assert history_.task is None  # nothing pending

    async def test_a_stop_midway_leaves_the_rest_to_the_next_start(self) -> None:
        store = MemoryStore()
        assets = [SNAPSHOT["BTC"], SNAPSHOT["ETH"], SNAPSHOT["SOL"]]
        await seed_catalog(store, assets=assets)
        history_ = History(SimulatedBackfill(store=store, seed=7, keep=KEEP))
        await history_.prepare(assets, NOW)
        history_.start()
        ids = [a.asset_id for a in assets]
        # Until the first is done: every turn of the loop, as the assets' days are written one
        # right after the other (1 ms apart).
        while len(await lacking_history(store, ids, NOW)) == 3:
            await asyncio.sleep(0)
        await history_.stop()
        left = await lacking_history(store, ids, NOW)
        assert 0 < len(left) < 3
        assert "BTC" not in left  # the largest asset first
        again = SimulatedBackfill(store=store, seed=7, keep=KEEP)
        await again.prepare(assets, NOW)
        assert [a.asset_id for a in again.pending] == left
        await again.run()
        assert await lacking_history(store, ids, NOW) == []

    async def test_a_start_after_the_stop_starts_nothing_until_prepared_again(self) -> None:
        store = MemoryStore()
        assets = [SNAPSHOT["BTC"]]
        await seed_catalog(store, assets=assets)
        history_ = History(SimulatedBackfill(store=store, seed=7, keep=KEEP))
        await history_.prepare(assets, NOW)
        await history_.stop()  # the process stops, and a take-over's hook comes after
        history_.start()
        assert history_.task is None
        await history_.prepare(assets, NOW)  # a later gain of the lease prepares it again
        history_.start()
        assert history_.task is not None
        await history_.stop()

    async def test_an_asset_added_later_gets_its_history_but_its_current_candles(self) -> None:
        store = MemoryStore()
        btc = SNAPSHOT["BTC"]
        await seed_catalog(store, assets=[btc])
        history_ = History(SimulatedBackfill(store=store, seed=7, keep=KEEP))
        await history_.prepare([btc], NOW)
        history_.start()  # start-up's backfill, still running when the asset comes
        later = NOW + timedelta(minutes=30)
        new = replace(SNAPSHOT["DOGE"], asset_id="NEWC", symbol="newc", last_updated=later)
        await seed_catalog(store, assets=[new])
        history_.add(new, later)
        history_.add(btc, later)  # a change of an asset with history: nothing to write
        assert history_.later is not None
        await asyncio.wait_for(history_.later, 30)
        assert history_.task is not None
        assert history_.task.done()  # it waited for start-up's
        assert await lacking_history(store, ["BTC", "NEWC"], later) == []
        made = history(anchor_of(new), seed=7, now=later, keep=KEEP)
        async with store.unit_of_work() as uow:
            for interval, candles in made.items():
                stored = await uow.candles.list("NEWC", interval.value, limit=5000)
                assert stored == candles[:-1]  # the bucket holding `later` is the ticker's


# --- CoinGecko (hand-made fixtures in its documented market_chart shape; no network) --------


def chart_feed(
    seen: list[httpx.Request], *, plan: Literal["demo", "pro"] = "demo"
) -> CoinGeckoFeed:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        days = request.url.params["days"]
        if request.url.path.endswith("/ethereum/market_chart"):
            return httpx.Response(404, json={"error": "coin not found"})
        return httpx.Response(
            200, content=(FIXTURES / f"market_chart_days_{days}.json").read_bytes()
        )

    return CoinGeckoFeed(
        {"BTC": "bitcoin", "ETH": "ethereum"},
        plan=plan,
        transport=httpx.MockTransport(handle),
        retry=RetryPolicy(attempts=1),
    )


class TestCoinGeckoHistory:
    def test_hourly_points_become_candles_from_point_to_point(self) -> None:
        body = (FIXTURES / "market_chart_days_90.json").read_bytes()
        candles = chart_candles(body, "BTC", Interval.HOUR)
        assert [c.open_time.isoformat() for c in candles[:3]] == [
            "2026-03-02T13:00:00+00:00", "2026-03-02T14:00:00+00:00", "2026-03-02T15:00:00+00:00",
        ]  # fmt: skip
        first, second = candles[0], candles[1]
        assert first.open == first.close == Decimal("66012.5")
        assert second.open == first.close
        assert second.close == Decimal("66150.25")
        assert second.high == Decimal("66150.25")
        assert second.low == Decimal("66012.5")
        assert second.volume == Decimal("1250000000.00")  # 30,000,000,000 a day / 24

    def test_a_body_of_another_shape_is_a_feed_error(self) -> None:
        with pytest.raises(FeedError):
            chart_candles(b'{"prices": "none"}', "BTC", Interval.HOUR)
        with pytest.raises(FeedError):
            chart_candles(b"<html>", "BTC", Interval.DAY)

    async def test_backfills_hours_and_days_and_skips_an_asset_it_cannot_get(self) -> None:
        store, seen = MemoryStore(), list[httpx.Request]()
        assets = [replace(SNAPSHOT["BTC"]), replace(SNAPSHOT["ETH"])]
        now = datetime(2026, 3, 4, 13, 20, tzinfo=UTC)
        backfill = ChartBackfill(store=store, feed=chart_feed(seen), keep=KEEP)
        await backfill.prepare(assets, now)
        assert backfill.pending == ["BTC", "ETH"]
        written = await backfill.run()
        async with store.unit_of_work() as uow:
            hours = await uow.candles.list("BTC", "1h", limit=1000)
            days = await uow.candles.list("BTC", "1d", limit=1000)
            eth = await uow.candles.list("ETH", "1d", limit=1000)
        assert written == len(hours) + len(days) > 0
        assert eth == []
        assert all(c.open_time < bucket_start(now, Interval.HOUR) for c in hours)
        assert days[-1].open_time < bucket_start(now, Interval.DAY)
        assert [r.url.params["days"] for r in seen] == ["90", "365", "90"]
        assert all(r.url.params["vs_currency"] == "usd" for r in seen)

    async def test_a_paid_plan_backfills_two_years_of_days(self) -> None:
        store, seen = MemoryStore(), list[httpx.Request]()
        now = datetime(2026, 3, 4, 13, 20, tzinfo=UTC)
        backfill = ChartBackfill(store=store, feed=chart_feed(seen, plan="pro"), keep=KEEP)
        await backfill.prepare([replace(SNAPSHOT["BTC"])], now)
        await backfill.run()
        async with store.unit_of_work() as uow:
            days = await uow.candles.list("BTC", "1d", limit=1000)
        assert [r.url.params["days"] for r in seen] == ["90", "730"]
        assert now - days[0].open_time > timedelta(days=365 + 300)  # older than a demo plan's
