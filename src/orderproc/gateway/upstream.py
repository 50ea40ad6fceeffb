"""A lean HTTP/1.1 client for the gateway's proxy path: one pool of keep-alive connections per
upstream, asyncio protocols parsed by httptools (the parser uvicorn serves with).

Why not httpx: on the proxy path it cost about six times aiohttp's CPU per request here, and the
proxy's budget is about half a hello-world request on top of the service's own work (see
docs/architecture.md, "The gateway as a proxy"). A connection here does only what a reverse
proxy needs: write a request head (and stream its body), parse the response head, hand the body
over chunk by chunk as it arrives (server-sent events pass at once), and go back to its pool when
the response was complete and both sides keep the connection alive.

Errors are two kinds, for the proxy to answer: `UpstreamUnavailable` (refused, reset, closed or
silent past a timeout: 503) and `UpstreamGarbage` (not HTTP: 502).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Final, cast
from urllib.parse import urlsplit

import httptools

__all__ = [
    "Replicas",
    "Upstream",
    "UpstreamConnection",
    "UpstreamError",
    "UpstreamGarbage",
    "UpstreamTimeout",
    "UpstreamTimeouts",
    "UpstreamUnavailable",
]

_READ_HIGH_WATER: Final = 256 * 1024  # buffered body bytes before reading pauses
_READ_LOW_WATER: Final = 64 * 1024


class UpstreamError(Exception):
    """The upstream did not give a usable answer."""


class UpstreamUnavailable(UpstreamError):
    """Refused, reset, closed early or silent past a timeout."""


class UpstreamTimeout(UpstreamUnavailable):
    """Silent past a timeout (it may still be working on the request: never retried)."""


class UpstreamGarbage(UpstreamError):
    """Bytes that are not an HTTP/1.x response."""


@dataclass(frozen=True, slots=True)
class UpstreamTimeouts:
    connect: float = 3.0  # to open a connection
    head: float = 30.0  # from the request's end to the response head
    body: float = 60.0  # longest silence inside a response body
    stream: float = 3600.0  # longest silence inside a stream (heartbeats come far sooner)
    idle: float = 4.0  # a pooled connection older than this is closed, not reused (uvicorn: 5)


class UpstreamConnection(asyncio.Protocol):
    """One connection to an upstream; carries one exchange at a time."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self.pool: Upstream | None = None  # the replica it belongs to (set by `acquire`)
        self._parser = httptools.HttpResponseParser(self)
        self._reset()
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None

    def _reset(self) -> None:
        # The parser carries on across exchanges: a connection is reused only after a whole
        # answer, which leaves it at a message boundary.
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.received_any = False
        self.complete = False
        self._head_done = False
        self._no_body = False
        self._framed = False
        self._keep_alive = False
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._read_paused = False
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None

    # -- the exchange, as the proxy sees it

    def begin(self, *, no_body: bool) -> None:
        """Ready for a new exchange (`no_body`: a HEAD request, whose answer has none)."""
        self._reset()
        self._no_body = no_body

    def write(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            raise UpstreamUnavailable("the upstream connection closed")
        self.transport.write(data)

    async def drain(self) -> None:
        if self._write_paused and not self.closed:
            self._drain = self._loop.create_future()
            await self._drain
        if self.closed and not self.complete:
            raise self._error or UpstreamUnavailable("the upstream connection closed")

    async def head(self, timeout: float) -> tuple[int, list[tuple[bytes, bytes]]]:
        """The response's status and headers (names lower-case), within `timeout` seconds."""
        while not self._head_done:
            await self._wait(timeout)
        return self.status, self.headers

    async def finish(self, timeout: float) -> None:
        """Wait for the rest of a (small) body, to pass it on in one piece."""
        while not self.complete:
            await self._wait(timeout)

    async def chunk(self, timeout: float) -> bytes | None:
        """The next piece of the body as it arrived; None at its end."""
        while True:
            if self._chunks:
                data = self._chunks.popleft()
                self._buffered -= len(data)
                if self._read_paused and self._buffered <= _READ_LOW_WATER:
                    self._read_paused = False
                    if self.transport is not None and not self.closed:
                        self.transport.resume_reading()
                return data
            if self.complete:
                return None
            await self._wait(timeout)

    def take_ready(self) -> bytes:
        """Every body byte that has arrived, at once (for answers that are complete already)."""
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return data

    @property
    def reusable(self) -> bool:
        return self.complete and self._keep_alive and not self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        if not self.complete and self._error is None:
            self._error = UpstreamUnavailable("the connection to the upstream was closed")
        self._wake()

    async def _wait(self, timeout: float) -> None:
        if self._error is not None:
            raise self._error
        if self.closed:
            raise UpstreamUnavailable("the upstream closed the connection")
        # A timer on the future rather than asyncio.wait_for, which costs a task per wait.
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_later(timeout, self._time_out, waiter, timeout)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        if self._error is not None:
            raise self._error

    def _time_out(self, waiter: asyncio.Future[None], timeout: float) -> None:
        if not waiter.done():
            self._error = UpstreamTimeout(f"no answer within {timeout:g} s")
            self.close()  # wakes the waiter

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        if self._error is None:
            self._error = error
        self.close()
        self._wake()

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        if self.complete or self._error is not None:
            # Bytes after a complete answer (or an error): nothing we asked for; not reusable.
            self._fail(UpstreamGarbage("bytes after the end of a response"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamGarbage("the upstream switched protocols"))
            return
        except httptools.HttpParserError as error:
            self._fail(UpstreamGarbage(f"not an HTTP response: {error}"))
            return
        if self._buffered > _READ_HIGH_WATER and not self._read_paused and self.transport:
            self._read_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        if self._head_done and not self.complete and not self._framed:
            # An answer without a length or chunks ends when the connection does.
            self.complete = True
            self._keep_alive = False
        elif not self.complete and self._error is None:
            self._error = UpstreamUnavailable("the upstream closed the connection")
        self._wake()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- httptools callbacks

    def on_header(self, name: bytes, value: bytes | None) -> None:
        self.headers.append((name.lower(), value or b""))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            # An interim answer (we never send Expect): skip it, wait for the real one.
            self.headers = []
            return
        self.status = status
        self._head_done = True
        self._framed = any(
            name in (b"content-length", b"transfer-encoding") for name, _ in self.headers
        )
        self._keep_alive = self._parser.should_keep_alive()
        if self._no_body or status in (204, 304):
            self.complete = True
            self._keep_alive = self._keep_alive and not self._no_body
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        self._chunks.append(bytes(body))
        self._buffered += len(body)
        self._wake()

    def on_message_complete(self) -> None:
        if not self._head_done:
            return  # the end of an interim answer
        self.complete = True
        self._wake()


class Upstream:
    """A service's base URL and its pool of idle keep-alive connections."""

    def __init__(
        self,
        base_url: str,
        *,
        timeouts: UpstreamTimeouts | None = None,
        max_idle: int = 256,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream {base_url!r}: expected http://host:port")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"upstream {base_url!r}: no path, query or fragment")
        self.base_url = base_url
        self.host = parts.hostname
        self.port = parts.port or 80
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = f"{netloc}:{self.port}".encode()
        self.timeouts = timeouts or UpstreamTimeouts()
        self._max_idle = max_idle
        self._idle: list[UpstreamConnection] = []
        self._closing = False

    async def acquire(self, *, fresh: bool = False) -> UpstreamConnection:
        """An idle pooled connection (unless `fresh`), else a new one."""
        if not fresh:
            now = time.monotonic()
            while self._idle:
                connection = self._idle.pop()
                if not connection.closed and now - connection.idle_since < self.timeouts.idle:
                    connection.reused = True
                    return connection
                connection.close()
        connection = await self._open()
        connection.pool = self
        return connection

    async def _open(self) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(UpstreamConnection, self.host, self.port),
                self.timeouts.connect,
            )
        except TimeoutError:
            raise UpstreamTimeout(f"no connection within {self.timeouts.connect:g} s") from None
        except OSError as error:
            raise UpstreamUnavailable(f"cannot connect: {error.strerror or error}") from None
        return connection

    def release(self, connection: UpstreamConnection) -> None:
        """Back to the pool when it can carry another exchange, else closed."""
        if self._closing or not connection.reusable or len(self._idle) >= self._max_idle:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        self._idle.append(connection)

    def close(self) -> None:
        self._closing = True
        while self._idle:
            self._idle.pop().close()


class Replicas:
    """A service's replicas, each an `Upstream`, taken in turn. A replica that refuses a
    connection or does not accept one in time (nothing was sent to it, so trying another is
    safe for any request) is skipped for `down_for` seconds and the next one is tried; when
    every replica is down, each is tried anyway. A request that reached a replica is never
    sent to another: a replica that dies mid-request gives the client a 503, and its retry (with
    the same idempotency key) goes to a live one."""

    def __init__(
        self,
        base_urls: list[str],
        *,
        timeouts: UpstreamTimeouts | None = None,
        down_for: float = 1.0,
    ) -> None:
        if not base_urls:
            raise ValueError("a service needs at least one upstream URL")
        self.members = [Upstream(url, timeouts=timeouts) for url in base_urls]
        self.timeouts = self.members[0].timeouts
        self.host_header = self.members[0].host_header
        self.base_url = ",".join(base_urls)
        self.down_for = down_for
        self._down_until = [0.0] * len(self.members)
        self._next = 0

    @classmethod
    def parse(cls, urls: str, *, timeouts: UpstreamTimeouts | None = None) -> Replicas:
        """From `http://a:1` or a comma-separated list `http://a:1,http://b:2`."""
        return cls([u.strip() for u in urls.split(",") if u.strip()], timeouts=timeouts)

    async def acquire(self, *, fresh: bool = False) -> UpstreamConnection:
        if len(self.members) == 1:  # one replica: nothing to choose, on every request
            return await self.members[0].acquire(fresh=fresh)
        count = len(self.members)
        start = self._next
        self._next = (start + 1) % count
        now = time.monotonic()
        order = [(start + i) % count for i in range(count)]
        up = [i for i in order if self._down_until[i] <= now]
        error: UpstreamUnavailable | None = None
        for i in up or order:
            try:
                return await self.members[i].acquire(fresh=fresh)
            except UpstreamUnavailable as failure:  # not connected: nothing was sent
                self._down_until[i] = time.monotonic() + self.down_for
                error = failure
        assert error is not None
        raise error

    def release(self, connection: UpstreamConnection) -> None:
        if connection.pool is None:
            connection.close()
        else:
            connection.pool.release(connection)

    def close(self) -> None:
        for member in self.members:
            member.close()
