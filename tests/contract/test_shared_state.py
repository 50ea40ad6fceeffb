"""Rate limits, failed-login blocking and token revocation shared through a real `redis-server`
(common/redis_shared.py): several instances, each with its own client as separate processes
would have, see one state; with Redis stopped or stalled, each falls back to what one process
can do alone (never to nothing) within the configured timeout, and comes back to Redis when it
returns.

The failed-login contract itself (tests/unit/test_login_throttle.py) runs here again against
the Redis throttle, on the same moved clock."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from orderproc.common.login_throttle import (
    DisabledLoginThrottle,
    InMemoryLoginThrottle,
    LoginAttempt,
    LoginThrottle,
)
from orderproc.common.metrics import Metrics
from orderproc.common.redis_shared import (
    RedisLoginThrottle,
    RedisRateLimiter,
    RedisRevocations,
    SharedRedis,
    login_throttle_for,
    rate_limiter_for,
    revocations_for,
)
from orderproc.common.resp import LeanRedis, LuaScript, RespError
from orderproc.common.security.revocation import RevocationChecker
from orderproc.common.settings import Settings
from orderproc.common.storage.memory import MemoryStore
from orderproc.common.storage.ports import Store
from orderproc.common.storage.records import UserRecord
from orderproc.common.throttle import RateLimiter
from orderproc.errors import TokenRevoked
from tests.support.redis_server import RedisServer
from tests.support.tcp_proxy import TcpProxy
from tests.unit.test_login_throttle import (  # the contract, collected here once more
    Clock,
    TestAddresses,
    TestPairs,
    TestUsernames,
    throttle_on,
)

__all__ = ["TestAddresses", "TestPairs", "TestUsernames"]

ADDRESS = "198.51.100.7"
TIMEOUT = 0.1
COOL_DOWN = 0.3
STALL_COOL_DOWN = 1.0


# --- the failed-login contract, in memory and in Redis -------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["in-memory", "redis"])
def throttle(request: pytest.FixtureRequest, clock: Clock) -> Iterator[LoginThrottle]:
    local = throttle_on(clock)
    if request.param == "in-memory":
        yield local
        return
    # Asked for here, not in the signature, so the in-memory runs need no Redis.
    request.getfixturevalue("redis")  # an empty database
    server: RedisServer = request.getfixturevalue("redis_server")
    client = LeanRedis(server.host, server.port, timeout=1.0)
    shared = SharedRedis(client, "login")
    yield RedisLoginThrottle(shared, local)
    client.close()
    assert shared.fallbacks == 0, "Redis failed during the contract: the fallback answered"


# --- several processes ------------------------------------------------------------------------


def settings_for(url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "redis_url": url,
        "redis_timeout_seconds": 1.0,  # generous: a busy machine's first call is no outage
        "redis_breaker_failures": 1,
        "redis_breaker_cool_down_seconds": COOL_DOWN,
        "rate_limit_per_minute": 5,
        "access_token_ttl_seconds": 3600,
    }
    values.update(overrides)
    return Settings.model_validate(values)


@dataclass
class Process:
    """What one process of the platform holds of the shared state."""

    throttle: LoginThrottle
    limiter: RateLimiter
    revocations: RevocationChecker
    shared_revocations: RedisRevocations | None
    metrics: Metrics

    async def admit(self, address: str = ADDRESS) -> tuple[int, bool | None]:
        blocked, allowance = await self.limiter.admit(address, self.throttle, count=True)
        return blocked, None if allowance is None else allowance.allowed

    async def close(self) -> None:
        await self.limiter.aclose()
        if isinstance(self.throttle, RedisLoginThrottle):
            await self.throttle.aclose()
        if self.shared_revocations is not None:
            await self.shared_revocations.aclose()


def start_process(settings: Settings, store: Store, *, cache_seconds: float = 60) -> Process:
    """Built as a composition root builds it, with the builders of common/redis_shared.py."""
    metrics = Metrics("test")
    local = InMemoryLoginThrottle(
        pair_limit=settings.login_pair_failure_limit,
        user_limit=settings.login_user_failure_limit,
        address_limit=settings.login_failure_limit,
        window=settings.login_failure_window_seconds,
        user_window=settings.login_user_failure_window_seconds,
        block_seconds=settings.login_block_seconds,
        clock=time.time,
    )
    throttle = login_throttle_for(settings, local, metrics=metrics)
    shared = revocations_for(settings, now=lambda: datetime.now(UTC), metrics=metrics)
    return Process(
        throttle=throttle,
        limiter=rate_limiter_for(settings, throttle, metrics=metrics),
        revocations=RevocationChecker(store, cache_seconds=cache_seconds, shared=shared),
        shared_revocations=shared,
        metrics=metrics,
    )


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    opened = MemoryStore()
    await opened.migrate()
    yield opened
    await opened.close()


@pytest.fixture
async def two_processes(
    redis_server: RedisServer, redis: aioredis.Redis, store: Store
) -> AsyncIterator[tuple[Process, Process]]:
    settings = settings_for(redis_server.url)
    a, b = start_process(settings, store), start_process(settings, store)
    yield a, b
    await a.close()
    await b.close()


USER = "u-alice"
ISSUED = datetime.now(UTC) - timedelta(minutes=1)


async def add_user(store: Store, user_id: str = USER) -> None:
    now = datetime.now(UTC) - timedelta(hours=1)
    async with store.unit_of_work() as uow:
        uow.users.add(
            UserRecord(
                user_id=user_id,
                username="alice",
                email="alice@example.com",
                password_hash="x",
                first_name="Alice",
                last_name="Liddell",
                phone=None,
                date_of_birth=None,
                role="customer",
                is_active=True,
                created_at=now,
                updated_at=now,
            )
        )
        await uow.commit()


async def log_out(process: Process, store: Store, jti: str) -> None:
    """What users.service.logout does: the store first, then the shared path."""
    expires_at = datetime.now(UTC) + timedelta(hours=1)
    async with store.unit_of_work() as uow:
        uow.revocations.add(jti, user_id=USER, expires_at=expires_at)
        await uow.commit()
    await process.revocations.publish_revocation(jti, expires_at)


async def is_revoked(process: Process, jti: str) -> bool:
    try:
        await process.revocations.ensure_valid(user_id=USER, jti=jti, issued_at=ISSUED)
    except TokenRevoked:
        return True
    return False


class TestSharedByProcesses:
    async def test_two_limiters_count_one_window(
        self, two_processes: tuple[Process, Process], redis: aioredis.Redis
    ) -> None:
        a, b = two_processes
        assert [await a.admit(), await b.admit(), await a.admit()] == [(0, True)] * 3
        assert [await b.admit(), await b.admit()] == [(0, True)] * 2
        assert await a.admit() == (0, False)  # the 6th of 5, wherever it lands
        assert await b.admit() == (0, False)
        assert await b.admit("198.51.100.8") == (0, True)
        _, allowance = await a.limiter.admit(ADDRESS, a.throttle, count=True)
        assert allowance is not None
        assert (allowance.limit, allowance.remaining) == (5, 0)
        assert 1 <= allowance.reset_after <= 60
        assert 0 < await redis.pttl(f"orderproc:rate:{ADDRESS}") <= 60_000

    async def test_a_pair_blocked_in_one_process_is_blocked_in_the_other(
        self, two_processes: tuple[Process, Process]
    ) -> None:
        a, b = two_processes
        attempt = LoginAttempt(username="alice", address=ADDRESS)
        for process in (a, b, a, b):
            assert await process.throttle.record_failure(attempt) == ()
        assert await b.throttle.record_failure(attempt) == ("pair",)  # the 5th, across both
        assert (await a.throttle.check(attempt)).refused == "pair"
        assert (await b.throttle.check(attempt)).refused == "pair"
        other = LoginAttempt(username="alice", address="198.51.100.8")
        assert (await a.throttle.check(other)).refused is None

    async def test_an_address_blocked_by_one_is_refused_by_the_other_s_edge(
        self, two_processes: tuple[Process, Process]
    ) -> None:
        a, b = two_processes
        for n in range(10):  # ten usernames failing from one address, over both processes
            process = (a, b)[n % 2]
            await process.throttle.record_failure(LoginAttempt(username=f"u{n}", address=ADDRESS))
        blocked, allowance = await b.admit()
        assert 890 <= blocked <= 900
        assert allowance is None
        assert (await a.admit())[0] > 0
        assert await a.throttle.address_blocked(ADDRESS) > 0
        assert await b.admit("198.51.100.8") == (0, True)

    async def test_counting_with_a_disabled_throttle_reads_no_block(
        self, two_processes: tuple[Process, Process]
    ) -> None:
        """How the gateway counts per user: the same limiter, without address blocks."""
        a, b = two_processes
        for n in range(10):
            await a.throttle.record_failure(LoginAttempt(username=f"u{n}", address=ADDRESS))
        assert (await a.admit())[0] > 0
        blocked, allowance = await b.limiter.admit(ADDRESS, DisabledLoginThrottle(), count=True)
        assert blocked == 0
        assert allowance is not None
        assert allowance.allowed
        assert await b.limiter.admit(ADDRESS, DisabledLoginThrottle(), count=False) == (0, None)

    async def test_a_logout_in_one_process_is_refused_at_once_by_the_other(
        self, two_processes: tuple[Process, Process], store: Store
    ) -> None:
        a, b = two_processes
        await add_user(store)
        assert not await is_revoked(b, "jti-1")  # b caches it as good for 60 s
        await log_out(a, store, "jti-1")
        assert await is_revoked(b, "jti-1")
        assert not await is_revoked(b, "jti-2")

    async def test_without_redis_the_other_process_would_have_waited_for_its_cache(
        self, store: Store
    ) -> None:
        """The control for the test above: the store alone, as embedded mode does."""
        await add_user(store)
        a = RevocationChecker(store, cache_seconds=60)
        b = RevocationChecker(store, cache_seconds=60)
        await b.ensure_valid(user_id=USER, jti="jti-1", issued_at=ISSUED)
        async with store.unit_of_work() as uow:
            uow.revocations.add("jti-1", user_id=USER, expires_at=datetime.now(UTC))
            await uow.commit()
        await a.publish_revocation("jti-1", datetime.now(UTC) + timedelta(hours=1))
        await b.ensure_valid(user_id=USER, jti="jti-1", issued_at=ISSUED)  # still good here

    async def test_a_password_change_in_one_process_cuts_off_older_tokens_in_the_other(
        self, two_processes: tuple[Process, Process], store: Store
    ) -> None:
        a, b = two_processes
        await add_user(store)
        assert not await is_revoked(b, "jti-1")
        async with store.unit_of_work() as uow:
            user = await uow.users.get(USER)
            assert user is not None
            uow.users.update(
                user.evolve(tokens_valid_after=datetime.now(UTC), version=user.version + 1),
                expected_version=user.version,
            )
            await uow.commit()
        await a.revocations.publish_user_change(USER)
        assert await is_revoked(b, "jti-1")

    async def test_the_revocation_lives_as_long_as_the_token(
        self, two_processes: tuple[Process, Process], store: Store, redis: aioredis.Redis
    ) -> None:
        a, _ = two_processes
        await add_user(store)
        await log_out(a, store, "jti-1")
        assert 3_590_000 < await redis.pttl("orderproc:revoked:jti-1") <= 3_600_000


# --- Redis down, slow, and back ---------------------------------------------------------------


@pytest.fixture
def outage_settings(private_redis_server: RedisServer) -> Settings:
    return settings_for(private_redis_server.url)  # stopped, it refuses at once


async def wait_until_back(process: Process, server: RedisServer) -> None:
    """Past the cool-down, the next call probes Redis and closes the breaker."""
    await asyncio.sleep(COOL_DOWN + 0.05)
    assert server.running


class TestRedisDown:
    async def test_limits_fall_back_to_each_process_and_come_back(
        self,
        private_redis_server: RedisServer,
        outage_settings: Settings,
        store: Store,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        a, b = start_process(outage_settings, store), start_process(outage_settings, store)
        try:
            assert [await a.admit() for _ in range(3)] == [(0, True)] * 3
            assert isinstance(a.limiter, RedisRateLimiter)
            assert a.limiter.shared.fallbacks == 0  # counted in Redis
            private_redis_server.stop()
            with caplog.at_level(logging.INFO, logger="orderproc.redis_shared"):
                # Each process counts on its own from zero: still limited, never wide open.
                assert [await a.admit() for _ in range(6)] == [(0, True)] * 5 + [(0, False)]
                assert [await b.admit() for _ in range(6)] == [(0, True)] * 5 + [(0, False)]
                assert "Redis unavailable for rate limit" in caplog.text
                assert b'orderproc_redis_fallbacks_total{piece="rate_limit"}' in (
                    a.metrics.render()
                )
                assert b'orderproc_circuit_breaker_state{breaker="redis_rate_limit"} 2.0' in (
                    a.metrics.render()
                )
                private_redis_server.start()  # same port, empty
                await wait_until_back(a, private_redis_server)
                assert await a.admit() == (0, True)  # counted in Redis again: 1 of 5
                assert "Redis available again for rate limit" in caplog.text
            await wait_until_back(b, private_redis_server)
            assert [await b.admit() for _ in range(4)] == [(0, True)] * 4
            assert await a.admit() == (0, False)  # shared again: the 6th across both
        finally:
            await a.close()
            await b.close()

    async def test_login_blocking_falls_back_and_what_it_blocked_stays_blocked(
        self, private_redis_server: RedisServer, outage_settings: Settings, store: Store
    ) -> None:
        a = start_process(outage_settings, store)
        attempt = LoginAttempt(username="alice", address=ADDRESS)
        try:
            private_redis_server.stop()
            assert [await a.throttle.record_failure(attempt) for _ in range(5)][-1] == ("pair",)
            assert (await a.throttle.check(attempt)).refused == "pair"
            private_redis_server.start()
            await wait_until_back(a, private_redis_server)
            assert (await a.throttle.check(attempt)).refused == "pair"  # Redis empty, local not
            assert isinstance(a.throttle, RedisLoginThrottle)
            assert a.throttle.shared.breaker.state == "closed"
        finally:
            await a.close()

    async def test_revoked_tokens_stay_revoked_while_redis_is_down_and_after(
        self, private_redis_server: RedisServer, outage_settings: Settings, store: Store
    ) -> None:
        a = start_process(outage_settings, store)
        b = start_process(outage_settings, store, cache_seconds=0)
        await add_user(store)
        try:
            await log_out(a, store, "jti-before")
            private_redis_server.stop()
            assert await is_revoked(b, "jti-before")  # Redis down: the store answers
            await log_out(a, store, "jti-during")  # the store has it, Redis could not
            assert await is_revoked(b, "jti-during")
            assert not await is_revoked(b, "jti-good")
            private_redis_server.start()  # empty: both revocations are gone from Redis
            await wait_until_back(b, private_redis_server)
            fresh = start_process(outage_settings, store)
            try:
                for process in (b, fresh):
                    assert await is_revoked(process, "jti-before")  # a miss: the store
                    assert await is_revoked(process, "jti-during")
                    assert not await is_revoked(process, "jti-good")
            finally:
                await fresh.close()
        finally:
            await a.close()
            await b.close()


@pytest.fixture
async def stalled(redis_server: RedisServer, redis: aioredis.Redis) -> AsyncIterator[TcpProxy]:
    proxy = await TcpProxy(redis_server.host, redis_server.port).start()
    yield proxy
    await proxy.close()


@pytest.fixture
def stall_settings(stalled: TcpProxy) -> Settings:
    return settings_for(
        f"redis://127.0.0.1:{stalled.port}/0",
        redis_timeout_seconds=TIMEOUT,
        redis_breaker_failures=2,
        redis_breaker_cool_down_seconds=STALL_COOL_DOWN,
    )


class TestRedisStalled:
    """A Redis that accepts and never answers costs a call at most the timeout, and only until
    the breaker opens."""

    async def test_no_call_waits_beyond_the_timeout(
        self, stalled: TcpProxy, stall_settings: Settings, store: Store
    ) -> None:
        await add_user(store)
        process = start_process(stall_settings, store, cache_seconds=0)
        attempt = LoginAttempt(username="alice", address=ADDRESS)
        calls = {
            "limit": lambda: process.admit(),
            "login": lambda: process.throttle.check(attempt),
            "token": lambda: is_revoked(process, "jti-1"),
        }
        try:
            assert await process.admit() == (0, True)  # connected while it flowed
            stalled.stall()
            for _ in range(2):  # two timeouts in a row open each piece's breaker
                for name, call in calls.items():
                    started = time.perf_counter()
                    await call()
                    assert time.perf_counter() - started < TIMEOUT + 0.15, name
            for _ in range(3):  # open: the fallbacks answer without waiting
                for name, call in calls.items():
                    started = time.perf_counter()
                    await call()
                    assert time.perf_counter() - started < 0.05, name
            assert [await process.admit() for _ in range(5)][-1] == (0, False)  # still limited
            assert await process.throttle.record_failure(attempt) == ()
            assert not await is_revoked(process, "jti-1")  # the store said so, not Redis
            await stalled.restore()  # the stalled connection is dropped at the next call
            await asyncio.sleep(STALL_COOL_DOWN + 0.05)
            assert await process.admit() == (0, True)  # 2 of 5 in Redis: back on it
            assert isinstance(process.limiter, RedisRateLimiter)
            assert process.limiter.shared.breaker.state == "closed"
        finally:
            await stalled.restore()
            await process.close()


class TestLeanClient:
    """common/resp.py against the real server."""

    @pytest.fixture
    async def lean(
        self, redis_server: RedisServer, redis: aioredis.Redis
    ) -> AsyncIterator[LeanRedis]:
        client = LeanRedis(redis_server.host, redis_server.port, timeout=1.0)
        yield client
        await client.aclose()

    async def test_concurrent_commands_get_their_own_replies(self, lean: LeanRedis) -> None:
        replies = await asyncio.gather(*(lean.execute("INCR", "n") for _ in range(200)))
        assert sorted(replies) == list(range(1, 201))
        values = await asyncio.gather(*(lean.execute("ECHO", f"v{n}") for n in range(100)))
        assert values == [f"v{n}".encode() for n in range(100)]

    async def test_values_errors_and_nothing(self, lean: LeanRedis) -> None:
        assert await lean.execute("SET", "k", b"\r\n\x00" * 1000) == b"OK"
        assert await lean.execute("MGET", "k", "missing") == [b"\r\n\x00" * 1000, None]
        with pytest.raises(RespError, match="WRONGTYPE"):
            await lean.execute("LPUSH", "k", "x")
        assert await lean.execute("PING") == b"PONG"  # the connection goes on

    async def test_a_cancelled_caller_leaves_the_replies_in_order(self, lean: LeanRedis) -> None:
        slow = asyncio.create_task(lean.execute("BLPOP", "nothing", "0.2"))
        await asyncio.sleep(0.01)
        slow.cancel()
        assert await lean.execute("ECHO", "after") == b"after"  # not BLPOP's nil

    async def test_a_script_is_loaded_again_after_a_flush(self, lean: LeanRedis) -> None:
        script = LuaScript("return ARGV[1] .. KEYS[1]")
        assert await lean.evalsha(script, ["k"], ["v"]) == b"vk"
        await lean.execute("SCRIPT", "FLUSH")
        assert await lean.evalsha(script, ["k"], ["w"]) == b"wk"

    async def test_the_url_s_database_is_selected(
        self, redis_server: RedisServer, redis: aioredis.Redis
    ) -> None:
        lean = LeanRedis.from_url(f"redis://{redis_server.host}:{redis_server.port}/3", timeout=1)
        try:
            await lean.execute("SET", "where", "db3")
        finally:
            await lean.aclose()
        assert await redis.get("where") is None  # the fixture's client is on db 0
        await redis.execute_command("SELECT", 3)
        assert await redis.get("where") == b"db3"
        await redis.delete("where")
