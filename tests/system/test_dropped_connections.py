"""A dropped connection, retried the way a real client does: a TCP proxy in front of a real
server passes the first deposit through, lets the server answer it, then closes the client's
socket without a byte of that answer (a FIN, or a RST). `post_until_settled` sends it again with
the same Idempotency-Key; the deposit is in the ledger once, as the receipt the retry got."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import suppress
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit

import httpx
import pytest

from tests.system.harness import (
    Delivery,
    ServerProcess,
    ledger,
    post_until_settled,
    post_until_settled_sync,
    register_and_login,
)

pytestmark = pytest.mark.system

Drop = Literal["close", "reset"]


class DroppingProxy:
    """Forwards loopback TCP to `upstream`. On the first `drops` connections it forwards the
    request, waits for the server's first bytes of answer (so the server has done the work),
    and then closes the client's socket instead of passing them on: `close` sends a FIN, `reset`
    a RST (SO_LINGER 0). Later connections pass both ways untouched. Runs its own event loop in a
    thread, so synchronous and asynchronous clients can both go through it."""

    def __init__(self, upstream: str, *, how: Drop, drops: int = 1) -> None:
        parts = urlsplit(upstream)
        self.upstream = (str(parts.hostname), int(str(parts.port)))
        self.how = how
        self.drops_left = drops
        self.swallowed = 0  # answers the server sent that the client never saw
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._handlers: set[asyncio.Task[None]] = set()

    def __enter__(self) -> DroppingProxy:
        self._thread.start()
        start = asyncio.start_server(self._handle, "127.0.0.1", 0)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result(10)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _handle(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        drop = self.drops_left > 0
        if drop:
            self.drops_left -= 1
        server_in, server_out = await asyncio.open_connection(*self.upstream)
        forward = asyncio.create_task(_pipe(client_in, server_out))
        try:
            while answer := await server_in.read(65536):
                if drop:
                    self.swallowed += 1
                    if self.how == "reset":
                        sock = client_out.get_extra_info("socket")
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        client_out.transport.abort()
                    break
                client_out.write(answer)
                await client_out.drain()
        except ConnectionError:
            pass
        finally:
            forward.cancel()
            await asyncio.gather(forward, return_exceptions=True)
            for out in (client_out, server_out):
                out.close()
                with suppress(ConnectionError):
                    await out.wait_closed()
            self._handlers.discard(task)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with suppress(ConnectionError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("dropped") / "data").start()
    yield process
    process.stop()


def deposit_through(proxy_url: str, auth: dict[str, str], client_kind: str) -> Delivery:
    headers = {**auth, "Idempotency-Key": "dep-1"}
    body = {"amount": "12.34"}
    if client_kind == "sync":
        with httpx.Client(base_url=proxy_url, timeout=10) as client:
            return post_until_settled_sync(
                client, "/api/v1/balance/deposit", headers=headers, json=body
            )

    async def send() -> Delivery:
        async with httpx.AsyncClient(base_url=proxy_url, timeout=10) as client:
            return await post_until_settled(
                client, "/api/v1/balance/deposit", headers=headers, json=body
            )

    return asyncio.run(send())


@pytest.mark.parametrize("client_kind", ["async", "sync"])
@pytest.mark.parametrize(
    ("how", "seen"), [("close", httpx.RemoteProtocolError), ("reset", httpx.ReadError)]
)
def test_a_deposit_whose_answer_is_lost_is_retried_and_applied_once(
    server: ServerProcess, how: Drop, seen: type[Exception], client_kind: str
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as direct:
        auth = register_and_login(direct, f"{how}_{client_kind}")
    with DroppingProxy(server.url, how=how) as proxy:
        delivery = deposit_through(proxy.url, auth, client_kind)
    assert proxy.swallowed == 1, "the server answered the first attempt; the client never saw it"
    assert delivery.lost == (seen,)
    assert delivery.attempts == 2
    assert delivery.response.status_code == 201, delivery.response.text
    receipt = delivery.response.json()
    with httpx.Client(base_url=server.url, timeout=10) as direct:
        entries = ledger(direct, auth)
        balance = direct.get("/api/v1/balance", headers=auth).json()["current_balance"]
    assert [(e["reference_id"], e["transaction_id"], e["amount"]) for e in entries] == [
        ("dep-1", receipt["transaction_id"], "12.34")
    ]
    assert balance == receipt["balance"] == "12.34"


def test_a_retry_without_an_idempotency_key_is_refused_by_the_helper(
    server: ServerProcess,
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client, pytest.raises(AssertionError):
        post_until_settled_sync(client, "/api/v1/balance/deposit", headers={}, json={})
