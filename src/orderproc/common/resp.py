"""A lean Redis client for the shared state's hot paths (`common/redis_shared.py`): one
connection, commands pipelined on it as they come, replies matched to callers in order.

redis-py costs about 60 µs of CPU per command here (its pool, retry and observability layers
around each call), against about 15 µs for the round trip itself; the shared state asks Redis
on every request, so it talks RESP2 directly. It knows only what that needs: commands as
arguments, replies as Python values (bytes, int, None, lists; an error reply raises
`RespError`), Lua scripts by SHA1 with a fallback to `EVAL` after a Redis restart, `AUTH` and
`SELECT` from the URL, TLS for `rediss://`.

- Each command, connecting included, is bounded by `timeout`.
- A caller cancelled while waiting leaves the connection as it is: its reply is read and
  dropped when it comes. A connection whose oldest unanswered command is older than `timeout`
  is stalled or broken: the next command drops it and opens a new one (the commands still
  waiting on it fail with `ConnectionError`).
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast
from urllib.parse import unquote, urlsplit

__all__ = ["LeanRedis", "LuaScript", "RespError"]

Arg = bytes | str | int | float


class RespError(Exception):
    """An error reply from Redis (`-ERR …`, `-NOSCRIPT …`, `-OOM …`)."""


class _Incomplete(Exception):
    pass


def encode(args: Sequence[Arg]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        else:
            data = repr(arg).encode() if isinstance(arg, float) else b"%d" % arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _parse(buffer: bytes | bytearray, pos: int) -> tuple[Any, int]:
    """One reply from `buffer` at `pos`: (value, position after it); `_Incomplete` if the
    buffer does not hold all of it yet."""
    end = buffer.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete()
    kind, line = buffer[pos : pos + 1], buffer[pos + 1 : end]
    after = end + 2
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, after
        if len(buffer) < after + size + 2:
            raise _Incomplete()
        return bytes(buffer[after : after + size]), after + size + 2
    if kind == b":":
        return int(line), after
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, after
        items = []
        for _ in range(count):
            item, after = _parse(buffer, after)
            items.append(item)
        return items, after
    if kind == b"+":
        return bytes(line), after
    if kind == b"-":
        return RespError(bytes(line).decode(errors="replace")), after
    raise RespError(f"unexpected reply type {bytes(kind)!r}")


async def _read_reply(reader: asyncio.StreamReader, buffer: bytearray) -> Any:
    """The next whole reply in `buffer`, reading more from `reader` as needed."""
    while True:
        try:
            value, pos = _parse(buffer, 0)
        except _Incomplete:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("Redis closed the connection") from None
            buffer += data
            continue
        del buffer[:pos]
        return value


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray()
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not a subclass of asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)

    def send(self, command: bytes) -> asyncio.Future[Any]:
        assert self.transport is not None
        future: asyncio.Future[Any] = self._loop.create_future()
        self._waiting.append((future, self._loop.time()))
        self.transport.write(command)
        return future

    def stalled(self, timeout: float) -> bool:
        return bool(self._waiting) and self._loop.time() - self._waiting[0][1] > timeout

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        pos = 0
        try:
            while pos < len(buffer):
                value, pos = _parse(buffer, pos)
                if not self._waiting:  # a reply nobody asked for: the stream is off
                    self.abort()
                    return
                future, _ = self._waiting.popleft()
                if future.done():  # its caller was cancelled
                    continue
                if isinstance(value, RespError):
                    future.set_exception(value)
                else:
                    future.set_result(value)
        except _Incomplete:
            pass
        except (ValueError, RespError):  # not RESP: nothing after this can be trusted
            self.abort()
            return
        del buffer[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(ConnectionError(f"Redis connection lost: {exc!r}"))

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()  # connection_lost fails what still waits


class LuaScript:
    """A script and its SHA1, for `LeanRedis.evalsha`."""

    def __init__(self, source: str) -> None:
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source, usedforsecurity=False).hexdigest().encode()


class LeanRedis:
    def __init__(
        self,
        host: str,
        port: int = 6379,
        *,
        timeout: float,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
    ) -> None:
        self.host, self.port, self.timeout, self.db = host, port, timeout, db
        self._setup: list[list[Arg]] = []
        if password is not None:
            self._setup.append(["AUTH", *([username] if username else []), password])
        if db:
            self._setup.append(["SELECT", db])
        self._tls = ssl.create_default_context() if tls else None
        self._connection: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None

    @classmethod
    def from_url(cls, url: str, *, timeout: float) -> LeanRedis:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"not a redis:// or rediss:// URL: {parts.scheme}://…")
        path = parts.path.strip("/")
        return cls(
            parts.hostname or "127.0.0.1",
            parts.port or 6379,
            timeout=timeout,
            db=int(path) if path else 0,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=parts.scheme == "rediss",
        )

    async def execute(self, *args: Arg) -> Any:
        """The reply to one command, within `timeout` (connecting included)."""
        async with asyncio.timeout(self.timeout):
            connection = self._connection
            if connection is None or connection.closed or connection.stalled(self.timeout):
                connection = await self._connect()
            return await connection.send(encode(args))

    async def evalsha(self, script: LuaScript, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        try:
            return await self.execute(b"EVALSHA", script.sha, len(keys), *keys, *args)
        except RespError as error:
            if not str(error).startswith("NOSCRIPT"):
                raise
        return await self.execute(b"EVAL", script.source, len(keys), *keys, *args)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.transport is not None:
            connection.closed = True
            connection.transport.close()

    async def aclose(self) -> None:
        self.close()
        await asyncio.sleep(0)  # the transport closes its socket on the loop's next turn

    async def messages(self, channel: bytes) -> AsyncIterator[bytes]:
        """Messages published on `channel`, over a connection of their own (a subscribed
        connection carries nothing else). Connecting and subscribing are bounded by `timeout`;
        then it waits as long as the channel is quiet. Ends with `ConnectionError` when the
        connection is lost (the caller decides when to subscribe again)."""
        async with asyncio.timeout(self.timeout):
            reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self._tls)
        try:
            buffer = bytearray()
            async with asyncio.timeout(self.timeout):
                subscribe: list[Arg] = [b"SUBSCRIBE", channel]
                for command in [*self._setup, subscribe]:
                    writer.write(encode(command))
                    reply = await _read_reply(reader, buffer)
                    if isinstance(reply, RespError):
                        raise reply
            while True:
                reply = await _read_reply(reader, buffer)
                if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                    yield reply[2]
        finally:
            writer.close()

    async def _connect(self) -> _Connection:
        """The new connection; callers arriving while it is being made wait for the same."""
        if self._connection is not None:
            self._connection.abort()
            self._connection = None
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_future()
            try:
                connection = await self._open()
            except BaseException as exc:
                connecting, self._connecting = self._connecting, None
                connecting.set_exception(ConnectionError(f"cannot connect to Redis: {exc!r}"))
                connecting.exception()  # retrieved: only waiters that exist will raise it
                raise
            self._connection = connection
            connecting, self._connecting = self._connecting, None
            connecting.set_result(connection)
            return connection
        async with asyncio.timeout(self.timeout):
            return await asyncio.shield(self._connecting)

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout):
            _, connection = await loop.create_connection(
                _Connection, self.host, self.port, ssl=self._tls
            )
        try:
            async with asyncio.timeout(self.timeout):
                for command in self._setup:
                    await connection.send(encode(command))
        except BaseException:
            connection.abort()
            raise
        return connection
