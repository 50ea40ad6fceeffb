"""Connection limits of a real `orderproc serve` (the embedded platform, a service on its own, and
the gateway in front of it), driven over raw sockets (docs/security.md,
"Connection limits"): oversized request lines and header sections, slow heads, stalled bodies,
oversized bodies, idle keep-alive connections, connections per address and a slowloris."""

from __future__ import annotations

import json
import socket
import time
import weakref
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.system.harness import ServerProcess

pytestmark = pytest.mark.system

HEADER_TIMEOUT = 1.0
BODY_IDLE_TIMEOUT = 1.0
KEEP_ALIVE = 1
PER_ADDRESS = 20
MAX_BODY = 65536


LIMITS = {
    "ORDERPROC_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
    "ORDERPROC_BODY_IDLE_TIMEOUT_SECONDS": str(BODY_IDLE_TIMEOUT),
    "ORDERPROC_KEEP_ALIVE_TIMEOUT_SECONDS": str(KEEP_ALIVE),
    "ORDERPROC_MAX_CONNECTIONS_PER_ADDRESS": str(PER_ADDRESS),
    "ORDERPROC_MAX_BODY_BYTES": str(MAX_BODY),
    "ORDERPROC_PRICE_FEED": "off",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The embedded platform: how the server behaves (keep-alive, pipelining, slow bodies)."""
    process = ServerProcess(Path(tmp_path_factory.mktemp("connection-limits")), **LIMITS).start()
    yield process
    process.stop()


@pytest.fixture(scope="module", params=["embedded", "users service", "gateway"])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """What the attacks run against: the embedded platform, a service on its own (users,
    which answers the login the body attacks post), and the gateway in front of it."""
    if request.param == "embedded":
        yield request.getfixturevalue("server")
        return
    root = Path(tmp_path_factory.mktemp("connection-limits"))
    data = {"ORDERPROC_DATABASE_URL": f"sqlite:///{root / 'shared.db'}"}
    users = ServerProcess(root / "users", service="users", **LIMITS, **data).start()
    if request.param == "users service":
        yield users
        users.stop()
        return
    dead = "http://127.0.0.1:9"  # only the users service is needed here
    upstreams = {"users": users.url, "inventory": dead, "orders": dead, "webui": dead}
    gateway = ServerProcess(
        root / "gateway",
        service="gateway",
        probe="/health",  # not ready without inventory and orders
        ORDERPROC_GATEWAY_UPSTREAMS=json.dumps(upstreams),
        **LIMITS,
        **data,
    ).start()
    yield gateway
    gateway.stop()
    users.stop()


def _address(server: ServerProcess) -> tuple[str, int]:
    parts = urlsplit(server.url)
    return str(parts.hostname), int(str(parts.port))


def connect(server: ServerProcess, source: str = "127.0.0.1", timeout: float = 5) -> socket.socket:
    """A client socket from `source` (any 127.x.y.z is this machine, as its own address)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(_address(server))
    return sock


_unread: weakref.WeakKeyDictionary[socket.socket, bytes] = weakref.WeakKeyDictionary()


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP answer (status, headers, body with Content-Length); bytes past it are kept
    for the next call (pipelined answers)."""
    data = _unread.pop(sock, b"")
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before an answer: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    _unread[sock] = rest[length:]
    return int(status_line.split()[1]), headers, rest[:length]


def closed_by_server(sock: socket.socket) -> bool:
    """The server closed the connection (FIN or reset), reading past any answer."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def assert_problem(answer: tuple[int, dict[str, str], bytes], status: int, code: str) -> None:
    got, headers, body = answer
    assert got == status, body
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    problem = json.loads(body)
    assert problem["status"] == status
    assert problem["code"] == code
    assert {"type", "title", "detail", "instance", "request_id"} <= problem.keys()


def get(path: str = "/health", extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: test\r\n" + extra + b"\r\n"


def test_a_normal_request_on_a_raw_socket(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(get())
        status, headers, _ = read_answer(sock)
        assert status == 200
        assert headers.get("connection") != "close"


def test_a_request_target_over_8_kib_is_414(target: ServerProcess) -> None:
    with connect(target) as sock:
        sock.sendall(get("/health?" + "a" * 9 * 1024))
        assert_problem(read_answer(sock), 414, "URI_TOO_LONG")
        assert closed_by_server(sock)


def test_a_header_section_over_16_kib_is_431(target: ServerProcess) -> None:
    with connect(target) as sock:
        sock.sendall(get(extra=b"X-Big: " + b"b" * 17 * 1024 + b"\r\n"))
        assert_problem(read_answer(sock), 431, "HEADERS_TOO_LARGE")
        assert closed_by_server(sock)


def test_many_small_headers_over_16_kib_are_431(target: ServerProcess) -> None:
    fields = b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 200) for i in range(90))  # ~18 KiB
    with connect(target) as sock:
        sock.sendall(get(extra=fields))
        assert_problem(read_answer(sock), 431, "HEADERS_TOO_LARGE")


def test_101_header_fields_are_431(target: ServerProcess) -> None:
    fields = b"".join(b"X-F%d: 1\r\n" % i for i in range(100))  # and Host: 101 fields
    with connect(target) as sock:
        sock.sendall(get(extra=fields))
        assert_problem(read_answer(sock), 431, "HEADERS_TOO_LARGE")
    with connect(target) as sock:  # 100 fields pass
        sock.sendall(get(extra=fields[: fields.index(b"X-F99")]))
        assert read_answer(sock)[0] == 200


def test_a_huge_header_is_refused_after_the_first_reads_not_read_whole(
    target: ServerProcess,
) -> None:
    """The 40 MB header of the security report: refused long before it has been sent."""
    with connect(target) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * 1024)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Huge: ")
        sent = 0
        started = time.monotonic()
        with suppress(BrokenPipeError, ConnectionResetError):
            while sent < 40 * 1024 * 1024:
                sent += sock.send(b"h" * 65536)
        # What was sent sits in kernel buffers, plus at most 1 MiB the target drops.
        assert sent < 16 * 1024 * 1024, "the target kept reading the header"
        assert time.monotonic() - started < 2
        with suppress(ConnectionError):  # the answer may be lost to a reset
            status, _, _ = read_answer(sock)
            assert status == 431


def test_a_head_trickled_slower_than_the_timeout_is_408(target: ServerProcess) -> None:
    with connect(target, timeout=0.25) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        answer = b""
        while time.monotonic() - started < HEADER_TIMEOUT + 3:
            try:  # a byte every 0.25 s: the connection is never idle, the head never ends
                chunk = sock.recv(65536)
            except TimeoutError:
                sock.sendall(b"X")
                continue
            answer += chunk
            if not chunk or b"}" in answer:
                break
        elapsed = time.monotonic() - started
        assert HEADER_TIMEOUT * 0.9 < elapsed < HEADER_TIMEOUT + 1
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b'"code":"REQUEST_TIMEOUT"' in answer


def test_a_connection_that_sends_nothing_is_closed(target: ServerProcess) -> None:
    with connect(target) as sock:
        started = time.monotonic()
        assert sock.recv(100) == b""
        assert HEADER_TIMEOUT * 0.9 < time.monotonic() - started < HEADER_TIMEOUT + 2


def test_a_body_stalled_past_the_idle_timeout_is_408(target: ServerProcess) -> None:
    with connect(target) as sock:
        sock.sendall(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n" + b'{"username": '
        )
        started = time.monotonic()
        assert_problem(read_answer(sock), 408, "REQUEST_TIMEOUT")
        assert BODY_IDLE_TIMEOUT * 0.9 < time.monotonic() - started < BODY_IDLE_TIMEOUT + 2
        assert closed_by_server(sock)


def test_a_slow_body_that_keeps_coming_is_not_cut(server: ServerProcess) -> None:
    body = b'{"username": "nobody-here", "password": "wrong password"}'
    with connect(server) as sock:
        sock.sendall(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        for part in (body[:10], body[10:20], body[20:]):  # 1.5 s in all, 0.5 s idle at most
            time.sleep(0.5)
            sock.sendall(part)
        assert read_answer(sock)[0] == 401


def test_a_content_length_over_the_limit_is_413_at_once(target: ServerProcess) -> None:
    with connect(target) as sock:
        started = time.monotonic()
        sock.sendall(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
        )
        status, _, body = read_answer(sock)
        assert status == 413, body
        assert json.loads(body)["code"] == "PAYLOAD_TOO_LARGE"
        assert time.monotonic() - started < 1
        # A client that sends the body anyway: a little is read and dropped, then the
        # connection closes; the 100 MB are never read.
        sent = 0
        with suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
            while sent < 100_000_000:
                sent += sock.send(b"x" * 65536)
        assert sent < 16 * 1024 * 1024


def test_an_idle_keep_alive_connection_is_closed(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(get())
        assert read_answer(sock)[0] == 200
        started = time.monotonic()
        assert sock.recv(100) == b""
        assert KEEP_ALIVE * 0.9 < time.monotonic() - started < KEEP_ALIVE + 2


def test_connections_per_address_are_capped(target: ServerProcess) -> None:
    source = "127.0.0.50"
    with ExitStack() as stack:
        held = [stack.enter_context(connect(target, source)) for _ in range(PER_ADDRESS)]
        time.sleep(0.2)  # the target has accepted them all
        with connect(target, source) as extra:
            extra.sendall(get())
            with suppress(ConnectionError):  # closed before the answer was read: refused too
                assert_problem(read_answer(extra), 429, "TOO_MANY_CONNECTIONS")
            assert closed_by_server(extra)
        # The held connections still work, and so does another address.
        held[0].sendall(get())
        assert read_answer(held[0])[0] == 200
        with connect(target, "127.0.0.51") as other:
            other.sendall(get())
            assert read_answer(other)[0] == 200
    time.sleep(0.2)  # the target has seen them close: the address may connect again
    with connect(target, source) as again:
        again.sendall(get())
        assert read_answer(again)[0] == 200


def test_a_slowloris_of_300_connections_does_not_stall_a_normal_client(
    target: ServerProcess,
) -> None:
    with ExitStack() as stack:
        attackers = []
        for i in range(300):  # 15 per address, under the cap of 20
            sock = stack.enter_context(connect(target, f"127.0.1.{i // 15 + 1}"))
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Slow: ")
            attackers.append(sock)
        started = time.monotonic()
        with connect(target) as client:
            client.sendall(get())
            assert read_answer(client)[0] == 200
        assert time.monotonic() - started < 0.5
        # The half-sent requests end at the header timeout.
        time.sleep(HEADER_TIMEOUT + 0.5)
        for sock in attackers[::30]:
            sock.settimeout(2)
            assert_problem(read_answer(sock), 408, "REQUEST_TIMEOUT")


def test_pipelined_requests_are_all_answered(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(get() * 3 + get()[:20])  # three requests and the start of a fourth
        assert [read_answer(sock)[0] for _ in range(3)] == [200, 200, 200]
        sock.sendall(get()[20:])
        assert read_answer(sock)[0] == 200


def test_an_upgrade_request_is_answered_as_plain_http(server: ServerProcess) -> None:
    upgrade = b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    with connect(server) as sock:
        sock.sendall(get(extra=upgrade + b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"))
        assert read_answer(sock)[0] == 200
