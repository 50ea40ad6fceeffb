"""The gateway of distributed mode: a reverse proxy in front of the services.

`create_proxy_app(settings, upstreams)` is a plain ASGI app (no framework on the request path).
For each request it:

1. gives it a request id (a safe incoming `X-Request-ID` is kept, the services' rule);
2. answers CORS preflights for origins in `ORDERPROC_CORS_ALLOW_ORIGINS` (none by default);
3. answers its own paths: `/health` (this process is alive), `/ready` (every upstream's `/ready`,
   summarized), `/metrics`, `/openapi.json` (the services' documents merged, cached:
   `gateway/docs.py`) and Swagger UI at `/docs`; an `/api` path no service claims is a 404
   problem;
4. refuses, before any upstream hears of it: a body over `max_body_bytes` (413), an address
   blocked after failed logins (403), more requests than the rate limit per address or per user
   (429 with `Retry-After`), a bearer token that is not valid, expired or revoked (401), and a
   non-admin on `/api/v1/admin` (403). The services check tokens and roles again;
5. forwards it to the service `routes.service_for(path)` names over a pooled keep-alive
   connection (`gateway/upstream.py`), streaming both bodies, with the method, path and query as
   they came; hop-by-hop headers and the identity headers a client sends (`IDENTITY_HEADERS`) are
   dropped, and `X-Forwarded-For` (the client's address), `-Proto`, `-Host` and `X-Request-ID`
   are the gateway's own (as in the nginx configuration rendered from the same table);
6. passes the answer back as it comes (server-sent events unbuffered), with the security
   headers the embedded app sends where the service did not set its own, and the rate-limit and
   CORS headers. An upstream that is down, refuses or times out gives 503 problem+json with
   `Retry-After`; one that answers something other than HTTP gives 502 problem+json.

Rate limits, login blocking, token verification and revocation come in as ports
(`GatewayDeps`), so the Redis-backed versions of distributed mode plug in unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

import orjson
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from orderproc import __version__
from orderproc.common.asgi import _API_HEADERS, _DOCS_HEADERS, request_id_for
from orderproc.common.clock import Clock, SystemClock
from orderproc.common.context import request_id_var, user_var
from orderproc.common.logging import access_log
from orderproc.common.login_throttle import (
    DisabledLoginThrottle,
    LoginThrottle,
    in_process_login_throttle,
)
from orderproc.common.metrics import CONTENT_TYPE_LATEST, Metrics
from orderproc.common.security.tokens import Claims
from orderproc.common.settings import Settings
from orderproc.common.throttle import Allowance
from orderproc.common.web import client_ip_from
from orderproc.errors import (
    AdminRequired,
    ClientBlocked,
    InvalidToken,
    MethodNotAllowed,
    OrderProcError,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    RouteNotFound,
    ServiceUnavailable,
)
from orderproc.errors.problem import problem_response, render
from orderproc.gateway.docs import SWAGGER_DIR, PlatformDocs, swagger_ui_page
from orderproc.gateway.routes import API_PREFIX, IDENTITY_HEADERS, Route, Service, route_for
from orderproc.gateway.upstream import (
    Replicas,
    Upstream,
    UpstreamConnection,
    UpstreamError,
    UpstreamGarbage,
    UpstreamTimeout,
    UpstreamTimeouts,
)

__all__ = [
    "PROXIED",
    "GatewayDeps",
    "ProxyApp",
    "RateLimits",
    "Revocations",
    "TokenDecoder",
    "build_gateway_deps",
    "create_proxy_app",
    "upstreams_from_settings",
]

log = logging.getLogger("orderproc.gateway")

PROXIED: tuple[Service, ...] = (Service.USERS, Service.INVENTORY, Service.ORDERS, Service.WEBUI)
REQUIRED_FOR_READY: frozenset[Service] = frozenset(
    {Service.USERS, Service.INVENTORY, Service.ORDERS}
)
OWN_PATHS = frozenset({"/health", "/ready", "/metrics"})
ADMIN_PREFIX = API_PREFIX + "/admin"
DOCS_FILES = "/docs/static"
RETRY_AFTER_SECONDS = 5
READY_TIMEOUT = 2.0

# Never forwarded in either direction (RFC 9110, 7.6.1), plus what the gateway sets itself.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)
_REQUEST_DROPPED = _HOP_BY_HOP | {
    b"expect",  # the server in front of us already answered 100-continue
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-request-id",
    *(name.lower().encode() for name in IDENTITY_HEADERS),
}
# The server in front of the client adds its own date (and no server header).
_RESPONSE_DROPPED = _HOP_BY_HOP | {b"date", b"server"}
_CORS_EXPOSED = (
    b"Location, Retry-After, X-Request-ID, X-RateLimit-Limit, X-RateLimit-Remaining, "
    b"X-RateLimit-Reset"
)
_WHOLE_BODY = 64 * 1024  # answers up to this long (with a length) go on in one piece
_CORS_METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"
_CORS_HEADERS = b"Authorization, Content-Type, Idempotency-Key, X-Request-ID"


class TokenDecoder(Protocol):
    """`TokenService`: the claims of a valid, unexpired token, else `InvalidToken`."""

    def decode(self, token: str) -> Claims: ...


class Revocations(Protocol):
    """`RevocationChecker` (or its Redis-backed successor): raises unless still usable."""

    async def ensure_valid(self, *, user_id: str, jti: str, issued_at: datetime) -> None: ...


class RateLimits(Protocol):
    """The edge's one question per request, as the rate limiters answer it (in process, or in
    Redis in one round trip): seconds left on `client`'s failed-login block (0 if none), and,
    unless blocked or `count` is off, one request more counted against `client`'s limit."""

    async def admit(
        self, client: str, throttle: LoginThrottle, *, count: bool
    ) -> tuple[int, Allowance | None]: ...


_NO_BLOCKS = DisabledLoginThrottle()  # per-user counting: users are not blocked by address


@dataclass
class GatewayDeps:
    """What the gateway uses; built by `build_gateway_deps` or given by a composition root."""

    tokens: TokenDecoder
    revocations: Revocations
    login_throttle: LoginThrottle
    rate_limits: RateLimits
    metrics: Metrics
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        for closer in reversed(self.closers):
            await closer()


async def build_gateway_deps(settings: Settings, *, clock: Clock | None = None) -> GatewayDeps:
    """The gateway's collaborators from settings: the token service with the platform's secret,
    revocation checks on the shared store (not migrated here: the services own the schema), the
    failed-login throttle and the rate limiter; with `ORDERPROC_REDIS_URL`, the last three
    share their state through Redis (`common/redis_shared.py`), as the services' do."""
    from orderproc.common.redis_shared import (
        RedisLoginThrottle,
        login_throttle_for,
        rate_limiter_for,
        revocations_for,
    )
    from orderproc.common.runtime import jwt_secret_for
    from orderproc.common.security.revocation import RevocationChecker
    from orderproc.common.security.tokens import TokenService
    from orderproc.common.storage.factory import open_store

    clock = clock or SystemClock()
    metrics = Metrics("gateway")
    store = open_store(
        settings.resolved_database_url,
        pool_size=settings.database_pool_size,
        timeout_seconds=settings.database_timeout_seconds,
    )
    closers: list[Callable[[], Awaitable[None]]] = [store.close]
    shared_revocations = revocations_for(settings, now=clock.now, metrics=metrics)
    if shared_revocations is not None:
        closers.append(shared_revocations.aclose)
    throttle = login_throttle_for(
        settings, in_process_login_throttle(settings, clock), metrics=metrics
    )
    if isinstance(throttle, RedisLoginThrottle):
        closers.append(throttle.aclose)
    limiter = rate_limiter_for(settings, throttle, metrics=metrics)
    closers.append(limiter.aclose)
    return GatewayDeps(
        tokens=TokenService.from_settings(settings, secret=jwt_secret_for(settings), clock=clock),
        revocations=RevocationChecker(
            store, cache_seconds=settings.revocation_cache_seconds, shared=shared_revocations
        ),
        login_throttle=throttle,
        rate_limits=limiter,
        metrics=metrics,
        closers=closers,
    )


def upstreams_from_settings(settings: Settings) -> dict[Service, str]:
    """`ORDERPROC_GATEWAY_UPSTREAMS` (a JSON object of service name to base URL, or to a
    comma-separated list of its replicas' base URLs) as the mapping `create_proxy_app` takes."""
    return {Service(name): url for name, url in settings.gateway_upstreams.items()}


def create_proxy_app(
    settings: Settings,
    upstreams: Mapping[Service, str],
    *,
    deps: GatewayDeps | None = None,
    timeouts: UpstreamTimeouts | None = None,
    clock: Clock | None = None,
) -> ProxyApp:
    """The gateway as an ASGI app. `upstreams` gives each proxied service (users, inventory,
    orders, webui) its base URL (`http://host:port`), or its replicas' separated by commas
    (taken in turn; see `upstream.Replicas`). Without `deps`, they are built at start-up
    (the ASGI lifespan) and closed at shutdown."""
    return ProxyApp(settings, upstreams, deps=deps, timeouts=timeouts, clock=clock)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


class _Refused(Exception):
    def __init__(self, error: OrderProcError, headers: list[tuple[bytes, bytes]]) -> None:
        self.error = error
        self.headers = headers


class ProxyApp:
    def __init__(
        self,
        settings: Settings,
        upstreams: Mapping[Service, str],
        *,
        deps: GatewayDeps | None = None,
        timeouts: UpstreamTimeouts | None = None,
        clock: Clock | None = None,
    ) -> None:
        missing = [s.value for s in PROXIED if s not in upstreams]
        if missing:
            raise ValueError(f"no upstream URL for: {', '.join(missing)}")
        self.settings = settings
        self.upstreams = {s: Replicas.parse(upstreams[s], timeouts=timeouts) for s in PROXIED}
        self._deps = deps
        self._own_deps = deps is None
        self._clock = clock
        self._origins = frozenset(o.encode() for o in settings.cors_allow_origins)
        self._any_origin = b"*" in self._origins
        self._max_body = settings.max_body_bytes
        self.docs = PlatformDocs(self.upstreams)
        self._swagger_page = swagger_ui_page()
        self._swagger_files = StaticFiles(directory=SWAGGER_DIR)

    @property
    def deps(self) -> GatewayDeps:
        if self._deps is None:
            raise RuntimeError("the gateway has not started (ASGI lifespan)")
        return self._deps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        # Anything else (websocket): not served; the server closes it.

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self._deps is None:
                        self._deps = await build_gateway_deps(self.settings, clock=self._clock)
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for upstream in self.upstreams.values():
                    upstream.close()
                if self._own_deps and self._deps is not None:
                    await self._deps.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- one request

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        request_id = request_id_for(_header(headers, b"x-request-id"))
        request_id_var.set(request_id)
        user_var.set(None)
        path: str = scope["path"]
        route = route_for(path)
        extra: list[tuple[bytes, bytes]] = []  # rate-limit and CORS headers for the answer
        origin = _header(headers, b"origin")
        if origin is not None and (self._any_origin or origin in self._origins):
            if scope["method"] == "OPTIONS" and _header(headers, b"access-control-request-method"):
                await self._preflight(origin, request_id, send)
                self._finish(scope, "cors-preflight", 204, started)
                return
            extra += [
                (b"access-control-allow-origin", b"*" if self._any_origin else origin),
                (b"access-control-expose-headers", _CORS_EXPOSED),
                (b"vary", b"Origin"),
            ]
        elif (
            origin is not None
            and scope["method"] == "OPTIONS"
            and _header(headers, b"access-control-request-method")
        ):
            error = PermissionDenied("This origin may not call the API.")
            await self._problem(scope, send, render(error, path), request_id, extra)
            self._finish(scope, "cors-preflight", 403, started)
            return
        status = 500
        try:
            if route.service is Service.GATEWAY:
                status = await self._own(scope, receive, send, request_id, extra)
                return
            address = await self._admit(scope, headers, path, extra)
            status = await self._forward(scope, receive, send, route, address, request_id, extra)
        except _Refused as refused:
            status = await self._problem(
                scope, send, render(refused.error, path), request_id, extra + refused.headers
            )
        finally:
            self._finish(scope, route.path, status, started)

    async def _admit(
        self,
        scope: Scope,
        headers: list[tuple[bytes, bytes]],
        path: str,
        extra: list[tuple[bytes, bytes]],
    ) -> str | None:
        """Refuses what must not reach a service (raises `_Refused`); the client's address."""
        deps = self.deps
        settings = self.settings
        length = _header(headers, b"content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body:
            raise _Refused(PayloadTooLarge(), [])
        address = self._client_address(scope, headers)
        blocked, allowance = await deps.rate_limits.admit(
            address or "unknown", deps.login_throttle, count=settings.rate_limit_enabled
        )
        if blocked:
            raise _Refused(ClientBlocked(), [])
        if allowance is not None:
            self._limit(allowance, extra)
        claims = None
        authorization = _header(headers, b"authorization")
        is_api = path == "/api" or path.startswith("/api/")
        if authorization is not None and is_api:
            scheme, _, token = authorization.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                try:
                    claims = deps.tokens.decode(token.strip())
                    await deps.revocations.ensure_valid(
                        user_id=claims.user_id, jti=claims.jti, issued_at=claims.issued_at
                    )
                except OrderProcError as error:
                    raise _Refused(error, []) from None
                except Exception:
                    raise _Refused(
                        ServiceUnavailable("Token checks are unavailable."), []
                    ) from None
                user_var.set(claims.user_id)
                if settings.rate_limit_enabled:
                    _, allowance = await deps.rate_limits.admit(
                        "user:" + claims.user_id, _NO_BLOCKS, count=True
                    )
                    if allowance is not None:
                        self._limit(allowance, extra)
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            if claims is None:
                raise _Refused(
                    InvalidToken("An access token is required (Authorization: Bearer ...)."), []
                )
            if claims.role != "admin":
                raise _Refused(AdminRequired(), [])
        return address

    @staticmethod
    def _limit(allowance: Allowance, extra: list[tuple[bytes, bytes]]) -> None:
        headers = [
            (b"x-ratelimit-limit", str(allowance.limit).encode()),
            (b"x-ratelimit-remaining", str(allowance.remaining).encode()),
            (b"x-ratelimit-reset", str(allowance.reset_after).encode()),
        ]
        # The tightest limit's figures: the user's replace the address's when present.
        extra[:] = [h for h in extra if not h[0].startswith(b"x-ratelimit-")] + headers
        if not allowance.allowed:
            raise _Refused(RateLimited(retry_after=allowance.reset_after), [])

    def _client_address(self, scope: Scope, headers: list[tuple[bytes, bytes]]) -> str | None:
        client = scope.get("client")
        peer: str | None = client[0] if client else None
        if not self.settings.trusted_proxies:
            return peer
        forwarded = _header(headers, b"x-forwarded-for")
        return client_ip_from(
            peer, forwarded.decode("latin-1") if forwarded else None, self.settings.trusted_proxies
        )

    # -- forwarding

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: Route,
        address: str | None,
        request_id: str,
        extra: list[tuple[bytes, bytes]],
    ) -> int:
        upstream = self.upstreams[route.service]
        method: str = scope["method"]
        head, framing = self._request_head(scope, upstream, address, request_id)
        message = await receive()
        if message["type"] == "http.disconnect":
            return 499
        body: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        if len(body) > self._max_body:
            raise _Refused(PayloadTooLarge(), [])
        if framing != b"given":
            # The client's body came chunked, or without framing: whole in one message, it
            # goes with a length; else in chunks as it comes.
            framing = b"chunked" if more else b"none"
            if more:
                head += b"transfer-encoding: chunked\r\n"
            elif body:
                head += b"content-length: %d\r\n" % len(body)
        head += b"\r\n"
        first = head + (_chunk(body) if framing == b"chunked" and body else body)
        if framing == b"chunked" and not more:
            first += b"0\r\n\r\n"
        try:
            connection = await upstream.acquire()
            try:
                connection.begin(no_body=method == "HEAD")
                connection.write(first)
                if more:
                    status = await self._stream_body(connection, receive, framing, len(body))
                    if status:
                        connection.close()
                        if status == 413:
                            raise _Refused(PayloadTooLarge(), [])
                        return status
                status_code, response_headers = await connection.head(upstream.timeouts.head)
            except UpstreamError as error:
                retry = (
                    connection.reused
                    and not connection.received_any
                    and not more
                    and not isinstance(error, UpstreamTimeout | UpstreamGarbage)
                    and _safe_to_resend(method, scope["headers"])
                )
                connection.close()
                if not retry:
                    raise
                # The upstream closed a pooled connection as we used it (an idle timeout
                # racing our request, or a replica that died): once more, afresh, maybe on
                # another replica; only when sending twice cannot apply twice.
                connection = await upstream.acquire(fresh=True)
                connection.begin(no_body=method == "HEAD")
                connection.write(first)
                status_code, response_headers = await connection.head(upstream.timeouts.head)
        except UpstreamGarbage:
            return await self._unavailable(scope, send, request_id, extra, 502)
        except UpstreamError:
            return await self._unavailable(scope, send, request_id, extra, 503)
        try:
            return await self._respond(
                scope,
                receive,
                send,
                route,
                connection,
                status_code,
                response_headers,
                request_id,
                extra,
            )
        finally:
            upstream.release(connection)

    def _request_head(
        self, scope: Scope, upstream: Replicas, address: str | None, request_id: str
    ) -> tuple[bytes, bytes]:
        """The request line and forwarded headers (without the blank line), and how the body is
        framed: `given` (the client's Content-Length stays), else `none` (the caller decides
        from the first body message)."""
        raw_path: bytes | None = scope.get("raw_path")
        target = raw_path if raw_path else quote(scope["path"]).encode()
        query: bytes = scope.get("query_string", b"")
        if query:
            target += b"?" + query
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        dropped = _REQUEST_DROPPED
        connection_value = _header(headers, b"connection")
        if connection_value is not None:
            named = {n.strip().lower() for n in connection_value.split(b",")}
            dropped = dropped | named
        out = [scope["method"].encode(), b" ", target, b" HTTP/1.1\r\n"]
        host = None
        framing = b"none"
        for name, value in headers:
            if name in dropped:
                continue
            if name == b"host":
                host = value
            elif name == b"content-length":
                framing = b"given"
            out += [name, b": ", value, b"\r\n"]
        if host is None:
            out += [b"host: ", upstream.host_header, b"\r\n"]
        if address:
            out += [b"x-forwarded-for: ", address.encode(), b"\r\n"]
        out += [
            b"x-forwarded-proto: ",
            scope.get("scheme", "http").encode(),
            b"\r\nx-forwarded-host: ",
            host or upstream.host_header,
            b"\r\nx-request-id: ",
            request_id.encode(),
            b"\r\n",
        ]
        return b"".join(out), framing

    async def _stream_body(
        self, connection: UpstreamConnection, receive: Receive, framing: bytes, received: int
    ) -> int:
        """The rest of a request body to the upstream; 0, or a status to stop with."""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return 499
            body: bytes = message.get("body", b"")
            received += len(body)
            if received > self._max_body:
                return 413
            more = message.get("more_body", False)
            if framing == b"chunked":
                connection.write((_chunk(body) if body else b"") + (b"" if more else b"0\r\n\r\n"))
            elif body:
                connection.write(body)
            await connection.drain()
            if not more:
                return 0

    async def _respond(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: Route,
        connection: UpstreamConnection,
        status: int,
        upstream_headers: list[tuple[bytes, bytes]],
        request_id: str,
        extra: list[tuple[bytes, bytes]],
    ) -> int:
        """Passes the answer on; the status the client got."""
        dropped = _RESPONSE_DROPPED
        connection_value = _header(upstream_headers, b"connection")
        if connection_value is not None:
            dropped = dropped | {n.strip().lower() for n in connection_value.split(b",")}
        headers = [h for h in upstream_headers if h[0] not in dropped]
        present = {name for name, _ in headers}
        defaults = _DOCS_HEADERS if scope["path"].startswith("/docs") else _API_HEADERS
        headers += [h for h in defaults if h[0] not in present]
        if b"x-request-id" not in present:
            headers.append((b"x-request-id", request_id.encode()))
        headers += extra
        timeouts = self.upstreams[route.service].timeouts
        timeout = timeouts.stream if route.stream else timeouts.body
        if not connection.complete and not route.stream:
            # A small answer whose head came first: its body follows at once; one piece then.
            length = _header(upstream_headers, b"content-length")
            if length is not None and length.isdigit() and int(length) <= _WHOLE_BODY:
                try:
                    await connection.finish(timeout)
                except UpstreamError as error:  # nothing has gone to the client yet
                    connection.close()
                    bad = 502 if isinstance(error, UpstreamGarbage) else 503
                    return await self._unavailable(scope, send, request_id, extra, bad)
        if connection.complete:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": connection.take_ready()})
            return status
        await send({"type": "http.response.start", "status": status, "headers": headers})
        watcher = None
        if route.stream:
            # A stream ends when the client goes: watch for it, and close the upstream's end.
            watcher = asyncio.ensure_future(_on_disconnect(receive, connection.close))
        try:
            while (data := await connection.chunk(timeout)) is not None:
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except UpstreamError as error:
            connection.close()
            if watcher is not None and watcher.done():
                return status  # the client left; nothing more to say
            # Mid-answer: returning without the end makes the server drop the client's
            # connection, so a cut body never passes for a whole one.
            log.warning(
                "upstream %s failed mid-answer to %s: %s", route.service.value, scope["path"], error
            )
        finally:
            if watcher is not None:
                watcher.cancel()
        return status

    # -- the gateway's own answers

    async def _own(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
        extra: list[tuple[bytes, bytes]],
    ) -> int:
        path: str = scope["path"]
        if path == "/health":
            body = {"status": "ok", "service": "gateway", "version": __version__}
            return await self._json(send, 200, orjson.dumps(body), extra)
        if path == "/ready":
            status, document = await self._ready()
            return await self._json(send, status, orjson.dumps(document), extra)
        if path == "/metrics":
            headers = [(b"content-type", CONTENT_TYPE_LATEST.encode()), *_API_HEADERS[:4]]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": self.deps.metrics.render()})
            return 200
        if path == "/openapi.json" or path == "/docs" or path.startswith(DOCS_FILES + "/"):
            return await self._docs(scope, receive, send, request_id, extra)
        # Unknown API paths, and anything else under /docs.
        error = RouteNotFound(f"No route for {scope['method']} {path}.")
        return await self._problem(scope, send, render(error, path), request_id, extra)

    async def _docs(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
        extra: list[tuple[bytes, bytes]],
    ) -> int:
        """The merged OpenAPI document, Swagger UI and its vendored files, with the headers the
        embedded app gives them (the docs' page and files without the API's CSP, which would
        stop Swagger UI's inline script)."""
        path: str = scope["path"]
        if scope["method"] not in ("GET", "HEAD"):
            response = render(MethodNotAllowed(), path)
            response.headers["allow"] = "GET, HEAD"
            return await self._problem(scope, send, response, request_id, extra)
        if path == "/openapi.json":
            return await self._json(send, 200, await self.docs.body(), extra)
        headers = [(b"x-request-id", request_id.encode()), *_DOCS_HEADERS, *extra]
        if path == "/docs":
            page = self._swagger_page
            start: Message = {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-length", str(len(page)).encode()),
                    *headers,
                ],
            }
            await send(start)
            await send({"type": "http.response.body", "body": page})
            return 200
        status = 200

        async def send_file(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        try:
            await self._swagger_files({**scope, "root_path": DOCS_FILES}, receive, send_file)
        except HTTPException:  # no such file
            error = RouteNotFound(f"No route for {scope['method']} {path}.")
            return await self._problem(scope, send, render(error, path), request_id, extra)
        return status

    async def _ready(self) -> tuple[int, dict[str, Any]]:
        async def probe_one(upstream: Upstream) -> dict[str, Any]:
            try:
                status = await _get_status(upstream, "/ready", READY_TIMEOUT)
            except UpstreamError as error:
                return {"status": "down", "detail": str(error)}
            return {"status": "ready" if status == 200 else "not ready", "http_status": status}

        async def probe(replicas: Replicas) -> dict[str, Any]:
            """A service is ready when one of its replicas is; with several, each is listed."""
            found = await asyncio.gather(*(probe_one(m) for m in replicas.members))
            if len(found) == 1:
                return found[0]
            ready = sum(r["status"] == "ready" for r in found)
            replies = {m.base_url: r for m, r in zip(replicas.members, found, strict=True)}
            return {"status": "ready" if ready else "down", "replicas": replies}

        results = await asyncio.gather(*(probe(u) for u in self.upstreams.values()))
        services = {s.value: r for s, r in zip(self.upstreams, results, strict=True)}
        failing = [
            s.value
            for s, r in zip(self.upstreams, results, strict=True)
            if r["status"] != "ready" and s in REQUIRED_FOR_READY
        ]
        degraded = any(r["status"] != "ready" for r in results)
        overall = "unavailable" if failing else ("degraded" if degraded else "ready")
        return (503 if failing else 200), {"status": overall, "services": services}

    async def _json(
        self, send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]
    ) -> int:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", (request_id_var.get() or "").encode()),
            *_API_HEADERS,
            *extra,
        ]
        if status == 503:
            headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return status

    async def _problem(
        self,
        scope: Scope,
        send: Send,
        response: Response,
        request_id: str,
        extra: list[tuple[bytes, bytes]],
    ) -> int:
        headers: list[tuple[bytes, bytes]] = list(response.raw_headers)
        headers += [(b"x-request-id", request_id.encode()), *_API_HEADERS, *extra]
        status: int = response.status_code
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})
        return status

    async def _unavailable(
        self,
        scope: Scope,
        send: Send,
        request_id: str,
        extra: list[tuple[bytes, bytes]],
        status: int,
    ) -> int:
        if status == 502:
            response = problem_response(
                status=502,
                code="BAD_GATEWAY",
                title="Bad gateway",
                detail="The service behind this path answered something that is not HTTP.",
                instance=scope["path"],
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        else:
            response = render(
                ServiceUnavailable(
                    "The service behind this path does not answer; try again shortly.",
                    retry_after=RETRY_AFTER_SECONDS,
                ),
                scope["path"],
            )
        return await self._problem(scope, send, response, request_id, extra)

    async def _preflight(self, origin: bytes, request_id: str, send: Send) -> None:
        headers = [
            (b"access-control-allow-origin", b"*" if self._any_origin else origin),
            (b"access-control-allow-methods", _CORS_METHODS),
            (b"access-control-allow-headers", _CORS_HEADERS),
            (b"access-control-max-age", b"600"),
            (b"vary", b"Origin"),
            (b"content-length", b"0"),
            (b"x-request-id", request_id.encode()),
            *_API_HEADERS,
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    def _finish(self, scope: Scope, route: str, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        if self._deps is not None:
            self._deps.metrics.observe(scope["method"], route, status, elapsed)
        if self.settings.access_log:
            access_log.write(scope["method"], scope["path"], status, elapsed)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def _safe_to_resend(method: str, headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a request that may have reached the upstream can be sent again: an idempotent
    method, or one with an `Idempotency-Key` (the service applies it once)."""
    return method in _IDEMPOTENT_METHODS or _header(headers, b"idempotency-key") is not None


async def _on_disconnect(receive: Receive, then: Callable[[], None]) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            then()
            return


async def _get_status(upstream: Upstream, path: str, timeout: float) -> int:
    """GET `path` from `upstream` over its pool; the status (the body is read and dropped)."""
    connection = await upstream.acquire()
    try:
        connection.begin(no_body=False)
        connection.write(
            b"GET %s HTTP/1.1\r\nhost: %s\r\nuser-agent: orderproc-gateway\r\n\r\n"
            % (path.encode(), upstream.host_header)
        )
        status, _ = await connection.head(timeout)
        while await connection.chunk(timeout) is not None:
            pass
    except UpstreamError:
        connection.close()
        raise
    upstream.release(connection)
    return status
