"""A server-sent-events client for in-process ASGI apps. httpx's `ASGITransport` reads a whole
answer before returning it, which a stream never ends; this calls the app directly, hands each
body chunk to the test as it is sent, and plays the client leaving (`http.disconnect`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.types import ASGIApp, Message

WAIT_SECONDS = 5.0  # a guard against a hang, never a pause: events are awaited, not slept for


@dataclass
class Event:
    name: str = "message"
    id: str | None = None
    data: str = ""
    comment: bool = False

    def json(self) -> Any:
        return orjson.loads(self.data)


@dataclass
class OpenStream:
    """One request to `app`; `status`, `headers` and `body` (for an answer that is not a
    stream), or events one by one with `next_event()`."""

    app: ASGIApp
    target: str
    headers: dict[str, str] = field(default_factory=dict)
    client: tuple[str, int] = ("203.0.113.7", 40000)
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def __post_init__(self) -> None:
        self._messages: asyncio.Queue[Message] = asyncio.Queue()
        self._left = asyncio.Event()
        self._asked = False
        self._buffer = b""
        self._ended = False
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> OpenStream:
        parts = urlsplit(self.target)
        headers = [(b"host", b"test")]
        headers += [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": parts.path,
            "raw_path": parts.path.encode(),
            "query_string": parts.query.encode(),
            "root_path": "",
            "headers": headers,
            "client": self.client,
            "server": ("test", 80),
        }
        self._task = asyncio.create_task(self.app(scope, self._receive, self._send))
        start = await self._message()
        assert start["type"] == "http.response.start", start
        self.status = start["status"]
        self.response_headers = {k.decode(): v.decode() for k, v in start.get("headers", [])}
        if self.status != 200:
            while not self._ended:
                self.body += (await self._message()).get("body", b"")
        return self

    async def _receive(self) -> Message:
        if not self._asked:
            self._asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._left.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        await self._messages.put(message)

    async def _message(self) -> Message:
        message = await asyncio.wait_for(self._messages.get(), WAIT_SECONDS)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self._ended = True
        return message

    def problem(self) -> Any:
        return orjson.loads(self.body)

    async def next_event(self) -> Event:
        """The next event (or comment line), waiting for the app to send it."""
        while b"\n\n" not in self._buffer:
            if self._ended:
                raise EOFError("the stream ended")
            self._buffer += (await self._message()).get("body", b"")
        block, self._buffer = self._buffer.split(b"\n\n", 1)
        return parse_event(block.decode())

    async def events_until(self, name: str) -> list[Event]:
        """Events up to and including the next one called `name`."""
        seen = [await self.next_event()]
        while seen[-1].name != name:
            seen.append(await self.next_event())
        return seen

    def pending(self) -> bool:
        """Whether anything was sent and not read yet."""
        return b"\n\n" in self._buffer or not self._messages.empty()

    async def close(self) -> None:
        """The client leaves; waits for the app to finish."""
        self._left.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, WAIT_SECONDS)


def parse_event(block: str) -> Event:
    event = Event()
    data: list[str] = []
    for line in block.split("\n"):
        if line.startswith(":"):
            event.comment = True
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event.name = value
        elif name == "id":
            event.id = value
        elif name == "data":
            data.append(value)
        elif name == "retry":
            event.name = "retry"
            event.data = value
    if data:
        event.data = "\n".join(data)
    return event
