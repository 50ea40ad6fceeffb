"""Prices across processes (distributed mode): the price-feed leader's ticks reach every other
process through Redis, and one inventory process at a time is that leader.

- **Tick messages** (`encode_tick`, `decode_tick`) go on the channel `orderproc:prices:<db>`
  (Redis channels are not per database, so the database number is in the name) as JSON:
  `{"v": 1, "source": <process>, "seq": <n>, "full": <bool>, "quotes": [{<Quote's fields>}]}`.
  A quote is written field by field from `Quote` (decimals as strings, times as RFC 3339), and
  read back the same way, ignoring fields it does not know and defaulting fields it lacks, so a
  field can be added without a new version; `v` changes only when a change would mislead an
  older reader, and a reader drops messages of a version it does not know. A message carries the
  quotes that moved on that tick; every `KEYFRAME_TICKS`-th message carries every quote
  (`full`), which is how a deactivation, or a message lost while a receiver reconnected, reaches
  everyone within seconds. An admin's change to an asset is announced on the same channel
  (`{"v": 1, "source": …, "asset": <id>}`), and every other inventory process reloads that
  asset's row, so the leader prices a new or re-activated asset from its next tick on.
- **Receiving** (`PriceFollower`): a process that does not tick (every orders process, and an
  inventory process that is not the leader) merges the channel's quotes into what it reads
  prices through, newest first by `as_of`. It reads the store's asset rows (which the leader
  writes on every tick) at start, and whenever the channel has been silent for two tick
  intervals: Redis down, no Redis configured, or no leader publishing. So prices keep flowing
  while Redis is down, at one store read per tick interval per process.
- **Leadership** (`FeedLease`): the leader holds the key `orderproc:lease:price-feed` with a
  time to live of `ORDERPROC_FEED_LEASE_SECONDS`, and renews it every third of that. When the
  leader dies, its key expires and the next follower to ask takes it: a new leader within one
  lease time and one renewal interval. While Redis does not answer, each process keeps the role
  it had (the leader keeps ticking, so prices and trading go on; no follower can take over
  without Redis), and when Redis answers again the lease is claimed afresh, by the old leader if
  it is still alive (its renewal finds the key gone and takes it). Two processes can tick at the
  same time only around a failure: a leader stalled past its lease ticks once more before it
  learns it lost it. Prices then move twice; money cannot go wrong, since every fill reads one
  price and the store guards every write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any, get_type_hints

import orjson

from orderproc.common.periodic import Periodic
from orderproc.common.prices import QUOTE_FIELDS, PriceCache, Quote, QuoteView
from orderproc.common.redis_shared import RedisUnavailable, SharedRedis
from orderproc.common.resp import LeanRedis, LuaScript
from orderproc.common.storage.ports import Store

__all__ = [
    "CHANNEL",
    "KEYFRAME_TICKS",
    "FeedLease",
    "PriceFollower",
    "PricePublisher",
    "channel_of",
    "decode_tick",
    "encode_asset_change",
    "encode_tick",
]

log = logging.getLogger("orderproc.price_fanout")

CHANNEL = b"orderproc:prices:%d"
LEASE_KEY = b"orderproc:lease:price-feed"
VERSION = 1
KEYFRAME_TICKS = 10
RESUBSCRIBE_SECONDS = (0.2, 5.0)  # the first and the longest wait before subscribing again


def channel_of(client: LeanRedis) -> bytes:
    return CHANNEL % client.db


class UnknownVersion(ValueError):
    """A tick message of a version this process does not read."""


# --- messages ----------------------------------------------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def encode_tick(quotes: Iterable[QuoteView], *, source: str, seq: int, full: bool) -> bytes:
    rows = [{name: getattr(quote, name) for name in QUOTE_FIELDS} for quote in quotes]
    message = {"v": VERSION, "source": source, "seq": seq, "full": full, "quotes": rows}
    return orjson.dumps(message, default=_json_default)


def _reader(kind: Any) -> Callable[[Any], Any]:
    """How a JSON value becomes the field's type (`X | None` reads None as None)."""
    text = str(kind)
    if "Decimal" in text:
        base: Callable[[Any], Any] = Decimal
    elif "datetime" in text:
        base = datetime.fromisoformat
    else:
        return lambda value: value  # str, int, bool: JSON's own
    return lambda value: None if value is None else base(value)


_READERS = {name: _reader(kind) for name, kind in get_type_hints(Quote).items()}


def encode_asset_change(asset_id: str, *, source: str) -> bytes:
    """An asset an admin added or changed (its row is in the store): the other inventory
    processes reload it, so the leader's feed prices a new asset from its next tick on."""
    return orjson.dumps({"v": VERSION, "source": source, "asset": asset_id})


def _message(data: bytes) -> dict[str, Any]:
    message = orjson.loads(data)
    if not isinstance(message, dict) or message.get("v") != VERSION:
        version = message.get("v") if isinstance(message, dict) else None
        raise UnknownVersion(f"tick message version {version!r}")
    return message


def decode_tick(data: bytes) -> tuple[str, bool, list[Quote]]:
    """(source, full, quotes) of a tick message; `UnknownVersion` or `ValueError` when it
    cannot be read."""
    return _quotes_of(_message(data))


def _quotes_of(message: dict[str, Any]) -> tuple[str, bool, list[Quote]]:
    quotes = []
    for row in message["quotes"]:
        known = {k: _READERS[k](v) for k, v in row.items() if k in _READERS}
        try:
            quotes.append(Quote(**known))
        except TypeError as error:  # a field without a default is missing
            raise ValueError(f"tick message quote: {error}") from None
    return str(message.get("source", "")), bool(message.get("full")), quotes


# --- publishing --------------------------------------------------------------------------------


class PricePublisher:
    """Publishes each tick's moved quotes (every `KEYFRAME_TICKS`-th tick, all of them), as a
    `PriceTicker` listener. A publish is sent without waiting for it; one that fails counts
    towards the `prices` breaker, and while it is open ticks are not published (receivers read
    the store meanwhile)."""

    def __init__(self, redis: SharedRedis, cache: PriceCache, *, source: str) -> None:
        self.redis, self.cache, self.source = redis, cache, source
        self.seq = 0
        self._pending: set[asyncio.Task[None]] = set()

    def on_tick(self, moved: Iterable[Any], now: datetime) -> None:
        self.seq += 1
        full = self.seq % KEYFRAME_TICKS == 1
        if full:
            quotes = self.cache.all()
        else:
            found = (self.cache.quote(asset.asset_id) for asset in moved)
            quotes = [q for q in found if q is not None]
        self._publish(encode_tick(quotes, source=self.source, seq=self.seq, full=full))

    def asset_changed(self, asset_id: str) -> None:
        self._publish(encode_asset_change(asset_id, source=self.source))

    def _publish(self, data: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._send(data))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send(self, data: bytes) -> None:
        # A failure is logged by the breaker; receivers read the store meanwhile.
        with contextlib.suppress(RedisUnavailable):
            channel = channel_of(self.redis.client)
            await self.redis.call(self.redis.client.execute, b"PUBLISH", channel, data)

    async def stop(self) -> None:
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        await self.redis.aclose()


# --- receiving ---------------------------------------------------------------------------------


class PriceFollower:
    """Keeps a process's prices current without ticking: `apply` receives quotes from the
    channel (when `redis` is given) and from the store's asset rows at start and whenever the
    channel has been quiet for two `interval`s. `ignore` names a source whose messages are its
    own (an inventory process hears its own ticks when it leads)."""

    def __init__(
        self,
        *,
        store: Store,
        apply: Callable[[list[Quote], bool], None],
        interval: float,
        redis: LeanRedis | None = None,
        ignore: str | None = None,
    ) -> None:
        self.store, self.apply, self.interval = store, apply, interval
        self.redis, self.ignore = redis, ignore
        self.on_asset: Callable[[str], None] | None = None
        """Told of each asset another process's admin added or changed."""
        self.wanted: Callable[[], bool] = lambda: True
        """Whether this process needs others' prices now (not while it leads the feed)."""
        self.received = 0
        """Tick messages applied from the channel."""
        self.store_reads = 0
        self._heard = -1e9  # when the channel last brought a message (monotonic)
        self._poll = Periodic("price refresh", interval=interval, step=self._maybe_read, log=log)
        self._listen: asyncio.Task[None] | None = None

    @property
    def channel_live(self) -> bool:
        return time.monotonic() - self._heard <= 2 * self.interval

    async def read_store(self) -> None:
        async with self.store.unit_of_work() as uow:
            records = await uow.assets.list_all()
        self.store_reads += 1
        self.apply([Quote.from_record(r) for r in records], True)

    async def _maybe_read(self) -> None:
        if not self.channel_live and self.wanted():
            await self.read_store()

    async def _listen_forever(self) -> None:
        assert self.redis is not None
        wait = RESUBSCRIBE_SECONDS[0]
        while True:
            try:
                async for data in self.redis.messages(channel_of(self.redis)):
                    wait = RESUBSCRIBE_SECONDS[0]
                    self._receive(data)
            except (OSError, TimeoutError, ValueError) as error:  # ConnectionError is an OSError
                log.debug("price channel lost: %r; subscribing again in %.1f s", error, wait)
            await asyncio.sleep(wait)
            wait = min(wait * 2, RESUBSCRIBE_SECONDS[1])

    def _receive(self, data: bytes) -> None:
        try:
            message = _message(data)
            if message.get("source") == self.ignore:
                return
            if "asset" in message:
                if self.on_asset is not None:
                    self.on_asset(str(message["asset"]))
                return
            _, full, quotes = _quotes_of(message)
        except (ValueError, KeyError, TypeError):
            log.warning("tick message dropped: unreadable or of an unknown version")
            return
        self._heard = time.monotonic()
        self.received += 1
        self.apply(quotes, full)

    async def start(self) -> None:
        """One store read now (so the first requests find prices), then the channel and the
        fallback poll."""
        await self.read_store()
        if self.redis is not None:
            self._listen = asyncio.get_running_loop().create_task(self._listen_forever())
        self._poll.start()

    async def stop(self) -> None:
        await self._poll.stop()
        if self._listen is not None:
            self._listen.cancel()
            await asyncio.gather(self._listen, return_exceptions=True)
        if self.redis is not None:
            await self.redis.aclose()


# --- leadership --------------------------------------------------------------------------------

# Take the lease when it is free or already ours (renewal is the same claim).
_CLAIM = LuaScript(
    """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
)
_RELEASE = LuaScript(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
)


class FeedLease:
    """Whether this process leads the price feed. Without Redis it always does (it is the only
    process that can). `on_lead` runs when this process becomes the leader (after it was not)."""

    def __init__(
        self,
        redis: SharedRedis | None,
        *,
        ttl: float,
        on_lead: Callable[[], Any] | None = None,
        holder: str | None = None,
    ) -> None:
        self.redis = redis
        self.ttl = ttl
        self.holder = holder or secrets.token_hex(8)
        self.leader = redis is None
        self.on_lead = on_lead
        self._loop = Periodic("feed lease", interval=ttl / 3, step=self.claim, log=log)

    async def claim(self) -> bool:
        """Claims or renews the lease once; the role after it (kept when Redis fails)."""
        if self.redis is None:
            return True
        redis = self.redis
        args = [self.holder, int(self.ttl * 1000)]
        try:
            won = await redis.call(redis.client.evalsha, _CLAIM, [LEASE_KEY], args) == 1
        except RedisUnavailable:
            return self.leader
        if won and not self.leader:
            log.info("this process now leads the price feed", extra={"holder": self.holder})
            self.leader = True
            if self.on_lead is not None:
                outcome = self.on_lead()
                if asyncio.iscoroutine(outcome):
                    await outcome
        elif not won and self.leader:
            log.warning("price-feed lease lost to another process; following")
            self.leader = False
        return self.leader

    async def start(self) -> None:
        await self.claim()
        self._loop.start()

    async def stop(self) -> None:
        """Stops renewing and hands the lease back, so a follower takes over at once."""
        await self._loop.stop()
        if self.redis is not None and self.leader:
            redis = self.redis
            with contextlib.suppress(RedisUnavailable):
                await redis.call(redis.client.evalsha, _RELEASE, [LEASE_KEY], [self.holder])
            self.leader = False
        if self.redis is not None:
            await self.redis.aclose()
