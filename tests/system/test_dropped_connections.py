"""A dropped connection, retried the way a real client does: a TCP proxy in front of a real
server passes the first deposit through, lets the server answer it, then closes the client's
socket without a byte of that answer (a FIN, or a RST). `post_until_settled` sends it again with
the same Idempotency-Key; the deposit is in the ledger once, as the receipt the retry got."""

from __future__ import annotations

import asyncio
import selectors
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
    a RST (SO_LINGER 0). Later connections pass both ways untouched.

    Plain sockets, a thread per connection and `selectors`: each connection's sockets are
    closed by the thread that owns them, before `__exit__` returns. (An asyncio version left a
    stream writer to the garbage collector now and then, a ResourceWarning that failed a test.)
    """

    def __init__(self, upstream: str, *, how: Drop, drops: int = 1) -> None:
        parts = urlsplit(upstream)
        self.upstream = (str(parts.hostname), int(str(parts.port)))
        self.how = how
        self.drops_left = drops
        self.swallowed = 0  # answers the server sent that the client never saw
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> DroppingProxy:
        self._acceptor.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping.set()
        self._acceptor.join(10)
        for thread in self._threads:
            thread.join(10)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            with self._lock:
                drop = self.drops_left > 0
                self.drops_left -= drop
            thread = threading.Thread(target=self._relay, args=(client, drop), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _relay(self, client: socket.socket, drop: bool) -> None:
        with (
            client,
            socket.create_connection(self.upstream, timeout=10) as upstream,
            selectors.DefaultSelector() as selector,
        ):
            selector.register(client, selectors.EVENT_READ)
            selector.register(upstream, selectors.EVENT_READ)
            with suppress(OSError):
                while not self._stopping.is_set():
                    for key, _ in selector.select(timeout=0.05):
                        if key.fileobj is client:
                            data = client.recv(65536)
                            if not data:  # the client is done sending
                                selector.unregister(client)
                                upstream.shutdown(socket.SHUT_WR)
                            else:
                                upstream.sendall(data)
                            continue
                        answer = upstream.recv(65536)
                        if not answer:
                            return
                        if drop:
                            self.swallowed += 1
                            if self.how == "reset":
                                linger = struct.pack("ii", 1, 0)
                                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                            return  # leaving `with client` closes it: a FIN, or a RST
                        client.sendall(answer)


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
