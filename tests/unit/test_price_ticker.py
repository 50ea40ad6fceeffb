"""The price ticker on the in-memory store: one batch per tick, candles per interval, retention,
and a feed that fails leaves everything as it was."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from orderproc.common.clock import FixedClock
from orderproc.common.prices import PriceCache
from orderproc.common.storage.memory import MemoryStore
from orderproc.common.storage.ports import UnitOfWork
from orderproc.common.storage.records import CandleRecord
from orderproc.common.storage.sqlite import SqliteStore
from orderproc.errors import NotFeedLeader, StoreUnavailable
from orderproc.inventory.candles import Interval
from orderproc.inventory.domain import Asset, load_snapshot
from orderproc.inventory.live_candles import Turn
from orderproc.inventory.pricefeed import SimulatedFeed
from orderproc.inventory.service import (
    AdminActor,
    CandleQuery,
    PriceTicker,
    Retention,
    TickVolumes,
    change_asset,
    list_candles,
    load_catalog,
    seed_catalog,
    tick_volume,
)

RETENTION = Retention(minute=timedelta(minutes=10), hour=timedelta(days=1), day=timedelta(days=30))


async def ticker(
    clock: FixedClock, *, interval: float = 1, max_lag: float | None = None
) -> tuple[PriceTicker, MemoryStore, PriceCache]:
    store, prices = MemoryStore(), PriceCache()
    await seed_catalog(store)
    catalog = await load_catalog(store, prices)
    feed = SimulatedFeed.from_assets(catalog.assets(), seed=7)
    tick = PriceTicker(
        feed=feed,
        catalog=catalog,
        store=store,
        clock=clock,
        interval=interval,
        retention=RETENTION,
        purge_every=10,
        max_lag=max_lag,
    )
    return tick, store, prices


class TestTicks:
    async def test_a_tick_moves_the_cache_and_the_store_together(self) -> None:
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC))
        tick, store, prices = await ticker(clock)
        before = prices.quote("BTC")
        assert before is not None
        await tick.tick_once()
        after = prices.quote("BTC")
        assert after is not None
        assert after.price != before.price
        assert after.as_of == clock.now()
        async with store.unit_of_work() as uow:
            stored = await uow.assets.get("BTC")
            candles = {i: await uow.candles.list("BTC", i, limit=5) for i in ("1m", "1h", "1d")}
        assert stored is not None
        assert stored.price == after.price
        assert all(len(c) == 1 and c[0].close == after.price for c in candles.values())

    async def test_candles_stay_within_their_retention(self) -> None:
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
        tick, store, _ = await ticker(clock)
        for _ in range(30):  # 30 minutes of one tick a minute; a purge every 10 ticks
            clock.advance(minutes=1)
            await tick.tick_once()
        async with store.unit_of_work() as uow:
            minutes = await uow.candles.list("ETH", "1m", limit=100)
        assert 10 <= len(minutes) <= 20
        assert minutes[0].open_time >= clock.now() - timedelta(minutes=20)

    async def test_no_purge_while_a_closed_candle_waits_for_its_turn(self) -> None:
        """After a pause longer than the minutes' retention (a machine asleep), the hours that
        closed meanwhile are written whole at their assets' turns: a purge waits for them, so
        the store never holds an hour whose minutes are gone."""
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC))
        tick, store, _ = await ticker(clock)
        tick.candles.assets_per_write = 30  # the 101 packaged assets: 4 turns
        tick.purge_every = 1
        ids = list(tick.catalog.by_id)
        query = CandleQuery(Interval.HOUR, limit=5)

        async def hours() -> dict[str, list[Any]]:  # as a process that does not tick reads
            return {a: (await list_candles(a, query, store=store)).candles for a in ids}

        for _ in range(4):  # every turn written
            clock.advance(seconds=1)
            await tick.tick_once()
        stored = {a: h[0].volume for a, h in (await hours()).items()}
        assert all(volume > 0 for volume in stored.values())  # its minute's, merged in
        ticked = {a: tick.candles.current(a, Interval.HOUR) for a in ids}
        clock.set(datetime(2026, 5, 1, 13, 20, tzinfo=UTC))  # 12:00's minutes are past 10 min
        for _ in range(12):  # 12:00 closes: at each asset's turn its minute, at the next
            await tick.tick_once()  # its hour, whole, and at the next its new hour's rows
            clock.advance(seconds=1)
            read = {a: h[0] for a, h in (await hours()).items()}
            # As stored before (a row holding no minute, and the minute), or whole: never the
            # row without its minute, which a purge of the minute would leave.
            assert all(read[a].volume >= stored[a] for a in ids)
        assert read == ticked
        async with store.unit_of_work() as uow:  # and the purge did run, once they were
            old = clock.now() - timedelta(hours=1)
            assert await uow.candles.list("BTC", "1m", end=old, limit=10) == []

    async def test_a_failing_feed_changes_nothing(self) -> None:
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
        tick, store, prices = await ticker(clock)

        class Down:
            async def next_prices(self, now: datetime) -> dict[str, Decimal]:
                raise TimeoutError("no answer")

        tick.feed = Down()
        before = prices.quote("SOL")
        assert await tick.tick_once() == 0
        assert prices.quote("SOL") == before
        async with store.unit_of_work() as uow:
            assert await uow.candles.list("SOL", "1m", limit=5) == []


class TestAdminChangesDuringTicks:
    async def test_a_tick_during_an_asset_change_keeps_its_price(self) -> None:
        """SQLite commits a group per event-loop turn, so a tick can run while an admin's
        change waits for its commit; the change must not put the older price back."""
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
        store, prices = SqliteStore(":memory:"), PriceCache()
        await store.migrate()
        await seed_catalog(store)
        catalog = await load_catalog(store, prices)
        tick = PriceTicker(
            feed=SimulatedFeed.from_assets(catalog.assets(), seed=7),
            catalog=catalog,
            store=store,
            clock=clock,
            interval=1,
            retention=RETENTION,
        )
        change = asyncio.create_task(
            change_asset(
                "BTC",
                {"name": "Bitcoin (renamed)"},
                store=store,
                catalog=catalog,
                actor=AdminActor("admin", None, clock),
            )
        )
        await asyncio.sleep(0)  # the change waits for its commit
        clock.advance(seconds=1)
        await tick.tick_once()
        ticked = prices.quote("BTC")
        changed = await change
        assert ticked is not None
        assert changed.name == "Bitcoin (renamed)"
        assert changed.price_usd == ticked.price
        assert prices.quote("BTC") == ticked
        async with store.unit_of_work() as uow:
            stored = await uow.assets.get("BTC")
        assert stored is not None
        assert stored.price == ticked.price
        assert stored.name == "Bitcoin (renamed)"
        await store.close()


class TestPricesInTurns:
    """With more assets than a write takes, each tick writes one turn's assets' prices (and
    candles); every stored price is at most `turns` ticks behind, a sandbox admin's is written
    at once, and a stop writes what is left."""

    async def stored(self, store: MemoryStore) -> dict[str, Decimal]:
        async with store.unit_of_work() as uow:
            return {r.asset_id: r.price for r in await uow.assets.list_all()}

    async def test_each_tick_writes_one_turn_and_every_price_catches_up(self) -> None:
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC))
        tick, store, prices = await ticker(clock)
        tick.candles.assets_per_write = 30  # the 101 packaged assets: 4 turns
        first = await self.stored(store)
        clock.advance(seconds=1)
        await tick.tick_once()
        assert tick.candles.turns == 4
        changed = {k for k, v in (await self.stored(store)).items() if v != first[k]}
        assert 20 <= len(changed) <= 30  # one turn (stablecoins may keep their price)
        for _ in range(3):
            clock.advance(seconds=1)
            await tick.tick_once()
        live = {q.asset_id: q.price for q in prices.all()}
        stored = await self.stored(store)
        behind = {k for k in live if stored[k] != live[k]}
        assert 60 <= len(behind) <= 3 * 30  # written at their turns, the last one's just now
        await tick.flush()
        assert await self.stored(store) == live

    async def test_max_lag_bounds_the_turns(self) -> None:
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC))
        tick, _, _ = await ticker(clock, interval=2, max_lag=5)  # two ticks of 2 s
        tick.candles.assets_per_write = 10
        await tick.tick_once()
        assert tick.candles.turns == 2

    async def test_an_admins_price_is_written_at_once(self) -> None:
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC))
        tick, store, prices = await ticker(clock)
        tick.candles.assets_per_write = 10
        await tick.tick_once()
        assert tick.candles.turns > 1
        ids = [q.asset_id for q in prices.all()]
        for asset_id in (ids[0], ids[-1]):  # whose turn it is and whose it is not
            await tick.apply({asset_id: Decimal(123)}, clock.now(), every_price=True)
            assert (await self.stored(store))[asset_id] == Decimal(123)


class TestATakeOver:
    async def test_a_process_taking_over_continues_every_hour_and_day_the_store_holds(
        self,
    ) -> None:
        """An asset's stored hour and day take in its closed minutes in its own minute of
        five: a process that takes over (no flush: the leader is gone) merges the stored
        minutes since their `rolled_until`, and continues exactly the leader's candles."""
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC))
        leader, store, _ = await ticker(clock)
        await leader.resume()
        for _ in range(3 * 6):  # 12:00:30 to 12:03:30, 10 s apart
            clock.advance(seconds=10)
            await leader.tick_once()
        lagging = []
        async with store.unit_of_work() as uow:
            for asset_id in leader.catalog.by_id:
                (hour,) = await uow.candles.list(asset_id, "1h", limit=1)
                (minute,) = await uow.candles.list(asset_id, "1m", limit=1)
                assert hour.rolled_until is not None
                if hour.rolled_until < minute.open_time:
                    lagging.append(asset_id)
        assert len(lagging) > 20  # the assets whose minute of five is not this one
        catalog = await load_catalog(store, PriceCache())
        taking_over = PriceTicker(
            feed=SimulatedFeed.from_assets(catalog.assets(), seed=8), catalog=catalog,
            store=store, clock=clock, interval=1, retention=RETENTION,
        )  # fmt: skip
        await taking_over.resume()
        for asset_id in leader.catalog.by_id:
            for interval in (Interval.MINUTE, Interval.HOUR, Interval.DAY):
                mine = taking_over.candles.current(asset_id, interval)
                assert mine == leader.candles.current(asset_id, interval), (asset_id, interval)


class TestALeadGainedAgain:
    """A process that leads the feed again (a gain of the lease) ticks nothing, and lends its
    live candles to no reader, until it has resumed them from the store (another leader wrote
    on meanwhile); a resume that failed is tried again by the loop's next step."""

    async def test_nothing_ticks_or_is_read_until_resumed(self) -> None:
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC))
        tick, _, _ = await ticker(clock)
        await tick.resume()
        assert tick.own_candles() is tick.candles
        tick.forget()  # what `InventoryParts.take_over` does first on a gain of the lease
        assert tick.own_candles() is None
        await tick._step()
        assert tick.ticks == 0
        await tick.resume()
        await tick._step()
        assert tick.ticks == 1
        assert tick.own_candles() is tick.candles

    async def test_a_resume_that_failed_is_tried_again_by_the_next_step(self) -> None:
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC))
        tick, store, _ = await ticker(clock)
        lead = tick.forget()
        down(store)
        with pytest.raises(StoreUnavailable):
            await tick.resume()
        tick.unblock(lead)  # as the take-over ends, whatever became of it
        up(store)
        await tick._step()
        assert tick.ticks == 1
        assert tick.own_candles() is tick.candles

    async def test_an_hour_an_earlier_lead_closed_and_never_wrote_is_not_written_twice(
        self,
    ) -> None:
        clock = FixedClock(datetime(2026, 5, 1, 12, 59, 50, tzinfo=UTC))
        tick, store, _ = await ticker(clock)
        await tick.resume()
        await tick.tick_once()
        clock.advance(seconds=12)  # 13:00:02: every hour closes, and the write fails
        down(store)
        with pytest.raises(StoreUnavailable):
            await tick.tick_once()
        up(store)
        tick.forget()  # the lease went and came back; nobody ticked meanwhile
        await tick.resume()
        turns: list[list[CandleRecord]] = []
        original = tick.candles.due

        def due(*, everything: bool = False, closed_first: bool = True) -> Turn:
            turn = original(everything=everything, closed_first=closed_first)
            turns.append(turn.rows)
            return turn

        tick.candles.due = due  # type: ignore[method-assign]
        clock.advance(seconds=2)
        await tick.tick_once()
        (rows,) = [r for r in turns if r]
        keys = [(r.asset_id, r.interval, r.open_time) for r in rows]
        assert len(keys) == len(set(keys))  # PostgreSQL refuses a key twice in one upsert

    async def test_no_price_moves_while_a_gain_resumes_the_candles(self) -> None:
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC))
        tick, _, _ = await ticker(clock)
        await tick.resume()
        before = tick.catalog.by_id["BTC"].price_usd
        lead = tick.forget()
        with pytest.raises(NotFeedLeader):  # a sandbox admin's price, say
            await tick.apply({"BTC": Decimal(1)}, clock.now(), every_price=True)
        assert tick.catalog.by_id["BTC"].price_usd == before
        await tick.resume()
        tick.unblock(lead)
        await tick.apply({"BTC": Decimal(1)}, clock.now(), every_price=True)
        assert tick.catalog.by_id["BTC"].price_usd == Decimal(1)

    async def test_a_resume_begun_before_a_gain_does_not_count_for_it(self) -> None:
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC))
        tick, store, _ = await ticker(clock)
        earlier, opened = await resume_held(tick, store)  # a step's, after one that failed
        lead = tick.forget()  # the lease went and came back meanwhile
        opened.set()
        await earlier
        assert tick.own_candles() is None
        assert await tick.ready() is None  # the gain's own resume is still to come
        up(store)
        await tick.resume()
        tick.unblock(lead)
        assert tick.own_candles() is tick.candles

    async def test_a_tick_and_a_sandbox_request_at_once_resume_once(self) -> None:
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC))
        tick, _, _ = await ticker(clock)
        resumes = 0
        resume = tick.resume

        async def counted() -> None:
            nonlocal resumes
            resumes += 1
            await asyncio.sleep(0)  # as a store's read yields
            await resume()

        tick.resume = counted  # type: ignore[method-assign]
        assert None not in await asyncio.gather(tick.ready(), tick.ready())
        assert resumes == 1  # two would each make new candles: a tick between them is lost

    async def test_a_tick_that_a_gain_overtook_writes_no_candle(self) -> None:
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC))
        tick, store, _ = await ticker(clock)
        await tick.resume()
        moves = tick.candles.tick

        def moved_then_gained(*args: Any) -> None:
            moves(*args)
            tick.forget()  # the lease went and came back while the tick went on

        tick.candles.tick = moved_then_gained  # type: ignore[method-assign]
        await tick.tick_once()
        assert await stored_candles(store) == []

    async def test_a_gain_during_the_prices_write_keeps_the_candles_out(self) -> None:
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC))
        tick, store, _ = await ticker(clock)
        await tick.resume()
        units = store.unit_of_work

        def gaining() -> UnitOfWork:
            uow = units()
            commit = uow.commit

            async def committed_then_gained() -> None:
                await commit()
                tick.forget()  # the lease went and came back during the prices' write

            uow.commit = committed_then_gained  # type: ignore[method-assign]
            return uow

        store.unit_of_work = gaining  # type: ignore[method-assign]
        await tick.tick_once()
        up(store)
        assert await stored_candles(store) == []

    async def test_turns_land_in_the_order_they_were_made(self) -> None:
        """A sandbox admin's price while a tick's candles are being written: its turn waits
        for the tick's, which would otherwise land after it, over its newer minute."""
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC))
        tick, store, _ = await ticker(clock)
        await tick.resume()
        held = hold_the_next_candle_write(store)
        ticking = asyncio.create_task(tick.tick_once())
        await held.wait()
        clock.advance(seconds=1)
        await tick.apply({"BTC": Decimal(70_000)}, clock.now(), every_price=True)
        await ticking
        up(store)
        async with store.unit_of_work() as uow:
            minute = await uow.candles.list("BTC", "1m", limit=1)
        assert [candle.close for candle in minute] == [70_000]

    async def test_a_resume_reads_the_store_after_the_turn_in_flight(self) -> None:
        """A gain of the lease while a tick's candles are being written: the new lead's resume
        waits for them, or it would continue from the rows before them and write over them."""
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC))
        tick, store, _ = await ticker(clock)
        seen: list[Asset] = []  # BTC at each tick
        tick.listeners.append(lambda moved, _: seen.extend(a for a in moved if a.asset_id == "BTC"))
        await tick.resume()
        await tick.tick_once()
        held = hold_the_next_candle_write(store)
        clock.advance(seconds=1)
        ticking = asyncio.create_task(tick.tick_once())
        await held.wait()
        tick.forget()  # the lease went and came back while they were being written
        await tick.resume()
        await ticking
        up(store)
        clock.advance(seconds=1)
        await tick.tick_once()
        await tick.flush()
        async with store.unit_of_work() as uow:
            (minute,) = await uow.candles.list("BTC", "1m", limit=1)
        assert len(seen) == 3
        assert minute.volume == sum(tick_volume(btc, 1) for btc in seen) / Decimal(100)

    @pytest.mark.parametrize("overtaken", ["gain", "gain, resumed", "loss"])
    async def test_a_tick_that_a_gain_or_a_loss_overtook_in_its_move_writes_nothing(
        self, overtaken: str
    ) -> None:
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC))
        tick, store, _ = await ticker(clock)
        await tick.resume()
        move = tick.catalog.move

        async def overtaking(*args: Any, **kwargs: Any) -> list[Asset]:
            if overtaken.startswith("gain"):
                tick.forget()  # the lease went and came back during the move
            else:
                tick.leading = lambda: False  # another process leads now
            if overtaken == "gain, resumed":
                await tick.resume()  # and the new lead's candles are the store's already
            return await move(*args, **kwargs)

        tick.catalog.move = overtaking  # type: ignore[method-assign]
        before = await stored_price(store)
        await tick.tick_once()
        assert await stored_candles(store) == []
        assert await stored_price(store) == before
        assert tick.candles.current("BTC", Interval.MINUTE) is None  # and no candle moved

    async def test_an_asset_added_during_a_resume_does_not_fail_it(self) -> None:
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC))
        tick, store, _ = await ticker(clock)
        resuming, opened = await resume_held(tick, store)
        btc = tick.catalog.by_id["BTC"]
        tick.catalog.put(replace(btc, asset_id="NEWC", symbol="newc", name="New Coin"))
        opened.set()
        await resuming
        assert tick.own_candles() is tick.candles

    async def test_a_process_that_lost_the_lease_writes_nothing_on_stop(self) -> None:
        clock = FixedClock(datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC))
        tick, store, _ = await ticker(clock)
        tick.candles.assets_per_write = 10  # the packaged 101 assets take turns
        await tick.resume()
        await tick.tick_once()
        before = await stored_candles(store)
        tick.leading = lambda: False  # another process leads now, and writes
        await tick.stop()
        assert await stored_candles(store) == before


async def stored_candles(store: MemoryStore) -> list[CandleRecord]:
    async with store.unit_of_work() as uow:
        return [c for a in SNAPSHOT_IDS for c in await uow.candles.list(a, "1h", limit=10)]


async def stored_price(store: MemoryStore) -> Decimal:
    async with store.unit_of_work() as uow:
        btc = await uow.assets.get("BTC")
    assert btc is not None
    return btc.price


SNAPSHOT_IDS = [asset.asset_id for asset in load_snapshot()]


async def resume_held(
    tick: PriceTicker, store: MemoryStore
) -> tuple[asyncio.Task[None], asyncio.Event]:
    """A resume begun, its reads of the store held until the event is set."""
    opened = asyncio.Event()
    reads = store.unit_of_work
    store.unit_of_work = lambda: Gated(reads(), opened)  # type: ignore[method-assign]
    resuming = asyncio.create_task(tick.resume())
    await asyncio.sleep(0)
    return resuming, opened


class Gated:
    """A unit of work whose candle reads wait for `opened`."""

    def __init__(self, uow: UnitOfWork, opened: asyncio.Event) -> None:
        self.uow, self.opened = uow, opened

    async def __aenter__(self) -> Gated:
        self.inner = await self.uow.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.uow.__aexit__(*exc)  # type: ignore[arg-type]

    @property
    def candles(self) -> Gated:
        return self

    async def list(self, *args: object, **kwargs: object) -> list[CandleRecord]:
        await self.opened.wait()
        return await self.inner.candles.list(*args, **kwargs)  # type: ignore[arg-type]


def down(store: MemoryStore) -> None:
    def refused() -> UnitOfWork:
        raise StoreUnavailable("the store is down")

    store.unit_of_work = refused  # type: ignore[method-assign]


def hold_the_next_candle_write(store: MemoryStore) -> asyncio.Event:
    """The store takes 50 ms over the next unit that writes candles (a tick's); the event is
    set as it begins. `up` ends it."""
    units, held = store.unit_of_work, asyncio.Event()

    def holding() -> UnitOfWork:
        uow = units()
        upsert, commit, candles = uow.candles.upsert, uow.commit, []

        def upserting(rows: list[CandleRecord]) -> None:
            candles.extend(rows)
            upsert(rows)

        async def slow_candles() -> None:
            if candles and not held.is_set():
                held.set()
                await asyncio.sleep(0.05)
            await commit()

        uow.candles.upsert = upserting  # type: ignore[method-assign]
        uow.commit = slow_candles  # type: ignore[method-assign]
        return uow

    store.unit_of_work = holding  # type: ignore[method-assign]
    return held


def up(store: MemoryStore) -> None:
    del store.unit_of_work


class TestTickVolumes:
    def test_each_is_tick_volume_and_follows_a_changed_24h_volume(self) -> None:
        assets = [a for a in load_snapshot() if a.total_volume_24h][:20]
        volumes = TickVolumes(2.0)
        expected = [(a.asset_id, a.price_usd, tick_volume(a, 2.0)) for a in assets]
        assert list(volumes.of(assets)) == expected
        assert all(cents > 0 for _, _, cents in expected)
        doubled = [replace(a, total_volume_24h=a.total_volume_24h * 2) for a in assets]
        again = list(volumes.of(doubled))
        assert again == [(a.asset_id, a.price_usd, tick_volume(a, 2.0)) for a in doubled]
        assert all(
            2 * old - 1 <= new <= 2 * old + 1
            for (*_, old), (*_, new) in zip(expected, again, strict=True)
        )
