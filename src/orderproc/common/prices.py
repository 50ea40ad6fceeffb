"""The price port: what orders read prices through. Inventory implements it with an in-memory
cache fed by its ticks (in process); an orders service on its own fills the same cache from the
store's asset rows, which inventory writes each tick (`StoredPrices`), until ticks come over
Redis pub/sub: a `PriceCache` is all orders see, whatever fills it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from orderproc.common.periodic import Periodic
from orderproc.common.storage.ports import Store

log = logging.getLogger("orderproc.prices")


@dataclass(frozen=True, slots=True)
class Quote:
    asset_id: str
    name: str
    price: Decimal
    as_of: datetime
    is_active: bool


class PriceSource(Protocol):
    def quote(self, asset_id: str) -> Quote | None:
        """The latest known price of the asset, or None for an unknown asset."""


class PriceCache:
    """Quotes by asset id, replaced whole on each tick (readers never see half a tick)."""

    def __init__(self) -> None:
        self._quotes: dict[str, Quote] = {}

    def quote(self, asset_id: str) -> Quote | None:
        return self._quotes.get(asset_id)

    def newest(self) -> datetime | None:
        """When the newest price was set (by the last tick that moved one); None if none is."""
        return max((quote.as_of for quote in self._quotes.values()), default=None)

    def publish(self, quotes: dict[str, Quote]) -> None:
        self._quotes = quotes


class StoredPrices:
    """Fills `cache` with the store's prices every `interval` seconds (the assets table, which
    the inventory service writes on each tick)."""

    def __init__(self, *, store: Store, cache: PriceCache, interval: float) -> None:
        self.store, self.cache = store, cache
        self._loop = Periodic("price refresh", interval=interval, step=self.refresh, log=log)

    async def refresh(self) -> None:
        async with self.store.unit_of_work() as uow:
            records = await uow.assets.list_all()
        self.cache.publish(
            {
                r.asset_id: Quote(r.asset_id, r.name, r.price, r.price_updated_at, r.is_active)
                for r in records
            }
        )

    async def start(self) -> None:
        """One refresh now (so the first orders find prices), then one every interval."""
        await self.refresh()
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
