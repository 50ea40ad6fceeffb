"""Small upstreams for the gateway proxy's tests, each a real server on a loopback port.

- `EchoServer(name)`: HTTP/1.1 with keep-alive; answers JSON naming itself with the method,
  path (with query), headers and body it received (a chunked request body is decoded). It counts
  requests and connections. `/ready` answers 200; `?stream` answers server-sent events (one at
  once, then silence for `hold` seconds); `?slow=S` waits S seconds before answering.
- `GarbageServer()`: answers every connection with bytes that are not HTTP, then closes.
- `Gateway(app)`: an ASGI app under uvicorn in a thread of this process, as `orderproc serve`
  runs one (httptools, no access log, no server header, lifespan on).
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import uvicorn

from tests.support.redis_server import free_loopback_port


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _EchoHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1
            self.server.open_sockets.append(self.request)

    def _body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self) -> None:
        body = self._body()
        with self.server.lock:
            self.server.requests += 1
        if self.path == "/ready":
            self._send(200, b'{"status":"ready"}')
            return
        if "slow=" in self.path:
            time.sleep(float(self.path.rsplit("slow=", 1)[1]))
        if self.path.endswith("?stream"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            event = f"data: {self.server.name}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
            time.sleep(self.server.hold)
            with contextlib.suppress(OSError):
                self.wfile.write(b"0\r\n\r\n")
            return
        answer = {
            "service": self.server.name,
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("latin-1"),
        }
        self._send(200, json.dumps(answer).encode())

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("x-echo", self.server.name)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer


class _EchoHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    name = ""
    hold = 2.0
    requests = 0
    connections = 0
    lock = threading.Lock()
    open_sockets: list[socket.socket]


class EchoServer:
    def __init__(
        self, name: str, *, port: int = 0, hold: float = 2.0, idle_timeout: float | None = None
    ) -> None:
        """`idle_timeout`: close a connection idle that long (as uvicorn's keep-alive does)."""
        self.name = name
        handler = type("Echo", (_Echo,), {"timeout": idle_timeout})
        self._server = _EchoHTTPServer(("127.0.0.1", port), handler)
        self._server.name = name
        self._server.hold = hold
        self._server.lock = threading.Lock()
        self._server.open_sockets = []
        self.port: int = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> int:
        return self._server.requests

    @property
    def connections(self) -> int:
        return self._server.connections

    def stop(self) -> None:
        """Stop listening and end every open connection (keep-alive ones too)."""
        self._server.shutdown()
        self._server.server_close()
        with self._server.lock:
            for sock in self._server.open_sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class _Garbage(socketserver.BaseRequestHandler):
    reply = b"SURPRISE! this is not HTTP at all\r\n\r\n"

    def handle(self) -> None:
        with contextlib.suppress(OSError):
            self.request.recv(65536)
            self.request.sendall(self.reply)


class GarbageServer:
    """Answers every request with `reply` (by default, bytes that are not HTTP) and closes."""

    def __init__(self, reply: bytes | None = None) -> None:
        handler = type("Garbage", (_Garbage,), {"reply": reply or _Garbage.reply})
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Gateway:
    """An ASGI app under uvicorn in a background thread; `port` once started."""

    def __init__(self, app: Any) -> None:
        self.port = free_loopback_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            lifespan="on",
            http="httptools",
            ws="none",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self, timeout: float = 10.0) -> Gateway:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
