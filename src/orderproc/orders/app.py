"""The orders service's composition root: its parts (`OrdersParts`, built on a process's core
and a price source by `build_orders`), and the service on its own (`create_app`: orders,
portfolio, the asset ledger, reconcile), whose prices come from inventory's ticks over Redis,
and from the store when those are silent (`PriceFollower`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from fastapi import FastAPI

from orderproc.common.clock import Clock
from orderproc.common.price_fanout import PriceFollower
from orderproc.common.prices import PriceCache, PriceSource
from orderproc.common.redis_shared import redis_client
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
    (inventory's cache when embedded, a `PriceFollower`'s on its own)."""
    settings = core.settings
    return OrdersParts(
        orders=OrderDeps(
            store=core.store,
            locker=core.locker,
            clock=core.clock,
            prices=prices,
            rules=TradingRules(
                taker_fee_bps=settings.taker_fee_bps,
                maker_fee_bps=settings.maker_fee_bps,
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
    price_updates: PriceFollower

    async def start(self) -> None:
        await self.price_updates.start()

    async def close(self) -> None:
        await self.price_updates.stop()
        await self.close_core()


async def build_orders_process(settings: Settings, *, clock: Clock | None = None) -> OrdersProcess:
    core = await open_core(settings, clock=clock, service="orders")
    prices = PriceCache()
    core.metrics.watch_prices(prices.newest, core.clock.now)
    updates = PriceFollower(
        store=core.store,
        apply=lambda quotes, full: prices.merge(quotes, full=full),
        interval=settings.price_tick_seconds,
        redis=redis_client(settings) if settings.redis_url else None,
    )
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
