"""The orders service's composition root: its parts (`OrdersParts`, built on a process's core
and a price source by `build_orders`), and the service on its own (`create_app`: orders,
portfolio, the asset ledger, reconcile), whose prices come from the store (`StoredPrices`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from fastapi import FastAPI

from orderproc.common.clock import Clock
from orderproc.common.prices import PriceCache, PriceSource, StoredPrices
from orderproc.common.runtime import Core, open_core, parts_of
from orderproc.common.service_app import service_app
from orderproc.common.settings import Settings
from orderproc.orders import api
from orderproc.orders.domain import TradingRules
from orderproc.orders.service import OrderDeps


@dataclass(kw_only=True, eq=False)
class OrdersParts:
    orders: OrderDeps


def build_orders(core: Core, *, prices: PriceSource) -> OrdersParts:
    """The orders use cases' collaborators; `prices` is wherever this process learns prices
    (inventory's cache when embedded, `StoredPrices` on its own)."""
    settings = core.settings
    return OrdersParts(
        orders=OrderDeps(
            store=core.store,
            locker=core.locker,
            clock=core.clock,
            prices=prices,
            rules=TradingRules(
                fee_bps=settings.order_fee_bps,
                slippage_bps=settings.order_slippage_bps,
                min_notional=settings.min_order_notional,
                max_notional=settings.max_order_notional,
            ),
            stale_after=timedelta(seconds=settings.price_stale_seconds),
            lock_timeout=settings.lock_timeout_seconds,
            idempotency_ttl=timedelta(seconds=settings.idempotency_ttl_seconds),
            money=core.metrics.money,
        )
    )


@dataclass(kw_only=True, eq=False)
class OrdersProcess(Core, OrdersParts):
    """The orders service's process: its core, its parts, and its price cache with what fills
    it."""

    prices: PriceCache
    price_updates: StoredPrices

    async def start(self) -> None:
        await self.price_updates.start()

    async def close(self) -> None:
        await self.price_updates.stop()
        await self.close_core()


async def build_orders_process(settings: Settings, *, clock: Clock | None = None) -> OrdersProcess:
    core = await open_core(settings, clock=clock, service="orders")
    prices = PriceCache()
    core.metrics.watch_prices(prices.newest, core.clock.now)
    updates = StoredPrices(store=core.store, cache=prices, interval=settings.price_tick_seconds)
    return OrdersProcess(
        **parts_of(core),
        **parts_of(build_orders(core, prices=prices)),
        prices=prices,
        price_updates=updates,
    )


def _satisfies(runtime: OrdersProcess) -> api.OrdersRuntime:
    return runtime  # mypy checks the runtime against what the API module declares


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    """The orders service alone, on its own port (`orderproc serve orders`)."""
    return service_app(
        "orders",
        settings,
        build=lambda: build_orders_process(settings, clock=clock),
        routers=api.routers,
    )
