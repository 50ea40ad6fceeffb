"""A small circuit breaker for calls to a helper service (Redis) we can live without.

closed ──N consecutive failures──▶ open ──cool-down──▶ half-open ──success──▶ closed
                                    ▲                     │
                                    └──────failure────────┘

While open, `allow()` says no and callers take their fallback at once instead of waiting for a
timeout. After the cool-down one caller at a time is let through as a probe; its success closes
the breaker, its failure opens it for another cool-down. A probe that never reports back (its
task was cancelled) is given up after one cool-down and another caller may probe.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cool_down: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cool_down < 0:
            raise ValueError("cool_down must not be negative")
        self.failure_threshold = failure_threshold
        self.cool_down = cool_down
        self._clock = clock
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probe_started: float | None = None
        self.openings = 0
        """How many times the breaker went from closed to open."""

    @property
    def state(self) -> BreakerState:
        """The state as of now: an open breaker whose cool-down has passed reads half-open."""
        if self._state == "open" and self._clock() - self._opened_at >= self.cool_down:
            return "half_open"
        return self._state

    def allow(self) -> bool:
        """May a call go through now? In half-open, yes for one probe at a time."""
        if self._state == "closed":
            return True
        now = self._clock()
        if self._state == "open":
            if now - self._opened_at < self.cool_down:
                return False
            self._state = "half_open"
            self._probe_started = None
        # half-open: one probe in flight; a probe silent for a whole cool-down is given up.
        if self._probe_started is not None and now - self._probe_started < self.cool_down:
            return False
        self._probe_started = now
        return True

    def record_success(self) -> bool:
        """Note a call that worked. True if this closed an open or half-open breaker."""
        self._failures = 0
        self._probe_started = None
        if self._state == "closed":
            return False
        self._state = "closed"
        return True

    def record_failure(self) -> bool:
        """Note a call that failed. True if this opened a closed breaker (a new outage); a
        failed probe re-opens it for another cool-down and returns False."""
        now = self._clock()
        self._probe_started = None
        if self._state == "closed":
            self._failures += 1
            if self._failures < self.failure_threshold:
                return False
            self._open(now)
            self.openings += 1
            return True
        if self._state == "half_open":
            self._open(now)
        # A late failure of a call begun before the breaker opened changes nothing.
        return False

    def _open(self, now: float) -> None:
        self._state = "open"
        self._opened_at = now
        self._failures = 0
