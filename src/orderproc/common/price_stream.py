"""Live prices as server-sent events: one hub per process, fed each tick, read by every open
stream (the API's JSON stream, `GET /api/v1/stream/prices`, and the web UI's HTML fragments,
`/live/prices`).

Why a hub: a tick is rendered once, not once per client. `publish` (a `PriceTicker` listener)
renders each moved asset's JSON once, keeps the tick in a ring of recent ticks, and wakes every
stream with one shared future. Each stream then sends the bytes for its own filter: a frame
around the pieces of the assets it follows, made once per tick for each distinct filter and
shared by every client with that filter (all assets being the most common). A client that fell
behind (its socket was slow, or it reconnects with `Last-Event-ID`) is sent the ticks it missed
from the ring, or a fresh snapshot when they are gone.

Renderings: `JSON_EVENTS` (the API's; resumable, pieces rendered eagerly, so the ring can
replay them) and any other that a stream brings (the web UI's HTML for its market list and for
its asset page, rendered lazily from the latest tick only; a client of it that fell behind gets
a snapshot). A lazy rendering makes every moved asset's piece when a client follows every
asset, and only the followed assets' pieces otherwise (an asset page renders one asset a tick,
not the catalog). Each rendering's piece of an asset is made once a tick, whatever the number
of clients.

Connections are capped per user and per client address (`TooManyStreams`, 429), counted by
this process. `stop_streams()` (the server's exit hook) ends every open stream at once, so a
graceful shutdown does not wait for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import weakref
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from orderproc.common.clock import isoformat_z
from orderproc.common.money import format_price
from orderproc.errors import TooManyStreams

__all__ = [
    "JSON_EVENTS",
    "EventStreamResponse",
    "JsonEvents",
    "PriceStreamHub",
    "Rendering",
    "StreamAsset",
    "stop_streams",
    "streams_stopping",
]

RETRY_MS = 3000
Filter = tuple[str, ...] | None  # asset ids in the client's order, or None for every asset


class StreamAsset(Protocol):
    """What a stream reads of an asset (inventory's `Asset`, the web UI's `LivePrice`)."""

    @property
    def asset_id(self) -> str: ...
    @property
    def price_usd(self) -> Decimal: ...
    @property
    def bid(self) -> Decimal: ...
    @property
    def ask(self) -> Decimal: ...
    @property
    def last_updated(self) -> datetime: ...
    @property
    def is_active(self) -> bool: ...
    @property
    def price_change_percentage_24h(self) -> Decimal | None: ...


class Rendering(Protocol):
    """How a stream spells events: one piece per asset, and a frame around a client's pieces."""

    resumable: bool  # event ids, and ticks replayed from the ring after a gap

    def piece(self, asset: StreamAsset, previous: Decimal | None) -> bytes: ...

    def frame(self, kind: str, event_id: str, as_of: datetime, pieces: list[bytes]) -> bytes:
        """`kind` is "snapshot" or "tick"; `pieces` are the client's assets' pieces."""
        ...


class JsonEvents:
    """The API's events: `id`, `event: snapshot|tick`, and `data` holding
    `{"as_of": ..., "prices": [{"asset_id", "price_usd", "bid", "ask", "as_of"}, ...]}`."""

    resumable = True

    def piece(self, asset: StreamAsset, previous: Decimal | None) -> bytes:
        return self.piece_as_of(asset, isoformat_z(asset.last_updated))

    def piece_as_of(self, asset: StreamAsset, as_of: str) -> bytes:
        """The piece with `as_of` already spelt (a tick's assets share their time)."""
        return (
            f'{{"asset_id":"{asset.asset_id}","price_usd":"{format_price(asset.price_usd)}",'
            f'"bid":"{format_price(asset.bid)}","ask":"{format_price(asset.ask)}",'
            f'"as_of":"{as_of}"}}'
        ).encode()

    def frame(self, kind: str, event_id: str, as_of: datetime, pieces: list[bytes]) -> bytes:
        head = f'id: {event_id}\nevent: {kind}\ndata: {{"as_of":"{isoformat_z(as_of)}","prices":['
        return b"".join((head.encode(), b",".join(pieces), b"]}\n\n"))


JSON_EVENTS = JsonEvents()


class _Stopping:
    stopping = False
    hubs: weakref.WeakSet[PriceStreamHub] = weakref.WeakSet()


def stop_streams() -> None:
    """End every open stream now (the server's exit hook calls it, from the event loop's
    thread; it may also be called from a signal handler: the hubs are woken on their loop)."""
    _Stopping.stopping = True
    for hub in list(_Stopping.hubs):
        hub.close_threadsafe()


def streams_stopping() -> bool:
    return _Stopping.stopping


class _Tick:
    __slots__ = ("as_of", "by_id", "chunks", "moved", "pieces", "previous", "seq", "some")

    def __init__(self, seq: int, as_of: datetime, moved: list[StreamAsset]) -> None:
        self.seq = seq
        self.as_of = as_of
        self.moved = moved  # emptied once a newer tick arrives (the ring keeps bytes only)
        self.previous: dict[str, Decimal | None] = {}
        self.pieces: dict[Rendering, dict[str, bytes]] = {}  # every moved asset's piece
        # The pieces of a few assets, for clients that follow only those (an asset page), and
        # the moved assets by id to find them; both made only when such a client asks.
        self.some: dict[Rendering, dict[str, bytes]] = {}
        self.by_id: dict[str, StreamAsset] | None = None
        self.chunks: dict[tuple[Rendering, Filter], bytes] = {}


class PriceStreamHub:
    """Ticks in, event bytes out. `assets` answers the current prices of every asset (for
    snapshots); `publish(moved, now)` is called after each tick."""

    def __init__(
        self,
        *,
        assets: Callable[[], Iterable[StreamAsset]],
        resume_ticks: int = 60,
        heartbeat_seconds: float = 15.0,
        per_user: int = 5,
        per_address: int = 20,
    ) -> None:
        self._assets = assets
        self.epoch = secrets.token_hex(4)  # ids of an earlier process are unknown here
        self.seq = 0
        self._ring: deque[_Tick] = deque(maxlen=resume_ticks)
        # The last price published of each asset, for the direction of its next move.
        self._prices: dict[str, Decimal] = {a.asset_id: a.price_usd for a in assets()}
        self._next: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heartbeat_seconds = heartbeat_seconds
        self._beat: asyncio.TimerHandle | None = None
        self._beats = 0
        self._snapshots: dict[tuple[Rendering, Filter], tuple[int, bytes]] = {}
        self.per_user, self.per_address = per_user, per_address
        self._users: Counter[str] = Counter()
        self._addresses: Counter[str] = Counter()
        self.subscribers = 0
        self.closed = False
        _Stopping.hubs.add(self)

    # --- ticks in -----------------------------------------------------------------------------

    def publish(self, moved: Sequence[StreamAsset], now: datetime) -> None:
        """A tick: what moved, and when. Renders the JSON pieces and wakes every stream."""
        if not moved or self.closed:
            return
        self.seq += 1
        tick = _Tick(self.seq, now, list(moved))
        prices = self._prices
        previous = tick.previous
        json_piece = JSON_EVENTS.piece_as_of
        now_text = isoformat_z(now)
        pieces: dict[str, bytes] = {}
        for asset in moved:
            asset_id = asset.asset_id
            previous[asset_id] = prices.get(asset_id)
            prices[asset_id] = asset.price_usd
            moment = asset.last_updated
            pieces[asset_id] = json_piece(asset, now_text if moment == now else isoformat_z(moment))
        tick.pieces[JSON_EVENTS] = pieces
        if self._ring:
            older = self._ring[-1]
            older.moved, older.previous = [], {}
            older.pieces = {JSON_EVENTS: older.pieces[JSON_EVENTS]}
            older.some, older.by_id = {}, None
            older.chunks = {}
        self._ring.append(tick)
        self._wake()

    def _wake(self) -> None:
        waiting, self._next = self._next, None
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    def close(self) -> None:
        """End every stream of this hub (they finish what they are sending)."""
        self.closed = True
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
        self._wake()

    def close_threadsafe(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            self.closed = True
            return
        with contextlib.suppress(RuntimeError):  # the loop stopped meanwhile
            loop.call_soon_threadsafe(self.close)

    # --- connections ----------------------------------------------------------------------------

    def admit(self, *, user: str | None, address: str | None) -> Callable[[], None]:
        """Count a new stream, or `TooManyStreams`; returns what to call when it ends."""
        if user is not None and self._users[user] >= self.per_user:
            raise TooManyStreams(f"At most {self.per_user} price streams per user may be open.")
        if address is not None and self._addresses[address] >= self.per_address:
            raise TooManyStreams(
                f"At most {self.per_address} price streams per client address may be open."
            )
        if user is not None:
            self._users[user] += 1
        if address is not None:
            self._addresses[address] += 1
        self.subscribers += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self.subscribers -= 1
            for counter, key in ((self._users, user), (self._addresses, address)):
                if key is not None:
                    counter[key] -= 1
                    if counter[key] <= 0:
                        del counter[key]

        return release

    # --- events out ---------------------------------------------------------------------------

    def event_id(self, seq: int) -> str:
        return f"{self.epoch}-{seq}"

    def resume_point(self, last_event_id: str | None) -> int | None:
        """The tick after which a client that saw `last_event_id` goes on, or None when it
        needs a snapshot (no id, another process's, not a tick of ours, or too old)."""
        if not last_event_id:
            return None
        epoch, _, number = last_event_id.strip().partition("-")
        if epoch != self.epoch or not number.isdigit():
            return None
        seq = int(number)
        if seq > self.seq or not self._replayable(seq):
            return None
        return seq

    def _replayable(self, seq: int) -> bool:
        """Every tick after `seq` is still in the ring."""
        if seq == self.seq:
            return True
        return bool(self._ring) and self._ring[0].seq <= seq + 1

    async def events(
        self, rendering: Rendering, *, only: Filter, after: int | None
    ) -> AsyncIterator[bytes]:
        """The stream of one client: a snapshot (unless `after` says where it resumes), then
        each tick that holds one of its assets, and a comment line as a heartbeat when the
        ticks pause. Ends when the hub closes."""
        self._loop = asyncio.get_running_loop()
        self._ensure_heartbeat()
        yield f"retry: {RETRY_MS}\n\n".encode()
        if after is None or (not rendering.resumable and after != self.seq):
            yield self.snapshot(rendering, only)
            seen = self.seq
        else:
            seen = after
        beats = self._beats
        while not self.closed and not _Stopping.stopping:
            if seen == self.seq:
                if self._next is None:
                    self._next = self._loop.create_future()
                # Shielded: a stream cancelled while it waits (its client left) must not
                # cancel the future every other stream waits on.
                await asyncio.shield(self._next)
                if self.closed or _Stopping.stopping:
                    return
                if seen == self.seq and self._beats != beats:
                    beats = self._beats
                    yield b": keep-alive\n\n"
                continue
            if not self._replayable(seen) or (not rendering.resumable and seen != self.seq - 1):
                yield self.snapshot(rendering, only)  # fell too far behind
                seen = self.seq
                continue
            tick = self._ring[seen + 1 - self._ring[0].seq]
            seen = tick.seq
            chunk = self._chunk(tick, rendering, only)
            if chunk:
                yield chunk

    def _chunk(self, tick: _Tick, rendering: Rendering, only: Filter) -> bytes:
        key = (rendering, only)
        chunk = tick.chunks.get(key)
        if chunk is not None:
            return chunk
        if only is None:
            selected = list(self._pieces(tick, rendering).values())
        else:
            selected = self._pieces_of(tick, rendering, only)
        chunk = (
            rendering.frame("tick", self.event_id(tick.seq), tick.as_of, selected)
            if selected
            else b""
        )
        tick.chunks[key] = chunk
        return chunk

    def _pieces(self, tick: _Tick, rendering: Rendering) -> dict[str, bytes]:
        """Every moved asset's piece, in the tick's order (the ones already made for a
        filtered client are reused, not made again)."""
        pieces = tick.pieces.get(rendering)
        if pieces is None:
            previous = tick.previous
            some = tick.some.pop(rendering, {})
            pieces = {
                a.asset_id: some.get(a.asset_id) or rendering.piece(a, previous.get(a.asset_id))
                for a in tick.moved
            }
            tick.pieces[rendering] = pieces
        return pieces

    def _pieces_of(self, tick: _Tick, rendering: Rendering, only: tuple[str, ...]) -> list[bytes]:
        """The pieces of a client's assets that moved. Only those are made when no client of
        this rendering follows every asset: an asset page open renders its one asset a tick,
        not the whole catalog."""
        pieces = tick.pieces.get(rendering)
        if pieces is not None:
            return [pieces[a] for a in only if a in pieces]
        some = tick.some.setdefault(rendering, {})
        by_id = tick.by_id
        if by_id is None:
            by_id = tick.by_id = {a.asset_id: a for a in tick.moved}
        selected = []
        for asset_id in only:
            piece = some.get(asset_id)
            if piece is None:
                asset = by_id.get(asset_id)
                if asset is None:
                    continue  # did not move this tick
                piece = some[asset_id] = rendering.piece(asset, tick.previous.get(asset_id))
            selected.append(piece)
        return selected

    def snapshot(self, rendering: Rendering, only: Filter) -> bytes:
        """Every active asset (or the ones asked for, active or not), as of the latest tick;
        made once per tick for each rendering and filter."""
        key = (rendering, only)
        cached = self._snapshots.get(key)
        if cached is not None and cached[0] == self.seq:
            return cached[1]
        if only is None:
            assets = [a for a in self._assets() if a.is_active]
        else:
            by_id = {a.asset_id: a for a in self._assets()}
            assets = [by_id[a] for a in only if a in by_id]
        pieces = [rendering.piece(a, None) for a in assets]
        as_of = max((a.last_updated for a in assets), default=None)
        if as_of is None:
            as_of = self._ring[-1].as_of if self._ring else datetime.now().astimezone()
        chunk = rendering.frame("snapshot", self.event_id(self.seq), as_of, pieces)
        if len(self._snapshots) > 1024:
            self._snapshots.clear()
        self._snapshots[key] = (self.seq, chunk)
        return chunk

    # --- heartbeats -----------------------------------------------------------------------------

    def _ensure_heartbeat(self) -> None:
        if self._beat is None and not self.closed and self._loop is not None:
            self._beat = self._loop.call_later(self._heartbeat_seconds, self._heartbeat)

    def _heartbeat(self) -> None:
        self._beat = None
        if self.closed:
            return
        self._beats += 1
        self._wake()
        if self.subscribers:
            self._ensure_heartbeat()


class EventStreamResponse(Response):
    """A `text/event-stream` answer that sends `events` until they end or the client leaves.

    It watches the connection itself (one task per stream, waiting on `receive`), so a client
    that leaves is noticed at once, not at the next write; `release` is called when it ends."""

    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[bytes], *, release: Callable[[], None]) -> None:
        super().__init__(
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
            media_type=self.media_type,
        )
        # Without a body Starlette declares `content-length: 0`; a stream has no length.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self._events = events
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        left = False

        async def watch() -> None:
            nonlocal left
            while (await receive())["type"] != "http.disconnect":
                pass
            left = True
            task.cancel()

        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            watcher = asyncio.ensure_future(watch())
            try:
                async for chunk in self._events:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except asyncio.CancelledError:
                if not left:
                    raise
                task.uncancel()  # the client left: a normal end
            finally:
                watcher.cancel()
                await _close(self._events)
        finally:
            self._release()


async def _close(events: Any) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
