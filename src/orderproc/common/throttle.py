"""Rate limiting: fixed-window counters keyed by client, cheap enough for every request. This
is the in-process limiter; with Redis configured, `common/redis_shared.py` counts for every
process in one round trip and falls back to this one when Redis is down. Failed-password
throttling is `common/login_throttle.py`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from orderproc.common.login_throttle import LoginThrottle


@dataclass(frozen=True, slots=True)
class Allowance:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int


class WindowCounter:
    """Counts events per key in fixed windows of `window` seconds."""

    def __init__(
        self, *, window: float, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        self._counts: dict[str, tuple[float, int]] = {}

    def hit(self, key: str) -> tuple[int, float]:
        """Count one event; returns (events in this window, seconds until it resets)."""
        now = self._clock()
        started, count = self._counts.get(key, (now, 0))
        if now - started >= self.window:
            started, count = now, 0
        if len(self._counts) >= self._max_keys and key not in self._counts:
            self._evict(now)
        self._counts[key] = (started, count + 1)
        return count + 1, self.window - (now - started)

    def count(self, key: str) -> int:
        entry = self._counts.get(key)
        if entry is None or self._clock() - entry[0] >= self.window:
            return 0
        return entry[1]

    def reset(self, key: str) -> None:
        self._counts.pop(key, None)

    def _evict(self, now: float) -> None:
        """Drop finished windows; if that is not enough, the oldest half (never everything, so
        a flood of new keys cannot wipe a victim's count that is still live)."""
        self._counts = {k: v for k, v in self._counts.items() if now - v[0] < self.window}
        if len(self._counts) >= self._max_keys:
            by_age = sorted(self._counts.items(), key=lambda item: item[1][0])
            self._counts = dict(by_age[len(by_age) // 2 :])


class RateLimiter:
    """At most `per_minute` requests per client per minute."""

    def __init__(self, *, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._window = WindowCounter(window=60.0, clock=clock)

    def allow(self, client: str) -> Allowance:
        count, reset_after = self._window.hit(client)
        return Allowance(
            allowed=count <= self.per_minute,
            limit=self.per_minute,
            remaining=max(0, self.per_minute - count),
            reset_after=max(1, math.ceil(reset_after)),
        )

    async def admit(
        self, client: str, throttle: LoginThrottle, *, count: bool
    ) -> tuple[int, Allowance | None]:
        """What the edge asks of every request: (seconds left on the address's failed-login
        block, 0 if none; the allowance, or None when blocked or when `count` is off)."""
        if blocked := await throttle.address_blocked(client):
            return blocked, None
        return 0, self.allow(client) if count else None

    async def aclose(self) -> None:
        """Nothing to release in process (the Redis limiter closes its client)."""
