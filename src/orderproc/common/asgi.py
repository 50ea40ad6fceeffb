"""Pure-ASGI middleware for every app: request ids, access log, metrics, security headers and
a body-size limit. (Starlette's BaseHTTPMiddleware costs far more per request; see
docs/architecture.md, "Request path".)"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderproc.common.context import request_id_var, user_var
from orderproc.common.logging import access_log
from orderproc.common.metrics import Metrics
from orderproc.errors import PayloadTooLarge
from orderproc.errors.problem import render

_SAFE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")

_API_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
]
_DOCS_HEADERS = _API_HEADERS[:4]
_DOCS_PATHS = ("/docs", "/redoc")
_OVERRIDABLE = frozenset({b"content-security-policy", b"cache-control"})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class EdgeMiddleware:
    """Gives each request an id (a safe incoming `X-Request-ID` is kept), logs one JSON line,
    records metrics, adds security headers, and refuses bodies over `max_body_bytes` (413)."""

    def __init__(self, app: ASGIApp, *, state: Any) -> None:
        self.app = app
        self._state = state  # app.state; its runtime is built at start-up

    @property
    def metrics(self) -> Metrics:
        return self._state.runtime.metrics  # type: ignore[no-any-return]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_for(_header(scope, b"x-request-id"))
        request_id_var.set(request_id)
        user_var.set(None)
        started = time.perf_counter()
        status = 500
        path: str = scope["path"]
        extra = _DOCS_HEADERS if path.startswith(_DOCS_PATHS) else _API_HEADERS

        max_body = self._state.runtime.settings.max_body_bytes
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body:
                    # FastAPI re-raises HTTPException from body parsing; the handler renders it.
                    raise HTTPException(413)
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", request_id.encode()))
                # A response that sets its own CSP or cache policy (the web UI's pages and
                # static files) keeps it; everything else gets the strict API defaults.
                own = {name for name, _ in headers if name in _OVERRIDABLE}
                headers.extend(h for h in extra if h[0] not in own)
                message["headers"] = headers
            await send(message)

        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > max_body:
            await render(PayloadTooLarge(), path)(scope, receive, send_with_headers)
            self._finish(scope, 413, started)
            return

        try:
            await self.app(scope, limited_receive, send_with_headers)
        finally:
            self._finish(scope, status, started)

    def _finish(self, scope: Scope, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        self.metrics.observe(scope["method"], template, status, elapsed)
        if self._state.runtime.settings.access_log:
            access_log.write(scope["method"], scope["path"], status, elapsed)


def request_id_for(incoming: bytes | None) -> str:
    """The client's `X-Request-ID` when it is one we keep (short, safe characters), else a new
    one."""
    if incoming and _SAFE_REQUEST_ID.match(incoming):
        return incoming.decode()
    return os.urandom(8).hex()
