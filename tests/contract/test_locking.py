"""The locking contract: every `Locker` (see `LOCKERS`) must pass the first part; the rest is
what only the Redis locker promises, tested against a real `redis-server` that the tests start."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from orderproc.common.breaker import CircuitBreaker
from orderproc.common.locking import InProcessLocker, Locker
from orderproc.common.metrics import LockWaits
from orderproc.common.redis_locking import KEY_PREFIX, RedisLocker
from orderproc.common.resp import LeanRedis
from orderproc.errors import LockTimeout
from tests.support.fixtures import redis_client
from tests.support.redis_server import RedisServer

LOCKERS = ["in-process", "redis"]

OUTAGE_MESSAGE = "Redis lock unavailable"


Lean = Callable[..., LeanRedis]


@pytest.fixture
async def lean(redis_server: RedisServer, redis: aioredis.Redis) -> AsyncIterator[Lean]:
    """Makes the lean clients a `RedisLocker` talks through (to the session's server, its
    database emptied first, unless told another), each its own connection as another
    process's would be; closed after."""
    made: list[LeanRedis] = []

    def make(server: RedisServer = redis_server) -> LeanRedis:
        client = LeanRedis.from_url(server.url, timeout=1.0)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture(params=LOCKERS)
def locker(request: pytest.FixtureRequest, lean: Lean) -> Locker:
    if request.param == "in-process":
        return InProcessLocker()
    return RedisLocker(lean())


async def hold_until(locker: Locker, key: str, held: asyncio.Event, leave: asyncio.Event) -> None:
    """Take `key`, say so, and keep it until told to leave."""
    async with locker.hold(key, timeout=5):
        held.set()
        await leave.wait()


class Holder:
    """A task holding one key until `release()`."""

    def __init__(self, locker: Locker, key: str) -> None:
        self.held = asyncio.Event()
        self._leave = asyncio.Event()
        self.task = asyncio.create_task(hold_until(locker, key, self.held, self._leave))

    async def __aenter__(self) -> Holder:
        await asyncio.wait_for(self.held.wait(), 5)
        return self

    async def release(self) -> None:
        self._leave.set()
        await asyncio.wait_for(self.task, 5)

    async def __aexit__(self, *exc_info: object) -> None:
        await self.release()


async def increment_concurrently(lockers: list[Locker], tasks: int) -> int:
    """`tasks` tasks, spread over `lockers`, each read-yield-write a shared counter under the
    lock of one key. Without exclusion, the yield between read and write loses updates."""
    counter = 0

    async def increment(locker: Locker) -> None:
        nonlocal counter
        async with locker.hold("counter", timeout=30):
            seen = counter
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            counter = seen + 1

    await asyncio.gather(*(increment(lockers[i % len(lockers)]) for i in range(tasks)))
    return counter


class TestMutualExclusion:
    async def test_concurrent_holders_of_one_key_never_lose_an_update(self, locker: Locker) -> None:
        assert await increment_concurrently([locker], 50) == 50

    async def test_holders_of_different_keys_do_not_wait_for_each_other(
        self, locker: Locker
    ) -> None:
        async with Holder(locker, "alice"), locker.hold("bob", timeout=1):
            pass

    async def test_the_block_runs_while_the_key_is_held(self, locker: Locker) -> None:
        ran = False
        async with locker.hold("alice", timeout=1):
            ran = True
        assert ran


class TestTimeouts:
    async def test_a_waiter_gives_up_with_lock_timeout_once_its_timeout_is_over(
        self, locker: Locker
    ) -> None:
        async with Holder(locker, "alice"):
            started = time.monotonic()
            with pytest.raises(LockTimeout):
                async with locker.hold("alice", timeout=0.1):
                    pytest.fail("entered a held lock")
            waited = time.monotonic() - started
        assert 0.09 <= waited < 2

    async def test_the_lock_is_usable_after_a_waiter_timed_out(self, locker: Locker) -> None:
        async with Holder(locker, "alice"):
            with pytest.raises(LockTimeout):
                async with locker.hold("alice", timeout=0.05):
                    pass
        async with locker.hold("alice", timeout=1):
            pass
        assert await increment_concurrently([locker], 10) == 10

    async def test_a_waiter_enters_when_the_holder_leaves_within_its_timeout(
        self, locker: Locker
    ) -> None:
        holder = Holder(locker, "alice")
        async with holder:
            waiter = asyncio.create_task(self._enter(locker, "alice"))
            await asyncio.sleep(0.05)
            assert not waiter.done()
        assert await asyncio.wait_for(waiter, 5)

    @staticmethod
    async def _enter(locker: Locker, key: str) -> bool:
        async with locker.hold(key, timeout=5):
            return True


class TestRelease:
    async def test_an_exception_in_the_block_releases_the_lock_and_propagates(
        self, locker: Locker
    ) -> None:
        with pytest.raises(ValueError, match="boom"):
            async with locker.hold("alice", timeout=1):
                raise ValueError("boom")
        async with locker.hold("alice", timeout=0.5):
            pass

    async def test_a_released_lock_can_be_taken_again_at_once(self, locker: Locker) -> None:
        for _ in range(20):
            async with locker.hold("alice", timeout=0.5):
                pass
        started = time.monotonic()
        async with locker.hold("alice", timeout=0.5):
            pass
        assert time.monotonic() - started < 0.4

    async def test_a_cancelled_holder_releases_the_lock(self, locker: Locker) -> None:
        holder = Holder(locker, "alice")
        await asyncio.wait_for(holder.held.wait(), 5)
        holder.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder.task
        async with locker.hold("alice", timeout=0.5):
            pass


# --- Redis only -----------------------------------------------------------------------------


class TestWaitsRecorded:
    """What `orderproc_lock_wait_seconds` and `orderproc_lock_timeouts_total` are made of: one
    wait per hold, contended or not, and a timeout counted as a wait too."""

    @pytest.fixture(params=LOCKERS)
    def recorded(self, request: pytest.FixtureRequest, lean: Lean) -> tuple[Locker, LockWaits]:
        waits = LockWaits()
        if request.param == "in-process":
            return InProcessLocker(waits=waits), waits
        return RedisLocker(lean(), waits=waits), waits

    async def test_one_wait_per_hold(self, recorded: tuple[Locker, LockWaits]) -> None:
        locker, waits = recorded
        async with locker.hold("alice", timeout=1):
            pass
        assert (waits.count, waits.timeouts) == (1, 0)
        async with Holder(locker, "alice") as holder:
            waiting = asyncio.create_task(self._hold_once(locker, "alice"))
            await asyncio.sleep(0.1)
            await holder.release()
            await waiting
        assert (waits.count, waits.timeouts) == (3, 0)
        assert waits.seconds >= 0.05

    async def test_a_timeout_is_a_wait_and_a_timeout(
        self, recorded: tuple[Locker, LockWaits]
    ) -> None:
        locker, waits = recorded
        async with Holder(locker, "alice"):
            with pytest.raises(LockTimeout):
                await self._hold_once(locker, "alice", timeout=0.05)
        assert (waits.count, waits.timeouts) == (2, 1)
        assert waits.seconds >= 0.04

    async def test_a_timeout_waiting_on_another_process(self, lean: Lean) -> None:
        waits = LockWaits()
        async with Holder(RedisLocker(lean()), "alice"):
            with pytest.raises(LockTimeout):
                await self._hold_once(RedisLocker(lean(), waits=waits), "alice", 0.05)
        assert (waits.count, waits.timeouts) == (1, 1)

    @staticmethod
    async def _hold_once(locker: Locker, key: str, timeout: float = 5) -> None:
        async with locker.hold(key, timeout=timeout):
            pass


class TestRedisLockAcrossProcesses:
    async def test_two_lockers_with_their_own_clients_exclude_each_other(self, lean: Lean) -> None:
        first, second = RedisLocker(lean()), RedisLocker(lean())
        async with Holder(first, "alice"):
            with pytest.raises(LockTimeout):
                async with second.hold("alice", timeout=0.2):
                    pytest.fail("the second process entered a held lock")
        async with second.hold("alice", timeout=1):
            pass

    async def test_two_lockers_never_lose_an_update_between_them(self, lean: Lean) -> None:
        lockers: list[Locker] = [RedisLocker(lean()), RedisLocker(lean())]
        assert await increment_concurrently(lockers, 40) == 40

    async def test_the_lock_is_a_prefixed_key_with_a_lease_gone_after_release(
        self, redis: aioredis.Redis, lean: Lean
    ) -> None:
        locker = RedisLocker(lean(), lease_ms=5_000)
        async with locker.hold("account:u1", timeout=1):
            assert await redis.get(f"{KEY_PREFIX}account:u1") is not None
            assert 0 < await redis.pttl(f"{KEY_PREFIX}account:u1") <= 5_000
        assert await redis.get(f"{KEY_PREFIX}account:u1") is None

    async def test_a_late_release_never_deletes_the_next_holders_lock(
        self,
        redis: aioredis.Redis,
        lean: Lean,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.WARNING, logger="orderproc.locking")
        key = f"{KEY_PREFIX}alice"
        slow = RedisLocker(lean(), lease_ms=50)
        other = RedisLocker(lean())
        successor: Holder | None = None
        try:
            async with slow.hold("alice", timeout=1):
                await asyncio.sleep(0.15)  # the lease runs out while the block still runs
                assert await redis.get(key) is None
                successor = Holder(other, "alice")
                await asyncio.wait_for(successor.held.wait(), 5)
                successors_token = await redis.get(key)
                assert successors_token is not None
            # The slow holder has released: the successor's lock must still be there, untouched.
            assert await redis.get(key) == successors_token
            assert any("lease expired" in r.getMessage() for r in caplog.records)
        finally:
            if successor is not None:
                await successor.release()
        assert await redis.get(key) is None


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def outage_locker(private_redis_server: RedisServer, lean: Lean, clock: ManualClock) -> RedisLocker:
    breaker = CircuitBreaker(failure_threshold=3, cool_down=30, clock=clock)
    return RedisLocker(lean(private_redis_server), op_timeout=0.2, breaker=breaker)


def outage_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if OUTAGE_MESSAGE in r.getMessage()]


@pytest.fixture
def locking_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="orderproc.locking")
    return caplog


class TestRedisOutage:
    async def test_with_redis_stopped_the_block_still_runs_and_the_breaker_opens(
        self,
        private_redis_server: RedisServer,
        outage_locker: RedisLocker,
        locking_logs: pytest.LogCaptureFixture,
    ) -> None:
        async with outage_locker.hold("alice", timeout=1):
            pass  # the script is loaded and the connection pooled before the outage
        private_redis_server.stop()

        runs = 0
        started = time.monotonic()
        for _ in range(10):
            async with outage_locker.hold("alice", timeout=1):
                runs += 1
        elapsed = time.monotonic() - started

        assert runs == 10
        assert outage_locker.breaker.state == "open"
        # At most `failure_threshold` calls wait for their timeout; the rest skip Redis at once.
        assert elapsed < 3 * 0.2 + 1.0
        assert len(outage_warnings(locking_logs)) == 1

    async def test_with_redis_stopped_one_process_still_serializes_its_callers(
        self, private_redis_server: RedisServer, outage_locker: RedisLocker
    ) -> None:
        private_redis_server.stop()
        assert await increment_concurrently([outage_locker], 30) == 30

    async def test_redis_dying_while_a_lock_is_held_leaks_no_exception(
        self, private_redis_server: RedisServer, outage_locker: RedisLocker
    ) -> None:
        async with outage_locker.hold("alice", timeout=1):
            private_redis_server.stop()
        async with outage_locker.hold("alice", timeout=1):
            pass

    async def test_after_redis_restarts_the_breaker_closes_and_locking_is_distributed_again(
        self,
        private_redis_server: RedisServer,
        outage_locker: RedisLocker,
        lean: Lean,
        clock: ManualClock,
        locking_logs: pytest.LogCaptureFixture,
    ) -> None:
        async with outage_locker.hold("alice", timeout=1):
            pass
        private_redis_server.stop()
        for _ in range(5):
            async with outage_locker.hold("alice", timeout=1):
                pass
        assert outage_locker.breaker.state == "open"

        private_redis_server.start()  # same port, empty: no keys, no cached scripts
        async with outage_locker.hold("alice", timeout=1):
            pass  # still inside the cool-down: Redis is not asked yet
        assert outage_locker.breaker.state == "open"

        clock.advance(30)
        assert outage_locker.breaker.state == "half_open"
        async with outage_locker.hold("alice", timeout=1):
            # the probe took the lock in Redis again
            assert await self._lock_value(private_redis_server, "alice") is not None
        assert outage_locker.breaker.state == "closed"
        assert any("available again" in r.getMessage() for r in locking_logs.records)
        assert await self._lock_value(private_redis_server, "alice") is None

        async with Holder(RedisLocker(lean(private_redis_server)), "alice"):
            with pytest.raises(LockTimeout):
                async with outage_locker.hold("alice", timeout=0.2):
                    pytest.fail("entered a lock another process holds")
        async with outage_locker.hold("alice", timeout=1):
            pass

    async def test_a_set_that_timed_out_but_landed_is_taken_back(
        self,
        private_redis_server: RedisServer,
        outage_locker: RedisLocker,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="orderproc.locking")
        admin = redis_client(private_redis_server)
        try:
            # Freeze the server longer than op_timeout: our SET waits in its socket, we give up
            # on it, and the server runs it when it wakes. On a loaded machine the SET may go
            # before the freeze (it does not time out) or not be written before we give up
            # (it never lands): then the set-up is made again, never the check.
            for _ in range(5):
                async with outage_locker.hold("alice", timeout=1):
                    pass  # Redis answers: the breaker counts no failure
                caplog.clear()
                sets_before = await self._set_calls(admin)
                frozen = asyncio.create_task(admin.execute_command("DEBUG", "SLEEP", "0.4"))  # type: ignore[no-untyped-call]
                await asyncio.sleep(0.02)
                async with outage_locker.hold("alice", timeout=1):
                    pass
                await frozen
                timed_out = any(
                    getattr(r, "operation", None) == "SET"
                    and "TimeoutError" in str(getattr(r, "error", ""))
                    for r in caplog.records
                )  # what `RedisLocker._failed` logs
                if timed_out and await self._set_calls(admin) == sets_before + 1:
                    break  # our SET timed out, and it landed
            else:
                pytest.fail("no SET timed out and then landed in five tries")
            for _ in range(100):
                if await self._lock_value(private_redis_server, "alice") is None:
                    break
                await asyncio.sleep(0.02)
            else:
                pytest.fail("the landed lock was left to its 10 s lease")
        finally:
            await admin.aclose()

    @staticmethod
    async def _set_calls(client: aioredis.Redis) -> int:
        stats = await client.info("commandstats")
        return int(stats.get("cmdstat_set", {}).get("calls", 0))

    @staticmethod
    async def _lock_value(server: RedisServer, key: str) -> bytes | str | None:
        client = redis_client(server)
        try:
            return await client.get(f"{KEY_PREFIX}{key}")
        finally:
            await client.aclose()
