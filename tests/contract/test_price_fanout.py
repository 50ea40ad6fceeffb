"""Prices across processes (common/price_fanout.py), against a real `redis-server`: the leader's
ticks reach a follower's cache over pub/sub, the store answers when the channel is silent, tick
messages read forwards-compatibly, and one feed leader at a time holds the lease."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
import redis.asyncio as aioredis

from orderproc.common.breaker import CircuitBreaker
from orderproc.common.clock import FixedClock
from orderproc.common.price_fanout import (
    LEASE_KEY,
    FeedLease,
    PriceFollower,
    PricePublisher,
    decode_tick,
    encode_tick,
)
from orderproc.common.prices import PriceCache, Quote
from orderproc.common.redis_shared import SharedRedis
from orderproc.common.resp import LeanRedis
from orderproc.common.storage.memory import MemoryStore
from orderproc.inventory.pricefeed import SimulatedFeed
from orderproc.inventory.service import Catalog, PriceTicker, Retention, load_catalog, seed_catalog
from tests.support.redis_server import RedisServer, free_loopback_port

RETENTION = Retention(minute=timedelta(minutes=10), hour=timedelta(days=1), day=timedelta(days=30))
MOMENT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def quote(
    asset_id: str, price: str | int, as_of: datetime = MOMENT, *, active: bool = True
) -> Quote:
    mid = Decimal(price)
    return Quote(
        asset_id=asset_id,
        name=asset_id.title(),
        price=mid,
        as_of=as_of,
        is_active=active,
        bid=mid * Decimal("0.999"),
        ask=mid * Decimal("1.001"),
    )


def leaders(prices: PriceCache, asset_id: str) -> Quote | None:
    """The leader's quote (its catalog's asset) as the `Quote` a follower holds."""
    quote = prices.quote(asset_id)
    return None if quote is None else Quote.of(quote)


def client(server: RedisServer) -> LeanRedis:
    return LeanRedis.from_url(server.url, timeout=1.0)


def shared(server: RedisServer, piece: str = "prices") -> SharedRedis:
    return SharedRedis(
        client(server), piece, breaker=CircuitBreaker(failure_threshold=1, cool_down=0)
    )  # type: ignore[arg-type]


async def until(condition: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.01)


class Leader:
    """An inventory process's price side: catalog, ticker, publisher."""

    def __init__(self, store: MemoryStore, catalog: Catalog, prices: PriceCache) -> None:
        self.clock = FixedClock(MOMENT)
        self.prices = prices
        self.ticker = PriceTicker(
            feed=SimulatedFeed.from_assets(catalog.assets(), seed=3),
            catalog=catalog,
            store=store,
            clock=self.clock,
            interval=1,
            retention=RETENTION,
        )

    async def tick(self) -> None:
        self.clock.advance(seconds=2)
        assert await self.ticker.tick_once() > 0


@pytest.fixture
async def leader() -> AsyncIterator[tuple[MemoryStore, Leader]]:
    store = MemoryStore()
    await seed_catalog(store)
    prices = PriceCache()
    catalog = await load_catalog(store, prices)
    return store, Leader(store, catalog, prices)


class TestMessages:
    def test_a_quote_goes_through_a_message_unchanged(self) -> None:
        quote_ = quote("BTC", "64123.123456789012345678")
        source, full, quotes = decode_tick(encode_tick([quote_], source="p1", seq=7, full=True))
        assert (source, full, quotes) == ("p1", True, [quote_])

    def test_fields_a_reader_does_not_know_are_ignored(self) -> None:
        quote_ = quote("ETH", "3000.5", active=False)
        message = orjson.loads(encode_tick([quote_], source="p1", seq=1, full=False))
        message["quotes"][0]["a_field_from_the_future"] = "0.1"
        message["extra"] = {"later": True}
        assert decode_tick(orjson.dumps(message))[2] == [quote_]

    def test_an_unknown_version_or_a_missing_field_is_refused(self) -> None:
        message = orjson.loads(encode_tick([quote("ETH", 3)], source="p1", seq=1, full=False))
        with pytest.raises(ValueError, match="version 2"):
            decode_tick(orjson.dumps({**message, "v": 2}))
        required = [name for name in Quote._fields if name not in Quote._field_defaults]
        del message["quotes"][0][required[-1]]
        with pytest.raises(ValueError, match="missing"):
            decode_tick(orjson.dumps(message))


class TestMerge:
    def test_a_newer_quote_wins_and_an_older_one_does_not(self) -> None:
        cache = PriceCache()
        old = quote("BTC", 1)
        new = quote("BTC", 2, MOMENT + timedelta(seconds=1))
        cache.merge([new])
        cache.merge([old])
        assert cache.quote("BTC") == new

    def test_a_full_set_drops_what_it_does_not_hold(self) -> None:
        cache = PriceCache()
        cache.merge([quote(i, 1) for i in ("A", "B")])
        cache.merge([quote("A", 2, active=False)], full=True)
        assert cache.quote("B") is None
        assert cache.quote("A") == quote("A", 2, active=False)


async def test_without_redis_the_follower_reads_the_store_each_interval(
    leader: tuple[MemoryStore, Leader],
) -> None:
    store, inventory = leader
    cache = PriceCache()
    follower = PriceFollower(
        store=store, apply=lambda q, full: cache.merge(q, full=full), interval=0.05
    )
    await follower.start()
    try:
        assert cache.quote("BTC") == leaders(inventory.prices, "BTC")
        await inventory.tick()
        await until(lambda: cache.quote("BTC") == leaders(inventory.prices, "BTC"))
        assert follower.store_reads >= 2
        assert follower.received == 0
    finally:
        await follower.stop()


async def test_ticks_reach_a_follower_over_the_channel(
    leader: tuple[MemoryStore, Leader], redis_server: RedisServer
) -> None:
    store, inventory = leader
    publisher = PricePublisher(shared(redis_server), inventory.prices, source="leader")
    inventory.ticker.listeners.append(publisher.on_tick)
    cache = PriceCache()
    follower = PriceFollower(
        store=store,
        apply=lambda q, full: cache.merge(q, full=full),
        interval=3600,  # no store reads after the first: whatever moves came by the channel
        redis=client(redis_server),
    )
    await follower.start()
    try:
        await until(lambda: follower._listen is not None)
        for _ in range(3):  # the subscription is made when the first message comes through
            await inventory.tick()
            await asyncio.sleep(0.05)
            if follower.received:
                break
        for _ in range(3):
            await inventory.tick()
            expected = sorted(map(Quote.of, inventory.prices.all()))
            await until(lambda e=expected: sorted(map(Quote.of, cache.all())) == e)
        assert follower.store_reads == 1
        assert follower.channel_live
        assert publisher.seq >= 4
        assert follower.received >= 3
    finally:
        await follower.stop()
        await publisher.stop()


async def test_a_follower_ignores_its_own_ticks_and_unreadable_messages(
    redis_server: RedisServer, redis: aioredis.Redis
) -> None:
    store = MemoryStore()
    await seed_catalog(store)
    seen: list[list[Quote]] = []
    follower = PriceFollower(
        store=store,
        apply=lambda q, full: seen.append(q),
        interval=3600,
        redis=client(redis_server),
        ignore="me",
    )
    await follower.start()
    try:
        channel = b"orderproc:prices:0"
        await until(lambda: asyncio.get_running_loop().time() > 0)
        quote_ = quote("BTC", 5)
        while (
            not await redis.pubsub_numsub(channel) or (await redis.pubsub_numsub(channel))[0][1] < 1
        ):
            await asyncio.sleep(0.01)
        await redis.publish(channel, encode_tick([quote_], source="me", seq=1, full=False))
        await redis.publish(channel, b"not json")
        await redis.publish(channel, orjson.dumps({"v": 99, "quotes": []}))
        await redis.publish(channel, encode_tick([quote_], source="other", seq=1, full=False))
        await until(lambda: len(seen) == 2)
        assert seen[1] == [quote_]
        assert follower.received == 1
    finally:
        await follower.stop()


@pytest.fixture
async def leases() -> AsyncIterator[list[FeedLease]]:
    """Leases a test makes, stopped (and their clients closed) after it."""
    made: list[FeedLease] = []
    yield made
    for lease in made:
        await lease.stop()


class TestLease:
    async def test_one_leader_at_a_time_and_a_handover_on_stop(
        self, redis_server: RedisServer, redis: aioredis.Redis, leases: list[FeedLease]
    ) -> None:
        took_over: list[str] = []
        a = FeedLease(shared(redis_server, "lease"), ttl=5, holder="a")
        leases.append(a)
        b = FeedLease(
            shared(redis_server, "lease"), ttl=5, holder="b", on_lead=lambda: took_over.append("b")
        )
        leases.append(b)
        assert await a.claim() is True
        assert await b.claim() is False
        assert await a.claim() is True  # renewal
        assert await redis.get(LEASE_KEY) == b"a"
        assert 4000 < await redis.pttl(LEASE_KEY) <= 5000
        await a.stop()  # hands the lease back
        assert a.leader is False
        assert await b.claim() is True
        assert took_over == ["b"]

    async def test_a_dead_leaders_lease_expires_and_a_follower_takes_over(
        self, redis_server: RedisServer, redis: aioredis.Redis, leases: list[FeedLease]
    ) -> None:
        a = FeedLease(shared(redis_server, "lease"), ttl=0.3, holder="a")
        leases.append(a)
        b = FeedLease(shared(redis_server, "lease"), ttl=0.3, holder="b")
        leases.append(b)
        assert await a.claim()
        assert not await b.claim()
        # a dies (stops renewing, without handing back); b keeps asking, as its loop does
        await b.start()
        try:
            await until(lambda: b.leader, timeout=3)
            assert await redis.get(LEASE_KEY) == b"b"
            assert await a.claim() is False
            assert a.leader is False
        finally:
            await b.stop()

    async def test_with_redis_down_each_keeps_its_role_and_claims_afresh_when_it_returns(
        self, private_redis_server: RedisServer, leases: list[FeedLease]
    ) -> None:
        server = private_redis_server
        a = FeedLease(shared(server, "lease"), ttl=5, holder="a")
        leases.append(a)
        b = FeedLease(shared(server, "lease"), ttl=5, holder="b")
        leases.append(b)
        assert await a.claim()
        assert not await b.claim()
        server.stop()
        assert await a.claim() is True  # keeps ticking: prices and trading go on
        assert await b.claim() is False  # cannot take over without Redis
        server.start()  # an empty Redis: the lease key is gone
        assert await b.claim() is True  # the first to ask after the return leads
        assert await a.claim() is False


async def test_without_redis_the_lease_always_leads() -> None:
    lease = FeedLease(None, ttl=5)
    assert lease.leader
    assert await lease.claim()


async def test_the_leader_does_not_answer_on_a_dead_port() -> None:
    dead = LeanRedis("127.0.0.1", free_loopback_port(), timeout=0.2)
    lease = FeedLease(SharedRedis(dead, "lease"), ttl=5)
    assert await lease.claim() is False  # never led, and cannot start leading without Redis
    await lease.stop()
