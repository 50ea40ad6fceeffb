"""State that every process of the platform shares through Redis: rate limits, failed-login
counts and blocks, and token revocations. Each is an adapter of a port the embedded mode
implements in memory, and each falls back to that in-memory implementation, never to nothing.

- **One round trip per check.** The edge's question for every request (is this address
  blocked after failed logins, and how many requests has it made this minute) is one Lua
  script; a login's check is one `MGET`, a failure one script, a success one `DEL`; a token
  check one `MGET` (its revoked id and its user's change mark).
- **Lean.** Each piece talks to Redis over one pipelined connection of its own
  (`common/resp.py`: about 20 µs of CPU per call here, against about 70 µs through redis-py).
- **Bounded.** Every call is bounded by `ORDERPROC_REDIS_TIMEOUT_SECONDS` (connecting and each
  reply; there are no retries), so a Redis that accepts and never answers costs a request at
  most that long.
- **A breaker per piece** (`rate_limit`, `login`, `revocation`, and `prices`, `lease`,
  `sessions` and `tickets`, whose adapters live with what they serve): after
  `ORDERPROC_REDIS_BREAKER_FAILURES` failures in a row the piece skips Redis for
  `ORDERPROC_REDIS_BREAKER_COOL_DOWN_SECONDS`, then one call probes it. A warning is logged when
  a piece switches to its fallback, an info line when it is back on Redis, and
  `orderproc_circuit_breaker_state{breaker="redis_<piece>"}` and
  `orderproc_redis_fallbacks_total{piece}` say the same to Prometheus.
- **Fallbacks.** Rate limits and login blocking: this process's in-memory limiter and throttle,
  with the same settings (so while Redis is down each process limits on its own: a client that
  spreads its requests over N processes gets up to N times the limit, never unlimited). What the
  in-memory throttle blocked during an outage stays blocked after Redis returns (it is asked
  too). Revocation: the store, as without Redis (never "allow" because Redis failed).

Windows and blocks are kept as in `common/login_throttle.py`: a window's start and its count,
a block's end, as times on the caller's clock (the wall clock; hosts are assumed synchronized
to well under a second). Redis expires every key when its window or block ends, so its memory
is bounded by the traffic of one window. The rate-limit window runs on Redis's own clock.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, Literal

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric

from orderproc.common.breaker import CircuitBreaker
from orderproc.common.login_throttle import (
    DisabledLoginThrottle,
    InMemoryLoginThrottle,
    LoginAttempt,
    LoginThrottle,
    LoginVerdict,
    Scope,
)
from orderproc.common.metrics import Metrics
from orderproc.common.resp import LeanRedis, LuaScript, RespError
from orderproc.common.settings import Settings
from orderproc.common.throttle import Allowance, RateLimiter

__all__ = [
    "RedisLoginThrottle",
    "RedisRateLimiter",
    "RedisRevocations",
    "RedisUnavailable",
    "SharedRedis",
    "login_throttle_for",
    "rate_limiter_for",
    "redis_client",
    "revocations_for",
]

log = logging.getLogger("orderproc.redis_shared")

Piece = Literal["rate_limit", "login", "revocation", "prices", "lease", "sessions", "tickets"]

PREFIX = "orderproc:"
RATE_WINDOW_MS = 60_000

# What a Redis call may raise when Redis is slow, down or unhappy (an error reply, a timeout,
# a refused, reset or lost connection).
_FAILURES = (RespError, OSError, TimeoutError)

_FALLBACK = {
    "rate_limit": "rate limits are counted by each process on its own",
    "login": "failed logins are counted and blocked by each process on its own",
    "revocation": "token checks ask the database (revocations by other processes are seen "
    "within ORDERPROC_REVOCATION_CACHE_SECONDS)",
    "prices": "ticks are not published; other processes read prices from the store",
    "lease": "the price-feed leader keeps leading and no other process can take over",
    "sessions": "web sessions are kept by each process on its own",
    "tickets": "stream tickets are issued and redeemed by each process on its own",
}


class RedisUnavailable(Exception):
    """Redis did not answer in time, failed, or its breaker is open: take the fallback."""


def redis_client(settings: Settings) -> LeanRedis:
    """A client for `settings.redis_url` whose every wait is bounded by the shared-state
    timeout."""
    assert settings.redis_url is not None
    return LeanRedis.from_url(settings.redis_url, timeout=settings.redis_timeout_seconds)


class SharedRedis:
    """One piece's access to Redis: a client (whose timeout bounds each call) and a breaker,
    with the log lines and counts of its switches to and from the fallback."""

    def __init__(
        self,
        client: LeanRedis,
        piece: Piece,
        *,
        breaker: CircuitBreaker | None = None,
        owns_client: bool = True,
    ) -> None:
        self.client = client
        self.piece = piece
        self.breaker = breaker or CircuitBreaker()
        self.fallbacks = 0
        """Answers this piece gave without Redis."""
        self._owns_client = owns_client

    @classmethod
    def from_settings(
        cls, settings: Settings, piece: Piece, *, metrics: Metrics | None = None
    ) -> SharedRedis:
        shared = cls(
            redis_client(settings),
            piece,
            breaker=CircuitBreaker(
                failure_threshold=settings.redis_breaker_failures,
                cool_down=settings.redis_breaker_cool_down_seconds,
            ),
        )
        if metrics is not None:
            shared.watch(metrics)
        return shared

    def watch(self, metrics: Metrics) -> None:
        """Expose the breaker and the fallback count on `metrics`."""
        metrics.watch_breaker(f"redis_{self.piece}", self.breaker)
        _fallback_counts(metrics).shared[self.piece] = self

    async def call(self, command: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`await command(*args, **kwargs)` within the timeout; `RedisUnavailable` when the
        breaker is open or the call fails (the failure counts towards opening it)."""
        if not self.breaker.allow():
            self.fallbacks += 1
            raise RedisUnavailable()
        try:
            result = await command(*args, **kwargs)  # bounded by the client's timeout
        except _FAILURES as exc:
            self.fallbacks += 1
            if self.breaker.record_failure():
                log.warning(
                    "Redis unavailable for %s: %s until it answers again",
                    self.piece.replace("_", " "),
                    _FALLBACK[self.piece],
                    extra={"piece": self.piece, "error": repr(exc)},
                )
            else:
                log.debug("Redis call failed", extra={"piece": self.piece, "error": repr(exc)})
            raise RedisUnavailable() from exc
        if self.breaker.record_success():
            log.info(
                "Redis available again for %s",
                self.piece.replace("_", " "),
                extra={"piece": self.piece},
            )
        return result

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()


class _FallbackCounts:
    """`orderproc_redis_fallbacks_total{piece}`, read when scraped."""

    def __init__(self) -> None:
        self.shared: dict[str, SharedRedis] = {}

    def describe(self) -> Iterable[Metric]:
        return self._families(())

    def collect(self) -> Iterable[Metric]:
        return self._families(self.shared.items())

    def _families(self, pieces: Iterable[tuple[str, SharedRedis]]) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "orderproc_redis_fallbacks",
            "Answers given without Redis (it failed, was slow, or its breaker was open): "
            "rate limits and login blocking by this process alone, token checks by the store",
            labels=["piece"],
        )
        for name, shared in pieces:
            family.add_metric([name], shared.fallbacks)
        yield family


_COUNTS: weakref.WeakKeyDictionary[CollectorRegistry, _FallbackCounts] = weakref.WeakKeyDictionary()


def _fallback_counts(metrics: Metrics) -> _FallbackCounts:
    """One collector per registry, registered the first time a piece is watched on it."""
    counts = _COUNTS.get(metrics.registry)
    if counts is None:
        counts = _COUNTS[metrics.registry] = _FallbackCounts()
        metrics.registry.register(counts)
    return counts


def _seconds(left: float) -> int:
    return max(1, math.ceil(left))


def _text(value: float) -> str:
    """A time as Lua reads it back to the same double (Python's shortest round-trip repr)."""
    return repr(value)


def address_block_key(address: str) -> str:
    return f"{PREFIX}login:block:address:{address}"


def _hashed(username: str) -> str:
    """A username as keys hold it: fixed length (whatever a client sent) and not readable."""
    return hashlib.blake2b(username.encode(), digest_size=12).hexdigest()


def _pair_key(kind: str, attempt: LoginAttempt) -> str:
    return f"{PREFIX}login:{kind}:{_hashed(attempt.username)}:{attempt.client}"


def _user_key(username: str) -> str:
    return f"{PREFIX}login:user:{_hashed(username)}"


def _address_key(address: str) -> str:
    return f"{PREFIX}login:address:{address}"


# The edge's question for every request: unless ARGV[4] is not "1", the address's failed-login
# block (its end, on the caller's clock), then, unless blocked or not counting, one more request
# in the client's window of ARGV[2] ms (on Redis's clock; it starts at its first request).
# KEYS: block, rate counter. ARGV: now, window ms, "1" to count, "1" to read the block.
# Returns {block end} when blocked, {false} when not counting, else {false, count, ms left}.
ADMIT_SCRIPT = """
if ARGV[4] == '1' then
  local block = redis.call('GET', KEYS[1])
  if block and tonumber(block) > tonumber(ARGV[1]) then
    return {block}
  end
end
if ARGV[3] ~= '1' then
  return {false}
end
local count = redis.call('INCR', KEYS[2])
local left = redis.call('PTTL', KEYS[2])
if left < 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  left = tonumber(ARGV[2])
end
return {false, count, left}
"""

# A wrong password, as InMemoryLoginThrottle.record_failure counts it. A window is stored as
# "<start> <count>" (the start exactly as the caller wrote it), a block as its end; each key
# expires when its window or block ends.
# KEYS: pair counter, address counter, user counter, pair block, address block.
# ARGV: now, block end, window, user window, pair limit, address limit, user limit, block ms.
FAILURE_SCRIPT = """
local now = tonumber(ARGV[1])
local function hit(key, window)
  local start, count = ARGV[1], 0
  local value = redis.call('GET', key)
  if value then
    local s, c = string.match(value, '^(%S+) (%d+)$')
    if s and now - tonumber(s) < window then
      start, count = s, tonumber(c)
    end
  end
  count = count + 1
  local ms = math.ceil((window - (now - tonumber(start))) * 1000)
  if ms < 1 then
    ms = 1
  end
  redis.call('SET', key, start .. ' ' .. count, 'PX', ms)
  return count
end
local started = {}
local window = tonumber(ARGV[3])
local failures = hit(KEYS[1], window)
if failures >= tonumber(ARGV[5]) then
  redis.call('SET', KEYS[4], ARGV[2], 'PX', ARGV[8])
  redis.call('DEL', KEYS[1])
  table.insert(started, 'pair')
end
if failures == 1 then
  if hit(KEYS[2], window) >= tonumber(ARGV[6]) then
    redis.call('SET', KEYS[5], ARGV[2], 'PX', ARGV[8])
    redis.call('DEL', KEYS[2])
    table.insert(started, 'address')
  end
end
if hit(KEYS[3], tonumber(ARGV[4])) == tonumber(ARGV[7]) + 1 then
  table.insert(started, 'user')
end
return started
"""


class RedisLoginThrottle:
    """The `LoginThrottle` of several processes: the same pair, username and address rules as
    `local` (whose settings and clock it takes), kept in Redis; `local` answers when Redis
    cannot, and its blocks are honoured after Redis returns."""

    def __init__(self, shared: SharedRedis, local: InMemoryLoginThrottle) -> None:
        self.shared = shared
        self.local = local
        self._clock = local.clock
        self._failure_script = LuaScript(FAILURE_SCRIPT)
        self._block_ms = str(math.ceil(local.block_seconds * 1000))

    async def address_blocked(self, address: str) -> int:
        now = self._clock()
        try:
            until = await self.shared.call(
                self.shared.client.execute, b"GET", address_block_key(address)
            )
        except RedisUnavailable:
            return await self.local.address_blocked(address)
        if until is not None and (left := float(until) - now) > 0:
            return _seconds(left)
        return await self.local.address_blocked(address)

    async def check(self, attempt: LoginAttempt) -> LoginVerdict:
        now = self._clock()
        keys = (
            address_block_key(attempt.address),
            _user_key(attempt.username),
            _pair_key("block", attempt),
        )
        try:
            address, user, pair = await self.shared.call(self.shared.client.execute, b"MGET", *keys)
        except RedisUnavailable:
            return await self.local.check(attempt)
        if address is not None and (left := float(address) - now) > 0:
            return LoginVerdict("address", _seconds(left))
        if attempt.device is None and user is not None:
            start, count = _window(user)
            if now - start < self.local.user_window and count > self.local.user_limit:
                return LoginVerdict("user", _seconds(self.local.user_window - (now - start)))
        if pair is not None and (left := float(pair) - now) > 0:
            return LoginVerdict("pair", _seconds(left))
        return await self.local.check(attempt)  # blocks made while Redis was away

    async def record_failure(self, attempt: LoginAttempt) -> tuple[Scope, ...]:
        now = self._clock()
        local = self.local
        keys = (
            _pair_key("pair", attempt),
            _address_key(attempt.address),
            _user_key(attempt.username),
            _pair_key("block", attempt),
            address_block_key(attempt.address),
        )
        args = (
            _text(now),
            _text(now + local.block_seconds),
            _text(local.window),
            _text(local.user_window),
            local.pair_limit,
            local.address_limit,
            local.user_limit,
            self._block_ms,
        )
        try:
            started = await self.shared.call(
                self.shared.client.evalsha, self._failure_script, keys, args
            )
        except RedisUnavailable:
            return await local.record_failure(attempt)
        return tuple(_scope(name) for name in started)

    async def record_success(self, attempt: LoginAttempt) -> None:
        await self.local.record_success(attempt)
        try:
            await self.shared.call(self.shared.client.execute, b"DEL", _pair_key("pair", attempt))
        except RedisUnavailable:
            return

    async def aclose(self) -> None:
        await self.shared.aclose()


def _window(value: bytes) -> tuple[float, int]:
    start, count = value.split(b" ")
    return float(start), int(count)


_SCOPES: dict[bytes, Scope] = {b"pair": "pair", b"address": "address", b"user": "user"}


def _scope(name: bytes) -> Scope:
    return _SCOPES[name]


class RedisRateLimiter(RateLimiter):
    """At most `per_minute` requests per client per minute across every process, and the
    address's failed-login block, in one round trip. Its in-process counting (the base class)
    and `local_throttle` answer when Redis cannot."""

    def __init__(
        self,
        shared: SharedRedis,
        *,
        per_minute: int,
        local_throttle: LoginThrottle,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(per_minute=per_minute)
        self.shared = shared
        self._local_throttle = local_throttle
        self._clock = clock  # the login throttle's (wall) clock, for block ends
        self._script = LuaScript(ADMIT_SCRIPT)
        self._window_ms = str(RATE_WINDOW_MS)

    async def admit(
        self, client: str, throttle: LoginThrottle, *, count: bool
    ) -> tuple[int, Allowance | None]:
        """Blocks are read in Redis directly (where the process's `RedisLoginThrottle` keeps
        them), and from `local_throttle` for what it blocked while Redis was away; not at all
        when `throttle` is a `DisabledLoginThrottle` (as for counting per user)."""
        blocks = not isinstance(throttle, DisabledLoginThrottle)
        if not (blocks or count):
            return 0, None  # nothing to ask
        now = self._clock()
        keys = (address_block_key(client), f"{PREFIX}rate:{client}")
        args = (_text(now), self._window_ms, "1" if count else "0", "1" if blocks else "0")
        try:
            reply = await self.shared.call(self.shared.client.evalsha, self._script, keys, args)
        except RedisUnavailable:
            local = self._local_throttle if blocks else throttle
            return await super().admit(client, local, count=count)
        if reply[0] is not None:
            return _seconds(float(reply[0]) - now), None
        if blocks and (blocked := await self._local_throttle.address_blocked(client)):
            return blocked, None
        if len(reply) == 1:
            return 0, None
        used, left_ms = int(reply[1]), int(reply[2])
        return 0, Allowance(
            allowed=used <= self.per_minute,
            limit=self.per_minute,
            remaining=max(0, self.per_minute - used),
            reset_after=max(1, math.ceil(left_ms / 1000)),
        )

    async def aclose(self) -> None:
        await self.shared.aclose()


class RedisRevocations:
    """`SharedRevocations` in Redis: `orderproc:revoked:<jti>` until the token expires, and
    `orderproc:user-changed:<user id>`, a random mark renewed at each change, kept as long as a
    token issued before it may live. Failures answer None / do nothing: the store decides."""

    def __init__(
        self, shared: SharedRedis, *, now: Callable[[], datetime], token_ttl_seconds: int
    ) -> None:
        self.shared = shared
        self._now = now
        self._mark_ms = token_ttl_seconds * 1000

    async def lookup(self, jti: str, user_id: str) -> tuple[bool, bytes | None] | None:
        keys = (f"{PREFIX}revoked:{jti}", f"{PREFIX}user-changed:{user_id}")
        try:
            revoked, mark = await self.shared.call(self.shared.client.execute, b"MGET", *keys)
        except RedisUnavailable:
            return None
        return revoked is not None, mark

    async def revoke(self, jti: str, expires_at: datetime) -> None:
        left_ms = math.ceil((expires_at - self._now()).total_seconds() * 1000)
        if left_ms <= 0:
            return  # expired already: nobody can use it
        try:
            await self.shared.call(
                self.shared.client.execute, b"SET", f"{PREFIX}revoked:{jti}", b"1", b"PX", left_ms
            )
        except RedisUnavailable:
            return  # the store has it; other processes see it within their cache time

    async def user_changed(self, user_id: str) -> None:
        mark = secrets.token_hex(8)
        try:
            await self.shared.call(
                self.shared.client.execute,
                b"SET",
                f"{PREFIX}user-changed:{user_id}",
                mark,
                b"PX",
                self._mark_ms,
            )
        except RedisUnavailable:
            return

    async def aclose(self) -> None:
        await self.shared.aclose()


# What a composition root calls: each returns the in-process object unchanged without Redis.


def login_throttle_for(
    settings: Settings, local: LoginThrottle, *, metrics: Metrics | None = None
) -> LoginThrottle:
    """`local` shared through Redis when `ORDERPROC_REDIS_URL` is set (and blocking is on)."""
    if not settings.redis_url or not isinstance(local, InMemoryLoginThrottle):
        return local
    return RedisLoginThrottle(SharedRedis.from_settings(settings, "login", metrics=metrics), local)


def rate_limiter_for(
    settings: Settings, login_throttle: LoginThrottle, *, metrics: Metrics | None = None
) -> RateLimiter:
    """The in-process limiter, or with Redis the shared one (which also reads the address
    blocks of `login_throttle`, built by `login_throttle_for`, in the same round trip)."""
    per_minute = settings.rate_limit_per_minute
    if not settings.redis_url:
        return RateLimiter(per_minute=per_minute)
    local = login_throttle.local if isinstance(login_throttle, RedisLoginThrottle) else None
    return RedisRateLimiter(
        SharedRedis.from_settings(settings, "rate_limit", metrics=metrics),
        per_minute=per_minute,
        local_throttle=local or login_throttle,
        clock=local.clock if local is not None else time.time,
    )


def revocations_for(
    settings: Settings, *, now: Callable[[], datetime], metrics: Metrics | None = None
) -> RedisRevocations | None:
    """The shared fast path of `RevocationChecker`, or None without Redis."""
    if not settings.redis_url:
        return None
    return RedisRevocations(
        SharedRedis.from_settings(settings, "revocation", metrics=metrics),
        now=now,
        token_ttl_seconds=settings.access_token_ttl_seconds,
    )
