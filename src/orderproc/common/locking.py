"""Per-key mutual exclusion. Callers wait (bounded) instead of failing.

The lock only keeps one user's money operations in a line; it is never the fence. The store's
conditional writes are, so a lost or skipped lock costs a retry, never money.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from orderproc.common.metrics import LockWaits
from orderproc.errors import LockTimeout


class Locker(Protocol):
    def hold(self, key: str, *, timeout: float) -> AbstractAsyncContextManager[None]:
        """Hold `key` for the block; wait at most `timeout` seconds, else `LockTimeout`."""


class InProcessLocker:
    """asyncio locks by key, forgotten when nobody holds or waits for them. With `waits`, it
    records how long each acquisition waited (not when it is a `RedisLocker`'s local lock: that
    one records the whole wait itself)."""

    def __init__(self, *, waits: LockWaits | None = None) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}
        self._waits = waits

    @asynccontextmanager
    async def hold(self, key: str, *, timeout: float) -> AsyncIterator[None]:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        self._users[key] = self._users.get(key, 0) + 1
        try:
            if lock.locked():
                started = time.perf_counter()
                try:
                    await asyncio.wait_for(lock.acquire(), timeout)
                except TimeoutError:
                    if self._waits is not None:
                        self._waits.timed_out(time.perf_counter() - started)
                    raise LockTimeout() from None
                if self._waits is not None:
                    self._waits.waited(time.perf_counter() - started)
            else:  # the common case: no task and no timer for an uncontended lock
                await lock.acquire()
                if self._waits is not None:
                    self._waits.at_once()
            try:
                yield
            finally:
                lock.release()
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:
                del self._users[key]
                del self._locks[key]


def account_lock_key(user_id: str) -> str:
    """The one key that serializes a user's deposits, withdrawals and orders."""
    return f"account:{user_id}"
