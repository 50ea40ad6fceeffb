"""The runtime: every long-lived collaborator of a process, built once by the composition root
(`orderproc.gateway.app` or a service's own app) and kept in `app.state.runtime`."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from orderproc.common.clock import Clock, SystemClock
from orderproc.common.locking import InProcessLocker, Locker
from orderproc.common.login_throttle import (
    DisabledLoginThrottle,
    InMemoryLoginThrottle,
    LoginThrottle,
)
from orderproc.common.metrics import Metrics
from orderproc.common.money import to_cents
from orderproc.common.paging import CursorCodec
from orderproc.common.prices import PriceCache
from orderproc.common.purge import Purger
from orderproc.common.redis_locking import RedisLocker
from orderproc.common.security.devices import DeviceCookies
from orderproc.common.security.passwords import PasswordHasher
from orderproc.common.security.revocation import RevocationChecker
from orderproc.common.security.tokens import TokenService
from orderproc.common.settings import Settings
from orderproc.common.storage.factory import open_store
from orderproc.common.storage.ports import Store
from orderproc.common.throttle import RateLimiter
from orderproc.inventory.pricefeed import CoinGeckoFeed, PriceFeed, SimulatedFeed, coingecko_ids
from orderproc.inventory.service import (
    Catalog,
    PriceTicker,
    Retention,
    load_catalog,
    seed_catalog,
)
from orderproc.orders.domain import TradingRules
from orderproc.orders.service import OrderDeps
from orderproc.users.cash import CashDeps
from orderproc.users.domain import CashRules
from orderproc.users.service import UsersDeps


@dataclass
class Runtime:
    settings: Settings
    store: Store
    locker: Locker
    clock: Clock
    hasher: PasswordHasher
    tokens: TokenService
    revocations: RevocationChecker
    login_throttle: LoginThrottle
    devices: DeviceCookies
    rate_limiter: RateLimiter
    metrics: Metrics
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def users(self) -> UsersDeps:
        return self.extras["users"]  # type: ignore[no-any-return]

    @property
    def cash(self) -> CashDeps:
        return self.extras["cash"]  # type: ignore[no-any-return]

    @property
    def cursors(self) -> CursorCodec:
        """Signs and checks list cursors (`common/paging.py`)."""
        return self.extras["cursors"]  # type: ignore[no-any-return]

    @property
    def catalog(self) -> Catalog:
        return self.extras["catalog"]  # type: ignore[no-any-return]

    @property
    def prices(self) -> PriceCache:
        return self.extras["prices"]  # type: ignore[no-any-return]

    @property
    def orders(self) -> OrderDeps:
        return self.extras["orders"]  # type: ignore[no-any-return]

    @property
    def ticker(self) -> PriceTicker:
        return self.extras["ticker"]  # type: ignore[no-any-return]

    @property
    def purger(self) -> Purger:
        return self.extras["purger"]  # type: ignore[no-any-return]

    async def start_background(self) -> None:
        """Start what runs on its own: the purge of expired idempotency records and revocations
        (unless its interval is 0) and the price ticker (unless the feed is off)."""
        self.purger.start()
        if self.settings.price_feed != "off":
            await self.ticker.resume()
            # Stored prices are as old as the last run: move them once before serving, so
            # trading does not refuse stale prices until the first tick.
            await self.ticker.tick_once()
            self.ticker.start()

    async def close(self) -> None:
        await self.purger.stop()
        await self.ticker.stop()
        if isinstance(self.locker, RedisLocker):
            await self.locker.close()
        feed = self.extras.get("feed")
        if isinstance(feed, CoinGeckoFeed):
            await feed.aclose()
        self.hasher.close()
        await self.store.close()


def jwt_secret_for(settings: Settings) -> str:
    """The configured secret; embedded mode makes one on first start and keeps it in the
    data dir (mode 0600), so tokens survive a restart."""
    if settings.jwt_secret is not None or settings.mode != "embedded":
        return settings.require_strong_secret()
    path = Path(settings.data_dir) / "jwt_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


async def build_runtime(
    settings: Settings, *, clock: Clock | None = None, service: str = "orderproc"
) -> Runtime:
    clock = clock or SystemClock()
    secret = jwt_secret_for(settings)
    store = open_store(
        settings.resolved_database_url,
        pool_size=settings.database_pool_size,
        timeout_seconds=settings.database_timeout_seconds,
    )
    await store.migrate()
    metrics = Metrics(service)
    runtime = Runtime(
        settings=settings,
        store=store,
        locker=_locker(settings, metrics),
        clock=clock,
        hasher=PasswordHasher(
            settings.password_hash_profile,
            workers=settings.password_hash_workers,
            queue=settings.password_hash_queue,
        ),
        tokens=TokenService(
            secret=secret,
            algorithm=settings.jwt_algorithm,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=settings.access_token_ttl_seconds,
            clock=clock,
        ),
        revocations=RevocationChecker(store, cache_seconds=settings.revocation_cache_seconds),
        login_throttle=_login_throttle(settings, clock),
        devices=DeviceCookies(
            secret=secret,
            max_age_seconds=settings.login_device_cookie_days * 86400,
            clock=lambda: clock.now().timestamp(),
        ),
        rate_limiter=RateLimiter(per_minute=settings.rate_limit_per_minute),
        metrics=metrics,
    )
    runtime.extras["cursors"] = CursorCodec(secret)
    runtime.extras["users"] = UsersDeps(
        store,
        runtime.hasher,
        runtime.tokens,
        runtime.revocations,
        clock,
        runtime.login_throttle,
        runtime.devices,
    )
    runtime.extras["cash"] = CashDeps(
        store=store,
        locker=runtime.locker,
        clock=clock,
        rules=CashRules(
            max_amount_cents=to_cents(settings.max_cash_amount),
            daily_limit_cents={
                "deposit": to_cents(settings.deposit_daily_limit),
                "withdraw": to_cents(settings.withdraw_daily_limit),
            },
        ),
        lock_timeout=settings.lock_timeout_seconds,
        idempotency_ttl=timedelta(seconds=settings.idempotency_ttl_seconds),
        money=metrics.money,
    )
    runtime.extras["purger"] = Purger(
        store=store,
        clock=clock,
        interval=settings.purge_interval_seconds,
        batch=settings.purge_batch_size,
    )
    await _build_inventory(runtime)
    metrics.watch_prices(runtime.prices.newest, clock.now)
    runtime.extras["orders"] = OrderDeps(
        store=store,
        locker=runtime.locker,
        clock=clock,
        prices=runtime.prices,
        rules=TradingRules(
            fee_bps=settings.order_fee_bps,
            slippage_bps=settings.order_slippage_bps,
            min_notional=settings.min_order_notional,
            max_notional=settings.max_order_notional,
        ),
        stale_after=timedelta(seconds=settings.price_stale_seconds),
        lock_timeout=settings.lock_timeout_seconds,
        idempotency_ttl=timedelta(seconds=settings.idempotency_ttl_seconds),
        money=metrics.money,
    )
    return runtime


def _login_throttle(settings: Settings, clock: Clock) -> LoginThrottle:
    """Failed-password counters in this process's memory (a Redis adapter of the same port
    comes with distributed mode)."""
    if not settings.login_block_enabled:
        return DisabledLoginThrottle()
    return InMemoryLoginThrottle(
        pair_limit=settings.login_pair_failure_limit,
        user_limit=settings.login_user_failure_limit,
        address_limit=settings.login_failure_limit,
        window=settings.login_failure_window_seconds,
        user_window=settings.login_user_failure_window_seconds,
        block_seconds=settings.login_block_seconds,
        clock=lambda: clock.now().timestamp(),
    )


def _locker(settings: Settings, metrics: Metrics) -> Locker:
    """In-process alone when embedded; with Redis configured, a Redis lock behind a
    per-process one, so every process of the platform shares each user's lock."""
    if not settings.redis_url:
        return InProcessLocker(waits=metrics.lock_waits)
    client = aioredis.from_url(settings.redis_url, socket_timeout=0.25, socket_connect_timeout=0.25)
    locker = RedisLocker(client, local=InProcessLocker(), waits=metrics.lock_waits)
    metrics.watch_breaker("redis_lock", locker.breaker)
    return locker


async def _build_inventory(runtime: Runtime) -> None:
    settings = runtime.settings
    await seed_catalog(runtime.store)
    prices = PriceCache()
    catalog = await load_catalog(runtime.store, prices)
    feed = _price_feed(settings, catalog)
    runtime.extras.update(prices=prices, catalog=catalog, feed=feed)
    runtime.extras["ticker"] = PriceTicker(
        feed=feed,
        catalog=catalog,
        store=runtime.store,
        clock=runtime.clock,
        interval=settings.price_tick_seconds,
        retention=Retention(
            minute=timedelta(hours=settings.candle_retention_1m_hours),
            hour=timedelta(days=settings.candle_retention_1h_days),
            day=timedelta(days=settings.candle_retention_1d_days),
        ),
    )


def _price_feed(settings: Settings, catalog: Catalog) -> PriceFeed:
    if settings.price_feed == "coingecko":
        key = settings.coingecko_api_key
        return CoinGeckoFeed(
            coingecko_ids(catalog.assets()),
            api_key=key.get_secret_value() if key else None,
            plan=settings.coingecko_plan,
        )
    return SimulatedFeed.from_assets(catalog.assets(), seed=settings.price_seed)
