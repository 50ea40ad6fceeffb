"""Two inventory processes over one database and one real Redis (common/price_fanout.py): one
leads the feed; an asset an admin adds or deactivates through the other reaches the leader's
catalog at once, so the leader prices it from its next tick (or stops), and the follower
follows the leader's ticks; a follower that takes the feed over backfills the assets that lack
candle history then."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio as aioredis

from orderproc.common.settings import Settings
from orderproc.common.storage.records import CandleRecord
from orderproc.errors import StoreUnavailable
from orderproc.inventory.backfill import anchor_of, history
from orderproc.inventory.candles import Interval, bucket_start
from orderproc.inventory.history import lacking_history
from orderproc.inventory.service import (
    INTERVALS,
    AdminActor,
    CandleQuery,
    add_asset,
    change_asset,
    list_candles,
)
from orderproc.runtime import Runtime, build_runtime
from orderproc.testing import SteppingClock
from tests.support.redis_server import RedisServer


@pytest.fixture
def settings_overrides(redis_server: RedisServer, redis: aioredis.Redis) -> dict[str, Any]:
    return {
        "redis_url": redis_server.url,
        "redis_timeout_seconds": 1.0,
        "price_feed": "simulated",
        "price_tick_seconds": 3600,  # the test ticks the leader itself
        "price_stale_seconds": 7200,
        "candle_backfill": False,
    }


async def started_pair(runtime: Runtime, other: Runtime) -> tuple[Runtime, Runtime]:
    """Both started as their processes start: (leader, follower)."""
    await runtime.start_background()
    await other.start_background()
    assert runtime.lease is not None
    assert other.lease is not None
    assert runtime.lease.leader != other.lease.leader
    return (runtime, other) if runtime.lease.leader else (other, runtime)


@pytest.fixture
async def replicas(
    runtime: Runtime, settings: Settings, clock: SteppingClock
) -> AsyncIterator[tuple[Runtime, Runtime]]:
    """(leader, follower), both started as their processes start."""
    other = await build_runtime(settings, clock=clock)
    try:
        yield await started_pair(runtime, other)
    finally:
        await other.close()


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.01)


async def test_an_asset_added_through_the_follower_ticks_on_the_leader(
    replicas: tuple[Runtime, Runtime], clock: SteppingClock
) -> None:
    leader, follower = replicas
    actor = AdminActor(user_id="admin-1", ip=None, clock=clock)
    template = follower.catalog.by_id["DOGE"]
    new = dataclasses.replace(
        template, asset_id="NEWC", symbol="newc", name="New Coin", price_usd=Decimal("2.5")
    )
    await add_asset(new, store=follower.store, catalog=follower.catalog, actor=actor)
    await until(lambda: "NEWC" in leader.catalog.by_id)

    clock.advance(seconds=2)
    assert await leader.ticker.tick_once() > 0
    moved = leader.catalog.by_id["NEWC"].price_usd
    assert moved != Decimal("2.5")
    await until(lambda: follower.catalog.by_id["NEWC"].price_usd == moved)

    await change_asset(
        "NEWC", {"is_active": False}, store=follower.store, catalog=follower.catalog, actor=actor
    )
    await until(lambda: not leader.catalog.by_id["NEWC"].is_active)
    clock.advance(seconds=2)
    await leader.ticker.tick_once()
    assert leader.catalog.by_id["NEWC"].price_usd == moved  # deactivated: no longer priced


async def test_the_follower_answers_the_leaders_open_hour_from_the_store(
    replicas: tuple[Runtime, Runtime], clock: SteppingClock
) -> None:
    leader, follower = replicas
    assert leader.ticker.own_candles() is leader.ticker.candles
    assert follower.ticker.own_candles() is None  # it does not tick: the store's rows
    hour = bucket_start(clock.now(), Interval.HOUR) + Interval.HOUR.length
    clock.set(hour + timedelta(minutes=2, seconds=50))
    for _ in range(4):  # across a minute: the hour's row holds one, a 1m row the other
        clock.advance(seconds=10)
        await leader.ticker.tick_once()
    query = CandleQuery(Interval.HOUR, limit=1)
    (led,) = (
        await list_candles("BTC", query, store=leader.store, live=leader.ticker.own_candles())
    ).candles
    (followed,) = (
        await list_candles("BTC", query, store=follower.store, live=follower.ticker.own_candles())
    ).candles
    assert followed == led
    assert led.close == leader.catalog.by_id["BTC"].price_usd


async def test_a_gain_of_the_lease_ticks_nothing_before_its_resume_nor_after_it_failed(
    runtime: Runtime, clock: SteppingClock
) -> None:
    ticker = runtime.ticker
    await ticker.resume()
    seen: list[tuple[object, bool]] = []

    async def failing_resume() -> None:  # what a tick or the route would find meanwhile
        seen.append((ticker.own_candles(), await ticker.ready()))
        raise StoreUnavailable("the store is down")

    ticker.resume = failing_resume  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        await runtime.take_over()
    del ticker.resume
    assert seen == [(None, None)]
    clock.advance(seconds=2)
    await ticker._step()  # the resume that failed is the next tick's to do, first
    assert ticker.ticks == 1
    assert ticker.own_candles() is ticker.candles


async def test_a_take_over_whose_resume_failed_backfills_once_the_next_tick_resumed(
    runtime: Runtime, clock: SteppingClock
) -> None:
    starts: list[int] = []

    class Prepared:  # the backfill a take-over prepares: here, only when it starts matters
        started = True

        async def prepare_on_gain(self, assets: object, now: object) -> bool:
            return True

        def start(self) -> None:
            starts.append(runtime.ticker.ticks)

        async def stop(self) -> None:
            pass

    runtime.history = Prepared()  # type: ignore[assignment]
    ticker = runtime.ticker

    async def failing_resume() -> None:
        raise StoreUnavailable("the store is down")

    ticker.resume = failing_resume  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        await runtime.take_over()
    del ticker.resume
    assert starts == []  # not while the candles are not the store's
    clock.advance(seconds=2)
    await ticker._step()  # resumes first, then ticks
    assert starts == [0]
    await ticker.resume()  # run once: a later resume of the same lead starts nothing more
    assert starts == [0]
    task = runtime.take_over()  # another gain, and one more before its resume runs: the
    assert task is not None
    ticker.forget()  # backfill it prepared is an overtaken lead's, and never starts
    await task
    assert starts == [0]


async def test_a_take_over_runs_beside_the_lease_and_nothing_ticks_until_it_resumed(
    runtime: Runtime,
) -> None:
    ticker = runtime.ticker
    await ticker.resume()
    task = runtime.take_over()  # as the lease's claim calls it, without waiting for it
    assert not task.done()  # the claim goes on, and the lease is renewed meanwhile
    assert ticker.own_candles() is None
    assert await ticker.ready() is None
    await task
    assert ticker.own_candles() is ticker.candles


async def test_the_leases_take_over_is_the_started_processs_own(runtime: Runtime) -> None:
    """Start-up waits for the first claim's take-over, and a stop cancels one still running:
    both need the lease to call the started process's own `take_over` (its runtime copies the
    inventory's parts)."""
    await runtime.start_background()
    assert runtime.lease is not None
    assert runtime.lease.leader
    first = runtime._taking_over
    assert first is not None
    assert first.done()  # start-up waited for it
    assert runtime.lease.on_lead is not None
    later = runtime.lease.on_lead()  # a later gain's, as the lease's claim starts it
    assert later is runtime._taking_over
    await runtime.stop_inventory()
    assert later.cancelled()  # a stop cancels a take-over still running
    assert runtime._taking_over is later


async def test_a_gain_while_stopping_starts_no_take_over(runtime: Runtime) -> None:
    await runtime.start_background()
    assert runtime.lease is not None
    on_lead = runtime.lease.on_lead
    assert on_lead is not None
    stop, started = runtime.ticker.stop, list[object]()

    async def stop_with_a_gain() -> None:
        started.append(on_lead())  # a claim the process won while it stopped
        await stop()

    runtime.ticker.stop = stop_with_a_gain  # type: ignore[method-assign]
    await runtime.stop_inventory()
    assert started == [None]


async def test_a_stop_cancels_the_reloads_still_running_and_starts_none(
    runtime: Runtime,
) -> None:
    await runtime.start_background()
    reloading, ended = asyncio.Event(), list[str]()

    async def slow_reload(asset_id: str) -> None:  # its store read hangs
        reloading.set()
        try:
            await asyncio.sleep(3600)
        finally:
            ended.append(asset_id)

    runtime.reload = slow_reload  # type: ignore[method-assign]
    runtime.reload_soon("BTC")  # another process's admin changed BTC
    await reloading.wait()
    (task,) = runtime._reloads
    await runtime.stop_inventory()
    assert task.cancelled()
    assert ended == ["BTC"]
    runtime.reload_soon("ETH")  # announced while stopped: no task outlives the stop
    assert not runtime._reloads


async def test_a_reload_that_failed_is_logged(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    async def failing_reload(asset_id: str) -> None:
        raise StoreUnavailable("the store is down")

    runtime.reload = failing_reload  # type: ignore[method-assign]
    runtime.reload_soon("BTC")
    (task,) = runtime._reloads
    await asyncio.wait([task])
    assert "reloading an asset another process changed failed" in caplog.text


async def test_start_up_waits_for_the_take_over_of_a_gain_during_the_first(
    runtime: Runtime,
) -> None:
    events: list[tuple[str, int]] = []
    resume = runtime.ticker.resume

    async def recorded() -> None:
        call = len([e for e in events if e[0] == "begin"])
        events.append(("begin", call))
        await asyncio.sleep(0)  # as a store's read yields
        if call == 0:
            assert runtime.lease is not None
            assert runtime.lease.on_lead is not None
            runtime.lease.on_lead()  # the lease was lost and won again: this take-over ends
            await asyncio.sleep(0)
        for _ in range(20):  # the next take-over's resume takes its time
            await asyncio.sleep(0)
        await resume()
        events.append(("end", call))

    runtime.ticker.resume = recorded  # type: ignore[method-assign]
    await runtime.start_background()
    assert ("end", 0) not in events  # the first take-over was cancelled
    assert events.index(("end", 1)) < events.index(("begin", 2))  # then start-up's own


class TestANewLeader:
    @pytest.fixture
    def settings_overrides(
        self, redis_server: RedisServer, redis: aioredis.Redis
    ) -> dict[str, Any]:
        return {
            "redis_url": redis_server.url,
            "redis_timeout_seconds": 1.0,
            "price_feed": "simulated",
            "price_tick_seconds": 3600,  # no tick but the start's: the prices stay put
            "price_stale_seconds": 7200,
            "candle_backfill": True,
            "feed_lease_seconds": 1.5,  # a follower asks for the lease every 0.5 s
        }

    async def test_backfills_the_assets_added_while_it_followed(
        self, runtime: Runtime, settings: Settings, clock: SteppingClock
    ) -> None:
        # Every packaged asset has its history (a daily candle older than yesterday marks it
        # done), so the first leader's start-up backfills nothing.
        old = bucket_start(clock.now(), Interval.DAY) - timedelta(days=3)
        prices = {a.asset_id: a.price_usd for a in runtime.catalog.assets()}
        marks = [CandleRecord(i, "1d", old, p, p, p, p, Decimal(0)) for i, p in prices.items()]
        async with runtime.store.unit_of_work() as uow:
            uow.candles.upsert(marks)
            await uow.commit()
        other = await build_runtime(settings, clock=clock)
        try:
            leader, follower = await started_pair(runtime, other)
            assert leader.lease is not None
            assert follower.lease is not None
            assert follower.history is not None
            assert leader.history is not None
            assert leader.history.task is None  # nothing lacked history

            actor = AdminActor(user_id="admin-1", ip=None, clock=clock)
            new = dataclasses.replace(
                follower.catalog.by_id["DOGE"], asset_id="NEWC", symbol="newc", name="New Coin",
                price_usd=Decimal("2.5"),
            )  # fmt: skip
            await add_asset(new, store=follower.store, catalog=follower.catalog, actor=actor)
            await until(lambda: "NEWC" in leader.catalog.by_id)
            ids = list(follower.catalog.by_id)
            assert await lacking_history(follower.store, ids, clock.now()) == ["NEWC"]
            # What the history is made from (once written, the 24 h figures are its own).
            anchor = anchor_of(follower.catalog.by_id["NEWC"])

            await leader.lease.stop()  # the leader goes, handing the lease back
            # The gain of the lease starts it, in the background.
            await until(lambda: follower.history is not None and follower.history.task is not None)
            assert follower.lease.leader
            assert follower.history.task is not None
            await asyncio.wait_for(follower.history.task, 10)
            assert await lacking_history(follower.store, ids, clock.now()) == []

            # What a start would have written for it: the whole history, from its price.
            keep = {i: follower.ticker.retention.of(i) for i in INTERVALS}
            made = history(anchor, seed=settings.price_seed, now=clock.now(), keep=keep)
            async with follower.store.unit_of_work() as uow:
                for interval, candles in made.items():
                    stored = await uow.candles.list("NEWC", interval.value, limit=5000)
                    assert stored == candles
            # Told the history was written, its 24 h window read the hours back.
            since = bucket_start(clock.now(), Interval.HOUR) - timedelta(hours=24)
            day = [c for c in made[Interval.HOUR] if c.open_time >= since]
            newc = follower.catalog.by_id["NEWC"]
            assert (newc.high_24h, newc.low_24h) == (
                max(c.high for c in day),
                min(c.low for c in day),
            )
        finally:
            await other.close()
