"""How the orders service on its own learns prices: `StoredPrices` reads the asset rows the
inventory service writes each tick into a `PriceCache`, the same cache orders read when
embedded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orderproc.common.clock import FixedClock
from orderproc.common.prices import PriceCache, StoredPrices
from orderproc.common.storage.memory import MemoryStore
from orderproc.inventory.pricefeed import SimulatedFeed
from orderproc.inventory.service import PriceTicker, Retention, load_catalog, seed_catalog

RETENTION = Retention(minute=timedelta(minutes=10), hour=timedelta(days=1), day=timedelta(days=30))


async def test_the_cache_follows_the_stored_prices_tick_by_tick() -> None:
    store = MemoryStore()
    await seed_catalog(store)
    inventory_prices = PriceCache()  # the inventory service's own, in its process
    catalog = await load_catalog(store, inventory_prices)
    clock = FixedClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    ticker = PriceTicker(
        feed=SimulatedFeed.from_assets(catalog.assets(), seed=3),
        catalog=catalog,
        store=store,
        clock=clock,
        interval=1,
        retention=RETENTION,
    )
    orders_prices = PriceCache()  # the orders service's, in another process
    stored = StoredPrices(store=store, cache=orders_prices, interval=1)

    await stored.refresh()
    before = orders_prices.quote("BTC")
    assert before is not None
    assert before == inventory_prices.quote("BTC")

    clock.advance(seconds=2)
    assert await ticker.tick_once() > 0
    assert orders_prices.quote("BTC") == before  # not until the next refresh
    await stored.refresh()
    after = orders_prices.quote("BTC")
    assert after == inventory_prices.quote("BTC")
    assert after is not None
    assert after.as_of > before.as_of
    assert orders_prices.newest() == inventory_prices.newest()
    assert orders_prices.quote("NOPE") is None


async def test_start_fills_the_cache_before_serving_and_stop_ends_the_loop() -> None:
    store = MemoryStore()
    await seed_catalog(store)
    cache = PriceCache()
    stored = StoredPrices(store=store, cache=cache, interval=3600)
    await stored.start()
    try:
        assert cache.quote("ETH") is not None
    finally:
        await stored.stop()
