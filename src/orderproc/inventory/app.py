"""The inventory service's composition root: its parts (`InventoryParts`, built on a process's
core by `build_inventory`), and the service on its own (`create_app`: the catalog, candles,
asset administration and the price feed)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

from fastapi import FastAPI

from orderproc.common.clock import Clock
from orderproc.common.periodic import Periodic, cancel_and_wait
from orderproc.common.price_fanout import FeedLease, PriceFollower, PricePublisher
from orderproc.common.price_stream import PriceStreamHub
from orderproc.common.prices import PriceCache, Quote
from orderproc.common.redis_shared import SharedRedis, redis_client
from orderproc.common.runtime import Core, open_core, parts_of
from orderproc.common.service_app import service_app
from orderproc.common.settings import Settings
from orderproc.inventory import api, sandbox
from orderproc.inventory.cache import CatalogResponseCache
from orderproc.inventory.candles import Interval
from orderproc.inventory.domain import Asset
from orderproc.inventory.history import History, history_for
from orderproc.inventory.pricefeed import CoinGeckoFeed, PriceFeed, SimulatedFeed, coingecko_ids
from orderproc.inventory.service import (
    INTERVALS,
    Catalog,
    PriceTicker,
    Retention,
    from_record,
    load_catalog,
    seed_catalog,
    store_records,
)

log = logging.getLogger("orderproc.inventory")


def _logs_failure(what: str) -> Callable[[asyncio.Task[None]], None]:
    """A background task's done-callback: if it failed, "`what` failed" is logged. (A failed
    take-over is resumed by the next tick; an asset a failed reload missed stays as this
    process knew it until the next change announced, or a restart.)"""

    def ended(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", what, exc_info=task.exception())

    return ended


@dataclass(kw_only=True, eq=False)
class InventoryParts:
    prices: PriceCache  # the catalog's quotes, which it replaces on every change
    catalog: Catalog
    feed: PriceFeed
    ticker: PriceTicker
    price_stream: PriceStreamHub  # the price streams' ticks, rendered once (JSON and HTML)
    # With Redis: one process leads the feed (ticks, writes and publishes prices); the others
    # follow its ticks (common/price_fanout.py). Without Redis, none of these exist.
    lease: FeedLease | None = None
    publisher: PricePublisher | None = None
    follower: PriceFollower | None = None
    history: History | None = None  # candles for assets without any (inventory/history.py)
    hours: Periodic | None = None  # the 24 h windows' hourly read of the store
    _reloading: bool = False  # putting an asset another process announced: not announced again
    _reloads: set[asyncio.Task[None]] = field(default_factory=set)
    _taking_over: asyncio.Task[None] | None = None  # the last gain of the lease's (`take_over`)
    _stopping: bool = False  # a gain of the lease now starts no take-over

    async def start_inventory(self, settings: Settings) -> None:
        """The 24 h windows from the stored hours; the price ticker, unless the feed is off;
        with Redis, only while leading."""
        await self.catalog.load_hours(self.ticker.store)
        if self.hours is not None:
            self.hours.start()
        if settings.price_feed == "off":
            return
        if self.lease is not None:
            self.ticker.leading = lambda: self.lease is not None and self.lease.leader
            # Given here, not when the parts are built: the process's runtime copies their
            # fields (`parts_of`), and the take-over keeps its task on the object start-up
            # and stop look at.
            self.lease.on_lead = self.take_over
            await self.lease.start()
            if self.history is not None:
                self.history.leading = self.ticker.leading
            # The claims' take-overs are done before start-up's own (one a later gain
            # cancelled is done too, and its successor waited for).
            while (taking_over := self._taking_over) is not None and not taking_over.done():
                await asyncio.wait([taking_over])
        if self.follower is not None:
            await self.follower.start()
        if self.lease is None or self.lease.leader:
            if self.history is not None:  # before the first tick, which continues its candles
                await self.history.prepare(self.catalog.assets(), self.ticker.clock.now())
            await self.ticker.resume()
            # Stored prices are as old as the last run: move them once before serving, so
            # trading does not refuse stale prices until the first tick (unless a sandbox
            # admin paused them: frozen prices are never stale).
            if not self.catalog.paused and await self.ticker.ready() is not None:
                await self.ticker.tick_once()
            if self.history is not None:
                self.history.start()
        if self.history is not None:  # no await since the role was read: a gain is later
            self.history.started = True
        self.ticker.start()

    async def hourly(self) -> None:
        await self.catalog.load_hours(self.ticker.store)
        if self.ticker.leading():
            await store_records(self.ticker.store, self.catalog)

    async def stop_inventory(self) -> None:
        self.price_stream.close()
        self._stopping = True  # the lease is handed back last, after the ticker's flush
        running = list(self._reloads)  # another process's asset: its row is the store's
        if self._taking_over is not None:
            running.append(self._taking_over)
        await cancel_and_wait(*running)
        if self.history is not None:
            await self.history.stop()
        if self.hours is not None:
            await self.hours.stop()
        await self.ticker.stop()
        if self.ticker.leading():  # before the lease is handed back
            try:
                await store_records(self.ticker.store, self.catalog)
            except Exception:  # stopping goes on; the rows keep the all-time range they had
                log.warning("the all-time highs and lows could not be written", exc_info=True)
        for part in (self.follower, self.lease, self.publisher):
            if part is not None:
                await part.stop()
        if isinstance(self.feed, CoinGeckoFeed):
            await self.feed.aclose()

    def take_over(self) -> asyncio.Task[None] | None:
        """This process now leads (`FeedLease`'s `on_lead`): nothing of an earlier lead ticks
        from now on (`PriceTicker.forget`), and the rest runs in a task of its own, so that the
        lease is renewed meanwhile (a take-over can outlast its time to live). The task ticks
        on from the prices this process followed and continues the current candles from the
        store. After start-up (whose own backfill the leader it finds runs), it also backfills
        the assets that lack history now, as a start does: the last leader died before it
        finished, or they were added while this process followed. A gain that comes while an
        earlier take-over still runs cancels that one. While stopping, a gain starts none (and
        what this process kept of its earlier lead is written by no one)."""
        lead = self.ticker.forget()
        if self._stopping:
            return None
        if self._taking_over is not None:
            self._taking_over.cancel()
        task = asyncio.get_running_loop().create_task(self._take_over(lead))
        task.add_done_callback(_logs_failure("taking the price feed over"))
        self._taking_over = task
        return task

    async def _take_over(self, lead: int) -> None:
        try:
            if isinstance(self.feed, SimulatedFeed):
                self.feed.continue_from({a.asset_id: a.price_usd for a in self.catalog.assets()})
            history = self.history if self.history is not None and self.history.started else None
            if history is not None:  # before `resume`, which continues the current candles
                now = self.ticker.clock.now()
                if await history.prepare_on_gain(self.catalog.assets(), now):
                    self.ticker.after_resume(lead, history.start)  # or the next tick's
            await self.ticker.resume()
        finally:
            self.ticker.unblock(lead)  # resumed, or the next tick resumes first

    def backfill_added(self, asset: Asset) -> None:
        """A catalog watcher: an asset added or re-activated after start-up, while this process
        leads the feed, gets the history it lacks (`History.add`)."""
        history = self.history
        if history is not None and history.started and asset.is_active and self.ticker.leading():
            history.add(asset, self.ticker.clock.now())

    def announce(self, asset: Asset) -> None:
        """A catalog watcher: an asset this process's admin added or changed is announced to
        the other inventory processes, which reload it (`reload`)."""
        if self.publisher is not None and not self._reloading:
            self.publisher.asset_changed(asset.asset_id)

    def reload_soon(self, asset_id: str) -> None:
        if self._stopping:
            return
        task = asyncio.get_running_loop().create_task(self.reload(asset_id))
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)
        task.add_done_callback(_logs_failure("reloading an asset another process changed"))

    async def reload(self, asset_id: str) -> None:
        """Another process's admin added or changed the asset: take its row from the store
        (the catalog's watchers then start or stop pricing it)."""
        assert self.follower is not None
        async with self.follower.store.unit_of_work() as uow:
            record = await uow.assets.get(asset_id)
        if record is None:
            return
        self._reloading = True
        try:
            self.catalog.put(from_record(record))
        finally:
            self._reloading = False

    def follow(self, quotes: list[Quote], full: bool) -> None:
        """Another process's tick (or the store's prices): moves the catalog, unless this
        process leads."""
        if self.lease is not None and self.lease.leader:
            return
        by_moment: dict[datetime, dict[str, Decimal]] = {}
        known = self.catalog.by_id
        for quote in quotes:
            asset = known.get(quote.asset_id)
            if asset is not None and quote.as_of > asset.last_updated:
                by_moment.setdefault(quote.as_of, {})[quote.asset_id] = quote.price
        for moment in sorted(by_moment):
            moved = self.catalog.apply_prices(by_moment[moment], moment)
            self.price_stream.publish(moved, moment)


async def build_inventory(core: Core) -> InventoryParts:
    """Seeds the packaged catalog's missing assets, loads the catalog, and watches its prices'
    age in the metrics."""
    settings = core.settings
    await seed_catalog(core.store)
    prices = PriceCache()
    catalog = await load_catalog(core.store, prices, now=core.clock.now())
    if not settings.sandbox:
        await sandbox.thaw(core.store, catalog)
    feed = price_feed(settings, catalog)
    core.metrics.watch_prices(prices.newest, core.clock.now)
    hub = PriceStreamHub(
        assets=catalog.assets,
        resume_ticks=settings.stream_resume_ticks,
        heartbeat_seconds=settings.stream_heartbeat_seconds,
        per_user=settings.stream_connections_per_user,
        per_address=settings.stream_connections_per_address,
    )
    parts = InventoryParts(
        prices=prices,
        catalog=catalog,
        feed=feed,
        ticker=PriceTicker(
            feed=feed,
            catalog=catalog,
            store=core.store,
            clock=core.clock,
            interval=settings.price_tick_seconds,
            retention=Retention(
                minute=timedelta(hours=settings.candle_retention_1m_hours),
                hour=timedelta(days=settings.candle_retention_1h_days),
                day=timedelta(days=settings.candle_retention_1d_days),
            ),
            # A process reading the store's prices (its channel down) finds them fresh.
            max_lag=settings.price_stale_seconds / 2,
        ),
        price_stream=hub,
    )
    parts.ticker.listeners.append(hub.publish)
    keep = {interval: parts.ticker.retention.of(interval) for interval in INTERVALS}
    parts.history = history_for(settings, store=core.store, feed=feed, keep=keep)
    if parts.history is not None:
        parts.history.written = partial(catalog.load_hours, core.store)
    # Every hour, the 24 h windows read the hours in the store again (a process following the
    # feed's leader counts the hours the leader ticked and backfilled: inventory/day_window.py),
    # and the leader stores the all-time highs and lows that moved.
    parts.hours = Periodic(
        "24 h windows", interval=Interval.HOUR.length.total_seconds(), step=parts.hourly, log=log
    )
    catalog.watchers.append(parts.backfill_added)
    if settings.redis_url is not None and settings.price_feed != "off":
        holder = f"inventory-{secrets.token_hex(6)}"
        parts.lease = FeedLease(
            SharedRedis.from_settings(settings, "lease", metrics=core.metrics),
            ttl=settings.feed_lease_seconds,
            holder=holder,
        )
        parts.publisher = PricePublisher(
            SharedRedis.from_settings(settings, "prices", metrics=core.metrics),
            prices,
            source=holder,
        )
        parts.ticker.listeners.append(parts.publisher.on_tick)
        catalog.watchers.append(parts.announce)
        parts.follower = PriceFollower(
            store=core.store,
            apply=parts.follow,
            interval=settings.price_tick_seconds,
            redis=redis_client(settings),
            ignore=holder,
        )
        parts.follower.on_asset = parts.reload_soon
        lease = parts.lease
        parts.follower.wanted = lambda: not lease.leader  # the leader prices; it reads nothing
    return parts


def price_feed(settings: Settings, catalog: Catalog) -> PriceFeed:
    active = [asset for asset in catalog.assets() if asset.is_active]  # inactive ones stay put
    if settings.price_feed == "coingecko":
        key = settings.coingecko_api_key
        return CoinGeckoFeed(
            coingecko_ids(active),
            api_key=key.get_secret_value() if key else None,
            plan=settings.coingecko_plan,
        )
    return SimulatedFeed.from_assets(active, seed=settings.price_seed)


@dataclass(kw_only=True, eq=False)
class InventoryProcess(Core, InventoryParts):
    """The inventory service's process: its core and its own parts, nothing else."""

    async def start(self) -> None:
        await self.start_inventory(self.settings)

    async def close(self) -> None:
        await self.stop_inventory()
        await self.close_core()


async def build_inventory_process(
    settings: Settings, *, clock: Clock | None = None
) -> InventoryProcess:
    core = await open_core(settings, clock=clock, service="inventory")
    return InventoryProcess(**parts_of(core), **parts_of(await build_inventory(core)))


def _satisfies(runtime: InventoryProcess) -> api.InventoryRuntime:
    return runtime  # mypy checks the runtime against what the API module declares


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    """The inventory service alone, on its own port (`orderproc serve inventory`)."""
    return service_app(
        "inventory",
        settings,
        build=lambda: build_inventory_process(settings, clock=clock),
        routers=(*api.routers, *api.sandbox_routers(settings)),
        middleware=[lambda app: app.add_middleware(CatalogResponseCache, state=app.state)],
    )
