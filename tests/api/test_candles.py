"""Candles over HTTP on a backfilled history: the latest page and its cursor back in time, a
start/end range paged forward, weeks, volume, and every bad input a 422 problem."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from orderproc.common.storage.records import CandleRecord
from orderproc.inventory.candles import Interval, bucket_start
from orderproc.inventory.history import SimulatedBackfill
from orderproc.inventory.service import AdminActor, CandleQuery, add_asset, list_candles
from orderproc.runtime import Runtime
from orderproc.testing import SteppingClock
from tests.api.conftest import Client
from tests.api.test_users_auth import assert_problem

CANDLES = "/api/v1/inventory/assets/BTC/candles"
KEEP = {
    Interval.MINUTE: timedelta(hours=48),
    Interval.HOUR: timedelta(days=90),
    Interval.DAY: timedelta(days=3650),
}


@pytest.fixture
async def backfilled(runtime: Runtime, clock: SteppingClock) -> datetime:
    """BTC's history as a fresh install writes it (the other assets keep none: faster); the
    moment it ends."""
    now = clock.now()
    backfill = SimulatedBackfill(store=runtime.store, seed=runtime.settings.price_seed, keep=KEEP)
    await backfill.prepare([runtime.catalog.by_id["BTC"]], now)
    await backfill.run()
    return now


def times(page: dict[str, Any]) -> list[datetime]:
    return [datetime.fromisoformat(c["t"]) for c in page["data"]]


async def walk(client: Client, params: dict[str, Any], most: int = 20) -> list[dict[str, Any]]:
    """Every page from the first, following `next_cursor` with the same query."""
    answers, cursor = [], None
    for _ in range(most):
        response = await client.get(
            CANDLES, params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert response.status_code == 200, response.text
        answers.append(response.json())
        cursor = answers[-1]["next_cursor"]
        assert answers[-1]["has_more"] is (cursor is not None)
        if cursor is None:
            return answers
    raise AssertionError("more pages than expected")


class TestLatest:
    async def test_answers_the_latest_candles_oldest_first_with_volume(
        self, client: Client, backfilled: datetime
    ) -> None:
        page = (await client.get(CANDLES)).json()
        assert page["asset_id"] == "BTC"
        assert page["interval"] == "1m"
        assert page["limit"] == 100
        assert len(page["data"]) == 100
        opened = times(page)
        assert opened == sorted(opened)
        assert opened[-1] == backfilled.replace(second=0, microsecond=0)
        assert page["data"][-1]["close"] == "51618.00"  # the price the simulator starts from
        assert all(Decimal(c["volume"]) > 0 for c in page["data"])
        assert page["has_more"] is True

    @pytest.mark.every_store
    async def test_the_cursor_pages_back_without_repeating_or_skipping(
        self, client: Client, backfilled: datetime
    ) -> None:
        answers = await walk(client, {"interval": "1h", "limit": 1000})
        opened = [t for page in reversed(answers) for t in times(page)]
        assert len(opened) == 90 * 24 + 1  # everything kept, each once
        assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(opened))
        assert [len(page["data"]) for page in answers] == [1000, 1000, 161]

    async def test_before_the_backfill_reaches_an_asset_it_answers_the_current_candles(
        self, client: Client, runtime: Runtime, clock: SteppingClock
    ) -> None:
        now = clock.now()
        backfill = SimulatedBackfill(store=runtime.store, seed=7, keep=KEEP)
        await backfill.prepare([runtime.catalog.by_id["BTC"]], now)  # run() not yet
        for interval in ("1m", "1h", "1d", "1w"):
            page = (await client.get(CANDLES, params={"interval": interval})).json()
            assert len(page["data"]) == 1, interval
            assert page["data"][0]["close"] == "51618.00"
            assert page["has_more"] is False


class TestRange:
    @pytest.mark.every_store
    async def test_a_range_pages_forward_from_its_start(
        self, client: Client, backfilled: datetime
    ) -> None:
        start = backfilled.replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
        end = start + timedelta(hours=2)
        query = {"start": start.isoformat(), "end": end.isoformat(), "limit": 50}
        answers = await walk(client, query)
        opened = [t for page in answers for t in times(page)]
        assert opened == [start + timedelta(minutes=m) for m in range(120)]
        assert [len(page["data"]) for page in answers] == [50, 50, 20]

    async def test_a_time_without_an_offset_is_utc(
        self, client: Client, backfilled: datetime
    ) -> None:
        start = backfilled.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        naive = start.replace(tzinfo=None).isoformat()
        page = (await client.get(CANDLES, params={"start": naive, "limit": 1})).json()
        assert times(page) == [start]

    async def test_weeks_roll_up_from_days_and_open_on_monday(
        self, client: Client, backfilled: datetime
    ) -> None:
        weeks = (await client.get(CANDLES, params={"interval": "1w", "limit": 10})).json()
        days = (await client.get(CANDLES, params={"interval": "1d", "limit": 80})).json()
        assert weeks["interval"] == "1w"
        assert len(weeks["data"]) == 10
        assert all(t.weekday() == 0 and t.hour == 0 for t in times(weeks))
        week, opens = weeks["data"][-2], times(weeks)[-2]
        inside = [d for d, t in zip(days["data"], times(days), strict=True)
                  if opens <= t < opens + timedelta(days=7)]  # fmt: skip
        assert len(inside) == 7
        assert week["open"] == inside[0]["open"]
        assert week["close"] == inside[-1]["close"]
        assert Decimal(week["high"]) == max(Decimal(d["high"]) for d in inside)
        assert Decimal(week["volume"]) == sum(Decimal(d["volume"]) for d in inside)
        back = {"interval": "1w", "limit": 10, "cursor": weeks["next_cursor"]}
        older = (await client.get(CANDLES, params=back)).json()
        assert times(older)[-1] == times(weeks)[0] - timedelta(days=7)


class TestRefused:
    @pytest.mark.parametrize(
        "params",
        [
            {"start": "2026-01-15T10:00:00Z", "end": "2026-01-15T10:00:00Z"},
            {"start": "2026-01-15T11:00:00Z", "end": "2026-01-15T10:00:00Z"},
            {"start": "2025-01-01T00:00:00Z", "interval": "1m"},  # wider than 31 days of 1 m
            {"start": "1969-12-31T00:00:00Z", "interval": "1d"},
            {"start": "yesterday"},
            {"limit": 1001},
            {"limit": 0},
            {"interval": "5m"},
            {"offset": 10},
        ],
    )
    async def test_bad_parameters_are_422_problems(
        self, client: Client, params: dict[str, Any]
    ) -> None:
        assert_problem(await client.get(CANDLES, params=params), 422, "VALIDATION_ERROR")

    async def test_a_forged_or_borrowed_cursor_is_a_422(
        self, client: Client, backfilled: datetime
    ) -> None:
        page = (await client.get(CANDLES, params={"limit": 5})).json()
        cursor = page["next_cursor"]
        forged = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
        for params in (
            {"cursor": forged},
            {"cursor": cursor, "interval": "1h"},  # another interval
            {"cursor": cursor, "end": datetime.now(UTC).isoformat()},  # another range
        ):
            problem = assert_problem(
                await client.get(CANDLES, params=params), 422, "VALIDATION_ERROR"
            )
            assert problem["errors"][0]["loc"] == ["query", "cursor"]
        other = await client.get("/api/v1/inventory/assets/ETH/candles", params={"cursor": cursor})
        assert_problem(other, 422, "VALIDATION_ERROR")


class TestAnAssetAddedLater:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {
            "price_feed": "simulated",
            "price_tick_seconds": 3600,  # no tick but the start's
            "price_stale_seconds": 7200,
            "candle_backfill": True,
        }

    async def test_gets_its_history_from_the_running_process(
        self, runtime: Runtime, client: Client, clock: SteppingClock
    ) -> None:
        # Every packaged asset has its history (a daily candle older than yesterday marks it
        # done), so start-up backfills nothing.
        old = bucket_start(clock.now(), Interval.DAY) - timedelta(days=3)
        marks = [
            CandleRecord(a.asset_id, "1d", old, a.price_usd, a.price_usd, a.price_usd,
                         a.price_usd, Decimal(0))
            for a in runtime.catalog.assets()
        ]  # fmt: skip
        async with runtime.store.unit_of_work() as uow:
            uow.candles.upsert(marks)
            await uow.commit()
        await runtime.start_background()
        assert runtime.history is not None
        assert runtime.history.task is None  # nothing lacked history

        new = dataclasses.replace(
            runtime.catalog.by_id["DOGE"], asset_id="NEWC", symbol="newc", name="New Coin",
            price_usd=Decimal("2.5"),
        )  # fmt: skip
        actor = AdminActor(user_id="admin-1", ip=None, clock=clock)
        await add_asset(new, store=runtime.store, catalog=runtime.catalog, actor=actor)
        assert runtime.history.later is not None
        await asyncio.wait_for(runtime.history.later, 30)

        days = await client.get(
            "/api/v1/inventory/assets/NEWC/candles", params={"interval": "1d", "limit": 1000}
        )
        assert days.status_code == 200, days.text
        assert len(days.json()["data"]) >= 700  # two years of days, before today's
        minutes = await client.get("/api/v1/inventory/assets/NEWC/candles")
        assert len(minutes.json()["data"]) == 100  # a full page of the last 48 hours'


class TestTheOpenHourAndDay:
    """The store keeps an open hour or day as its closed minutes (written once a minute); the
    route answers the ticker's own candle where its process ticks, and merges the stored
    minutes after them where not: either way, every tick up to the last."""

    @pytest.mark.every_store
    async def test_hold_every_minute_up_to_the_last_tick(
        self, client: Client, runtime: Runtime, clock: SteppingClock
    ) -> None:
        hour = bucket_start(clock.now(), Interval.HOUR) + Interval.HOUR.length
        clock.set(hour + timedelta(minutes=5, seconds=10))
        for _ in range(8):  # 20 s apart: three minutes, two of them closed
            clock.advance(seconds=20)
            assert await runtime.ticker.tick_once() > 90
        last = runtime.catalog.by_id["BTC"].price_usd
        minutes = (await client.get(CANDLES, params={"interval": "1m"})).json()["data"]
        assert len(minutes) == 3
        expected = [
            Decimal(minutes[0]["open"]),
            max(Decimal(m["high"]) for m in minutes),
            min(Decimal(m["low"]) for m in minutes),
            last,
            sum(Decimal(m["volume"]) for m in minutes),
        ]
        for interval in ("1h", "1d", "1w"):
            page = (await client.get(CANDLES, params={"interval": interval})).json()["data"]
            assert len(page) == 1, interval
            answered = [Decimal(page[0][k]) for k in ("open", "high", "low", "close", "volume")]
            assert answered == expected, interval
            # As a process that does not tick reads it: the stored minutes merged.
            query = CandleQuery(Interval(interval), limit=10)
            (stored,) = (await list_candles("BTC", query, store=runtime.store)).candles
            assert [stored.open, stored.high, stored.low, stored.close, stored.volume] == expected
        async with runtime.store.unit_of_work() as uow:
            row = (await uow.candles.list("BTC", "1h", limit=1))[0]
        # Its closed minutes reach its row within five minutes, in BTC's own minute of them
        # (until then the merge above takes in more stored minutes).
        assert row.rolled_until is not None
        assert hour + timedelta(minutes=5) <= row.rolled_until <= hour + timedelta(minutes=7)

    async def test_where_it_ticks_it_answers_its_own_candle_without_reading_minutes(
        self, client: Client, runtime: Runtime, clock: SteppingClock
    ) -> None:
        await runtime.ticker.resume()  # as a started process has (the fixture ticks by hand)
        opened = bucket_start(clock.now(), Interval.HOUR) + Interval.HOUR.length
        clock.set(opened + timedelta(seconds=10))
        for _ in range(2):  # both in the hour's first minute
            clock.advance(seconds=2)
            await runtime.ticker.tick_once()
        odd = Decimal(1)  # rows no tick made: what a process that does not tick would answer
        async with runtime.store.unit_of_work() as uow:
            uow.candles.upsert([
                CandleRecord("BTC", "1h", opened, odd, odd, odd, odd, odd, opened),
                CandleRecord("BTC", "1m", opened, odd, odd, odd, odd, odd),
            ])  # fmt: skip
            await uow.commit()
        (stored,) = (
            await list_candles("BTC", CandleQuery(Interval.HOUR, 1), store=runtime.store)
        ).candles
        assert stored.close == odd
        page = (await client.get(CANDLES, params={"interval": "1h", "limit": 1})).json()["data"]
        assert Decimal(page[0]["close"]) == runtime.catalog.by_id["BTC"].price_usd


async def last_day_of_hours(client: Client, now: datetime) -> list[dict[str, Any]]:
    """BTC's hourly candles from the hour 24 hours before the current one."""
    since = bucket_start(now, Interval.HOUR) - timedelta(hours=24)
    params = {"interval": "1h", "start": since.isoformat(), "limit": 100}
    response = await client.get(CANDLES, params=params)
    assert response.status_code == 200, response.text
    hours: list[dict[str, Any]] = response.json()["data"]
    assert datetime.fromisoformat(hours[0]["t"]) == since
    return hours


def figures(asset: dict[str, Any]) -> tuple[Decimal, Decimal, Decimal]:
    return (
        Decimal(asset["high_24h"]),
        Decimal(asset["low_24h"]),
        Decimal(asset["price_usd"]) - Decimal(asset["price_change_24h"]),  # 24 h ago
    )


class TestThe24hFigures:
    """An asset's 24 h high, low and change are those of its hourly candles from the hour 24
    hours before the current one, as the ticks go on and after a restart."""

    @pytest.mark.every_store
    async def test_follow_the_hourly_candles_and_survive_a_restart(
        self, client: Client, runtime: Runtime, clock: SteppingClock
    ) -> None:
        from orderproc.runtime import build_runtime

        for _ in range(61):  # 30 hours and a half, a tick each half hour
            clock.advance(minutes=30)
            await runtime.ticker.tick_once()
        for tick in range(40):  # then every 10 s, with the day's high in a late minute
            clock.advance(seconds=10)
            if tick == 37:
                await runtime.ticker.apply({"BTC": Decimal(999_999)}, clock.now())
            else:
                await runtime.ticker.tick_once()
        btc = (await client.get("/api/v1/inventory/assets/BTC")).json()["data"]
        hours = await last_day_of_hours(client, clock.now())
        assert len(hours) == 25
        highs, lows = [Decimal(h["high"]) for h in hours], [Decimal(h["low"]) for h in hours]
        assert figures(btc) == (max(highs), min(lows), Decimal(hours[0]["open"]))
        assert Decimal(hours[-1]["close"]) == Decimal(btc["price_usd"])
        assert (Decimal(btc["high_24h"]), Decimal(btc["ath"])) == (999_999, 999_999)
        async with runtime.store.unit_of_work() as uow:  # the hour's row has not the high yet
            [row] = await uow.candles.list("BTC", "1h", limit=1)
        assert row.rolled_until is not None
        assert row.high < 999_999

        await runtime.hourly()  # as every hour: the same figures, and the ATH stored
        assert runtime.catalog.take_records() == []
        assert figures(btc) == figures(
            (await client.get("/api/v1/inventory/assets/BTC")).json()["data"]
        )

        feed_off = runtime.settings.model_copy(update={"price_feed": "off"})
        again = await build_runtime(feed_off, clock=clock)
        try:
            await again.start_background()  # reads the hours; no tick, the feed is off
            assert again.hours is not None
            assert again.hours.running  # and reads them again every hour
            restarted = again.catalog.by_id["BTC"]
            assert restarted.price_usd == Decimal(btc["price_usd"])
            assert restarted.price_change_24h is not None
            assert (
                restarted.high_24h,
                restarted.low_24h,
                restarted.price_usd - restarted.price_change_24h,
            ) == figures(btc)
            assert restarted.ath == 999_999
        finally:
            await again.close()
        assert not again.hours.running

    async def test_are_the_backfilled_hours_once_the_history_is_written(
        self, client: Client, runtime: Runtime, backfilled: datetime
    ) -> None:
        await runtime.catalog.load_hours(runtime.store)  # as the history's `written` does
        btc = (await client.get("/api/v1/inventory/assets/BTC")).json()["data"]
        hours = await last_day_of_hours(client, backfilled)
        highs = [Decimal(h["high"]) for h in hours]
        lows = [Decimal(h["low"]) for h in hours]
        assert figures(btc) == (max(highs), min(lows), Decimal(hours[0]["open"]))


class TestTheAllTimeRange:
    @pytest.mark.every_store
    async def test_what_prices_passed_is_stored_and_a_wider_stored_one_kept(
        self, runtime: Runtime, clock: SteppingClock
    ) -> None:
        from orderproc.inventory.service import from_record, store_records, to_record

        clock.advance(seconds=5)
        moved_at = clock.now()
        await runtime.ticker.apply({"ETH": Decimal(10**7), "DOGE": Decimal("1e-9")}, moved_at)
        async with runtime.store.unit_of_work() as uow:  # another process stored a wider one
            record = await uow.assets.get("BTC")
            assert record is not None
            wider = dataclasses.replace(from_record(record), ath=Decimal(10**9))
            uow.assets.update(
                to_record(wider, version=record.version + 1), expected_version=record.version
            )
            await uow.commit()
        clock.advance(seconds=5)
        await runtime.ticker.apply({"BTC": Decimal(10**8)}, clock.now())

        assert await store_records(runtime.store, runtime.catalog) == 2  # ETH, DOGE; not BTC
        assert await store_records(runtime.store, runtime.catalog) == 0  # nothing moved since
        async with runtime.store.unit_of_work() as uow:
            stored = {i: from_record(await uow.assets.get(i)) for i in ("ETH", "DOGE", "BTC")}
        assert (stored["ETH"].ath, stored["ETH"].ath_date) == (10**7, moved_at)
        assert (stored["DOGE"].atl, stored["DOGE"].atl_date) == (Decimal("1e-9"), moved_at)
        assert stored["BTC"].ath == 10**9
        assert stored["ETH"].name == runtime.catalog.by_id["ETH"].name  # the rest as it was

        from orderproc.inventory.service import AdminActor, change_asset

        actor = AdminActor(user_id="admin-1", ip=None, clock=clock)
        renamed = await change_asset(
            "BTC", {"name": "Bitcoin!"}, store=runtime.store, catalog=runtime.catalog, actor=actor
        )
        assert renamed.ath == 10**9  # an admin's change keeps the wider stored one
        async with runtime.store.unit_of_work() as uow:
            after = from_record(await uow.assets.get("BTC"))
        assert (after.name, after.ath) == ("Bitcoin!", 10**9)

    async def test_a_stop_mid_write_keeps_the_rest_for_later(
        self, runtime: Runtime, clock: SteppingClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from orderproc.inventory import service

        ids = sorted(runtime.catalog.by_id)[: service.LOADED_AT_ONCE * 2]
        await runtime.ticker.apply(dict.fromkeys(ids, Decimal(10**11)), clock.now())
        written, calls = service._store_records, []

        async def cancelled_second(store: Any, moved: list[Any]) -> int:
            calls.append(len(moved))
            if len(calls) == 2:  # a stop cancels the hourly run in its second unit of work
                raise asyncio.CancelledError
            return await written(store, moved)

        monkeypatch.setattr(service, "_store_records", cancelled_second)
        with pytest.raises(asyncio.CancelledError):
            await service.store_records(runtime.store, runtime.catalog)
        left = runtime.catalog.take_records()
        assert len(left) == service.LOADED_AT_ONCE  # the part cancelled, for the next call

    async def test_a_stop_stores_them(self, runtime: Runtime, clock: SteppingClock) -> None:
        from orderproc.runtime import build_runtime

        feed_off = runtime.settings.model_copy(update={"price_feed": "off"})
        first = await build_runtime(feed_off, clock=clock)
        try:
            await first.start_background()
            await first.ticker.apply({"ETH": Decimal(10**7)}, clock.now())
            await first.ticker.apply({"ETH": Decimal(3000)}, clock.now())  # and back
        finally:
            await first.close()
        again = await build_runtime(feed_off, clock=clock)
        try:
            assert again.catalog.by_id["ETH"].price_usd == 3000
            assert again.catalog.by_id["ETH"].ath == 10**7
        finally:
            await again.close()

    async def test_many_are_stored_a_few_units_of_work_at_a_time(
        self, runtime: Runtime, clock: SteppingClock
    ) -> None:
        from orderproc.inventory.service import LOADED_AT_ONCE, from_record, store_records

        ids = sorted(runtime.catalog.by_id)[: LOADED_AT_ONCE * 2 + 5]
        await runtime.ticker.apply(dict.fromkeys(ids, Decimal(10**11)), clock.now())
        assert await store_records(runtime.store, runtime.catalog) == len(ids)
        async with runtime.store.unit_of_work() as uow:
            stored = [from_record(r) for r in await uow.assets.list_all() if r.asset_id in ids]
        assert sorted(a.asset_id for a in stored if a.ath == 10**11) == ids
        assert all(a.price_usd == 10**11 for a in stored)  # the price as the tick wrote it
