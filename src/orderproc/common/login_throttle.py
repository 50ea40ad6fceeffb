"""Failed-password throttling (ASVS 6.1.1; docs/security.md, "Login abuse"), as a port.

Three counters, all fixed windows, and two kinds of block:

- **pair** (username, client): `pair_limit` failures within `window` block that pair for
  `block_seconds` (429). The client is the device id of a valid device cookie for that username
  when one is presented, else the address; so an attacker elsewhere, or behind the owner's NAT,
  never blocks the owner's own device.
- **username**: past `user_limit` failures within `user_window`, only attempts from a device that
  logged in to it before are evaluated; the rest get 429 until the window ends.
- **address**: an address whose failures start `address_limit` pairs within `window` (credential
  stuffing: many usernames) is blocked for `block_seconds` (403 on every request). One username
  from one client starts at most one pair a window, so an owner's typos never block their
  address.

A refused attempt is not evaluated and counts nothing. Callers answer; no one sleeps.

The port is async so the Redis adapter (`common/redis_shared.py`) can keep the state for
several processes, in the same shapes as the in-memory one here (a window's start and count per
counter, an end time per block, on the caller's clock), one round trip per call; it falls back
to an in-memory throttle when Redis is down. The in-memory adapter keeps them in dicts, bounded
in size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from orderproc.common.clock import Clock
    from orderproc.common.settings import Settings

__all__ = [
    "DisabledLoginThrottle",
    "InMemoryLoginThrottle",
    "LoginAttempt",
    "LoginThrottle",
    "LoginVerdict",
]

Scope = Literal["address", "user", "pair"]
Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """Who tries a password for which username. `device` is the id from a device cookie that
    was verified for this username (never a raw cookie)."""

    username: str
    address: str
    device: str | None = None

    @property
    def client(self) -> str:
        return f"device:{self.device}" if self.device else f"address:{self.address}"


@dataclass(frozen=True, slots=True)
class LoginVerdict:
    """`refused` is None when the attempt may be evaluated; else what refuses it, and for
    how many more seconds."""

    refused: Scope | None = None
    retry_after: int = 0


ALLOWED = LoginVerdict()


class LoginThrottle(Protocol):
    async def address_blocked(self, address: str) -> int:
        """Seconds left on this address's block, 0 if none (checked on every request)."""
        ...

    async def check(self, attempt: LoginAttempt) -> LoginVerdict:
        """Whether this attempt may be evaluated at all (before any hashing)."""
        ...

    async def record_failure(self, attempt: LoginAttempt) -> tuple[Scope, ...]:
        """Count a wrong password; returns the blocks this failure started, if any."""
        ...

    async def record_success(self, attempt: LoginAttempt) -> None:
        """A right password: the pair's failures are forgotten (not the username's or the
        address's, which other clients may be running up)."""
        ...


class DisabledLoginThrottle:
    """`ORDERPROC_LOGIN_BLOCK_ENABLED=false`: counts nothing, refuses nothing."""

    async def address_blocked(self, address: str) -> int:
        return 0

    async def check(self, attempt: LoginAttempt) -> LoginVerdict:
        return ALLOWED

    async def record_failure(self, attempt: LoginAttempt) -> tuple[Scope, ...]:
        return ()

    async def record_success(self, attempt: LoginAttempt) -> None:
        return None


def _seconds(left: float) -> int:
    return max(1, math.ceil(left))


class _Windows:
    """Fixed-window counters by key; a window starts at its key's first event. At `max_keys`,
    finished windows go first, then the half with the fewest events (the oldest among equals),
    so a flood of fresh keys evicts itself rather than a victim's live count."""

    def __init__(self, window: float, max_keys: int) -> None:
        self.window = window
        self._max_keys = max_keys
        self._counts: dict[Key, tuple[float, int]] = {}

    def hit(self, key: Key, now: float) -> int:
        started, count = self._counts.get(key, (now, 0))
        if now - started >= self.window:
            started, count = now, 0
        if key not in self._counts and len(self._counts) >= self._max_keys:
            self._evict(now)
        self._counts[key] = (started, count + 1)
        return count + 1

    def peek(self, key: Key, now: float) -> tuple[int, float]:
        """(events in the live window, seconds until it ends); (0, 0) without one."""
        entry = self._counts.get(key)
        if entry is None or now - entry[0] >= self.window:
            return 0, 0.0
        return entry[1], self.window - (now - entry[0])

    def reset(self, key: Key) -> None:
        self._counts.pop(key, None)

    def __len__(self) -> int:
        return len(self._counts)

    def _evict(self, now: float) -> None:
        live = {k: v for k, v in self._counts.items() if now - v[0] < self.window}
        if len(live) >= self._max_keys:
            ranked = sorted(live.items(), key=lambda item: (item[1][1], item[1][0]))
            live = dict(ranked[len(ranked) // 2 :])
        self._counts = live


class _Blocks:
    """Blocks by key until a moment; at `max_keys`, ended ones go, then those ending soonest."""

    def __init__(self, max_keys: int) -> None:
        self._max_keys = max_keys
        self._until: dict[Key, float] = {}

    def block(self, key: Key, until: float, now: float) -> None:
        if key not in self._until and len(self._until) >= self._max_keys:
            live = {k: u for k, u in self._until.items() if u > now}
            if len(live) >= self._max_keys:
                live = dict(sorted(live.items(), key=lambda item: item[1])[len(live) // 2 :])
            self._until = live
        self._until[key] = until

    def left(self, key: Key, now: float) -> float:
        until = self._until.get(key)
        if until is None:
            return 0.0
        if until <= now:
            del self._until[key]
            return 0.0
        return until - now

    def __len__(self) -> int:
        return len(self._until)


class InMemoryLoginThrottle:
    """The embedded mode's throttle: one process's memory. `clock` gives seconds (the runtime
    passes its clock's Unix time, so tests can move it)."""

    def __init__(
        self,
        *,
        pair_limit: int,
        user_limit: int,
        address_limit: int,
        window: float,
        user_window: float,
        block_seconds: float,
        clock: Callable[[], float],
        max_keys: int = 100_000,
    ) -> None:
        self.pair_limit = pair_limit
        self.user_limit = user_limit
        self.address_limit = address_limit
        self.block_seconds = block_seconds
        self.window = window
        self.user_window = user_window
        self.clock = clock
        self._clock = clock
        self._pairs = _Windows(window, max_keys)
        self._users = _Windows(user_window, max_keys)
        self._addresses = _Windows(window, max_keys)
        self._blocks = _Blocks(max_keys)

    async def address_blocked(self, address: str) -> int:
        if not len(self._blocks):
            return 0
        left = self._blocks.left(("address", address), self._clock())
        return _seconds(left) if left else 0

    async def check(self, attempt: LoginAttempt) -> LoginVerdict:
        now = self._clock()
        if left := self._blocks.left(("address", attempt.address), now):
            return LoginVerdict("address", _seconds(left))
        if attempt.device is None:
            count, window_left = self._users.peek(("user", attempt.username), now)
            if count > self.user_limit:
                return LoginVerdict("user", _seconds(window_left))
        if left := self._blocks.left(self._pair(attempt), now):
            return LoginVerdict("pair", _seconds(left))
        return ALLOWED

    async def record_failure(self, attempt: LoginAttempt) -> tuple[Scope, ...]:
        now = self._clock()
        started: list[Scope] = []
        pair = self._pair(attempt)
        failures = self._pairs.hit(pair, now)
        if failures >= self.pair_limit:
            self._blocks.block(pair, now + self.block_seconds, now)
            self._pairs.reset(pair)
            started.append("pair")
        if failures == 1:  # a pair's first failure in its window: one more pair at this address
            address = ("address", attempt.address)
            if self._addresses.hit(address, now) >= self.address_limit:
                self._blocks.block(address, now + self.block_seconds, now)
                self._addresses.reset(address)
                started.append("address")
        if self._users.hit(("user", attempt.username), now) == self.user_limit + 1:
            started.append("user")
        return tuple(started)

    async def record_success(self, attempt: LoginAttempt) -> None:
        self._pairs.reset(self._pair(attempt))

    @staticmethod
    def _pair(attempt: LoginAttempt) -> Key:
        return ("pair", attempt.username, attempt.client)


def in_process_login_throttle(settings: Settings, clock: Clock) -> LoginThrottle:
    """Failed-password counters in this process's memory, as the settings say (the Redis one,
    when configured, falls back to it)."""
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
