"""Per-key mutual exclusion across processes, through Redis.

- Acquire: `SET orderproc:lock:<key> <random token> NX PX <lease_ms>`, retried with short
  jittered sleeps until the caller's timeout, then `LockTimeout`.
- Release: a Lua compare-and-delete, so a holder whose lease ran out never deletes the lock that
  somebody else has taken since.
- In front of Redis, a per-process `InProcessLocker` on the same key: one process's waiters queue
  locally and only one of them at a time contends on Redis. The timeout covers both waits.
- With `waits`, the whole wait (local queue and Redis together) is recorded once per hold, and
  a wait that ends in `LockTimeout` is counted as a timeout.
- Every Redis call is bounded by `op_timeout`; failures feed a `CircuitBreaker`. When a call fails
  or the breaker is open, the Redis lock is skipped and the block runs under the local lock alone.
  A warning is logged once per opening of the breaker, an info line when it closes again.

The lock is never the fence (docs/money.md, "The lock"): the store's conditional writes are. So
the failure modes left open here on purpose cost a retry (a version conflict), never money:

- The lease is not extended. A block that outlives `lease_ms` (10 s by default, far above any
  money operation) loses the lock silently; another process may then enter, and the store fences.
  The late release finds someone else's token, deletes nothing, and logs a warning.
- A SET that times out on our side may still have landed in Redis; a background task tries to
  delete it (same compare-and-delete, same timeout) and otherwise it expires with its lease.
- With Redis down, processes no longer exclude each other; each still serializes its own callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from orderproc.common.breaker import CircuitBreaker
from orderproc.common.locking import InProcessLocker
from orderproc.common.metrics import LockWaits
from orderproc.common.resp import LeanRedis, LuaScript, RespError
from orderproc.errors import LockTimeout

log = logging.getLogger("orderproc.locking")

KEY_PREFIX = "orderproc:lock:"

# Delete the key only while it still holds our token.
RELEASE_SCRIPT = LuaScript(
    """
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
"""
)

# Sleeps between SET NX attempts while another process holds the lock: from 2 ms doubling to
# 50 ms, each scaled by a random factor in [0.5, 1.5) so waiters in different processes spread out.
_FIRST_RETRY = 0.002
_MAX_RETRY = 0.05

# What a Redis call may raise when Redis is slow, down or unhappy (an error reply, a timeout,
# a refused, reset or lost connection).
_REDIS_FAILURES = (RespError, OSError, TimeoutError)


class RedisLocker:
    """The `Locker` of distributed mode. See the module docstring for what it guarantees."""

    def __init__(
        self,
        client: LeanRedis,
        *,
        lease_ms: int = 10_000,
        op_timeout: float = 0.25,
        breaker: CircuitBreaker | None = None,
        local: InProcessLocker | None = None,
        waits: LockWaits | None = None,
    ) -> None:
        if lease_ms < 1:
            raise ValueError("lease_ms must be at least 1")
        if op_timeout <= 0:
            raise ValueError("op_timeout must be positive")
        self._client = client
        self.lease_ms = lease_ms
        self.op_timeout = op_timeout
        self.breaker = breaker or CircuitBreaker()
        self._local = local or InProcessLocker()
        self._waits = waits
        self._cleanups: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Wait for pending clean-ups, then close the client."""
        if self._cleanups:
            await asyncio.gather(*self._cleanups, return_exceptions=True)
        await self._client.aclose()

    async def ping(self) -> None:
        """Raise if Redis does not answer in time (for readiness checks)."""
        await self._call(self._client.execute(b"PING"))

    @contextlib.asynccontextmanager
    async def hold(self, key: str, *, timeout: float) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        started = time.perf_counter()
        acquired = False
        try:
            async with self._local.hold(key, timeout=timeout):
                redis_key = KEY_PREFIX + key
                token = await self._acquire(redis_key, deadline)
                acquired = True
                if self._waits is not None:
                    self._waits.waited(time.perf_counter() - started)
                try:
                    yield
                finally:
                    if token is not None:
                        await self._release(redis_key, token)
        except LockTimeout:
            if not acquired and self._waits is not None:
                self._waits.timed_out(time.perf_counter() - started)
            raise

    async def _acquire(self, redis_key: str, deadline: float) -> str | None:
        """The token we hold the key with, or None when Redis is skipped; LockTimeout when
        another holder keeps it past the deadline."""
        loop = asyncio.get_running_loop()
        token = secrets.token_hex(16)
        delay = _FIRST_RETRY
        while True:
            if not self.breaker.allow():
                return None
            try:
                taken = await self._call(
                    self._client.execute(b"SET", redis_key, token, b"NX", b"PX", self.lease_ms)
                )
            except _REDIS_FAILURES as exc:
                self._failed("SET", exc)
                if isinstance(exc, TimeoutError):
                    self._clean_up_in_background(redis_key, token)
                return None
            self._succeeded()
            if taken:
                return token
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise LockTimeout()
            await asyncio.sleep(min(remaining, delay * random.uniform(0.5, 1.5)))
            delay = min(delay * 2, _MAX_RETRY)

    async def _release(self, redis_key: str, token: str) -> None:
        if not self.breaker.allow():
            return  # Redis is down: the lease will expire by itself.
        try:
            deleted = await self._call(self._client.evalsha(RELEASE_SCRIPT, [redis_key], [token]))
        except _REDIS_FAILURES as exc:
            self._failed("release", exc)
            return
        self._succeeded()
        if not deleted:
            log.warning(
                "lock lease expired while held; another holder may have run alongside",
                extra={"lock_key": redis_key, "lease_ms": self.lease_ms},
            )

    def _clean_up_in_background(self, redis_key: str, token: str) -> None:
        """After a SET that timed out on our side: it may have landed, so take it back, without
        making the caller wait a second timeout (it goes on under the local lock)."""
        task = asyncio.create_task(self._delete_if_ours(redis_key, token))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _delete_if_ours(self, redis_key: str, token: str) -> None:
        # Not counted against the breaker; if this fails too, the lease expires anyway.
        with contextlib.suppress(*_REDIS_FAILURES):
            await self._call(self._client.evalsha(RELEASE_SCRIPT, [redis_key], [token]))

    async def _call(self, awaitable: Awaitable[Any]) -> Any:
        async with asyncio.timeout(self.op_timeout):
            return await awaitable

    def _failed(self, operation: str, exc: BaseException) -> None:
        opened = self.breaker.record_failure()
        if opened:
            log.warning(
                "Redis lock unavailable; running under the per-process lock only until it "
                "answers again (the store's conditional writes still fence)",
                extra={"operation": operation, "error": repr(exc)},
            )
        else:
            log.debug("Redis lock call failed", extra={"operation": operation, "error": repr(exc)})

    def _succeeded(self) -> None:
        if self.breaker.record_success():
            log.info("Redis lock available again")
