"""Connection limits at the socket: what uvicorn's HTTP protocol does not bound by itself.

`limited_protocol(settings)` returns a subclass of uvicorn's httptools protocol that `orderproc
serve` hands to `uvicorn.Config(http=...)`. On every connection it bounds:

- the request target (`max_request_line_bytes`, 414) and the header section
  (`max_header_bytes` or `max_header_fields`, 431), counted while the bytes arrive, so an
  oversized head is refused after at most one read beyond the limit and never buffered whole;
- the time to receive a request's head (`header_timeout_seconds`, from the connection's start
  or from the first byte of a later request; 408, or a silent close if nothing was sent);
- the time a request body may stall (`body_idle_timeout_seconds`, 408 and close);
- what is read of a body the application has already answered (for instance the 413 the edge
  middleware gives to a `Content-Length` over `max_body_bytes`): at most
  `max(max_body_bytes, 1 MiB)` more is read and dropped, then the connection closes;
- the connections open at once from one peer address (`max_connections_per_address`; 0 = no
  cap; trusted proxies are exempt): the next one is answered 429 and closed at once.

The idle keep-alive timeout is uvicorn's own (`timeout_keep_alive`), which this protocol also
re-arms when an answer went out before its request's body had ended.

Refusals are `application/problem+json` in the RFC 7807 shape of `errors/problem.py`, with
`Connection: close`. After a refusal the server sends its FIN and keeps reading (and dropping)
for up to `LINGER_SECONDS`, so the client reads the answer instead of a reset.

Cost on the hot path: no timer per request when a request's head (and body) arrive in one
read. The head timer is armed once per connection and afterwards only when a head spans reads;
the body timer only when a body spans reads. See docs/security.md, "Connection limits".
"""

from __future__ import annotations

import http
import ipaddress
import logging
import os
import time
from asyncio import Transport
from asyncio.events import TimerHandle
from collections.abc import Sequence
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from orderproc.common.settings import Settings

log = logging.getLogger("orderproc.edge")

PROBLEM_JSON = b"application/problem+json"
TYPE_BASE = "https://orderproc.dev/problems/"
LINGER_SECONDS = 2.0
MIN_DISCARD_BYTES = 1024 * 1024

# Where the connection is in the request it is reading.
_IDLE = 0  # between requests (or before the first)
_HEAD = 1  # a request's first byte arrived, its header section has not ended
_BODY = 2  # the header section ended, the body has not
_CLOSING = 3  # refused: whatever arrives is dropped until the socket closes


class _Refused(Exception):
    """Raised in a parser callback to stop parsing; `data_received` answers it."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def problem_answer(
    status: int,
    code: str,
    detail: str,
    *,
    default_headers: Sequence[tuple[bytes, bytes]] = (),
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
) -> bytes:
    """A complete HTTP/1.1 answer with a problem+json body, closing the connection."""
    request_id = os.urandom(8).hex()
    title = http.HTTPStatus(status).phrase
    body = orjson.dumps(
        {
            "type": TYPE_BASE + code.lower().replace("_", "-"),
            "title": title,
            "status": status,
            "detail": detail,
            "instance": "about:blank",
            "code": code,
            "request_id": request_id,
        }
    )
    head = [f"HTTP/1.1 {status} {title}\r\n".encode()]
    for name, value in (
        *default_headers,
        (b"content-type", PROBLEM_JSON),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        (b"x-request-id", request_id.encode()),
        *extra_headers,
    ):
        head.append(name + b": " + value + b"\r\n")
    head.append(b"\r\n")
    return b"".join(head) + body


class _LogLimiter:
    """At most one log line a second per kind of refusal, with a count of those left out."""

    def __init__(self) -> None:
        self._next: dict[str, float] = {}
        self._left_out: dict[str, int] = {}

    def warn(self, status: int, code: str, detail: str, peer: str | None) -> None:
        now = time.monotonic()
        if now < self._next.get(code, 0.0):
            self._left_out[code] = self._left_out.get(code, 0) + 1
            return
        self._next[code] = now + 1.0
        left_out = self._left_out.pop(code, 0)
        more = f" ({left_out} more since the last line like it)" if left_out else ""
        log.warning(
            "connection refused: %s%s",
            detail,
            more,
            extra={"status": status, "code": code, "peer": peer},
        )


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above. Make a configured subclass with
    `limited_protocol(settings)`; the class attributes below are its configuration."""

    max_target_bytes: ClassVar[int] = 8192
    max_header_bytes: ClassVar[int] = 16384
    max_header_fields: ClassVar[int] = 100
    header_timeout: ClassVar[float] = 10.0
    body_idle_timeout: ClassVar[float] = 30.0
    discard_limit: ClassVar[int] = MIN_DISCARD_BYTES
    max_per_address: ClassVar[int] = 0
    exempt_networks: ClassVar[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]] = ()
    # Per server process (one event loop): open connections per peer address.
    open_per_address: ClassVar[dict[str, int]]
    log_limiter: ClassVar[_LogLimiter]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.url = b""
        self._state = _IDLE
        self._fed = 0  # length of the read being parsed
        self._completed = False  # a request ended inside the read being parsed
        self._head_bytes = 0  # bytes of the current head in earlier reads (an upper bound)
        self._body_at = 0.0  # loop time of the last read of the current body
        self._discarded = 0  # body bytes dropped after the answer went out
        self._peer: str | None = None  # counted in open_per_address
        self._header_timer: TimerHandle | None = None
        self._body_timer: TimerHandle | None = None
        self._linger_timer: TimerHandle | None = None

    # --- the connection ---------------------------------------------------------------------

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.max_per_address and self.client is not None:
            host = self.client[0]
            if not self._exempt(host):
                count = self.open_per_address.get(host, 0)
                if count >= self.max_per_address:
                    self._refuse_connection(host)
                    return
                self.open_per_address[host] = count + 1
                self._peer = host
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def _refuse_connection(self, host: str) -> None:
        """Over the per-address cap: answer 429 before any request, close at once."""
        self._state = _CLOSING
        detail = f"At most {self.max_per_address} connections from one address may be open."
        self.log_limiter.warn(429, "TOO_MANY_CONNECTIONS", detail, host)
        retry = ((b"retry-after", b"1"),)
        self.transport.write(self._answer(429, "TOO_MANY_CONNECTIONS", detail, retry))
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        host = self._peer
        if host is not None:
            self._peer = None
            count = self.open_per_address[host] - 1
            if count:
                self.open_per_address[host] = count
            else:
                del self.open_per_address[host]
        self._cancel_timers()
        super().connection_lost(exc)

    def _exempt(self, host: str) -> bool:
        if not self.exempt_networks:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.exempt_networks)

    # --- reading ------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        # uvicorn's data_received, plus the accounting after the parser has had the read.
        state = self._state
        if state == _CLOSING:  # refused: drop what comes, up to a bound
            self._discarded += len(data)
            if self._discarded > self.discard_limit:
                self.transport.close()
            return
        if self.timeout_keep_alive_task is not None:
            self._unset_keepalive_if_required()
        self._fed = len(data)
        self._completed = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            refused = error.__context__
            if isinstance(refused, _Refused):
                self._refuse(refused.status, refused.code, refused.detail)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            # No WebSocket protocol is configured (the platform has no WebSocket route), so
            # an upgrade request is answered as plain HTTP.
            self.logger.debug("Upgrade request answered as plain HTTP.")

        state = self._state
        if state == _IDLE:
            if not self._completed:  # bytes between requests that begin none (blank lines)
                self._head_bytes += len(data)
                self._check_head()
                return
            cycle = self.cycle
            if (
                cycle is not None
                and cycle.response_complete
                and self.timeout_keep_alive_task is None
                and not self.pipeline
                and not self.transport.is_closing()
            ):
                # The answer went out before the request's body ended: uvicorn armed the
                # keep-alive timer then and the body's arrival has cancelled it.
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler
                )
        elif state == _BODY:
            self._body_at = self.loop.time()
            if self.cycle.response_complete:
                self._discarded += len(data)
                if self._discarded > self.discard_limit:
                    self._state = _CLOSING
                    self._cancel_timers()
                    self.transport.close()
                    return
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(
                    self.body_idle_timeout, self._body_timed_out
                )
        elif state == _HEAD:
            if not self._completed:
                # The whole read belongs to this head. (When another request ended earlier in
                # the same read, the head's share is unknown and counts from the next read.)
                self._head_bytes += len(data)
            self._check_head()

    def _check_head(self) -> None:
        if self._head_bytes - len(self.url) > self.max_header_bytes:
            self._refuse(
                431,
                "HEADERS_TOO_LARGE",
                f"The request's header section is larger than {self.max_header_bytes} bytes.",
            )
        elif self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    # --- parser callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._state = _HEAD
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.max_target_bytes:
            raise _Refused(
                414,
                "URI_TOO_LONG",
                f"The request target is longer than {self.max_target_bytes} bytes.",
            )

    def on_headers_complete(self) -> None:
        timer = self._header_timer
        if timer is not None:
            timer.cancel()
            self._header_timer = None
        self._state = _BODY
        headers = self.headers
        if len(headers) > self.max_header_fields:
            raise _Refused(
                431,
                "HEADERS_TOO_LARGE",
                f"The request has more than {self.max_header_fields} header fields.",
            )
        if self._head_bytes + self._fed > self.max_header_bytes:
            # Possibly too large: count exactly (name, ": ", value, CRLF).
            size = sum(len(name) + len(value) + 4 for name, value in headers)
            if size > self.max_header_bytes:
                raise _Refused(
                    431,
                    "HEADERS_TOO_LARGE",
                    f"The request's header section is larger than {self.max_header_bytes} bytes.",
                )
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._state = _IDLE
        self._completed = True
        self._head_bytes = 0
        self._discarded = 0
        timer = self._body_timer
        if timer is not None:
            timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    # --- timers -------------------------------------------------------------------------------

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self._state == _CLOSING:
            return
        if self._state == _IDLE and self._head_bytes == 0:
            # Connected and sent nothing (a browser's spare connection, or a slow attack).
            self._state = _CLOSING
            self._cancel_timers()
            self.transport.close()
            return
        self._refuse(
            408,
            "REQUEST_TIMEOUT",
            f"The request's header section did not arrive within {self.header_timeout:g} s.",
        )

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self._state != _BODY:
            return
        now = self.loop.time()
        if self.flow.read_paused:  # the server is not reading: not the client's stall
            self._body_at = now
        idle = now - self._body_at
        if idle < self.body_idle_timeout:
            self._body_timer = self.loop.call_later(
                self.body_idle_timeout - idle, self._body_timed_out
            )
            return
        self._state = _CLOSING
        self._cancel_timers()
        cycle = self.cycle
        if not cycle.response_started:
            cycle.disconnected = True  # the application's receive() ends; its answer is dropped
            cycle.message_event.set()
            detail = f"The request body stalled for {self.body_idle_timeout:g} s."
            self.log_limiter.warn(408, "REQUEST_TIMEOUT", detail, self._who())
            self.transport.write(self._answer(408, "REQUEST_TIMEOUT", detail))
        self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = self._linger_timer = None

    # --- refusing -----------------------------------------------------------------------------

    def _refuse(self, status: int, code: str, detail: str) -> None:
        """Refuse the request whose head is arriving, then close the connection."""
        self._state = _CLOSING
        self._discarded = 0
        self._cancel_timers()
        self.log_limiter.warn(status, code, detail, self._who())
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # An earlier request's answer is still being written: no second answer on the
            # wire; the connection closes when that one is done.
            cycle.keep_alive = False
            return
        transport = self.transport
        transport.write(self._answer(status, code, detail))
        if transport.can_write_eof():
            # Send FIN, keep reading (and dropping) a little while so that the client gets
            # the answer rather than a reset for the bytes it had in flight.
            transport.write_eof()
            self.flow.resume_reading()
            self._linger_timer = self.loop.call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()

    def _answer(
        self, status: int, code: str, detail: str, extra_headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> bytes:
        return problem_answer(
            status,
            code,
            detail,
            default_headers=self.server_state.default_headers,
            extra_headers=extra_headers,
        )

    def _who(self) -> str | None:
        return self.client[0] if self.client else None


def limited_protocol(settings: Settings) -> type[LimitedHttpToolsProtocol]:
    """A protocol class for `uvicorn.Config(http=...)` configured from the settings."""
    exempt = tuple(ipaddress.ip_network(net, strict=False) for net in settings.trusted_proxies)
    attributes: dict[str, Any] = {
        "max_target_bytes": settings.max_request_line_bytes,
        "max_header_bytes": settings.max_header_bytes,
        "max_header_fields": settings.max_header_fields,
        "header_timeout": settings.header_timeout_seconds,
        "body_idle_timeout": settings.body_idle_timeout_seconds,
        "discard_limit": max(settings.max_body_bytes, MIN_DISCARD_BYTES),
        "max_per_address": settings.max_connections_per_address,
        "exempt_networks": exempt,
        "open_per_address": {},
        "log_limiter": _LogLimiter(),
    }
    return type("ConfiguredHttpToolsProtocol", (LimitedHttpToolsProtocol,), attributes)
