"""The inventory service's composition root: its parts (`InventoryParts`, built on a process's
core by `build_inventory`), and the service on its own (`create_app`: the catalog, candles,
asset administration and the price feed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from fastapi import FastAPI

from orderproc.common.clock import Clock
from orderproc.common.prices import PriceCache
from orderproc.common.runtime import Core, open_core, parts_of
from orderproc.common.service_app import service_app
from orderproc.common.settings import Settings
from orderproc.inventory import api
from orderproc.inventory.cache import CatalogResponseCache
from orderproc.inventory.pricefeed import CoinGeckoFeed, PriceFeed, SimulatedFeed, coingecko_ids
from orderproc.inventory.service import (
    Catalog,
    PriceTicker,
    Retention,
    load_catalog,
    seed_catalog,
)


@dataclass(kw_only=True, eq=False)
class InventoryParts:
    prices: PriceCache  # the catalog's quotes, which it replaces on every change
    catalog: Catalog
    feed: PriceFeed
    ticker: PriceTicker

    async def start_inventory(self, settings: Settings) -> None:
        """The price ticker, unless the feed is off."""
        if settings.price_feed != "off":
            await self.ticker.resume()
            # Stored prices are as old as the last run: move them once before serving, so
            # trading does not refuse stale prices until the first tick.
            await self.ticker.tick_once()
            self.ticker.start()

    async def stop_inventory(self) -> None:
        await self.ticker.stop()
        if isinstance(self.feed, CoinGeckoFeed):
            await self.feed.aclose()


async def build_inventory(core: Core) -> InventoryParts:
    """Seeds the packaged catalog's missing assets, loads the catalog, and watches its prices'
    age in the metrics."""
    settings = core.settings
    await seed_catalog(core.store)
    prices = PriceCache()
    catalog = await load_catalog(core.store, prices)
    feed = price_feed(settings, catalog)
    core.metrics.watch_prices(prices.newest, core.clock.now)
    return InventoryParts(
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
        ),
    )


def price_feed(settings: Settings, catalog: Catalog) -> PriceFeed:
    if settings.price_feed == "coingecko":
        key = settings.coingecko_api_key
        return CoinGeckoFeed(
            coingecko_ids(catalog.assets()),
            api_key=key.get_secret_value() if key else None,
            plan=settings.coingecko_plan,
        )
    return SimulatedFeed.from_assets(catalog.assets(), seed=settings.price_seed)


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
        routers=api.routers,
        middleware=[lambda app: app.add_middleware(CatalogResponseCache, state=app.state)],
    )
